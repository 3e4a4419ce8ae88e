/* The context symbols of the integration-test writer; linked into the executable or built as
 * libcustomlabels-it.so (TLSDESC). */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>

#include "ctx_writer.h"

__attribute__((visibility("default"), used, retain)) uint32_t custom_labels_abi_version = 1;
__attribute__((visibility("default"), used, retain)) __thread cl_labelset *custom_labels_current_set;
__attribute__((visibility("default"), used, retain)) __thread void *otel_thread_ctx_v1;

void it_set_context(cl_labelset *set, void *record) {
    custom_labels_current_set = set;
    otel_thread_ctx_v1 = record;
}

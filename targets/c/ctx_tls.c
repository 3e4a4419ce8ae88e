/* ctx_tls.c: defines the context TLS symbols exactly as the formats require and nothing else.
 *
 * Build macros: CTX_HAS_V1 (0/1) defines `custom_labels_current_set` + `custom_labels_abi_version`;
 * CTX_ALIGN (8/16/64) is the alignment of an initialised dummy TLS array placed before the slots in
 * the PT_TLS image, so that the slots' st_value is not 0 and p_align is what the variant says.
 * The pad is never accessed (an access to a hidden variable would add a local-dynamic relocation).
 * The access model is chosen by the compiler flags of the variant (-ftls-model, -mtls-dialect). */
#include "ctx_tls.h"

#ifndef CTX_ALIGN
#define CTX_ALIGN 8
#endif

#define CTX_BARRIER() __asm__ __volatile__("" ::: "memory")

/* In .tdata (initialised), so it comes first in the TLS image; 24 bytes so the image size is not a
 * multiple of the alignment. */
__attribute__((used, retain, visibility("default"), aligned(CTX_ALIGN)))
__thread unsigned char ctx_tls_alignment_pad[24] = {1};

#if CTX_HAS_V1
__attribute__((used, retain, visibility("default")))
uint32_t custom_labels_abi_version = 1;

__attribute__((used, retain, visibility("default")))
__thread void *custom_labels_current_set;
#endif

__attribute__((used, retain, visibility("default")))
__thread void *otel_thread_ctx_v1;

__attribute__((visibility("default")))
void ctx_tls_set_v1(void *labelset) {
#if CTX_HAS_V1
    CTX_BARRIER();
    *(void *volatile *)&custom_labels_current_set = labelset;
    CTX_BARRIER();
#else
    (void)labelset;
#endif
}

__attribute__((visibility("default")))
void ctx_tls_set_v2(void *record) {
    CTX_BARRIER();
    *(void *volatile *)&otel_thread_ctx_v1 = record;
    CTX_BARRIER();
}

__attribute__((visibility("default")))
void *ctx_tls_v2_slot_address(void) {
    return (void *)&otel_thread_ctx_v1;
}

__attribute__((visibility("default")))
int ctx_tls_has_v1(void) {
    return CTX_HAS_V1;
}

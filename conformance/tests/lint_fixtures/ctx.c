/* Context symbols for `check` violation fixtures; how they are built decides the violation. */
#include <stdint.h>
__attribute__((visibility("default"), used)) uint32_t custom_labels_abi_version = 1;
__attribute__((visibility("default"), used)) __thread void *custom_labels_current_set;
__attribute__((visibility("default"), used)) __thread void *otel_thread_ctx_v1;
void *touch(void) { return custom_labels_current_set ? custom_labels_current_set : otel_thread_ctx_v1; }
void set(void *p) { custom_labels_current_set = p; otel_thread_ctx_v1 = p; }

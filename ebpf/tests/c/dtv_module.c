/* dtv_module.c: a dlopen'ed DSO with a general-dynamic TLS slot for the OTEP 4947 record pointer. */
#include <stddef.h>

__thread void *module_v2_slot __attribute__((tls_model("global-dynamic")));

void module_set(void *record) { module_v2_slot = record; }
void **module_slot_address(void) { return &module_v2_slot; }

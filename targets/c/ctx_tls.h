/* ctx_tls.h: the thread-local context slots (custom-labels v1, OTEP 4947) and their setters.
 *
 * The module that defines the slots (ctx_tls.c) is linked into the executable, into a start-up DSO
 * or into a dlopen'ed DSO depending on the build variant; the writer only reaches the slots through
 * these functions, so a thread that never calls them never touches the module's TLS. */
#ifndef CTX_TLS_H
#define CTX_TLS_H

#include <stdint.h>

/* Installs (or clears with NULL) this thread's custom-labels v1 set pointer. */
void ctx_tls_set_v1(void *labelset);
/* Installs (or clears with NULL) this thread's OTEP 4947 record pointer. */
void ctx_tls_set_v2(void *record);
/* Address of this thread's OTEP 4947 slot (used to tell static from dynamic TLS). */
void *ctx_tls_v2_slot_address(void);
/* 1 when the module defines the custom-labels v1 symbols. */
int ctx_tls_has_v1(void);

typedef void (*ctx_tls_set_fn)(void *);
typedef void *(*ctx_tls_addr_fn)(void);
typedef int (*ctx_tls_has_fn)(void);

#endif

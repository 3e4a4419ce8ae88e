/* filler.c: a DSO with a large initial-exec TLS block; dlopen'ing several of them uses up glibc's
 * surplus static TLS so that a context module dlopen'ed afterwards must use dynamic TLS (DTV path). */
#ifndef FILLER_SIZE
#define FILLER_SIZE 256
#endif

__attribute__((tls_model("initial-exec"), used))
__thread unsigned char filler_block[FILLER_SIZE];

__attribute__((visibility("default")))
unsigned char filler_touch(void) {
    filler_block[FILLER_SIZE - 1] = 1;
    return filler_block[0];
}

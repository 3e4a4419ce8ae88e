/* common.h: the small helpers both C programs, the writer (writer.c) and the hostile target
 * (hostile.c), share: allocation, the count of threads that have published, and the main thread's
 * name. */
#ifndef TARGETS_COMMON_H
#define TARGETS_COMMON_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* calloc that never returns NULL, even for a size of 0. */
static inline void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) abort();
    return p;
}

/* A NUL-terminated heap copy of `len` bytes; never NULL, even for len 0. */
static inline const unsigned char *copy_bytes(const void *bytes, size_t len) {
    unsigned char *c = xcalloc(len + 1, 1);
    memcpy(c, bytes, len);
    return c;
}

/* Threads call report_ready() once they published; the main thread waits for them all. */
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static size_t ready_count;

static inline void report_ready(void) {
    pthread_mutex_lock(&ready_lock);
    ready_count++;
    pthread_cond_broadcast(&ready_cond);
    pthread_mutex_unlock(&ready_lock);
}

static inline void wait_ready(size_t count) {
    pthread_mutex_lock(&ready_lock);
    while (ready_count < count) pthread_cond_wait(&ready_cond, &ready_lock);
    pthread_mutex_unlock(&ready_lock);
}

/* The main thread's name as the kernel reports it (/proc/self/comm, at most 15 bytes), which
 * the expectation must use rather than argv[0]. 0, or -1 when it cannot be read. */
static inline int main_thread_name(char name[16]) {
    FILE *comm = fopen("/proc/self/comm", "r");
    if (!comm) return -1;
    memset(name, 0, 16);
    int ok = fgets(name, 16, comm) != NULL;
    fclose(comm);
    name[strcspn(name, "\n")] = 0;
    return ok ? 0 : -1;
}

#endif

/* ctx_writer.h: what the small C writers that are not conformance targets share: the reader's
 * integration-test writer (writer.c, ctx.c) and the benchmark target (bench/c/target.c, which
 * includes it from here). The custom-labels v1 types, a protobuf writer for OTEP 4719 payloads
 * whose every length is < 128, and the memfd mapping that publishes the payload. Include after
 * defining _GNU_SOURCE (memfd_create). */
#ifndef CTX_WRITER_H
#define CTX_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct { size_t len; const unsigned char *buf; } cl_string;
typedef struct { cl_string key, value; } cl_label;
typedef struct { cl_label *storage; size_t count, capacity; } cl_labelset;

/* The payload being written: pb[0..pb_len). */
static unsigned char pb[1024];
static size_t pb_len;
static inline void put(const void *p, size_t n) { memcpy(pb + pb_len, p, n); pb_len += n; }
static inline void byte(unsigned char b) { put(&b, 1); }
/* KeyValue{key, AnyValue{string}} as a field with the given tag. */
static inline void kv_string(unsigned char tag, const char *k, const char *v) {
    size_t kl = strlen(k), vl = strlen(v);
    byte(tag); byte((unsigned char)(2 + kl + 2 + 2 + vl));
    byte(0x0a); byte((unsigned char)kl); put(k, kl);
    byte(0x12); byte((unsigned char)(2 + vl)); byte(0x0a); byte((unsigned char)vl); put(v, vl);
}

/* Publishes pb[0..pb_len) as the process context: a copy on the heap, and a 32-byte header
 * (formats.md 3.2) in a memfd mapping named OTEL_CTX, timestamp written last. */
static inline void publish_payload(void) {
    int fd = memfd_create("OTEL_CTX", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 4096) != 0) { perror("memfd"); exit(1); }
    unsigned char *hdr = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (hdr == MAP_FAILED) { perror("mmap"); exit(1); }
    close(fd);
    unsigned char *payload = malloc(pb_len);
    memcpy(payload, pb, pb_len);
    uint32_t version = 2, size = (uint32_t)pb_len;
    uint64_t addr = (uint64_t)(uintptr_t)payload, ts;
    struct timespec t; clock_gettime(CLOCK_BOOTTIME, &t);
    ts = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
    memcpy(hdr, "OTEL_CTX", 8); memcpy(hdr + 8, &version, 4); memcpy(hdr + 12, &size, 4);
    memcpy(hdr + 24, &addr, 8);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    memcpy(hdr + 16, &ts, 8);
}

/* A cl_string holding a heap copy of `s`. */
static inline cl_string str(const char *s) {
    cl_string r = {strlen(s), (const unsigned char *)strdup(s)};
    return r;
}

#endif

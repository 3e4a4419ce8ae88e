/* The benchmark target: N worker threads, each publishing custom-labels v1 (8 labels) and a
 * 640-byte OTEP 4947 record (28-byte header + 612 attribute bytes), plus an OTEP 4719 process
 * context that holds the attribute key map.
 *
 *   bench-target --threads N [--busy]
 *
 * Prints "READY <pid>" once every worker has published. Idle workers then sleep in a futex
 * (pthread barrier); busy workers spin, each incrementing its own counter. Every line read on
 * stdin is answered with "COUNT <sum of all counters> <CLOCK_MONOTONIC ns> <process CPU time ns>",
 * so the benchmark can measure the target's throughput. Exits on stdin EOF. Built with debug info so that gdb can
 * resolve the TLS symbols. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ctx_writer.h" /* from reader/tests/it/c (build.rs adds -I) */


/* The context symbols, in the executable's static TLS block (local-exec from here, initial-exec
 * / TP-relative for a reader). */
__attribute__((visibility("default"), used, retain)) uint32_t custom_labels_abi_version = 1;
__attribute__((visibility("default"), used, retain)) __thread cl_labelset *custom_labels_current_set;
__attribute__((visibility("default"), used, retain)) __thread void *otel_thread_ctx_v1;

#define LABELS 8
#define RECORD_SIZE 640
#define ATTRS 6
#define ATTR_VALUE_LEN 100 /* 6 * (2 + 100) = 612 = RECORD_SIZE - 28 */
#define MAX_THREADS 4096

static const char *const attr_keys[ATTRS] = {"http.route", "user.id", "tenant", "region",
                                             "request.id", "feature"};

/* ---- OTEP 4719 process context (protobuf written by hand; every length < 128) ---- */
static void publish_process_context(void) {
    unsigned char res[64], arr[256];
    size_t save, an = 0;
    pb_len = 0; kv_string(0x0a, "service.name", "bench-target");
    memcpy(res, pb, pb_len); save = pb_len;
    pb_len = 0; byte(0x0a); byte((unsigned char)save); put(res, save);
    kv_string(0x12, "threadlocal.schema_version", "tlsdesc_v1_dev");
    /* KeyValue{key, AnyValue{array_value: ArrayValue{values: [AnyValue{string_value}...]}}} */
    for (int i = 0; i < ATTRS; i++) {
        size_t l = strlen(attr_keys[i]);
        arr[an++] = 0x0a; arr[an++] = (unsigned char)(2 + l);
        arr[an++] = 0x0a; arr[an++] = (unsigned char)l;
        memcpy(arr + an, attr_keys[i], l); an += l;
    }
    const char *k = "threadlocal.attribute_key_map";
    size_t kl = strlen(k);
    byte(0x12); byte((unsigned char)(2 + kl + 2 + 2 + an));
    byte(0x0a); byte((unsigned char)kl); put(k, kl);
    byte(0x12); byte((unsigned char)(2 + an)); byte(0x2a); byte((unsigned char)an); put(arr, an);

    publish_payload();
}

/* ---- workers ---- */
typedef struct { uint64_t n; } __attribute__((aligned(64))) counter_t;
static counter_t counters[MAX_THREADS];
static pthread_barrier_t ready, done_barrier;
static int busy, nthreads = 2;
static volatile int stopping;

static void publish_thread_context(int i) {
    static const char *const keys[LABELS] = {"worker", "customer", "endpoint", "shard",
                                             "tenant", "region", "priority", "request"};
    char buf[64];
    cl_labelset *set = malloc(sizeof *set);
    set->storage = calloc(LABELS, sizeof(cl_label));
    set->capacity = LABELS; set->count = LABELS;
    for (int l = 0; l < LABELS; l++) {
        snprintf(buf, sizeof buf, "%s-%d", keys[l], i);
        set->storage[l].key = str(keys[l]);
        set->storage[l].value = str(buf);
    }
    unsigned char *rec = calloc(1, RECORD_SIZE);
    memset(rec, i & 0xff, 16); rec[0] = 0x5a; /* trace id, never all zero */
    memset(rec + 16, 0xa0 ^ (i & 0xff), 8); rec[16] = 0x5b;
    rec[25] = 1; /* trace flags: sampled */
    unsigned char *a = rec + 28;
    size_t n = 0;
    for (int k = 0; k < ATTRS; k++) {
        a[n++] = (unsigned char)k; a[n++] = ATTR_VALUE_LEN;
        snprintf(buf, sizeof buf, "%s-%d-", attr_keys[k], i);
        size_t bl = strlen(buf);
        for (size_t j = 0; j < ATTR_VALUE_LEN; j++) a[n + j] = (unsigned char)buf[j % bl];
        n += ATTR_VALUE_LEN;
    }
    uint16_t sz = (uint16_t)n;
    memcpy(rec + 26, &sz, 2);
    __atomic_store_n(&rec[24], 1, __ATOMIC_RELEASE); /* valid */
    __atomic_store_n(&custom_labels_current_set, set, __ATOMIC_RELEASE);
    __atomic_store_n(&otel_thread_ctx_v1, (void *)rec, __ATOMIC_RELEASE);
}

static void *worker(void *arg) {
    int i = (int)(intptr_t)arg;
    publish_thread_context(i + 1);
    pthread_barrier_wait(&ready);
    if (busy) {
        counter_t *c = &counters[i];
        while (!stopping) __atomic_store_n(&c->n, __atomic_load_n(&c->n, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    }
    pthread_barrier_wait(&done_barrier);
    return NULL;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--busy") == 0) busy = 1;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) nthreads = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench-target --threads N [--busy]\n"); return 2; }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS) { fprintf(stderr, "1 <= N <= %d\n", MAX_THREADS); return 2; }
    publish_process_context();
    pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&done_barrier, NULL, (unsigned)nthreads + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&th[i], &attr, worker, (void *)(intptr_t)i) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    pthread_barrier_wait(&ready);
    printf("READY %d\n", (int)getpid());
    fflush(stdout);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        uint64_t sum = 0;
        for (int i = 0; i < nthreads; i++) sum += __atomic_load_n(&counters[i].n, __ATOMIC_RELAXED);
        struct timespec t, cpu;
        clock_gettime(CLOCK_MONOTONIC, &t);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
        printf("COUNT %llu %llu %llu\n", (unsigned long long)sum,
               (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec,
               (unsigned long long)cpu.tv_sec * 1000000000ull + (unsigned long long)cpu.tv_nsec);
        fflush(stdout);
    }
    stopping = 1;
    pthread_barrier_wait(&done_barrier);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    return 0;
}

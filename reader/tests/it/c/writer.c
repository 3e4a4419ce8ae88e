/* Integration-test writer for the reader crate: publishes custom-labels v1, an OTEP 4947 record
 * and an OTEP 4719 process context, prints "READY <tid> <tid>" and parks until stdin EOF.
 * Thread i (1..N, N = --threads, default 2) has labels {"worker": "w<i>", "customer": "acme"} and a record with
 * trace id bytes i,i,..., span id 0xa0+i..., flags 1, attributes {0: "/api/<i>", 1: "u<i>"}.
 * The main thread publishes nothing. With --busy the workers spin on CPU (for sampling backends).
 * With --churn N, N more threads each create and join short-lived threads without pause. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ctx_writer.h"

void it_set_context(cl_labelset *set, void *record);

static void publish_process_context(void) {
    /* ProcessContext{resource: Resource{attributes: [service.name]}, attributes: [...]} */
    unsigned char res[64]; size_t save;
    pb_len = 0; kv_string(0x0a, "service.name", "it-writer");
    memcpy(res, pb, pb_len); save = pb_len;
    pb_len = 0; byte(0x0a); byte((unsigned char)save); put(res, save);
    kv_string(0x12, "threadlocal.schema_version", "tlsdesc_v1_dev");
    /* key map: KeyValue{key, AnyValue{array_value{values: ["http.route", "user.id"]}}} */
    const char *k = "threadlocal.attribute_key_map";
    size_t kl = strlen(k);
    unsigned char arr[] = {0x0a, 12, 0x0a, 10, 'h','t','t','p','.','r','o','u','t','e',
                           0x0a, 9, 0x0a, 7, 'u','s','e','r','.','i','d'};
    byte(0x12); byte((unsigned char)(2 + kl + 2 + 2 + sizeof arr));
    byte(0x0a); byte((unsigned char)kl); put(k, kl);
    byte(0x12); byte((unsigned char)(2 + sizeof arr)); byte(0x2a); byte((unsigned char)sizeof arr); put(arr, sizeof arr);

    publish_payload();
}

static pthread_barrier_t ready, done_barrier;
static int busy;
static volatile int stopping;
#define MAX_THREADS 1024
static pid_t tids[MAX_THREADS];
static int nthreads = 2;

static void *worker(void *arg) {
    int i = (int)(intptr_t)arg;
    char buf[32];
    cl_labelset *set = malloc(sizeof *set);
    set->storage = calloc(4, sizeof(cl_label));
    set->capacity = 4; set->count = 2;
    snprintf(buf, sizeof buf, "w%d", i);
    set->storage[0].key = str("worker"); set->storage[0].value = str(buf);
    set->storage[1].key = str("customer"); set->storage[1].value = str("acme");
    unsigned char *rec = calloc(1, 640);
    memset(rec, i, 16); memset(rec + 16, 0xa0 + i, 8);
    rec[25] = 1;
    char route[16], user[8];
    snprintf(route, sizeof route, "/api/%d", i); snprintf(user, sizeof user, "u%d", i);
    size_t n = 0; unsigned char *a = rec + 28;
    a[n++] = 0; a[n++] = (unsigned char)strlen(route); memcpy(a + n, route, strlen(route)); n += strlen(route);
    a[n++] = 1; a[n++] = (unsigned char)strlen(user); memcpy(a + n, user, strlen(user)); n += strlen(user);
    uint16_t sz = (uint16_t)n; memcpy(rec + 26, &sz, 2);
    rec[24] = 1;
    it_set_context(set, rec);
    tids[i - 1] = (pid_t)syscall(SYS_gettid);
    pthread_barrier_wait(&ready);
    while (busy && !stopping) {}
    pthread_barrier_wait(&done_barrier);
    return NULL;
}

static void *short_lived(void *arg) { return arg; }

static void *churner(void *arg) {
    while (!stopping) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, NULL) == 0) pthread_join(t, NULL);
    }
    return arg;
}

int main(int argc, char **argv) {
    int churners = 0;
    for (int i = 1; i < argc; i++) {
        busy |= strcmp(argv[i], "--busy") == 0;
        if (strcmp(argv[i], "--churn") == 0 && i + 1 < argc) churners = atoi(argv[++i]);
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) nthreads = atoi(argv[++i]);
    }
    if (nthreads < 1 || nthreads > MAX_THREADS) nthreads = 2;
    publish_process_context();
    pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&done_barrier, NULL, (unsigned)nthreads + 1);
    static pthread_t th[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, worker, (void *)(intptr_t)(i + 1));
    pthread_barrier_wait(&ready);
    for (int i = 0; i < churners && i < 64; i++) {
        pthread_t t;
        pthread_create(&t, NULL, churner, NULL);
        pthread_detach(t);
    }
    printf("READY");
    for (int i = 0; i < nthreads; i++) printf(" %d", tids[i]);
    printf("\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    stopping = 1;
    pthread_barrier_wait(&done_barrier);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    return 0;
}

/* writer.c: the C conformance target. Publishes custom-labels v1, OTEP 4947 thread context and the
 * OTEP 4719 process context for one scenario, lets every thread set its own context, prints
 * `CONTEXT-READY {json}` with the snapshot a correct reader must produce, and waits for stdin EOF
 * (conformance.md section 4).
 *
 * Arguments: --scenario NAME (basic, many-threads, empty-and-null, duplicates, binary-bytes,
 * large-record, unknown-key-index, in-progress, detached, churn), --busy (every thread, the main
 * thread included, spins on CPU; the main thread polls stdin without blocking), --churn (same as
 * --scenario churn), --process-context memfd|anon|none|decoys; anything else is ignored.
 *
 * Build macros (set per variant by targets/build.rs): WRITER_NAME, PC_MODE_DEFAULT,
 * CTX_DLOPEN (file name of the context DSO to dlopen from the executable's directory),
 * CTX_FILLERS (1: dlopen the libfiller-*.so DSOs first to use up glibc's surplus static TLS). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "common.h"
#include "ctx_tls.h"
#include "pc.h"

#ifndef WRITER_NAME
#define WRITER_NAME "c-writer"
#endif
#ifndef PC_MODE_DEFAULT
#define PC_MODE_DEFAULT "memfd"
#endif
#ifndef CTX_FILLERS
#define CTX_FILLERS 0
#endif

#define BARRIER() __asm__ __volatile__("" ::: "memory")

/* ---- custom-labels v1 layouts (formats.md 1.5) ---- */
typedef struct {
    size_t len;
    const unsigned char *buf;
} cl_string;
typedef struct {
    cl_string key;
    cl_string value;
} cl_label;
typedef struct {
    cl_label *storage;
    size_t count;
    size_t capacity;
} cl_labelset;
_Static_assert(sizeof(cl_string) == 16, "v1 string is 16 bytes");
_Static_assert(sizeof(cl_label) == 32, "v1 label is 32 bytes");
_Static_assert(sizeof(cl_labelset) == 24, "v1 label set is 24 bytes");

/* ---- OTEP 4947 record (formats.md 2.3) ---- */
typedef struct __attribute__((packed)) {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t valid;
    uint8_t trace_flags;
    uint16_t attrs_data_size;
    uint8_t attrs_data[];
} otel_record;
_Static_assert(sizeof(otel_record) == 28, "OTEP 4947 header is 28 bytes");
_Static_assert(__builtin_offsetof(otel_record, valid) == 24, "valid at 24");
_Static_assert(__builtin_offsetof(otel_record, attrs_data_size) == 26, "attrs_data_size at 26");

/* Position i = name of key index i; published as threadlocal.attribute_key_map. */
static const char *const KEY_MAP[] = {"http.route", "user.id",  "thread.role", "churn.n",
                                      "churn.n3",   "large.a", "large.b",     "bin.value"};
#define KEY_MAP_LEN (sizeof KEY_MAP / sizeof KEY_MAP[0])
#define KEY_CHURN_N 3
#define KEY_CHURN_N3 4

/* ---- the context module: linked in, or dlopen'ed ---- */
static ctx_tls_set_fn set_v1 = NULL;
static ctx_tls_set_fn set_v2 = NULL;
static ctx_tls_addr_fn v2_slot_address = NULL;
static int has_v1 = 0;
static int fillers_loaded = 0;
static int static_tls_exhausted = 0;

static void die(const char *what) {
    fprintf(stderr, "writer %s: %s (errno %d)\n", WRITER_NAME, what, errno);
    exit(3);
}

#ifdef CTX_DLOPEN
static void exe_dir(char *dir, size_t size) {
    ssize_t n = readlink("/proc/self/exe", dir, size - 1);
    if (n <= 0) die("readlink /proc/self/exe");
    dir[n] = 0;
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
}

static void *dlopen_in_exe_dir(const char *file) {
    char path[PATH_MAX + 64];
    char dir[PATH_MAX];
    exe_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}
#endif

static void load_context_module(void) {
#ifdef CTX_DLOPEN
#if CTX_FILLERS
    /* Greedy: biggest fillers first; a failed dlopen means that size no longer fits. */
    static const int sizes[] = {1024, 1024, 512, 256, 128, 64, 32, 16, 8};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char file[64];
        snprintf(file, sizeof file, "libfiller-%d-%zu.so", sizes[k], k);
        void *h = dlopen_in_exe_dir(file);
        if (!h) {
            static_tls_exhausted = 1;
            continue;
        }
        unsigned char (*touch)(void) = (unsigned char (*)(void))dlsym(h, "filler_touch");
        if (!touch) die("dlsym filler_touch");
        touch();
        fillers_loaded++;
    }
#endif
    void *h = dlopen_in_exe_dir(CTX_DLOPEN);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", CTX_DLOPEN, dlerror());
        exit(3);
    }
    set_v1 = (ctx_tls_set_fn)dlsym(h, "ctx_tls_set_v1");
    set_v2 = (ctx_tls_set_fn)dlsym(h, "ctx_tls_set_v2");
    v2_slot_address = (ctx_tls_addr_fn)dlsym(h, "ctx_tls_v2_slot_address");
    ctx_tls_has_fn has = (ctx_tls_has_fn)dlsym(h, "ctx_tls_has_v1");
    if (!set_v1 || !set_v2 || !v2_slot_address || !has) die("dlsym ctx_tls_*");
    has_v1 = has();
#else
    set_v1 = ctx_tls_set_v1;
    set_v2 = ctx_tls_set_v2;
    v2_slot_address = ctx_tls_v2_slot_address;
    has_v1 = ctx_tls_has_v1();
#endif
}

static uintptr_t thread_pointer(void) {
    uintptr_t tp;
#if defined(__x86_64__)
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
    __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
#else
#error "unsupported architecture"
#endif
    return tp;
}

/* ---- builders ---- */
static cl_labelset *ls_new(size_t capacity) {
    cl_labelset *s = xcalloc(1, sizeof *s);
    s->storage = capacity ? xcalloc(capacity, sizeof(cl_label)) : NULL;
    s->capacity = capacity;
    return s;
}

/* key == NULL adds an entry with a NULL key pointer (readers skip it). */
static void ls_add(cl_labelset *s, const void *key, size_t key_len, const void *value, size_t value_len) {
    if (s->count == s->capacity) abort();
    cl_label *l = &s->storage[s->count];
    l->key.len = key_len;
    l->key.buf = key ? copy_bytes(key, key_len) : NULL;
    l->value.len = value_len;
    l->value.buf = copy_bytes(value, value_len);
    s->count++;
}
static void ls_add_str(cl_labelset *s, const char *key, const char *value) {
    ls_add(s, key, strlen(key), value, strlen(value));
}

static otel_record *rec_new(size_t attrs_capacity) {
    size_t size = (sizeof(otel_record) + attrs_capacity + 7) & ~(size_t)7;
    otel_record *r = aligned_alloc(8, size);
    if (!r) abort();
    memset(r, 0, size);
    r->valid = 1;
    return r;
}

static void put_be64(uint8_t *out, uint64_t v) {
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void rec_ids(otel_record *r, uint64_t trace_hi, uint64_t trace_lo, uint64_t span, uint8_t flags) {
    put_be64(r->trace_id, trace_hi);
    put_be64(r->trace_id + 8, trace_lo);
    put_be64(r->span_id, span);
    r->trace_flags = flags;
}

static void rec_attr(otel_record *r, uint8_t key_index, const void *value, uint8_t len) {
    uint8_t *at = r->attrs_data + r->attrs_data_size;
    at[0] = key_index;
    at[1] = len;
    memcpy(at + 2, value, len);
    r->attrs_data_size = (uint16_t)(r->attrs_data_size + 2 + len);
}
static void rec_attr_str(otel_record *r, uint8_t key_index, const char *value) {
    rec_attr(r, key_index, value, (uint8_t)strlen(value));
}

/* ---- thread plans ---- */
enum slot_action { SLOT_UNTOUCHED, SLOT_SET, SLOT_SET_THEN_CLEAR, SLOT_SET_THEN_INVALIDATE };

typedef struct {
    char name[16];
    int v1_action;
    cl_labelset *v1;
    int v2_action;
    otel_record *v2;
    int churn_worker; /* > 0: this thread churns; the value is its worker number */
    pid_t tid;
} plan_t;

static plan_t *plans;
static size_t plan_count;
static int opt_busy;

static plan_t *plan_add(const char *name) {
    plans = realloc(plans, (plan_count + 1) * sizeof *plans);
    if (!plans) abort();
    plan_t *p = &plans[plan_count++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

static void plan_v1(plan_t *p, cl_labelset *s) {
    p->v1_action = SLOT_SET;
    p->v1 = s;
}
static void plan_v2(plan_t *p, otel_record *r) {
    p->v2_action = SLOT_SET;
    p->v2 = r;
}

static void apply_plan(plan_t *p) {
    if (p->v1_action != SLOT_UNTOUCHED) {
        set_v1(p->v1);
        if (p->v1_action == SLOT_SET_THEN_CLEAR) set_v1(NULL);
    }
    if (p->v2_action != SLOT_UNTOUCHED) {
        set_v2(p->v2);
        if (p->v2_action == SLOT_SET_THEN_CLEAR) set_v2(NULL);
        if (p->v2_action == SLOT_SET_THEN_INVALIDATE) {
            BARRIER();
            *(volatile uint8_t *)&p->v2->valid = 0;
            BARRIER();
        }
    }
}

/* ---- churn: every field derives from one counter n (see targets/README.md) ---- */
typedef struct {
    cl_labelset set;
    cl_label labels[3];
    char values[3][24];
} churn_set;

static void churn_fill_v1(churn_set *c, int worker, uint64_t n) {
    static const char *const keys[3] = {"churn.n", "churn.n3", "churn.worker"};
    snprintf(c->values[0], sizeof c->values[0], "%llu", (unsigned long long)n);
    snprintf(c->values[1], sizeof c->values[1], "%llu", (unsigned long long)(3 * n));
    snprintf(c->values[2], sizeof c->values[2], "%d", worker);
    for (int k = 0; k < 3; k++) {
        c->labels[k].key.buf = (const unsigned char *)keys[k];
        c->labels[k].key.len = strlen(keys[k]);
        c->labels[k].value.buf = (const unsigned char *)c->values[k];
        c->labels[k].value.len = strlen(c->values[k]);
    }
    c->set.storage = c->labels;
    c->set.capacity = 3;
    c->set.count = 3;
}

static void churn_fill_v2(otel_record *r, int worker, uint64_t n) {
    char a[24], b[24];
    rec_ids(r, (uint64_t)worker, n, n, (uint8_t)(n & 1));
    r->attrs_data_size = 0;
    snprintf(a, sizeof a, "%llu", (unsigned long long)n);
    snprintf(b, sizeof b, "%llu", (unsigned long long)(3 * n));
    rec_attr_str(r, KEY_CHURN_N, a);
    rec_attr_str(r, KEY_CHURN_N3, b);
}

/* Odd workers update their record in place behind valid=0; even workers swap between two. */
static int churn_in_place(int worker) { return worker % 2 == 1; }

typedef struct {
    churn_set v1[2];
    otel_record *v2[2];
    uint64_t n;
} churn_state;

static void churn_step(churn_state *s, int worker) {
    uint64_t n = ++s->n;
    churn_set *next = &s->v1[n & 1];
    churn_fill_v1(next, worker, n);
    BARRIER();
    set_v1(&next->set);
    if (churn_in_place(worker)) {
        /* Format into a staging copy first so the valid=0 window is one short copy: a sampling
         * reader must see the record valid most of the time. */
        otel_record *r = s->v2[0];
        otel_record *staging = s->v2[1];
        churn_fill_v2(staging, worker, n);
        *(volatile uint8_t *)&r->valid = 0;
        BARRIER();
        memcpy(r->trace_id, staging->trace_id, 24);
        r->trace_flags = staging->trace_flags;
        memcpy(r->attrs_data, staging->attrs_data, staging->attrs_data_size);
        r->attrs_data_size = staging->attrs_data_size;
        BARRIER();
        *(volatile uint8_t *)&r->valid = 1;
        if (n == 1) set_v2(r);
    } else {
        otel_record *r = s->v2[n & 1];
        churn_fill_v2(r, worker, n);
        r->valid = 1;
        BARRIER();
        set_v2(r);
    }
}

/* ---- threads ---- */

static pid_t current_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void *thread_main(void *arg) {
    plan_t *p = arg;
    p->tid = current_tid();
    prctl(PR_SET_NAME, p->name, 0, 0, 0);
    if (p->churn_worker) {
        churn_state s;
        memset(&s, 0, sizeof s);
        s.v2[0] = rec_new(64);
        s.v2[1] = rec_new(64);
        churn_step(&s, p->churn_worker); /* n = 1 is visible before CONTEXT-READY */
        report_ready();
        for (;;) churn_step(&s, p->churn_worker);
    }
    apply_plan(p);
    report_ready();
    if (opt_busy) {
        volatile uint64_t spin = 0;
        for (;;) spin++;
    }
    for (;;) pause();
    return NULL;
}

/* ---- scenarios ---- */
static char *fmt(const char *f, long v) {
    char *s = xcalloc(64, 1);
    snprintf(s, 64, f, v);
    return s;
}

static void scenario_basic(void) {
    plan_t *m = plan_add("main");
    cl_labelset *s = ls_new(2);
    ls_add_str(s, "service", "checkout");
    ls_add_str(s, "role", "main");
    plan_v1(m, s);
    otel_record *r = rec_new(16);
    rec_ids(r, 0x0af7651916cd43ddULL, 0x8448eb211c80319cULL, 0xb7ad6b7169203331ULL, 1);
    rec_attr_str(r, 2, "main");
    plan_v2(m, r);
    for (int i = 1; i <= 3; i++) {
        plan_t *w = plan_add(fmt("worker-%ld", i));
        if (i != 2) {
            cl_labelset *ws = ls_new(2);
            ls_add_str(ws, "worker", fmt("%ld", i));
            ls_add_str(ws, "customer", fmt("acme-%ld", i));
            plan_v1(w, ws);
        }
        if (i != 3) {
            otel_record *wr = rec_new(64);
            rec_ids(wr, (uint64_t)i, 0x1000u + (uint64_t)i, 0x2000u + (uint64_t)i, 1);
            rec_attr_str(wr, 1, fmt("user-%ld", i));
            rec_attr_str(wr, 0, fmt("/api/cart/%ld", i));
            plan_v2(w, wr);
        }
    }
    plan_add("idle"); /* never touches the context module's TLS */
}

static void scenario_many_threads(void) {
    plan_t *m = plan_add("main");
    cl_labelset *s = ls_new(1);
    ls_add_str(s, "role", "main");
    plan_v1(m, s);
    for (int i = 1; i <= 256; i++) {
        plan_t *w = plan_add(fmt("mt-%ld", i));
        if (i % 7 == 0) continue; /* every 7th thread publishes nothing */
        cl_labelset *ws = ls_new(1);
        ls_add_str(ws, "thread.index", fmt("%ld", i));
        plan_v1(w, ws);
        otel_record *r = rec_new(16);
        rec_ids(r, (uint64_t)i, (uint64_t)i, (uint64_t)i, 1);
        rec_attr_str(r, 2, fmt("mt-%ld", i));
        plan_v2(w, r);
    }
}

static void scenario_empty_and_null(void) {
    plan_add("main");
    plan_t *e = plan_add("empty");
    cl_labelset *es = ls_new(4);    /* count 0, capacity 4 ... */
    ls_add_str(es, "beyond", "count");
    es->count = 0;                  /* ... with a whole label past count: capacity means nothing */
    plan_v1(e, es);
    plan_v2(e, rec_new(0));         /* valid, zero ids, no attributes */
    plan_t *n = plan_add("nostorage");
    plan_v1(n, ls_new(0));          /* storage NULL, count 0 */
    otel_record *r = rec_new(8);
    rec_ids(r, 0, 7, 9, 0);
    rec_attr(r, 0, "", 0);          /* an attribute with an empty value */
    plan_v2(n, r);
    plan_t *k = plan_add("nullkey");
    cl_labelset *s = ls_new(3);
    ls_add(s, NULL, 6, "hidden", 6); /* NULL key: skipped */
    ls_add(s, "", 0, "", 0);         /* empty key with a non-NULL pointer: a real key */
    ls_add(s, "k", 1, "", 0);
    plan_v1(k, s);
    otel_record *r2 = rec_new(8);
    rec_ids(r2, 1, 0, 0, 0);         /* span id all zero: null */
    rec_attr_str(r2, 1, "u");
    plan_v2(k, r2);
    plan_t *c = plan_add("cleared");
    c->v1_action = SLOT_SET_THEN_CLEAR;
    c->v1 = ls_new(1);
    ls_add_str(c->v1, "gone", "yes");
    c->v2_action = SLOT_SET_THEN_CLEAR;
    c->v2 = rec_new(0);
}

static void scenario_duplicates(void) {
    plan_add("main");
    plan_t *a = plan_add("dup-1");
    cl_labelset *s = ls_new(5);
    ls_add_str(s, "k", "first");
    ls_add_str(s, "a", "x");
    ls_add_str(s, "k", "second");
    ls_add_str(s, "kk", "long");
    ls_add_str(s, "k", "third");
    plan_v1(a, s);
    otel_record *r = rec_new(32);
    rec_ids(r, 5, 5, 5, 1);
    rec_attr_str(r, 0, "first");
    rec_attr_str(r, 1, "u");
    rec_attr_str(r, 0, "second");
    rec_attr_str(r, 0, "last");
    plan_v2(a, r);
    plan_t *b = plan_add("dup-2");
    cl_labelset *s2 = ls_new(3); /* the intermediate states of a careful set (formats.md 1.7) */
    ls_add(s2, NULL, 5, "old", 3);
    ls_add_str(s2, "route", "/a");
    ls_add_str(s2, "route", "/a");
    plan_v1(b, s2);
    otel_record *r2 = rec_new(16);
    rec_attr_str(r2, 1, "a");
    rec_attr_str(r2, 1, "a");
    plan_v2(b, r2);
}

static void scenario_binary_bytes(void) {
    plan_add("main");
    plan_t *t = plan_add("bin-1");
    cl_labelset *s = ls_new(10);
    ls_add(s, "bin\xff", 4, "\x00\x01\x1b[31m", 7);
    ls_add_str(s, "ctl", "a\"b\\c\n\t\x7f");
    ls_add_str(s, "utf8", "\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80");
    ls_add(s, "\xc0\x80", 2, "overlong", 8);
    ls_add_str(s, "surrogate", "\xed\xa0\x80");
    ls_add_str(s, "cut", "\xe2\x82");
    ls_add_str(s, "lone", "\x80");
    ls_add_str(s, "above", "\xf4\x90\x80\x80");
    ls_add(s, "nul", 3, "a\0b", 3);
    plan_v1(t, s);
    otel_record *r = rec_new(32);
    rec_ids(r, 0xffffffffffffffffULL, 0x00ff00ff00ff00ffULL, 0x8000000000000001ULL, 0xff);
    rec_attr(r, 7, "\xff\xfe", 2);
    rec_attr(r, 0, "ok\0nul", 6);
    plan_v2(t, r);
}

static void scenario_large_record(void) {
    plan_add("main");
    plan_t *a = plan_add("large-1");
    cl_labelset *s = ls_new(32); /* within the eBPF bounds: 32 labels, values <= 255 bytes */
    for (int i = 0; i < 32; i++) {
        char value[255];
        for (int j = 0; j < 255; j++) value[j] = (char)('a' + (i + j) % 26);
        char *key = fmt("large-%02ld", i);
        ls_add(s, key, strlen(key), value, sizeof value);
    }
    plan_v1(a, s);
    otel_record *r = rec_new(612); /* the full 640-byte record */
    rec_ids(r, 0x1111, 0x2222, 0x3333, 1);
    char v[255];
    memset(v, 'A', sizeof v);
    rec_attr(r, 5, v, 255);
    memset(v, 'b', sizeof v);
    rec_attr(r, 6, v, 255);
    memset(v, 'c', sizeof v);
    rec_attr(r, 0, v, 96);
    if (r->attrs_data_size != 612) abort();
    plan_v2(a, r);
    plan_t *b = plan_add("large-2");
    otel_record *r2 = rec_new(612);
    for (int i = 0; i < 153; i++) rec_attr_str(r2, 1, fmt("%02ld", i % 100)); /* last wins: "52" */
    if (r2->attrs_data_size != 612) abort();
    plan_v2(b, r2);
}

static void scenario_unknown_key_index(void) {
    plan_add("main");
    plan_t *t = plan_add("unknown");
    cl_labelset *s = ls_new(1);
    ls_add_str(s, "a", "b");
    plan_v1(t, s);
    otel_record *r = rec_new(32);
    rec_ids(r, 8, 8, 8, 1);
    rec_attr_str(r, 0, "/known");
    rec_attr_str(r, 200, "x");
    rec_attr_str(r, (uint8_t)KEY_MAP_LEN, "y");
    rec_attr_str(r, 200, "x2");
    rec_attr_str(r, 255, "z");
    plan_v2(t, r);
}

static void scenario_in_progress(void) {
    plan_add("main");
    plan_t *a = plan_add("inprog-0");
    cl_labelset *s = ls_new(1);
    ls_add_str(s, "state", "writing");
    plan_v1(a, s);
    otel_record *r = rec_new(16);
    rec_ids(r, 1, 2, 3, 1);
    rec_attr_str(r, 0, "/half");
    r->valid = 0;
    plan_v2(a, r);
    plan_t *b = plan_add("inprog-2");
    otel_record *r2 = rec_new(16);
    rec_attr_str(r2, 0, "/two");
    r2->valid = 2;
    plan_v2(b, r2);
    plan_t *c = plan_add("inprog-ok"); /* valid, but the key map is not published yet */
    otel_record *r3 = rec_new(16);
    rec_attr_str(r3, 0, "/x");
    plan_v2(c, r3);
}

static void scenario_detached(void) {
    plan_t *m = plan_add("main");
    m->v1_action = SLOT_SET_THEN_CLEAR;
    m->v1 = ls_new(1);
    ls_add_str(m->v1, "was", "here");
    plan_t *a = plan_add("detach-null");
    a->v1_action = SLOT_SET_THEN_CLEAR;
    a->v1 = ls_new(0);
    a->v2_action = SLOT_SET_THEN_CLEAR;
    a->v2 = rec_new(8);
    rec_attr_str(a->v2, 0, "/gone");
    plan_t *b = plan_add("detach-valid0");
    cl_labelset *s = ls_new(1);
    ls_add_str(s, "still", "labelled");
    plan_v1(b, s);
    b->v2_action = SLOT_SET_THEN_INVALIDATE;
    b->v2 = rec_new(8);
    rec_attr_str(b->v2, 0, "/gone");
}

static void scenario_churn(void) {
    plan_t *m = plan_add("main");
    cl_labelset *s = ls_new(1);
    ls_add_str(s, "role", "main");
    plan_v1(m, s);
    for (int i = 1; i <= 4; i++) plan_add(fmt("churn-%ld", i))->churn_worker = i;
}

/* ---- expectations: the canonical snapshot (conformance.md section 3, notes/contract.md) ---- */
static int bytes_cmp(const unsigned char *a, size_t al, const unsigned char *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static int label_cmp(const void *x, const void *y) {
    const cl_label *a = *(const cl_label *const *)x, *b = *(const cl_label *const *)y;
    return bytes_cmp(a->key.buf, a->key.len, b->key.buf, b->key.len);
}

static void expect_v1(buf_t *b, const plan_t *p) {
    if (!has_v1 || p->v1_action == SLOT_UNTOUCHED || p->v1_action == SLOT_SET_THEN_CLEAR) {
        buf_puts(b, "null");
        return;
    }
    const cl_labelset *s = p->v1;
    const cl_label **kept = xcalloc(s->count, sizeof *kept);
    size_t n = 0;
    for (size_t i = 0; i < s->count; i++) {
        const cl_label *l = &s->storage[i];
        if (!l->key.buf) continue;
        int seen = 0;
        for (size_t j = 0; j < n; j++)
            if (bytes_cmp(kept[j]->key.buf, kept[j]->key.len, l->key.buf, l->key.len) == 0) seen = 1;
        if (!seen) kept[n++] = l; /* first wins */
    }
    qsort(kept, n, sizeof *kept, label_cmp);
    buf_puts(b, "{\"labels\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) buf_puts(b, ",");
        buf_puts(b, "{\"key\":");
        json_bytes(b, kept[i]->key.buf, kept[i]->key.len);
        buf_puts(b, ",\"value\":");
        json_bytes(b, kept[i]->value.buf, kept[i]->value.len);
        buf_puts(b, "}");
    }
    buf_puts(b, "]}");
    free(kept);
}

static int key_index_cmp(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return strcmp(KEY_MAP[a], KEY_MAP[b]);
}

static void expect_v2(buf_t *b, const plan_t *p, int key_map_known) {
    const otel_record *r = p->v2;
    if (p->v2_action != SLOT_SET || r->valid != 1) {
        buf_puts(b, "null");
        return;
    }
    const uint8_t *last[256] = {0};
    uint8_t last_len[256] = {0};
    size_t pos = 0, size = r->attrs_data_size;
    while (size - pos >= 2) {
        uint8_t idx = r->attrs_data[pos], len = r->attrs_data[pos + 1];
        if ((size_t)2 + len > size - pos) break;
        last[idx] = &r->attrs_data[pos + 2]; /* last wins */
        last_len[idx] = len;
        pos += 2 + (size_t)len;
    }
    int named[256], n_named = 0;
    for (int i = 0; i < 256; i++)
        if (last[i] && key_map_known && (size_t)i < KEY_MAP_LEN) named[n_named++] = i;
    qsort(named, (size_t)n_named, sizeof named[0], key_index_cmp);
    buf_puts(b, "{\"layout\":\"otep-4947\",\"trace_id\":");
    json_hex_or_null(b, r->trace_id, 16);
    buf_puts(b, ",\"span_id\":");
    json_hex_or_null(b, r->span_id, 8);
    buf_printf(b, ",\"trace_flags\":%u,\"attributes\":[", r->trace_flags);
    int first = 1;
    for (int k = 0; k < n_named; k++) {
        int i = named[k];
        buf_puts(b, first ? "" : ",");
        first = 0;
        buf_puts(b, "{\"key\":");
        json_cstr(b, KEY_MAP[i]);
        buf_puts(b, ",\"value\":");
        json_bytes(b, last[i], last_len[i]);
        buf_puts(b, "}");
    }
    for (int i = 0; i < 256; i++) {
        if (!last[i] || (key_map_known && (size_t)i < KEY_MAP_LEN)) continue;
        buf_puts(b, first ? "" : ",");
        first = 0;
        buf_printf(b, "{\"key_index\":%d,\"value\":", i);
        json_bytes(b, last[i], last_len[i]);
        buf_puts(b, "}");
    }
    buf_puts(b, "]}");
}

static int plan_tid_cmp(const void *x, const void *y) {
    const plan_t *a = *(const plan_t *const *)x, *b = *(const plan_t *const *)y;
    return (a->tid > b->tid) - (a->tid < b->tid);
}

static void build_payload(buf_t *out, kvlist_t *resource, kvlist_t *attributes, const char *service,
                          int binary) {
    kv_add(resource, "service.name", av_str(service));
    kv_add(resource, "service.instance.id", av_str(WRITER_NAME));
    kv_add(resource, "process.pid", av_int((int64_t)getpid()));
    kv_add(resource, "telemetry.sdk.language", av_str("c"));
    kv_add(resource, "dup.key", av_str("first"));
    kv_add(resource, "test.bool", av_bool(1));
    kv_add(resource, "test.double", av_double(1.5));
    kv_add(resource, "test.negative", av_int(-42));
    kv_add(resource, "test.max_safe", av_int(9007199254740991LL));
    kv_add(resource, "test.big", av_int(9007199254740993LL));
    kv_add(resource, "test.min", av_int(INT64_MIN));
    kv_add(resource, "test.bytes", av_bytes("\x00\x01\xfe\xff", 4));
    kv_add(resource, "test.empty", av_empty());
    anyvalue *items[3] = {av_str("a"), av_int(1), av_bool(0)};
    kv_add(resource, "test.array", av_array(3, items));
    kvlist_t inner = {0};
    kv_add(&inner, "inner", av_str("x"));
    kv_add(&inner, "n", av_int(2));
    kv_add(resource, "test.kvlist", av_kvlist(&inner));
    kv_add(resource, "dup.key", av_str("second"));
    resource->kvs[0].key_strindex = 5; /* profiling-only field: ignored by readers */
    if (binary) kv_add(resource, "test.bad_utf8", av_strn("\xff" "a", 2));
    kv_add(attributes, "threadlocal.schema_version", av_str("tlsdesc_v1_dev"));
    anyvalue *keys[KEY_MAP_LEN];
    for (size_t i = 0; i < KEY_MAP_LEN; i++) keys[i] = av_str(KEY_MAP[i]);
    kv_add(attributes, "threadlocal.attribute_key_map", av_array(KEY_MAP_LEN, keys));
    pc_encode(out, resource, attributes);
}

static pc_mode parse_pc_mode(const char *s) {
    if (!strcmp(s, "memfd")) return PC_MEMFD;
    if (!strcmp(s, "anon")) return PC_ANON;
    if (!strcmp(s, "none")) return PC_NONE;
    if (!strcmp(s, "decoys")) return PC_DECOYS;
    fprintf(stderr, "unknown --process-context %s\n", s);
    exit(1);
}

int main(int argc, char **argv) {
    const char *scenario = "basic";
    const char *pc_mode_name = PC_MODE_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scenario") && i + 1 < argc) scenario = argv[++i];
        else if (!strcmp(argv[i], "--process-context") && i + 1 < argc) pc_mode_name = argv[++i];
        else if (!strcmp(argv[i], "--busy")) opt_busy = 1;
        else if (!strcmp(argv[i], "--churn")) scenario = "churn";
        /* anything else: ignored (target protocol) */
    }
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    load_context_module();

    if (!strcmp(scenario, "basic")) scenario_basic();
    else if (!strcmp(scenario, "many-threads")) scenario_many_threads();
    else if (!strcmp(scenario, "empty-and-null")) scenario_empty_and_null();
    else if (!strcmp(scenario, "duplicates")) scenario_duplicates();
    else if (!strcmp(scenario, "binary-bytes")) scenario_binary_bytes();
    else if (!strcmp(scenario, "large-record")) scenario_large_record();
    else if (!strcmp(scenario, "unknown-key-index")) scenario_unknown_key_index();
    else if (!strcmp(scenario, "in-progress")) scenario_in_progress();
    else if (!strcmp(scenario, "detached")) scenario_detached();
    else if (!strcmp(scenario, "churn")) scenario_churn();
    else {
        fprintf(stderr, "unknown scenario %s\n", scenario);
        return 1;
    }

    /* Process context first: it holds the key map the thread records refer to. */
    pc_mode mode = parse_pc_mode(pc_mode_name);
    kvlist_t resource = {0}, attributes = {0}, decoy_resource = {0}, decoy_attributes = {0};
    buf_t payload = {0}, decoy_payload = {0};
    build_payload(&payload, &resource, &attributes, "context-targets-c", !strcmp(scenario, "binary-bytes"));
    build_payload(&decoy_payload, &decoy_resource, &decoy_attributes, "decoy-must-not-be-read", 0);
    pc_result pc;
    pc_publish(mode, &payload, &decoy_payload, !strcmp(scenario, "in-progress"), &pc);
    int pc_visible = pc.mapping && pc.published && pc.mapping_name[0];

    /* Main thread: plans[0]. */
    plans[0].tid = current_tid();
    apply_plan(&plans[0]);
    long slot_offset = (long)((uintptr_t)v2_slot_address() - thread_pointer());

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (size_t i = 1; i < plan_count; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, thread_main, &plans[i]) != 0) die("pthread_create");
    }
    wait_ready(plan_count - 1);

    char main_name[16];
    if (main_thread_name(main_name) != 0) die("read /proc/self/comm");
    snprintf(plans[0].name, sizeof plans[0].name, "%s", main_name);

    plan_t **sorted = xcalloc(plan_count, sizeof *sorted);
    for (size_t i = 0; i < plan_count; i++) sorted[i] = &plans[i];
    qsort(sorted, plan_count, sizeof *sorted, plan_tid_cmp);

    buf_t out = {0};
    buf_printf(&out, "CONTEXT-READY {\"protocol\":1,\"pid\":%d,\"writer\":", (int)getpid());
    json_cstr(&out, WRITER_NAME);
    buf_printf(&out, ",\"expect\":{\"pid\":%d,\"process_context\":", (int)getpid());
    if (pc_visible) {
        buf_puts(&out, "{\"mapping\":");
        json_cstr(&out, pc.mapping_name);
        buf_puts(&out, ",\"version\":2,\"resource\":");
        pc_json_object(&out, &resource);
        buf_puts(&out, ",\"attributes\":");
        pc_json_object(&out, &attributes);
        buf_puts(&out, "}");
    } else {
        buf_puts(&out, "null");
    }
    buf_puts(&out, ",\"threads\":[");
    for (size_t i = 0; i < plan_count; i++) {
        const plan_t *p = sorted[i];
        buf_printf(&out, "%s{\"tid\":%d,\"name\":", i ? "," : "", (int)p->tid);
        json_cstr(&out, p->name);
        if (p->churn_worker) {
            buf_printf(&out, ",\"churn\":{\"worker\":%d,\"v1\":%s,\"v2\":\"%s\",\"key_map\":%s}",
                       p->churn_worker, has_v1 ? "true" : "false",
                       churn_in_place(p->churn_worker) ? "in-place" : "swap", pc_visible ? "true" : "false");
        } else {
            buf_puts(&out, ",\"v1\":");
            expect_v1(&out, p);
            buf_puts(&out, ",\"v2\":");
            expect_v2(&out, p, pc_visible);
        }
        buf_puts(&out, ",\"errors\":[]}");
    }
    buf_puts(&out, "],\"errors\":[]}");
    buf_printf(&out,
               ",\"notes\":{\"v2_slot_tp_offset\":%ld,\"fillers_loaded\":%d,\"static_tls_exhausted\":%s,"
               "\"process_context\":\"%s\",\"process_context_mapping\":",
               slot_offset, fillers_loaded, static_tls_exhausted ? "true" : "false", pc_mode_name);
    json_cstr(&out, pc.mapping_name);
    buf_puts(&out, ",\"scenario\":");
    json_cstr(&out, scenario);
    buf_printf(&out, ",\"busy\":%s}}\n", opt_busy ? "true" : "false");
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);

    /* Keep everything alive and unchanged until stdin reaches EOF. */
    char sink[256];
    if (opt_busy) {
        volatile uint64_t spin = 0;
        for (;;) {
            struct pollfd pfd = {.fd = 0, .events = POLLIN};
            if (poll(&pfd, 1, 0) > 0) {
                ssize_t n = read(0, sink, sizeof sink);
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
            }
            for (int k = 0; k < 100000; k++) spin++;
        }
    } else {
        for (;;) {
            ssize_t n = read(0, sink, sizeof sink);
            if (n == 0 || (n < 0 && errno != EINTR)) break;
        }
    }
    _exit(0);
}

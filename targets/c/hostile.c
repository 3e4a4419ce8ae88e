/* hostile.c: the hostile target. Publishes broken or adversarial context, one case per class, and
 * declares in its CONTEXT-READY line what a robust reader must report (conformance.md section 4 for
 * the protocol; the declarative `expect` form is documented in targets/README.md, "The hostile
 * target"). Built by targets/build.rs as a program of its own (not a catalogue variant); its path is
 * `context_targets::hostile_target()`.
 *
 * Arguments: --case NAME (see `CASES` below, `--list` prints them), --busy (every thread spins on
 * CPU, for the eBPF backend; the main thread polls stdin). Anything else is ignored.
 *
 * Every pointer, count and length below is deliberately wrong; the writer itself never follows
 * them. Addresses that must stay unmapped are checked again just before CONTEXT-READY. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "common.h"
#include "ctx_tls.h"
#include "pc.h"

#define BARRIER() __asm__ __volatile__("" ::: "memory")

/* ---- layouts (formats.md 1.5, 2.3, 3.2) ---- */
typedef struct {
    uint64_t len;
    uint64_t buf;
} cl_string;
typedef struct {
    cl_string key;
    cl_string value;
} cl_label;
typedef struct {
    uint64_t storage;
    uint64_t count;
    uint64_t capacity;
} cl_labelset;

typedef struct __attribute__((packed)) {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t valid;
    uint8_t trace_flags;
    uint16_t attrs_data_size;
    uint8_t attrs_data[];
} otel_record;

static long page_size;
static int opt_busy;

static void die(const char *what) {
    fprintf(stderr, "hostile: %s (errno %d)\n", what, errno);
    exit(3);
}

static uint64_t addr_of(const void *p) { return (uint64_t)(uintptr_t)p; }

/* ---- bad addresses ---- */
enum badness { BAD_UNMAPPED, BAD_NONCANONICAL, BAD_GUARD };

/* Pages that must stay unmapped until CONTEXT-READY (checked by `check_holes`). */
static uint64_t holes[64];
static size_t hole_count;

/* Maps `pages` RW pages followed by unmapped pages. The mappings sit at fixed addresses far below
 * where the kernel places mmaps (top-down from below the stack), so nothing fills the hole later. */
static uint64_t next_fixed = 0x1000000000ULL; /* 64 GiB: user space on every x86-64/aarch64 VA size */

static unsigned char *rw_then_hole(size_t pages) {
    size_t len = pages * (size_t)page_size;
    void *want = (void *)(uintptr_t)next_fixed;
    unsigned char *m = mmap(want, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == MAP_FAILED || (void *)m != want) die("mmap at a fixed address");
    next_fixed += (pages + 16) * (uint64_t)page_size;
    if (hole_count == sizeof holes / sizeof holes[0]) abort();
    holes[hole_count++] = addr_of(m + len);
    return m;
}

/* Maps `pages` RW pages followed by one PROT_NONE guard page. */
static unsigned char *rw_then_guard(size_t pages) {
    size_t len = (pages + 1) * (size_t)page_size;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap");
    if (mprotect(m + pages * (size_t)page_size, (size_t)page_size, PROT_NONE) != 0) die("mprotect");
    return m;
}

/* A pointer to `size` bytes the reader cannot read, of the given class. */
static uint64_t bad_pointer(enum badness b) {
    switch (b) {
    case BAD_UNMAPPED:
        return addr_of(rw_then_hole(1) + page_size + 16);
    case BAD_NONCANONICAL:
        /* Not canonical with 4- or 5-level paging (bits 63..47 / 63..56 differ). */
        return 0xdead00000000be00ULL;
    case BAD_GUARD:
        return addr_of(rw_then_guard(1) + page_size + 16);
    }
    abort();
}

static void check_holes(void) {
    for (size_t i = 0; i < hole_count; i++) {
        /* msync fails with ENOMEM on an address that is not mapped. */
        if (msync((void *)(uintptr_t)holes[i], (size_t)page_size, MS_ASYNC) == 0 || errno != ENOMEM) {
            fprintf(stderr, "hostile: hole %#llx got mapped again\n", (unsigned long long)holes[i]);
            exit(3);
        }
    }
}

/* ---- declarations: what a robust reader must report ---- */
typedef struct {
    const char *format;
    const char *kinds; /* one kind, or alternatives separated by '|' */
} want_t;

#define MAX_WANTS 4

enum behaviour { PARK, SPIN_NO_SYSCALLS, TICK_1MS, CHURNER };

typedef struct {
    char name[16];
    int set_v1, set_v2;
    uint64_t v1, v2;
    want_t errors[MAX_WANTS]; /* each must be present on this thread */
    want_t allow[MAX_WANTS];  /* may also be present */
    buf_t v1_json, v2_json;   /* exact expectation when non-empty */
    enum behaviour behaviour;
    pid_t tid;
} tplan;

static tplan *plans;
static size_t plan_count, plan_cap;
static volatile uint64_t *counters; /* one per plan: progress of TICK_1MS / SPIN threads */

static tplan *plan_add(const char *name) {
    if (plan_count == plan_cap) {
        plan_cap = plan_cap ? plan_cap * 2 : 16;
        plans = realloc(plans, plan_cap * sizeof *plans);
        if (!plans) abort();
    }
    tplan *p = &plans[plan_count++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

static void want(want_t *list, const char *format, const char *kinds) {
    for (int i = 0; i < MAX_WANTS; i++) {
        if (!list[i].format) {
            list[i].format = format;
            list[i].kinds = kinds;
            return;
        }
    }
    abort();
}

static void plan_v1(tplan *p, uint64_t set) {
    p->set_v1 = 1;
    p->v1 = set;
}
static void plan_v2(tplan *p, uint64_t record) {
    p->set_v2 = 1;
    p->v2 = record;
}
static void expect_v1_null(tplan *p) { buf_puts(&p->v1_json, "null"); }
static void expect_v2_null(tplan *p) { buf_puts(&p->v2_json, "null"); }

/* Expected `{"labels": [...]}` of `n` (key, value) pairs given already sorted by key bytes. */
typedef struct {
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} kv_bytes;

static void expect_v1_labels(tplan *p, const kv_bytes *kvs, size_t n) {
    buf_t *b = &p->v1_json;
    buf_puts(b, "{\"labels\":[");
    for (size_t i = 0; i < n; i++) {
        buf_puts(b, i ? ",{\"key\":" : "{\"key\":");
        json_bytes(b, kvs[i].key, kvs[i].key_len);
        buf_puts(b, ",\"value\":");
        json_bytes(b, kvs[i].value, kvs[i].value_len);
        buf_puts(b, "}");
    }
    buf_puts(b, "]}");
}

/* ---- builders ---- */
static void label_set(cl_label *l, const void *key, size_t key_len, const void *value, size_t value_len) {
    l->key.len = key_len;
    l->key.buf = addr_of(copy_bytes(key, key_len));
    l->value.len = value_len;
    l->value.buf = addr_of(copy_bytes(value, value_len));
}

static cl_labelset *set_new(size_t count) {
    cl_labelset *s = xcalloc(1, sizeof *s);
    s->storage = count ? addr_of(xcalloc(count, sizeof(cl_label))) : 0;
    s->count = count;
    s->capacity = count;
    return s;
}

static cl_label *labels_of(cl_labelset *s) { return (cl_label *)(uintptr_t)s->storage; }

/* A set of one label `key = value` (C strings) and its exact expectation. */
static cl_labelset *simple_set(tplan *p, const char *key, const char *value) {
    cl_labelset *s = set_new(1);
    label_set(&labels_of(s)[0], key, strlen(key), value, strlen(value));
    if (p) {
        kv_bytes kv = {key, strlen(key), value, strlen(value)};
        expect_v1_labels(p, &kv, 1);
    }
    return s;
}

static void put_be64(uint8_t *out, uint64_t v) {
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static otel_record *record_at(void *where, uint64_t n) {
    otel_record *r = where;
    memset(r, 0, sizeof *r);
    put_be64(r->trace_id, 0x1111);
    put_be64(r->trace_id + 8, n);
    put_be64(r->span_id, n);
    r->trace_flags = 1;
    r->valid = 1;
    return r;
}

static void record_attr(otel_record *r, uint8_t index, const void *value, uint8_t len) {
    uint8_t *at = r->attrs_data + r->attrs_data_size;
    at[0] = index;
    at[1] = len;
    memcpy(at + 2, value, len);
    r->attrs_data_size = (uint16_t)(r->attrs_data_size + 2 + len);
}

/* The main thread publishes a good set, so errors must not spill over from other threads. */
static void main_plan(void) {
    tplan *m = plan_add("main");
    plan_v1(m, addr_of(simple_set(m, "role", "main")));
    expect_v2_null(m);
}

/* ---- cases: bad pointers (unmapped, non-canonical, guard page) ---- */
static void case_bad_pointers(enum badness b) {
    main_plan();
    tplan *t;

    t = plan_add("v1-set");
    plan_v1(t, bad_pointer(b));
    want(t->errors, "v1", "unreadable");
    expect_v1_null(t);

    t = plan_add("v1-storage");
    cl_labelset *s = set_new(0);
    s->storage = bad_pointer(b);
    s->count = s->capacity = 2;
    plan_v1(t, addr_of(s));
    want(t->errors, "v1", "unreadable");

    static const kv_bytes ok = {"ok", 2, "yes", 3};
    t = plan_add("v1-key");
    s = set_new(2);
    label_set(&labels_of(s)[0], "k0", 2, "v0", 2);
    labels_of(s)[0].key.buf = bad_pointer(b);
    label_set(&labels_of(s)[1], "ok", 2, "yes", 3);
    plan_v1(t, addr_of(s));
    want(t->errors, "v1", "unreadable");
    expect_v1_labels(t, &ok, 1); /* what could be read is not hidden */

    t = plan_add("v1-value");
    s = set_new(2);
    label_set(&labels_of(s)[0], "k0", 2, "v0", 2);
    labels_of(s)[0].value.buf = bad_pointer(b);
    label_set(&labels_of(s)[1], "ok", 2, "yes", 3);
    plan_v1(t, addr_of(s));
    want(t->errors, "v1", "unreadable");
    expect_v1_labels(t, &ok, 1);

    t = plan_add("v2-record");
    plan_v2(t, bad_pointer(b));
    want(t->errors, "v2", "unreadable");
    expect_v2_null(t);

    if (b != BAD_NONCANONICAL) {
        /* Header readable, attrs_data running into the hole / guard page. */
        t = plan_add("v2-attrs");
        unsigned char *m = b == BAD_UNMAPPED ? rw_then_hole(1) : rw_then_guard(1);
        otel_record *r = record_at(m + page_size - sizeof(otel_record) - 40, 7);
        r->attrs_data_size = 200;
        plan_v2(t, addr_of(r));
        want(t->errors, "v2", "unreadable");
        expect_v2_null(t);
    }
}

/* ---- case: self references ---- */
static void case_self_ref(void) {
    main_plan();
    tplan *t = plan_add("v1-self-storage");
    /* storage points to the set itself: label 0 = {len=&set, buf=1, len=1, buf=&set}. */
    uint64_t *words = xcalloc(4, 8);
    words[0] = addr_of(words);
    words[1] = 1;
    words[2] = 1;
    words[3] = addr_of(words);
    plan_v1(t, addr_of(words));
    want(t->errors, "v1", "too_large|cycle");

    t = plan_add("v1-self-string");
    /* A label whose key is its own 32 bytes and whose value is the set's 24 bytes: odd, legal. */
    cl_labelset *s = set_new(1);
    cl_label *l = labels_of(s);
    l->key.len = sizeof *l;
    l->key.buf = addr_of(l);
    l->value.len = sizeof *s;
    l->value.buf = addr_of(s);
    plan_v1(t, addr_of(s));
    kv_bytes kv = {l, sizeof *l, s, sizeof *s};
    expect_v1_labels(t, &kv, 1);

    t = plan_add("v1-set-is-slot");
    /* The set pointer points to a set whose storage is the set pointer's own target: a loop of
     * two sets pointing at each other. */
    uint64_t *a = xcalloc(8, 8), *b = xcalloc(8, 8);
    a[0] = addr_of(b), a[1] = 1, a[2] = 1;
    b[0] = 2, b[1] = addr_of(a), b[2] = 2, b[3] = addr_of(b);
    /* label 0 of a = b's words: key {len 2, buf a}, value {len 2, buf b}: key = first 2 bytes of a. */
    plan_v1(t, addr_of(a));
    unsigned char key[2], value[2];
    memcpy(key, a, 2);
    memcpy(value, b, 2);
    kv_bytes kv2 = {key, 2, value, 2};
    expect_v1_labels(t, &kv2, 1);
}

/* ---- case: huge counts and lengths ---- */
#define FLOOD_LABELS 4096
#define FLOOD_THREADS 16

static void case_huge(void) {
    main_plan();
    static const kv_bytes two[2] = {{"a", 1, "1", 1}, {"b", 1, "2", 1}};
    static const kv_bytes ok = {"ok", 2, "yes", 3};
    tplan *t;

    t = plan_add("v1-count");
    cl_labelset *s = set_new(FLOOD_LABELS); /* 2 labels, then hidden (NULL key) entries */
    label_set(&labels_of(s)[0], "a", 1, "1", 1);
    label_set(&labels_of(s)[1], "b", 1, "2", 1);
    s->count = 1ULL << 62;
    plan_v1(t, addr_of(s));
    want(t->errors, "v1", "too_large");
    expect_v1_labels(t, two, 2);

    t = plan_add("v1-count-max");
    unsigned char *m = rw_then_hole(1); /* 2 labels at the end of a page, then the hole */
    cl_label *ls = (cl_label *)(m + page_size - 2 * sizeof(cl_label));
    label_set(&ls[0], "a", 1, "1", 1);
    label_set(&ls[1], "b", 1, "2", 1);
    s = set_new(0);
    s->storage = addr_of(ls);
    s->count = UINT64_MAX;
    s->capacity = 2;
    plan_v1(t, addr_of(s));
    want(t->errors, "v1", "too_large");
    want(t->allow, "v1", "unreadable"); /* reading on past the 2 labels runs into the hole */

    t = plan_add("v1-key-len");
    s = set_new(2);
    label_set(&labels_of(s)[0], "k0", 2, "v0", 2);
    labels_of(s)[0].key.len = 1ULL << 63;
    label_set(&labels_of(s)[1], "ok", 2, "yes", 3);
    plan_v1(t, addr_of(s));
    want(t->errors, "v1", "too_large");
    expect_v1_labels(t, &ok, 1);

    t = plan_add("v1-value-len");
    s = set_new(2);
    label_set(&labels_of(s)[0], "k0", 2, "v0", 2);
    labels_of(s)[0].value.len = 1ULL << 40;
    label_set(&labels_of(s)[1], "ok", 2, "yes", 3);
    plan_v1(t, addr_of(s));
    want(t->errors, "v1", "too_large");
    expect_v1_labels(t, &ok, 1);

    /* Error amplification: every label of every flood thread is unreadable. The runner bounds the
     * entries per thread and format and the size of the snapshot. */
    uint64_t hole = bad_pointer(BAD_UNMAPPED);
    for (int i = 0; i < FLOOD_THREADS; i++) {
        char name[16];
        snprintf(name, sizeof name, "v1-flood-%d", i);
        t = plan_add(name);
        s = set_new(FLOOD_LABELS);
        for (size_t k = 0; k < FLOOD_LABELS; k++) {
            cl_label *l = &labels_of(s)[k];
            l->key.len = 4;
            l->key.buf = hole;
            l->value.len = 4;
            l->value.buf = hole;
        }
        plan_v1(t, addr_of(s));
        want(t->errors, "v1", "unreadable");
        want(t->allow, "v1", "too_large"); /* a reader may bound the count first */
    }

    /* attrs_data_size 65535, all readable: a reader may cap the copy (formats.md 2.3). */
    t = plan_add("v2-attrs-size");
    otel_record *r = record_at(xcalloc(1, sizeof(otel_record) + 65536), 9);
    while (r->attrs_data_size + 3 <= 65535) record_attr(r, 1, "x", 1);
    plan_v2(t, addr_of(r));
    want(t->allow, "v2", "truncated|too_large");

    /* attrs_data_size 65535 with only 100 bytes before the hole. */
    t = plan_add("v2-attrs-overrun");
    m = rw_then_hole(1);
    r = record_at(m + page_size - sizeof(otel_record) - 100, 10);
    r->attrs_data_size = 65535;
    plan_v2(t, addr_of(r));
    want(t->errors, "v2", "unreadable|too_large|truncated");
}

/* ---- case: bytes that are not text ---- */
static void case_bytes(void) {
    main_plan();
    /* Thread name: ESC ] ... BEL and U+202E, 15 bytes (the kernel's limit). */
    tplan *t = plan_add("\x1b]0;x\x07\xe2\x80\xae" "abcde");
    static const kv_bytes labels[] = {
        /* sorted by key bytes */
        {"\x1b[1mkey", 7, "v", 1},
        {"bad-utf8", 8, "\xff\xfe\x1b", 3},
        {"bidi-embed", 10, "\xe2\x80\xaa" "a" "\xe2\x80\xab" "b" "\xe2\x80\xac" "\xe2\x80\xad", 14},
        {"bidi-isolates", 13, "\xe2\x81\xa6x\xe2\x81\xa7y\xe2\x81\xa8z\xe2\x81\xa9", 15},
        {"bidi-marks", 10, "\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", 8},
        {"bidi-rlo", 8, "abc\xe2\x80\xae" "evil", 10},
        {"c1-csi", 6, "\xc2\x9b" "31m", 5},
        {"del-bs", 6, "\x7f\x08\r\n\t", 5},
        {"esc", 3, "\x1b[2J\x1b[31mred\x1b[0m", 16},
        {"nul", 3, "a\0b", 3},
        {"osc", 3, "\x1b]0;pwned\x07", 10},
    };
    size_t n = sizeof labels / sizeof labels[0];
    cl_labelset *s = set_new(n);
    for (size_t i = 0; i < n; i++)
        label_set(&labels_of(s)[i], labels[i].key, labels[i].key_len, labels[i].value, labels[i].value_len);
    plan_v1(t, addr_of(s));
    expect_v1_labels(t, labels, n);
    /* No process context, so attributes come as key indices. */
    otel_record *r = record_at(xcalloc(1, 256), 3);
    record_attr(r, 0, "\x1b[31m\xe2\x80\xae", 8);
    record_attr(r, 1, "\xc2\x85\xff", 3);
    plan_v2(t, addr_of(r));
    buf_puts(&t->v2_json,
             "{\"layout\":\"otep-4947\",\"trace_id\":\"00000000000011110000000000000003\","
             "\"span_id\":\"0000000000000003\",\"trace_flags\":1,\"attributes\":[{\"key_index\":0,\"value\":");
    json_bytes(&t->v2_json, "\x1b[31m\xe2\x80\xae", 8);
    buf_puts(&t->v2_json, "},{\"key_index\":1,\"value\":");
    json_bytes(&t->v2_json, "\xc2\x85\xff", 3);
    buf_puts(&t->v2_json, "}]}");
}

/* ---- process context ---- */
static void *map_named(const char *name) {
    int fd = (int)syscall(SYS_memfd_create, name, 0x0001U /* MFD_CLOEXEC */);
    if (fd < 0) die("memfd_create");
    if (ftruncate(fd, page_size) != 0) die("ftruncate");
    void *m = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) die("mmap memfd");
    return m;
}

static uint64_t boottime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return ns ? ns : 1;
}

static pc_header *publish(const void *payload, uint64_t size_claim, uint64_t payload_ptr, int stuck) {
    pc_header *h = map_named("OTEL_CTX");
    memcpy(h->signature, "OTEL_CTX", 8);
    h->version = 2;
    h->payload_size = (uint32_t)size_claim;
    h->payload = payload ? addr_of(payload) : payload_ptr;
    atomic_thread_fence(memory_order_seq_cst);
    *(volatile uint64_t *)&h->published_at_ns = stuck ? 0 : boottime_ns();
    return h;
}

static const unsigned char *heap_copy(const buf_t *b) { return copy_bytes(b->data, b->len); }

/* Declarations of the process side (filled by the pc cases). */
static buf_t expect_pc;        /* "null", "\"any\"", an object, or {"one_of": [...]} */
static want_t pc_errors[MAX_WANTS], pc_allow[MAX_WANTS];
static size_t max_json_bytes = 1 << 20;
static int snapshots = 1;
static int text_clean;

static void simple_payload(buf_t *out, kvlist_t *resource, kvlist_t *attributes, const char *service) {
    kv_add(resource, "service.name", av_str(service));
    pc_encode(out, resource, attributes);
}

static void expect_context(buf_t *b, const char *mapping, const kvlist_t *resource, const kvlist_t *attributes) {
    buf_puts(b, "{\"mapping\":");
    json_cstr(b, mapping);
    buf_puts(b, ",\"version\":2,\"resource\":");
    pc_json_object(b, resource);
    buf_puts(b, ",\"attributes\":");
    pc_json_object(b, attributes);
    buf_puts(b, "}");
}

static void case_pc_claims(const char *which) {
    main_plan();
    kvlist_t res = {0}, attrs = {0};
    buf_t payload = {0};
    simple_payload(&payload, &res, &attrs, "hostile");
    buf_puts(&expect_pc, "null");
    if (!strcmp(which, "size-zero")) {
        publish(heap_copy(&payload), 0, 0, 0);
        want(pc_errors, "process_context", "bad_header|bad_payload");
    } else if (!strcmp(which, "size-huge")) {
        publish(heap_copy(&payload), 1ULL << 31, 0, 0);
        want(pc_errors, "process_context", "too_large");
    } else if (!strcmp(which, "dangling")) {
        publish(NULL, payload.len, bad_pointer(BAD_UNMAPPED), 0);
        want(pc_errors, "process_context", "unreadable");
    } else if (!strcmp(which, "stuck")) {
        /* Timestamp 0 forever: a publication in progress that never ends (legal, no context). */
        publish(heap_copy(&payload), payload.len, 0, 1);
        want(pc_allow, "process_context", "contended");
    }
}

/* Two valid mappings: the reader reports one and names the other (conformance.md 3, ambiguous). */
static void case_pc_two_mappings(void) {
    main_plan();
    kvlist_t r1 = {0}, a1 = {0}, r2 = {0}, a2 = {0};
    buf_t p1 = {0}, p2 = {0};
    simple_payload(&p1, &r1, &a1, "first");
    simple_payload(&p2, &r2, &a2, "second");
    publish(heap_copy(&p1), p1.len, 0, 0);
    publish(heap_copy(&p2), p2.len, 0, 0);
    buf_puts(&expect_pc, "\"any\"");
    want(pc_errors, "process_context", "ambiguous");
}

/* Protobuf bombs. */
static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) v >>= 7, n++;
    return n;
}

#define BOMB_DEPTH 100000

static void case_pc_bomb(const char *which) {
    main_plan();
    buf_t payload = {0};
    buf_puts(&expect_pc, "null");
    if (!strcmp(which, "depth")) {
        /* ProcessContext{1: Resource{1: KeyValue{1: "deep", 2: AnyValue{5: ArrayValue{1: AnyValue
         * {5: ...}}}}}} nested BOMB_DEPTH times; lengths computed inside out, bytes written outside
         * in (linear time). */
        uint64_t *any = xcalloc(BOMB_DEPTH + 1, 8), *arr = xcalloc(BOMB_DEPTH + 1, 8);
        any[0] = 0;
        for (int i = 1; i <= BOMB_DEPTH; i++) {
            arr[i] = 1 + varint_len(any[i - 1]) + any[i - 1];
            any[i] = 1 + varint_len(arr[i]) + arr[i];
        }
        uint64_t kv = 1 + 1 + 4 + 1 + varint_len(any[BOMB_DEPTH]) + any[BOMB_DEPTH];
        uint64_t resource = 1 + varint_len(kv) + kv;
        pb_tag(&payload, 1, 2);
        pb_varint(&payload, resource);
        pb_tag(&payload, 1, 2);
        pb_varint(&payload, kv);
        pb_len_field(&payload, 1, "deep", 4);
        pb_tag(&payload, 2, 2);
        pb_varint(&payload, any[BOMB_DEPTH]);
        for (int i = BOMB_DEPTH; i >= 1; i--) {
            pb_tag(&payload, 5, 2);
            pb_varint(&payload, arr[i]);
            pb_tag(&payload, 1, 2);
            pb_varint(&payload, any[i - 1]);
        }
        want(pc_errors, "process_context", "bad_payload|too_large");
    } else if (!strcmp(which, "length")) {
        /* A key whose length prefix claims 2^62 bytes inside correctly sized outer messages. */
        buf_t key = {0}, kv = {0}, res = {0};
        pb_tag(&key, 1, 2);
        pb_varint(&key, 1ULL << 62);
        buf_puts(&key, "abc");
        buf_put(&kv, key.data, key.len);
        pb_len_field(&res, 1, kv.data, kv.len);
        pb_len_field(&payload, 1, res.data, res.len);
        want(pc_errors, "process_context", "bad_payload");
    } else if (!strcmp(which, "width")) {
        /* 40,000 attributes: a faithful decode is allowed, within the size bound. */
        kvlist_t res = {0}, attrs = {0};
        for (int i = 0; i < 40000; i++) {
            char *k = xcalloc(16, 1);
            snprintf(k, 16, "k%05d", i);
            kv_add(&res, k, av_int(i));
        }
        pc_encode(&payload, &res, &attrs);
        buf_free(&expect_pc);
        buf_puts(&expect_pc, "\"any\"");
        want(pc_allow, "process_context", "too_large|bad_payload");
        max_json_bytes = 16 << 20;
    }
    if (payload.len > 1 << 20) die("bomb larger than the default payload limit");
    publish(heap_copy(&payload), payload.len, 0, 0);
}

/* Continuous republishing in place behind timestamp 0 (seqlock, formats.md 3.4): every reading
 * must be one of the two payloads or no context (contended), never a mix. */
static pc_header *republish_header;
static buf_t republish_payload[2];
static unsigned char *republish_buf;

static void *republisher(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "republisher", 0, 0, 0);
    for (uint64_t n = 0;; n++) {
        const buf_t *p = &republish_payload[n & 1];
        *(volatile uint64_t *)&republish_header->published_at_ns = 0;
        atomic_thread_fence(memory_order_seq_cst);
        memcpy(republish_buf, p->data, p->len);
        atomic_thread_fence(memory_order_seq_cst);
        *(volatile uint64_t *)&republish_header->published_at_ns = boottime_ns();
        struct timespec ts = {0, 20000};
        if (!opt_busy) nanosleep(&ts, NULL);
    }
    return NULL;
}

static void case_pc_republish(void) {
    main_plan();
    kvlist_t res[2] = {{0}}, attrs[2] = {{0}};
    char fill[2][201];
    memset(fill[0], 'A', 200);
    memset(fill[1], 'B', 200);
    fill[0][200] = fill[1][200] = 0;
    for (int i = 0; i < 2; i++) {
        kv_add(&res[i], "service.name", av_str(i ? "republish-b" : "republish-a"));
        kv_add(&res[i], "gen", av_str(fill[i]));
        kv_add(&res[i], "gen.copy", av_str(fill[i]));
        pc_encode(&republish_payload[i], &res[i], &attrs[i]);
    }
    if (republish_payload[0].len != republish_payload[1].len) abort();
    republish_buf = xcalloc(1, republish_payload[0].len);
    memcpy(republish_buf, republish_payload[0].data, republish_payload[0].len);
    republish_header = publish(republish_buf, republish_payload[0].len, 0, 0);
    char mapping[256];
    maps_name_of(republish_header, mapping, sizeof mapping);
    buf_puts(&expect_pc, "{\"one_of\":[");
    expect_context(&expect_pc, mapping, &res[0], &attrs[0]);
    buf_puts(&expect_pc, ",");
    expect_context(&expect_pc, mapping, &res[1], &attrs[1]);
    buf_puts(&expect_pc, "]}");
    want(pc_allow, "process_context", "contended");
    snapshots = 20;
    pthread_t t;
    if (pthread_create(&t, NULL, republisher, NULL) != 0) die("pthread_create");
}

/* ---- thread populations ---- */
static void case_threads(int n) {
    main_plan();
    for (int i = 0; i < n; i++) {
        char name[16], value[16];
        snprintf(name, sizeof name, "t-%d", i);
        snprintf(value, sizeof value, "%d", i);
        tplan *t = plan_add(name);
        plan_v1(t, addr_of(simple_set(t, "thread", strdup(value))));
        expect_v2_null(t);
    }
    max_json_bytes = (size_t)(n + 1) * 512;
}

static cl_labelset *churn_set;

static atomic_int in_flight;

static void *short_lived(void *arg) {
    (void)arg;
    ctx_tls_set_v1(churn_set);
    atomic_fetch_sub(&in_flight, 1);
    return NULL;
}

/* Threads creating detached short-lived threads, at most MAX_IN_FLIGHT alive at once: many
 * threads are always between listed and gone (exiting, zombie, reaped). */
#define CHURNERS 4
#define MAX_IN_FLIGHT 64

static void case_thread_churn(void) {
    main_plan();
    churn_set = simple_set(NULL, "short", "lived");
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "anchor-%d", i);
        tplan *t = plan_add(name);
        plan_v1(t, addr_of(simple_set(t, "anchor", name)));
        expect_v2_null(t);
    }
    for (int i = 0; i < CHURNERS; i++) {
        char name[16];
        snprintf(name, sizeof name, "churner-%d", i);
        tplan *t = plan_add(name);
        t->behaviour = CHURNER;
        want(t->allow, "tls", "not_sampled");
    }
    /* Listing never settles while threads keep appearing: a reader may say so. */
    want(pc_allow, "tls", "unreadable|thread_exited");
    /* Each eBPF snapshot waits its whole window for short-lived threads that are never sampled. */
    snapshots = opt_busy ? 3 : 100;
}

/* The main thread exits (pthread_exit) before CONTEXT-READY: the leader stays listed in
 * /proc/PID/task as a zombie until the process ends, and ptrace answers EPERM for it. One exited
 * thread must stay that thread's entry (thread_exited), never a process-wide permission error. */
static int leader_exit;

static void case_leader_exit(void) {
    tplan *m = plan_add("leader"); /* exits; not declared (other_threads rule) */
    (void)m;
    leader_exit = 1;
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "parked-%d", i);
        tplan *t = plan_add(name);
        plan_v1(t, addr_of(simple_set(t, "parked", name)));
        expect_v2_null(t);
    }
    snapshots = 5;
}

static void case_busy_loop(void) {
    main_plan();
    tplan *t = plan_add("spinner");
    t->behaviour = SPIN_NO_SYSCALLS;
    plan_v1(t, addr_of(simple_set(t, "role", "spinner")));
    otel_record *r = record_at(xcalloc(1, 64), 5);
    plan_v2(t, addr_of(r));
    buf_puts(&t->v2_json,
             "{\"layout\":\"otep-4947\",\"trace_id\":\"00000000000011110000000000000005\","
             "\"span_id\":\"0000000000000005\",\"trace_flags\":1,\"attributes\":[]}");
}

/* 200 threads that each tick a counter every millisecond (the kill test watches them). */
static void case_kill_200(void) {
    main_plan();
    for (int i = 0; i < 200; i++) {
        char name[16], value[16];
        snprintf(name, sizeof name, "tick-%d", i);
        snprintf(value, sizeof value, "%d", i);
        tplan *t = plan_add(name);
        t->behaviour = TICK_1MS;
        plan_v1(t, addr_of(simple_set(t, "ticker", strdup(value))));
        expect_v2_null(t);
    }
    max_json_bytes = 201 * 512;
}

/* ---- threads ---- */

static void apply(tplan *p) {
    if (p->set_v1) ctx_tls_set_v1((void *)(uintptr_t)p->v1);
    if (p->set_v2) ctx_tls_set_v2((void *)(uintptr_t)p->v2);
}

static void *thread_main(void *arg) {
    tplan *p = arg;
    size_t index = (size_t)(p - plans);
    p->tid = (pid_t)syscall(SYS_gettid);
    prctl(PR_SET_NAME, p->name, 0, 0, 0);
    apply(p);
    report_ready();
    switch (p->behaviour) {
    case SPIN_NO_SYSCALLS:
        for (;;) counters[index]++;
    case TICK_1MS:
        for (;;) {
            counters[index]++;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    case CHURNER: {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        for (;;) {
            pthread_t t;
            if (atomic_load(&in_flight) >= MAX_IN_FLIGHT) {
                sched_yield();
                continue;
            }
            atomic_fetch_add(&in_flight, 1);
            if (pthread_create(&t, &attr, short_lived, NULL) != 0) atomic_fetch_sub(&in_flight, 1);
            counters[index]++;
        }
    }
    case PARK:
        break;
    }
    if (opt_busy)
        for (;;) counters[index]++;
    for (;;) pause();
    return NULL;
}

/* ---- CONTEXT-READY ---- */
static void put_wants(buf_t *b, const char *key, const want_t *list) {
    buf_printf(b, ",\"%s\":[", key);
    for (int i = 0; i < MAX_WANTS && list[i].format; i++) {
        buf_printf(b, "%s{\"format\":\"%s\",\"kind\":", i ? "," : "", list[i].format);
        if (strchr(list[i].kinds, '|')) {
            buf_puts(b, "[");
            const char *k = list[i].kinds;
            int first = 1;
            while (*k) {
                size_t n = strcspn(k, "|");
                buf_printf(b, "%s\"%.*s\"", first ? "" : ",", (int)n, k);
                first = 0;
                k += n + (k[n] == '|');
            }
            buf_puts(b, "]");
        } else {
            buf_printf(b, "\"%s\"", list[i].kinds);
        }
        buf_puts(b, "}");
    }
    buf_puts(b, "]");
}

static int tid_cmp(const void *x, const void *y) {
    const tplan *a = *(const tplan *const *)x, *b = *(const tplan *const *)y;
    return (a->tid > b->tid) - (a->tid < b->tid);
}

/* leader-exit: prints CONTEXT-READY once the leader is a zombie, then serves stdin. */
static buf_t ready_line;

static void *leader_exit_watcher(void *arg) {
    (void)arg;
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)getpid());
    for (;;) {
        FILE *f = fopen(path, "r");
        if (!f) break;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = 0;
        char *close_paren = strrchr(stat, ')');
        if (close_paren && (close_paren[2] == 'Z' || close_paren[2] == 'X')) break;
        usleep(1000);
    }
    fwrite(ready_line.data, 1, ready_line.len, stdout);
    fflush(stdout);
    char sink[256];
    for (;;) {
        ssize_t n = read(0, sink, sizeof sink);
        if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    _exit(0);
}

typedef struct {
    const char *name;
    void (*run)(void);
    const char *note; /* what the case is about */
} case_t;

static void c_unmapped(void) { case_bad_pointers(BAD_UNMAPPED); }
static void c_noncanonical(void) { case_bad_pointers(BAD_NONCANONICAL); }
static void c_guard(void) { case_bad_pointers(BAD_GUARD); }
static void c_size_zero(void) { case_pc_claims("size-zero"); }
static void c_size_huge(void) { case_pc_claims("size-huge"); }
static void c_dangling(void) { case_pc_claims("dangling"); }
static void c_stuck(void) { case_pc_claims("stuck"); }
static void c_bomb_depth(void) { case_pc_bomb("depth"); }
static void c_bomb_length(void) { case_pc_bomb("length"); }
static void c_bomb_width(void) { case_pc_bomb("width"); }
static void c_threads_2000(void) { case_threads(2000); }

static const case_t CASES[] = {
    {"unmapped", c_unmapped, "v1 and OTEP 4947 pointers to unmapped memory"},
    {"noncanonical", c_noncanonical, "v1 and OTEP 4947 pointers to non-canonical addresses"},
    {"guard-page", c_guard, "v1 and OTEP 4947 pointers into PROT_NONE pages"},
    {"self-ref", case_self_ref, "v1 sets and strings pointing to themselves"},
    {"huge", case_huge, "huge counts and lengths; 16 threads x 4096 unreadable labels"},
    {"bytes", case_bytes, "non-UTF-8, terminal-control and bidi bytes in labels, attributes, names"},
    {"pc-size-zero", c_size_zero, "process context: payload_size 0"},
    {"pc-size-huge", c_size_huge, "process context: payload_size 2^31"},
    {"pc-dangling", c_dangling, "process context: payload pointer to unmapped memory"},
    {"pc-stuck", c_stuck, "process context: seqlock stuck mid-update (timestamp 0 forever)"},
    {"pc-republish", case_pc_republish, "process context republished in place continuously"},
    {"pc-two-mappings", case_pc_two_mappings, "two valid OTEL_CTX mappings"},
    {"pc-bomb-depth", c_bomb_depth, "protobuf AnyValue nested 100,000 deep"},
    {"pc-bomb-length", c_bomb_length, "protobuf key length prefix of 2^62"},
    {"pc-bomb-width", c_bomb_width, "protobuf Resource with 40,000 attributes"},
    {"threads-2000", c_threads_2000, "2,000 threads"},
    {"thread-churn", case_thread_churn, "threads created and exiting continuously"},
    {"busy-loop", case_busy_loop, "a thread in a syscall-free loop"},
    {"kill-200", case_kill_200, "200 threads ticking a counter every millisecond"},
    {"leader-exit", case_leader_exit, "the main thread exited (zombie leader), three threads parked"},
};
#define CASE_COUNT (sizeof CASES / sizeof CASES[0])

int main(int argc, char **argv) {
    const char *name = NULL;
    int list = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--case") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--busy")) opt_busy = 1;
        else if (!strcmp(argv[i], "--list")) list = 1;
    }
    if (list) {
        for (size_t i = 0; i < CASE_COUNT; i++) printf("%s\t%s\n", CASES[i].name, CASES[i].note);
        return 0;
    }
    const case_t *c = NULL;
    for (size_t i = 0; name && i < CASE_COUNT; i++)
        if (!strcmp(CASES[i].name, name)) c = &CASES[i];
    if (!c) {
        fprintf(stderr, "hostile: --case NAME required (--list prints them)\n");
        return 1;
    }
    page_size = sysconf(_SC_PAGESIZE);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    c->run();
    if (!expect_pc.len) buf_puts(&expect_pc, "null");
    counters = xcalloc(plan_count, sizeof *counters);

    plans[0].tid = (pid_t)syscall(SYS_gettid);
    apply(&plans[0]);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (size_t i = 1; i < plan_count; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, thread_main, &plans[i]) != 0) die("pthread_create");
    }
    wait_ready(plan_count - 1);
    check_holes();

    char main_name[16];
    if (main_thread_name(main_name) != 0) die("read /proc/self/comm");
    snprintf(plans[0].name, sizeof plans[0].name, "%s", main_name);

    tplan **sorted = xcalloc(plan_count, sizeof *sorted);
    for (size_t i = 0; i < plan_count; i++) sorted[i] = &plans[i];
    qsort(sorted, plan_count, sizeof *sorted, tid_cmp);

    buf_t out = {0};
    buf_printf(&out, "CONTEXT-READY {\"protocol\":1,\"pid\":%d,\"writer\":\"hostile\",\"expect\":{\"pid\":%d",
               (int)getpid(), (int)getpid());
    buf_printf(&out, ",\"hostile\":\"%s\",\"process_context\":", c->name);
    buf_put(&out, expect_pc.data, expect_pc.len);
    put_wants(&out, "errors", pc_errors);
    put_wants(&out, "allow", pc_allow);
    buf_puts(&out, ",\"threads\":[");
    int churn = c->run == case_thread_churn;
    for (size_t i = 0; i < plan_count; i++) {
        const tplan *p = sorted[i];
        if (leader_exit && p == &plans[0]) continue;
        buf_printf(&out, "%s{\"tid\":%d,\"name\":", out.data[out.len - 1] == '[' ? "" : ",", (int)p->tid);
        json_cstr(&out, p->name);
        if (p->v1_json.len) {
            buf_puts(&out, ",\"v1\":");
            buf_put(&out, p->v1_json.data, p->v1_json.len);
        }
        if (p->v2_json.len) {
            buf_puts(&out, ",\"v2\":");
            buf_put(&out, p->v2_json.data, p->v2_json.len);
        }
        put_wants(&out, "errors", p->errors);
        put_wants(&out, "allow", p->allow);
        buf_puts(&out, "}");
    }
    buf_puts(&out, "]");
    /* Threads the case does not name (short-lived threads of thread-churn). */
    buf_printf(&out, ",\"other_threads\":{\"errors\":[],\"allow\":[%s]}",
               churn ? "{\"format\":\"tls\",\"kind\":[\"thread_exited\",\"not_sampled\"]},"
                     /* a thread caught while exiting may have lost its TLS already */
                     "{\"format\":\"v1\",\"kind\":\"unreadable\"},{\"format\":\"v2\",\"kind\":\"unreadable\"}"
                   : leader_exit ? "{\"format\":\"tls\",\"kind\":\"thread_exited\"}" : "");
    buf_printf(&out, ",\"min_threads\":%zu,\"snapshots\":%d,\"bounds\":{\"max_json_bytes\":%zu}",
               plan_count - (size_t)leader_exit /* a reader may leave the zombie leader out */,
               snapshots, max_json_bytes);
    if (c->run == case_bytes) text_clean = 1;
    buf_printf(&out, ",\"text_clean\":%s", text_clean ? "true" : "false");
    buf_puts(&out, "}");
    /* Progress counters: one u64 per thread, in plan order (tid given), for the kill test. */
    buf_printf(&out, ",\"notes\":{\"case\":\"%s\",\"busy\":%s,\"counters\":%llu,\"counter_tids\":[", c->name,
               opt_busy ? "true" : "false", (unsigned long long)addr_of((const void *)counters));
    for (size_t i = 0; i < plan_count; i++) buf_printf(&out, "%s%d", i ? "," : "", (int)plans[i].tid);
    buf_puts(&out, "]}}\n");
    if (leader_exit) {
        ready_line = out;
        pthread_t w;
        if (pthread_create(&w, NULL, leader_exit_watcher, NULL) != 0) die("pthread_create");
        pthread_exit(NULL);
    }
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);

    char sink[256];
    if (opt_busy) {
        for (;;) {
            struct pollfd pfd = {.fd = 0, .events = POLLIN};
            if (poll(&pfd, 1, 0) > 0) {
                ssize_t n = read(0, sink, sizeof sink);
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
            }
            for (volatile int k = 0; k < 100000; k++) {
            }
        }
    } else {
        for (;;) {
            ssize_t n = read(0, sink, sizeof sink);
            if (n == 0 || (n < 0 && errno != EINTR)) break;
        }
    }
    _exit(0);
}

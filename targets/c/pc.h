/* pc.h: OTEP 4719 process context: a tiny AnyValue model that is both encoded as protobuf (the
 * payload) and rendered as the JSON the reader must report, plus the mapping publishers. */
#ifndef PC_H
#define PC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum { AV_EMPTY, AV_STRING, AV_BOOL, AV_INT, AV_DOUBLE, AV_ARRAY, AV_KVLIST, AV_BYTES } av_kind;

typedef struct anyvalue anyvalue;
typedef struct {
    const char *key;
    anyvalue *value;
    int key_strindex; /* > 0: also emit the profiling-only key_strindex field (readers ignore it) */
} keyvalue;

struct anyvalue {
    av_kind kind;
    const unsigned char *bytes; /* string / bytes */
    size_t len;
    int64_t i;     /* bool / int */
    double d;      /* double */
    size_t n;      /* items / kvs count */
    anyvalue **items;
    keyvalue *kvs;
};

typedef struct {
    keyvalue *kvs;
    size_t n, cap;
} kvlist_t;

/* Header of formats.md 3.2; offsets checked below. */
typedef struct __attribute__((packed, aligned(8))) {
    char signature[8];
    uint32_t version;
    uint32_t payload_size;
    uint64_t published_at_ns;
    uint64_t payload;
} pc_header;
_Static_assert(sizeof(pc_header) == 32, "OTEP 4719 header is 32 bytes");
_Static_assert(__builtin_offsetof(pc_header, published_at_ns) == 16, "timestamp at 16");
_Static_assert(__builtin_offsetof(pc_header, payload) == 24, "payload pointer at 24");

anyvalue *av_str(const char *s);
anyvalue *av_strn(const void *bytes, size_t len);
anyvalue *av_bytes(const void *bytes, size_t len);
anyvalue *av_bool(int v);
anyvalue *av_int(int64_t v);
anyvalue *av_double(double v);
anyvalue *av_empty(void);
anyvalue *av_array(size_t n, anyvalue **items);
anyvalue *av_kvlist(kvlist_t *list);
void kv_add(kvlist_t *list, const char *key, anyvalue *value);

/* ProcessContext{1: Resource{1: resource attrs, 2: dropped count}, 2: attributes, 15: unknown}. */
void pc_encode(buf_t *out, const kvlist_t *resource, const kvlist_t *attributes);
/* JSON object for a KeyValue list, last occurrence of a key wins. */
void pc_json_object(buf_t *out, const kvlist_t *list);

typedef enum { PC_NONE, PC_MEMFD, PC_ANON, PC_DECOYS } pc_mode;

typedef struct {
    void *mapping;             /* the real mapping, NULL if none */
    char mapping_name[256];    /* as in /proc/self/maps, "" if unnamed */
    int published;             /* timestamp != 0 */
} pc_result;

/* Publishes the payload per formats.md 3.3 in `mode`; `in_progress` leaves the timestamp 0.
 * Decoys (PC_DECOYS) carry `decoy_payload`, so a reader that picks one is caught by the payload. */
void pc_publish(pc_mode mode, const buf_t *payload, const buf_t *decoy_payload, int in_progress,
                pc_result *result);
/* Name of the mapping that starts at `addr` in /proc/self/maps ("" if unnamed or not found). */
void maps_name_of(const void *addr, char *name, size_t name_size);

#endif

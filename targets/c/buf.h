/* buf.h: a growable byte buffer with JSON and protobuf emitters (the writer's only output code). */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned char *data;
    size_t len;
    size_t cap;
} buf_t;

void buf_put(buf_t *b, const void *bytes, size_t len);
void buf_puts(buf_t *b, const char *s);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(buf_t *b);

/* 1 when bytes[0..len) is valid UTF-8 by the same rules as Rust's `str::from_utf8`. */
int utf8_valid(const unsigned char *bytes, size_t len);
/* A JSON string when the bytes are UTF-8, else {"hex":"..."} (conformance.md section 3). */
void json_bytes(buf_t *b, const void *bytes, size_t len);
void json_cstr(buf_t *b, const char *s);
void json_hex_or_null(buf_t *b, const unsigned char *bytes, size_t len); /* null if all zero */

/* Protobuf wire format. */
void pb_varint(buf_t *b, uint64_t v);
void pb_tag(buf_t *b, unsigned field, unsigned wire_type);
void pb_len_field(buf_t *b, unsigned field, const void *bytes, size_t len);
void pb_varint_field(buf_t *b, unsigned field, uint64_t v);
void pb_fixed64_field(buf_t *b, unsigned field, uint64_t v);

#endif

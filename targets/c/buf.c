/* buf.c: growable buffer, JSON escaping with a strict UTF-8 check, protobuf wire-format emitters. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_put(buf_t *b, const void *bytes, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1) cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (!grown) abort();
        b->data = grown;
        b->cap = cap;
    }
    if (len) memcpy(b->data + b->len, bytes, len);
    b->len += len;
    b->data[b->len] = 0;
}

void buf_puts(buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_printf(buf_t *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    if ((size_t)n < sizeof small) {
        buf_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) abort();
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_put(b, big, (size_t)n);
    free(big);
}

void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int utf8_valid(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c == 0xe0) {
            need = 2;
            lo = 0xa0;
        } else if (c == 0xed) {
            need = 2;
            hi = 0x9f;
        } else if (c >= 0xe1 && c <= 0xef) {
            need = 2;
        } else if (c == 0xf0) {
            need = 3;
            lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            need = 3;
        } else if (c == 0xf4) {
            need = 3;
            hi = 0x8f;
        } else {
            return 0;
        }
        if (i + need >= len) return 0; /* continuation bytes i+1..i+need must exist */
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) return 0;
        i += need + 1;
    }
    return 1;
}

static void json_hex(buf_t *b, const unsigned char *bytes, size_t len) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        char two[2] = {digits[bytes[i] >> 4], digits[bytes[i] & 15]};
        buf_put(b, two, 2);
    }
}

void json_bytes(buf_t *b, const void *bytes, size_t len) {
    const unsigned char *s = bytes;
    if (!utf8_valid(s, len)) {
        buf_puts(b, "{\"hex\":\"");
        json_hex(b, s, len);
        buf_puts(b, "\"}");
        return;
    }
    buf_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buf_put(b, esc, 2);
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_put(b, &c, 1);
        }
    }
    buf_put(b, "\"", 1);
}

void json_cstr(buf_t *b, const char *s) { json_bytes(b, s, strlen(s)); }

void json_hex_or_null(buf_t *b, const unsigned char *bytes, size_t len) {
    size_t i;
    for (i = 0; i < len && bytes[i] == 0; i++) {
    }
    if (i == len) {
        buf_puts(b, "null");
        return;
    }
    buf_put(b, "\"", 1);
    json_hex(b, bytes, len);
    buf_put(b, "\"", 1);
}

void pb_varint(buf_t *b, uint64_t v) {
    unsigned char out[10];
    size_t n = 0;
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        if (v) byte |= 0x80;
        out[n++] = byte;
    } while (v);
    buf_put(b, out, n);
}

void pb_tag(buf_t *b, unsigned field, unsigned wire_type) { pb_varint(b, ((uint64_t)field << 3) | wire_type); }

void pb_len_field(buf_t *b, unsigned field, const void *bytes, size_t len) {
    pb_tag(b, field, 2);
    pb_varint(b, len);
    buf_put(b, bytes, len);
}

void pb_varint_field(buf_t *b, unsigned field, uint64_t v) {
    pb_tag(b, field, 0);
    pb_varint(b, v);
}

void pb_fixed64_field(buf_t *b, unsigned field, uint64_t v) {
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(v >> (8 * i));
    pb_tag(b, field, 1);
    buf_put(b, le, 8);
}

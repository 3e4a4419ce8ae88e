/* common.h: layouts, patterns and helpers shared by the sampler test targets. */
#ifndef SAMPLER_TEST_COMMON_H
#define SAMPLER_TEST_COMMON_H
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

/* custom-labels v1 (formats.md 1.5) */
struct cl_string { size_t len; const unsigned char *buf; };
struct cl_label { struct cl_string key; struct cl_string value; };
struct cl_set { struct cl_label *storage; size_t count; size_t capacity; };

/* OTEP 4947 header (formats.md 2.3) */
struct otep_record {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t valid;
	uint8_t trace_flags;
	uint16_t attrs_data_size;
	uint8_t attrs[];
};
_Static_assert(sizeof(struct otep_record) == 28, "otep header");

/* Byte patterns; the Rust test computes the same ones. */
static inline uint8_t pattern_byte(unsigned thread, unsigned what, unsigned i)
{
	return (uint8_t)(thread * 31 + what * 7 + i * 3 + 1);
}

static inline uint64_t thread_pointer(void)
{
	uint64_t tp;
#if defined(__x86_64__)
	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp)); /* glibc/musl keep a self pointer at *TP */
#elif defined(__aarch64__)
	__asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
#else
#error "unsupported architecture"
#endif
	return tp;
}

/* Builds a valid OTEP record with `attrs_size` attribute bytes from pattern what=2. */
static inline struct otep_record *make_record(unsigned thread, unsigned attrs_size, uint16_t declared)
{
	struct otep_record *r = calloc(1, sizeof(*r) + attrs_size + 64);
	for (unsigned i = 0; i < 16; i++) r->trace_id[i] = pattern_byte(thread, 0, i);
	for (unsigned i = 0; i < 8; i++) r->span_id[i] = pattern_byte(thread, 1, i);
	r->valid = 1;
	r->trace_flags = 1;
	r->attrs_data_size = declared;
	for (unsigned i = 0; i < attrs_size; i++) r->attrs[i] = pattern_byte(thread, 2, i);
	return r;
}

static volatile int stop_spinning;

static inline void spin_until_stdin_eof_flag(void)
{
	while (!stop_spinning)
		__asm__ volatile("" ::: "memory");
}

/* Main thread: waits for EOF on stdin, then lets the spinning threads finish. */
static inline void wait_stdin_eof(void)
{
	char buf[64];
	while (read(0, buf, sizeof buf) > 0) {
	}
	stop_spinning = 1;
}
#endif

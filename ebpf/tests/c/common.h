/* common.h: layouts, patterns and helpers shared by the sampler test targets. */
#ifndef SAMPLER_TEST_COMMON_H
#define SAMPLER_TEST_COMMON_H
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
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

/* The protocol of the threaded targets: each worker prints its THREAD line (print_locked), then
 * thread_ready(); run_threads() starts them, prints READY once every one is ready, waits for EOF
 * on stdin and joins them. */
static pthread_barrier_t ready __attribute__((unused));
static pthread_mutex_t print_lock __attribute__((unused)) = PTHREAD_MUTEX_INITIALIZER;

/* printf + fflush under the print lock, so that the lines of two threads never interleave. */
__attribute__((format(printf, 1, 2))) static inline void print_locked(const char *format, ...)
{
	va_list args;
	va_start(args, format);
	pthread_mutex_lock(&print_lock);
	vprintf(format, args);
	fflush(stdout);
	pthread_mutex_unlock(&print_lock);
	va_end(args);
}

/* A worker, once set up: waits for the others, then spins until stdin EOF. */
static inline void *thread_ready(void)
{
	pthread_barrier_wait(&ready);
	spin_until_stdin_eof_flag();
	return NULL;
}

/* Runs `count` workers (argument: their index) to the end of the protocol. */
static inline void run_threads(unsigned count, void *(*worker)(void *))
{
	pthread_t *threads = calloc(count, sizeof(*threads));
	pthread_barrier_init(&ready, NULL, count + 1);
	for (unsigned i = 0; i < count; i++)
		pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)i);
	pthread_barrier_wait(&ready);
	printf("READY\n");
	fflush(stdout);
	wait_stdin_eof();
	for (unsigned i = 0; i < count; i++)
		pthread_join(threads[i], NULL);
	free(threads);
}
#endif

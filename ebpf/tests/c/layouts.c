/* layouts.c: threads with a v1 ABI-0 inline set and a draft (34-byte header) record, one within and one over the bound. */
#include "common.h"

struct v0_inline { struct cl_label *storage; size_t count; };
__thread struct v0_inline v0_object __attribute__((tls_model("local-exec")));
__thread uint8_t *draft_slot __attribute__((tls_model("local-exec")));

#define THREADS 2

/* Draft record: trace(16) span(8) root_span(8) valid attrs_count, then entries {index, len, bytes}.
 * Entry e has key_index e and len 3 + (10 * e) % 250 bytes of pattern what = 10 + e. */
#define DRAFT_BYTES 16384
static uint8_t *make_draft(unsigned thread, unsigned entries)
{
	uint8_t *r = calloc(1, DRAFT_BYTES);
	for (unsigned i = 0; i < 16; i++) r[i] = pattern_byte(thread, 0, i);
	for (unsigned i = 0; i < 8; i++) r[16 + i] = pattern_byte(thread, 1, i);
	for (unsigned i = 0; i < 8; i++) r[24 + i] = pattern_byte(thread, 9, i);
	r[32] = 1;
	r[33] = (uint8_t)entries;
	uint8_t *at = r + 34;
	for (unsigned e = 0; e < entries; e++) {
		unsigned len = 3 + (10 * e) % 250;
		if (at + 2 + len > r + DRAFT_BYTES)
			abort();
		at[0] = (uint8_t)e;
		at[1] = (uint8_t)len;
		for (unsigned j = 0; j < len; j++) at[2 + j] = pattern_byte(thread, 10 + e, j);
		at += 2 + len;
	}
	return r;
}

static void *worker(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	/* v0: 2 labels "k<thread>-<i>" = i+1 bytes of pattern what = 3 + i */
	struct cl_label *labels = calloc(2, sizeof(*labels));
	for (unsigned i = 0; i < 2; i++) {
		char *key = malloc(16);
		labels[i].key.len = (size_t)snprintf(key, 16, "k%u-%u", index, i);
		labels[i].key.buf = (const unsigned char *)key;
		unsigned char *value = malloc(i + 1);
		for (unsigned j = 0; j <= i; j++) value[j] = pattern_byte(index, 3 + i, j);
		labels[i].value.len = i + 1;
		labels[i].value.buf = value;
	}
	v0_object.storage = labels;
	v0_object.count = 2;
	/* thread 0: 3 entries (3 + 13 + 23 bytes); thread 1: 40 entries, over 1024 value bytes in all */
	draft_slot = make_draft(index, index == 0 ? 3 : 40);
	uint64_t tp = thread_pointer();
	print_locked("THREAD %u %ld 0x%llx %lld %lld\n", index, (long)syscall(SYS_gettid), (unsigned long long)tp,
	             (long long)((uintptr_t)&v0_object - tp), (long long)((uintptr_t)&draft_slot - tp));
	return thread_ready();
}

int main(void)
{
	run_threads(THREADS, worker);
	return 0;
}

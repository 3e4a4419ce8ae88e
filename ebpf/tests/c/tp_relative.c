/* tp_relative.c: threads publish v1 sets and OTEP records through local-exec TLS, print where, and spin. */
#include "common.h"

__thread struct cl_set *v1_slot __attribute__((tls_model("local-exec")));
__thread struct otep_record *v2_slot __attribute__((tls_model("local-exec")));

#define THREADS 4

/* v1 strings: key i = "k<thread>-<i>", value i = (i+1)*50 pattern bytes (what=3+i). */
static struct cl_set *make_set(unsigned thread, unsigned count)
{
	struct cl_set *set = calloc(1, sizeof(*set));
	struct cl_label *labels = calloc(count, sizeof(*labels));
	for (unsigned i = 0; i < count; i++) {
		char *key = malloc(16);
		int n = snprintf(key, 16, "k%u-%u", thread, i);
		unsigned vlen = (i + 1) * 50;
		unsigned char *value = malloc(vlen);
		for (unsigned j = 0; j < vlen; j++) value[j] = pattern_byte(thread, 3 + i, j);
		labels[i].key.len = (size_t)n;
		labels[i].key.buf = (const unsigned char *)key;
		labels[i].value.len = vlen;
		labels[i].value.buf = value;
	}
	set->storage = labels;
	set->count = count;
	set->capacity = count;
	return set;
}

static void *worker(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	switch (index) {
	case 0:
	case 1: {
		/* 4 labels: 0 and 1 normal, 2 with a NULL key (no reads), 3 with an empty value. */
		struct cl_set *set = make_set(index, 4);
		set->storage[2].key.buf = NULL;
		set->storage[3].value.len = 0;
		v1_slot = set;
		v2_slot = make_record(index, 40, 40);
		break;
	}
	case 2:
		/* over the kernel bounds: 33 labels, 1500 attribute bytes */
		v1_slot = make_set(index, 33);
		v2_slot = make_record(index, 1500, 1500);
		break;
	default: {
		/* no v1 set; a v2 record with valid = 0 */
		struct otep_record *r = make_record(index, 16, 16);
		r->valid = 0;
		v1_slot = NULL;
		v2_slot = r;
		break;
	}
	}
	uint64_t tp = thread_pointer();
	print_locked("THREAD %u %ld 0x%llx %lld %lld\n", index, (long)syscall(SYS_gettid), (unsigned long long)tp,
	             (long long)((uintptr_t)&v1_slot - tp), (long long)((uintptr_t)&v2_slot - tp));
	return thread_ready();
}

int main(void)
{
	run_threads(THREADS, worker);
	return 0;
}

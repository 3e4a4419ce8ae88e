/* bench_writer.c: a writer for measuring the eBPF backend through the reader (cost per sample,
 * coverage under load, exit during the window). Every worker thread publishes 8 custom-labels v1
 * labels (separately allocated keys and values) and a 640-byte OTEP 4947 record (28-byte header,
 * 6 attributes of 100 bytes) through the symbols the reader discovers, then parks or spins.
 *
 * Usage: bench_writer [--threads N | -t N] [--busy | -b] [--exit-after-ms MS | -x MS]
 * Prints "READY <pid>" once every worker has published; exits at stdin EOF, or MS ms after READY. */
#include "common.h"
#include <errno.h>
#include <time.h>

__attribute__((visibility("default"), used)) __thread struct cl_set *custom_labels_current_set;
__attribute__((visibility("default"), used)) __thread struct otep_record *otel_thread_ctx_v1;

#define LABELS 8
#define RECORD_SIZE 640
#define ATTRS 6
#define ATTR_VALUE 100

static pthread_barrier_t ready;
static int busy;
static volatile int stopping;

static void *worker(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	struct cl_set *set = calloc(1, sizeof(*set));
	struct cl_label *labels = calloc(LABELS, sizeof(*labels));
	for (unsigned i = 0; i < LABELS; i++) {
		char *key = malloc(16), *value = malloc(32);
		int kn = snprintf(key, 16, "key%u", i);
		int vn = snprintf(value, 32, "value-%u-of-thread-%u", i, index);
		labels[i].key.len = (size_t)kn;
		labels[i].key.buf = (const unsigned char *)key;
		labels[i].value.len = (size_t)vn;
		labels[i].value.buf = (const unsigned char *)value;
	}
	set->storage = labels;
	set->count = LABELS;
	set->capacity = LABELS;

	struct otep_record *r = calloc(1, RECORD_SIZE);
	for (unsigned i = 0; i < 16; i++) r->trace_id[i] = pattern_byte(index, 0, i);
	for (unsigned i = 0; i < 8; i++) r->span_id[i] = pattern_byte(index, 1, i);
	r->trace_flags = 1;
	unsigned n = 0;
	for (unsigned a = 0; a < ATTRS; a++) {
		r->attrs[n++] = (uint8_t)a;
		r->attrs[n++] = ATTR_VALUE;
		for (unsigned j = 0; j < ATTR_VALUE; j++) r->attrs[n++] = (uint8_t)('a' + (index + a + j) % 26);
	}
	r->attrs_data_size = (uint16_t)n;
	_Static_assert(28 + ATTRS * (2 + ATTR_VALUE) == RECORD_SIZE - 0, "record size");
	__atomic_store_n(&r->valid, 1, __ATOMIC_RELEASE);
	custom_labels_current_set = set;
	otel_thread_ctx_v1 = r;
	pthread_barrier_wait(&ready);
	while (busy && !stopping) {}
	while (!stopping) pause();
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 8;
	long exit_after_ms = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--busy") == 0 || strcmp(a, "-b") == 0) busy = 1;
		else if ((strcmp(a, "--threads") == 0 || strcmp(a, "-t") == 0) && i + 1 < argc) threads = atoi(argv[++i]);
		else if ((strcmp(a, "--exit-after-ms") == 0 || strcmp(a, "-x") == 0) && i + 1 < argc)
			exit_after_ms = atol(argv[++i]);
	}
	if (threads < 1 || threads > 8192) threads = 8;
	pthread_barrier_init(&ready, NULL, (unsigned)threads + 1);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		if (pthread_create(&t, &attr, worker, (void *)(uintptr_t)(i + 1)) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	pthread_barrier_wait(&ready);
	printf("READY %d\n", (int)getpid());
	fflush(stdout);
	/* Both waits resume after an interruption (a tracer or a signal elsewhere must not end them). */
	if (exit_after_ms >= 0) {
		struct timespec t = { exit_after_ms / 1000, (exit_after_ms % 1000) * 1000000L };
		while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
		_exit(0);
	}
	char c;
	for (;;) {
		ssize_t n = read(0, &c, 1);
		if (n == 0 || (n < 0 && errno != EINTR)) break;
	}
	_exit(0);
}

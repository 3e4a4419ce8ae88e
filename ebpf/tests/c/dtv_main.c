/* dtv_main.c: dlopens dtv_module.so; threads 0 and 1 publish OTEP records in its TLS, thread 2 never touches it. */
#include "common.h"
#include <dlfcn.h>
#include <link.h>

#define THREADS 3
static void *module;
static void (*module_set)(void *);
static void **(*module_slot_address)(void);

static void *worker(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	void *block = NULL;
	long long slot_offset = -1;
	if (index < 2) {
		module_set(make_record(index, 24, 24));
		if (dlinfo(module, RTLD_DI_TLS_DATA, &block) != 0 || block == NULL) {
			fprintf(stderr, "dlinfo(RTLD_DI_TLS_DATA): %s\n", dlerror());
			exit(1);
		}
		slot_offset = (long long)((uintptr_t)module_slot_address() - (uintptr_t)block);
	}
	uint64_t tp = thread_pointer();
	print_locked("THREAD %u %ld 0x%llx %lld\n", index, (long)syscall(SYS_gettid), (unsigned long long)tp, slot_offset);
	return thread_ready();
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s MODULE.so\n", argv[0]);
		return 2;
	}
	module = dlopen(argv[1], RTLD_NOW);
	if (!module) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	module_set = (void (*)(void *))dlsym(module, "module_set");
	module_slot_address = (void **(*)(void))dlsym(module, "module_slot_address");
	size_t modid = 0;
	if (!module_set || !module_slot_address || dlinfo(module, RTLD_DI_TLS_MODID, &modid) != 0) {
		fprintf(stderr, "dlsym/dlinfo failed\n");
		return 1;
	}
	printf("MODULE %zu\n", modid);
	fflush(stdout);
	run_threads(THREADS, worker);
	return 0;
}

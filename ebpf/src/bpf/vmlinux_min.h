/* vmlinux_min.h: the few kernel types sampler.bpf.c uses, as CO-RE (preserve_access_index) stubs. */
/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Instead of a full `bpftool btf dump` vmlinux.h (which would tie the build to the build
 * machine's kernel and architecture), only the fields read are declared. CO-RE relocations
 * resolve their real offsets against /sys/kernel/btf/vmlinux when the program is loaded.
 */
#ifndef CONTEXT_READER_VMLINUX_MIN_H
#define CONTEXT_READER_VMLINUX_MIN_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

#if defined(__TARGET_ARCH_x86)
struct thread_struct {
	unsigned long fsbase;
};
#elif defined(__TARGET_ARCH_arm64)
struct thread_struct {
	struct {
		unsigned long tp_value;
	} uw;
};
#else
#error "define __TARGET_ARCH_x86 or __TARGET_ARCH_arm64"
#endif

struct task_struct {
	int pid;
	int tgid;
	struct thread_struct thread;
};

#pragma clang attribute pop

#endif

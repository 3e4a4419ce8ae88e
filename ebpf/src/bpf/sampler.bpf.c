/* sampler.bpf.c: perf-event sampler that copies a watched thread's context records into a ring buffer. */
/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Runs on every software cpu-clock tick of every CPU. When the interrupted task belongs to a
 * watched process (map `processes`, keyed by tgid), it reads the task's thread pointer through
 * CO-RE, computes the custom-labels v1 slot and the OTEP 4947 slot with the process's slot rules,
 * and copies exactly the ranges the ptrace reader reads (contract.md "What the reader reads,
 * exactly"), each as one chunk (address, length, bytes). User space rebuilds an address space
 * from the chunks and runs the ptrace decoders over it; this program never interprets a record
 * beyond the pointers and lengths it needs to know what to copy next. Every length and count
 * taken from the target is bounded by the CR_ constants of sampler.h.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sampler.h"

char LICENSE[] SEC("license") = "GPL";

/* Hides a value's range from clang so that a following mask is kept for the verifier
 * (libbpf >= 1.0 defines the same macro). */
#ifndef barrier_var
#define barrier_var(var) asm volatile("" : "=r"(var) : "0"(var))
#endif

struct cr_scratch {
	struct cr_sample_header header;
	__u8 data[CR_DATA_CAPACITY + CR_DATA_SLACK];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CR_RING_BYTES);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CR_MAX_PROCESSES);
	__type(key, __u32);
	__type(value, struct cr_process_params);
} processes SEC(".maps");

/* One scratch record per CPU; user space sets max_entries to the number of possible CPUs. A
 * plain array (not per-CPU) because per-CPU values are limited to 32 KiB. A perf-event program
 * does not nest on one CPU, so the CPU's entry has one user at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cr_scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

_Static_assert(sizeof(struct cr_slot_rule) == CR_SLOT_RULE_SIZE, "cr_slot_rule size");
_Static_assert(sizeof(struct cr_process_params) == CR_PROCESS_PARAMS_SIZE, "cr_process_params size");
_Static_assert(sizeof(struct cr_sample_header) == CR_SAMPLE_HEADER_SIZE, "cr_sample_header size");
_Static_assert(sizeof(struct cr_chunk_header) == CR_CHUNK_HEADER_SIZE, "cr_chunk_header size");
_Static_assert((CR_DATA_CAPACITY & CR_DATA_MASK) == 0, "capacity is a power of two");
_Static_assert(CR_DATA_SLACK >= CR_CHUNK_HEADER_SIZE + 2 * CR_MAX_READ, "slack covers a masked read");

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &index);
	if (value)
		*value += 1;
}

/* Outcome of one copy. */
#define COPY_OK 0
#define COPY_FAULT 1
#define COPY_FULL 2

/*
 * Reads `len` (<= CR_MAX_READ) bytes at user address `addr` into a new chunk at the end of the chunk area.
 * On success advances s->header.data_len and returns COPY_OK with *data_off = offset of the bytes in
 * s->data. A failed read leaves no chunk.
 */
static __always_inline int copy_chunk(struct cr_scratch *s, __u64 addr, __u32 len,
				      __u32 *data_off)
{
	/* The position lives in the map value, not in a register: the verifier then sees an
	 * unknown scalar on every path and prunes equal states instead of tracking each exact
	 * position (which exceeds the 1M-instruction budget). */
	__u32 p = s->header.data_len;

	if (len > CR_MAX_READ)
		return COPY_FULL;
	/* strict: the position stays below CR_DATA_CAPACITY, so masking it later is the identity */
	if ((__u64)p + CR_CHUNK_HEADER_SIZE + ((len + 7) & ~7U) >= CR_DATA_CAPACITY)
		return COPY_FULL;
	barrier_var(p);
	p &= CR_DATA_MASK;
	barrier_var(len);
	len &= (2 * CR_MAX_READ - 1);

	struct cr_chunk_header *h = (void *)&s->data[p];
	h->addr = addr;
	h->len = len;
	h->reserved = 0;
	/* zero the last padded word first, so no stale bytes of an earlier sample leave the kernel */
	*(__u64 *)&s->data[p + CR_CHUNK_HEADER_SIZE + (len & ~7U)] = 0;
	if (bpf_probe_read_user(&s->data[p + CR_CHUNK_HEADER_SIZE], len, (const void *)addr) != 0)
		return COPY_FAULT;
	__u32 padded = p + CR_CHUNK_HEADER_SIZE + ((len + 7) & ~7U);
	*data_off = p + CR_CHUNK_HEADER_SIZE;
	s->header.data_len = padded;
	s->header.chunk_count += 1;
	return COPY_OK;
}

/* Reads one u64 as a chunk and returns it in *out. */
static __always_inline int copy_u64(struct cr_scratch *s, __u64 addr, __u64 *out)
{
	__u64 value = 0;
	/* The position lives in the map value, not in a register: the verifier then sees an
	 * unknown scalar on every path and prunes equal states instead of tracking each exact
	 * position (which exceeds the 1M-instruction budget). */
	__u32 p = s->header.data_len;

	if ((__u64)p + CR_CHUNK_HEADER_SIZE + 8 >= CR_DATA_CAPACITY)
		return COPY_FULL;
	if (bpf_probe_read_user(&value, 8, (const void *)addr) != 0)
		return COPY_FAULT;
	barrier_var(p);
	p &= CR_DATA_MASK;
	struct cr_chunk_header *h = (void *)&s->data[p];
	h->addr = addr;
	h->len = 8;
	h->reserved = 0;
	*(__u64 *)&s->data[p + CR_CHUNK_HEADER_SIZE] = value;
	s->header.data_len = p + CR_CHUNK_HEADER_SIZE + 8;
	s->header.chunk_count += 1;
	*out = value;
	return COPY_OK;
}

static __always_inline void fail(struct cr_scratch *s, int shift, int outcome, __u64 fault_bit)
{
	s->header.flags |= (outcome == COPY_FULL ? (__u64)CR_FMT_BUFFER_FULL : fault_bit) << shift;
}

/* Returns the slot address for `rule`, or 0 if there is none for this thread. */
static __always_inline __u64 resolve_slot(struct cr_scratch *s, __u64 tp,
					  const struct cr_slot_rule *rule, int shift)
{
	__u64 dtv = 0, length = 0, block = 0;
	int r;

	if (rule->kind == CR_RULE_TP_RELATIVE)
		return tp + (__u64)rule->tp_offset;
	if (rule->kind != CR_RULE_DTV)
		return 0;

	r = copy_u64(s, tp + (__u64)rule->tp_offset, &dtv);
	if (r != COPY_OK) {
		fail(s, shift, r, CR_FMT_DTV_UNREADABLE);
		return 0;
	}
	r = copy_u64(s, rule->glibc_counter ? dtv - 16 : dtv, &length);
	if (r != COPY_OK) {
		fail(s, shift, r, CR_FMT_DTV_UNREADABLE);
		return 0;
	}
	if (length < rule->module_id) {
		s->header.flags |= (__u64)CR_FMT_DTV_SHORT << shift;
		return 0;
	}
	r = copy_u64(s, dtv + rule->module_id * rule->entry_size, &block);
	if (r != COPY_OK) {
		fail(s, shift, r, CR_FMT_DTV_UNREADABLE);
		return 0;
	}
	if (block == 0 || block == (__u64)-1) {
		s->header.flags |= (__u64)CR_FMT_TLS_UNALLOCATED << shift;
		return 0;
	}
	return block + rule->block_offset;
}

struct cr_v1_label {
	__u64 key_len;
	__u64 key_buf;
	__u64 value_len;
	__u64 value_buf;
};

/* Copies one v1 string; returns 0 when done or skipped, 1 when the sample should stop. */
static __always_inline int copy_v1_string(struct cr_scratch *s, __u64 buf, __u64 len)
{
	__u32 off;
	int r;

	if (buf == 0 || len == 0)
		return 0;
	if (len > CR_MAX_V1_STRING) {
		s->header.flags |= (__u64)CR_FMT_TOO_LARGE << CR_FLAG_V1_SHIFT;
		return 0;
	}
	r = copy_chunk(s, buf, (__u32)len, &off);
	if (r == COPY_FULL) {
		fail(s, CR_FLAG_V1_SHIFT, r, 0);
		return 1;
	}
	if (r != COPY_OK)
		s->header.flags |= (__u64)CR_FMT_STRING_UNREADABLE << CR_FLAG_V1_SHIFT;
	return 0;
}

static __always_inline void read_v1(struct cr_scratch *s, __u64 tp,
				    const struct cr_slot_rule *rule)
{
	const int shift = CR_FLAG_V1_SHIFT;
	__u64 slot, set_ptr = 0;
	__u32 off = 0;
	int r;

	slot = resolve_slot(s, tp, rule, shift);
	if (slot == 0)
		return;
	__u64 storage, set_count;
	if (rule->layout == CR_V1_LAYOUT_INLINE) {
		/* ABI 0: the TLS object itself is {storage, count} */
		r = copy_chunk(s, slot, CR_V0_INLINE_SIZE, &off);
		if (r != COPY_OK) {
			fail(s, shift, r, CR_FMT_RECORD_UNREADABLE);
			return;
		}
	} else {
		r = copy_u64(s, slot, &set_ptr);
		if (r != COPY_OK) {
			fail(s, shift, r, CR_FMT_SLOT_UNREADABLE);
			return;
		}
		if (set_ptr == 0)
			return;
		r = copy_chunk(s, set_ptr, CR_V1_SET_SIZE, &off);
		if (r != COPY_OK) {
			fail(s, shift, r, CR_FMT_RECORD_UNREADABLE);
			return;
		}
	}
	off &= CR_DATA_MASK;
	storage = *(__u64 *)&s->data[off];
	set_count = *(__u64 *)&s->data[off + 8];
	if (set_count == 0)
		return;
	if (set_count > CR_MAX_V1_LABELS) {
		/* like the decoder with max_labels = CR_MAX_V1_LABELS: the first entries are read */
		s->header.flags |= (__u64)CR_FMT_TOO_LARGE << shift;
		set_count = CR_MAX_V1_LABELS;
	}
	if (storage == 0)
		return; /* the decoder reports a NULL storage without reading */
	__u32 count = (__u32)set_count;
	__u32 storage_off = 0;
	r = copy_chunk(s, storage, count * CR_V1_LABEL_SIZE, &storage_off);
	if (r != COPY_OK) {
		fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
		return;
	}

#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < CR_MAX_V1_LABELS; i++) {
		if (i >= count)
			break;
		__u32 entry_off = storage_off + i * CR_V1_LABEL_SIZE;
		barrier_var(entry_off);
		entry_off &= CR_DATA_MASK;
		struct cr_v1_label label = *(struct cr_v1_label *)&s->data[entry_off];
		if (label.key_buf == 0)
			continue;
		if (copy_v1_string(s, label.key_buf, label.key_len))
			return;
		if (copy_v1_string(s, label.value_buf, label.value_len))
			return;
	}
}

/* The valid byte at `at`, read again after the copy: a change means a torn copy. */
static __always_inline void reread_valid(struct cr_scratch *s, __u64 at, __u8 valid)
{
	const int shift = CR_FLAG_V2_SHIFT;
	__u32 valid_off = 0;
	int r = copy_chunk(s, at, 1, &valid_off);
	if (r != COPY_OK) {
		fail(s, shift, r, CR_FMT_REREAD_UNREADABLE);
		return;
	}
	valid_off &= CR_DATA_MASK;
	if (s->data[valid_off] != valid)
		s->header.flags |= (__u64)CR_FMT_TORN << shift;
}

/* OTEP 4947: 28 bytes; if valid == 1, attrs_data_size bytes at +28 (capped); valid again. */
static __always_inline void read_otep_record(struct cr_scratch *s, __u64 record)
{
	const int shift = CR_FLAG_V2_SHIFT;
	__u32 off = 0, attrs_off = 0;
	int r = copy_chunk(s, record, CR_V2_HEADER_SIZE, &off);
	if (r != COPY_OK) {
		fail(s, shift, r, CR_FMT_RECORD_UNREADABLE);
		return;
	}
	off &= CR_DATA_MASK;
	__u8 valid = s->data[off + CR_V2_VALID_OFFSET];
	__u16 size = *(__u16 *)&s->data[off + CR_V2_SIZE_OFFSET];
	if (valid != 1)
		return;
	if (size > CR_MAX_V2_ATTRS) {
		s->header.flags |= (__u64)CR_FMT_TOO_LARGE << shift;
		size = CR_MAX_V2_ATTRS;
	}
	if (size > 0) {
		r = copy_chunk(s, record + CR_V2_HEADER_SIZE, size, &attrs_off);
		if (r != COPY_OK) {
			fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
			return;
		}
	}
	reread_valid(s, record + CR_V2_VALID_OFFSET, valid);
}

/* Draft: 34 bytes; if valid == 1, per entry 2 bytes {key_index, len} then len bytes; valid again. */
static __always_inline void read_draft_record(struct cr_scratch *s, __u64 record)
{
	const int shift = CR_FLAG_V2_SHIFT;
	__u32 off = 0;
	int r = copy_chunk(s, record, CR_DRAFT_HEADER_SIZE, &off);
	if (r != COPY_OK) {
		fail(s, shift, r, CR_FMT_RECORD_UNREADABLE);
		return;
	}
	off &= CR_DATA_MASK;
	__u8 valid = s->data[off + CR_DRAFT_VALID_OFFSET];
	__u32 count = s->data[off + CR_DRAFT_COUNT_OFFSET];
	if (valid != 1)
		return;
	__u64 at = record + CR_DRAFT_HEADER_SIZE;
	__u32 total = 0;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < CR_MAX_DRAFT_ENTRIES; i++) {
		if (i >= count)
			break;
		__u32 head_off = 0, value_off = 0;
		r = copy_chunk(s, at, 2, &head_off);
		if (r != COPY_OK) {
			fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
			break;
		}
		head_off &= CR_DATA_MASK;
		__u32 len = s->data[head_off + 1];
		if (len > 0) {
			total += len;
			if (total > CR_MAX_V2_ATTRS) {
				s->header.flags |= (__u64)CR_FMT_TOO_LARGE << shift;
				break;
			}
			r = copy_chunk(s, at + 2, len, &value_off);
			if (r != COPY_OK) {
				fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
				break;
			}
		}
		at += 2 + len;
	}
	reread_valid(s, record + CR_DRAFT_VALID_OFFSET, valid);
}

static __always_inline void read_v2(struct cr_scratch *s, __u64 tp,
				    const struct cr_slot_rule *rule)
{
	const int shift = CR_FLAG_V2_SHIFT;
	__u64 slot, record = 0;
	int r;

	slot = resolve_slot(s, tp, rule, shift);
	if (slot == 0)
		return;
	r = copy_u64(s, slot, &record);
	if (r != COPY_OK) {
		fail(s, shift, r, CR_FMT_SLOT_UNREADABLE);
		return;
	}
	if (record == 0)
		return;

	if (rule->layout == CR_V2_LAYOUT_DRAFT)
		read_draft_record(s, record);
	else
		read_otep_record(s, record);
}

static __always_inline __u64 thread_pointer(struct task_struct *task, int *err)
{
	unsigned long tp = 0;
#if defined(__TARGET_ARCH_x86)
	*err = BPF_CORE_READ_INTO(&tp, task, thread.fsbase);
#elif defined(__TARGET_ARCH_arm64)
	*err = BPF_CORE_READ_INTO(&tp, task, thread.uw.tp_value);
#endif
	return tp;
}

SEC("perf_event")
int sample_context(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u32 tid = (__u32)pid_tgid;

	if (tgid == 0)
		return 0;
	struct cr_process_params *params = bpf_map_lookup_elem(&processes, &tgid);
	if (!params)
		return 0;

	__u32 cpu = bpf_get_smp_processor_id();
	struct cr_scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s) {
		count(CR_COUNTER_SCRATCH_MISSING);
		return 0;
	}

	s->header.tid = tid;
	s->header.tgid = tgid;
	s->header.flags = 0;
	s->header.ktime_ns = bpf_ktime_get_ns();
	s->header.cpu = cpu;
	s->header.chunk_count = 0;
	s->header.data_len = 0;
	s->header.reserved = 0;

	int err = 0;
	__u64 tp = thread_pointer((struct task_struct *)bpf_get_current_task(), &err);
	s->header.tp = tp;
	if (err) {
		s->header.flags |= CR_FLAG_TP_UNREADABLE;
	} else if (tp == 0) {
		s->header.flags |= CR_FLAG_TP_ZERO;
	} else {
		read_v1(s, tp, &params->v1);
		read_v2(s, tp, &params->v2);
	}

	__u32 len = s->header.data_len;
	len &= CR_DATA_MASK;
	s->header.data_len = len;
	if (bpf_ringbuf_output(&samples, s, CR_SAMPLE_HEADER_SIZE + len, 0) != 0)
		count(CR_COUNTER_DROPPED);
	else
		count(CR_COUNTER_EMITTED);
	return 0;
}

/* sampler.bpf.c: perf-event sampler that copies a watched thread's context records into a ring buffer. */
/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Runs on the overflow of a task-clock perf event opened on each watched thread (or, as a
 * fallback, on every software cpu-clock tick of every CPU). When the interrupted task belongs to a
 * watched process (map `processes`, keyed by tgid), it reads the task's thread pointer through
 * CO-RE, computes the custom-labels v1 slot and the OTEP 4947 slot with the process's slot rules,
 * and copies the ranges the ptrace reader reads (contract.md "What the reader reads, exactly") as
 * chunks (address, length, bytes): each range as one chunk, except that a v1 set's strings are
 * copied as one chunk spanning them when that fits in one read (copy_v1_span) and an OTEP 4947
 * record's header and attrs as one chunk (read_otep_record), since each read has a fixed cost.
 * User space rebuilds an address space from the chunks and runs the ptrace decoders over it;
 * this program never interprets a record beyond the pointers and lengths it needs to know what
 * to copy next. Every length and count taken from the target is bounded by the CR_ constants of
 * sampler.h.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "sampler.h"

char LICENSE[] SEC("license") = "GPL";

/* BPF_RB_NO_WAKEUP of linux/bpf.h: user space polls the ring buffer, so no wakeup is needed. */
#define CR_RB_NO_WAKEUP 1

/* Hides a value's range from clang so that a following mask is kept for the verifier
 * (libbpf >= 1.0 defines the same macro). */
#ifndef barrier_var
#define barrier_var(var) asm volatile("" : "=r"(var) : "0"(var))
#endif

struct cr_scratch {
	struct cr_sample_header header;
	__u8 data[CR_DATA_CAPACITY + CR_DATA_SLACK];
	/* copy_v1_span's running span [span_lo, span_hi) and whether a string was over the bound;
	 * kept here, not in registers, so that the per-label step can be a global function */
	__u64 span_lo;
	__u64 span_hi;
	__u64 span_too_large;
	/* the chunk of cr_copy_slots: user address, length (0: none) and offset in data */
	__u64 slots_addr;
	__u64 slots_len;
	__u64 slots_off;
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
_Static_assert(CR_DATA_SLACK >= CR_CHUNK_HEADER_SIZE + 2 * CR_MAX_READ + 8, "slack covers a masked read");

/*
 * Verification budget: the functions marked CR_GLOBAL are global BPF functions, which the
 * verifier checks once, on their own, with unknown arguments, instead of once per call site and
 * path. Without them the label and entry loops exceed the 1M-instruction limit on 6.1/6.12
 * kernels. Their pointer arguments may be NULL as far as the verifier knows, hence the checks.
 * The chunk position is kept in the map value (header.data_len), never in a register, for the
 * same reason: an unknown scalar on every path lets equal states be pruned.
 */
#define CR_GLOBAL __attribute__((noinline))

/* Errors of cr_copy_chunk (it returns an offset >= 0 on success). */
#define COPY_FAULT (-1)
#define COPY_FULL (-2)

/* Smallest page size of the supported kernels: reads that stay inside one such granule never
 * touch a page the first byte is not in. */
#define CR_PAGE_GRANULE 4096

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &index);
	if (value)
		*value += 1;
}

static __always_inline void set_flag(struct cr_scratch *s, int shift, __u64 bit)
{
	s->header.flags |= bit << shift;
}

/* Flags a failed copy: `fault_bit` for a failed read, buffer-full when the area was full. */
static __always_inline void fail(struct cr_scratch *s, int shift, int outcome, __u64 fault_bit)
{
	set_flag(s, shift, outcome == COPY_FULL ? (__u64)CR_FMT_BUFFER_FULL : fault_bit);
}

/* Offsets returned by cr_copy_chunk are < CR_DATA_CAPACITY; the mask tells the verifier so. */
static __always_inline __u32 bounded(int offset)
{
	__u32 o = (__u32)offset;
	barrier_var(o);
	return o & CR_DATA_MASK;
}

static __always_inline __u64 data_u64(struct cr_scratch *s, int offset)
{
	return *(__u64 *)&s->data[bounded(offset)];
}

/*
 * Reads `len` (<= CR_MAX_READ) bytes at user address `addr` into a new chunk at the end of the
 * chunk area. Returns the offset of the bytes in s->data, or COPY_FAULT (the read failed: no
 * chunk) or COPY_FULL (no room: no chunk).
 */
CR_GLOBAL int cr_copy_chunk(struct cr_scratch *s, __u64 addr, __u32 len)
{
	if (!s)
		return COPY_FULL;
	__u32 p = s->header.data_len;
	if (len == 0 || len > CR_MAX_READ)
		return COPY_FULL;
	/* strict, so that the position stays below CR_DATA_CAPACITY and masking is the identity */
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
	s->header.data_len = p + CR_CHUNK_HEADER_SIZE + ((len + 7) & ~7U);
	s->header.chunk_count += 1;
	return (int)(p + CR_CHUNK_HEADER_SIZE);
}

/* Bytes read at a slot: 16 for the ABI 0 inline v1 object, else the 8-byte pointer. */
static __always_inline __u64 slot_size(struct cr_slot_rule *rule, int v1)
{
	return v1 && rule->layout == CR_V1_LAYOUT_INLINE ? CR_V0_INLINE_SIZE : 8;
}

/*
 * When both slots are at fixed offsets from the TP (TP_RELATIVE rules: the writer's TLS is in
 * the static block) and close together, copies both as ONE chunk before either format is read,
 * and remembers it for slot_chunk; otherwise, or if that read fails, leaves slots_len 0 and
 * each slot is read on its own as before (which also sets the flags).
 */
CR_GLOBAL int cr_copy_slots(struct cr_scratch *s, __u64 tp, struct cr_process_params *params)
{
	if (!s || !params)
		return 0;
	s->slots_len = 0;
	if (params->v1.kind != CR_RULE_TP_RELATIVE || params->v2.kind != CR_RULE_TP_RELATIVE)
		return 0;
	__u64 a1 = tp + (__u64)params->v1.tp_offset, e1 = a1 + slot_size(&params->v1, 1);
	__u64 a2 = tp + (__u64)params->v2.tp_offset, e2 = a2 + 8;
	if (e1 < a1 || e2 < a2)
		return 0;
	__u64 lo = a1 < a2 ? a1 : a2;
	__u64 hi = e1 > e2 ? e1 : e2;
	if (hi - lo > CR_MAX_READ)
		return 0;
	int r = cr_copy_chunk(s, lo, (__u32)(hi - lo));
	if (r < 0)
		return 0;
	s->slots_addr = lo;
	s->slots_len = hi - lo;
	s->slots_off = (__u64)r;
	return 0;
}

/* Like cr_copy_chunk for a slot: the offset of its bytes in the chunk of cr_copy_slots when
 * that chunk holds them, else a new chunk. */
static __always_inline int slot_chunk(struct cr_scratch *s, __u64 slot, __u32 len)
{
	__u64 base = s->slots_addr;
	if (s->slots_len != 0 && slot >= base && slot - base + len <= s->slots_len)
		return (int)(s->slots_off + (slot - base));
	return cr_copy_chunk(s, slot, len);
}

/* Returns the slot address for `rule`, or 0 if there is none for this thread. */
CR_GLOBAL __u64 cr_resolve_slot(struct cr_scratch *s, __u64 tp, struct cr_slot_rule *rule, int shift)
{
	int r;

	if (!s || !rule)
		return 0;
	if (rule->kind == CR_RULE_TP_RELATIVE)
		return tp + (__u64)rule->tp_offset;
	if (rule->kind != CR_RULE_DTV)
		return 0;

	r = cr_copy_chunk(s, tp + (__u64)rule->tp_offset, 8);
	if (r < 0) {
		fail(s, shift, r, CR_FMT_DTV_UNREADABLE);
		return 0;
	}
	__u64 dtv = data_u64(s, r);
	r = cr_copy_chunk(s, rule->glibc_counter ? dtv - 16 : dtv, 8);
	if (r < 0) {
		fail(s, shift, r, CR_FMT_DTV_UNREADABLE);
		return 0;
	}
	if (data_u64(s, r) < rule->module_id) {
		set_flag(s, shift, CR_FMT_DTV_SHORT);
		return 0;
	}
	r = cr_copy_chunk(s, dtv + rule->module_id * rule->entry_size, 8);
	if (r < 0) {
		fail(s, shift, r, CR_FMT_DTV_UNREADABLE);
		return 0;
	}
	__u64 block = data_u64(s, r);
	if (block == 0 || block == (__u64)-1) {
		set_flag(s, shift, CR_FMT_TLS_UNALLOCATED);
		return 0;
	}
	return block + rule->block_offset;
}

/* Copies one v1 string; returns 1 when the chunk area is full (stop), else 0. */
static __always_inline int copy_v1_string(struct cr_scratch *s, __u64 buf, __u64 len)
{
	if (buf == 0 || len == 0)
		return 0;
	if (len > CR_MAX_V1_STRING) {
		set_flag(s, CR_FLAG_V1_SHIFT, CR_FMT_TOO_LARGE);
		return 0;
	}
	int r = cr_copy_chunk(s, buf, (__u32)len);
	if (r == COPY_FULL) {
		fail(s, CR_FLAG_V1_SHIFT, r, 0);
		return 1;
	}
	if (r < 0)
		set_flag(s, CR_FLAG_V1_SHIFT, CR_FMT_STRING_UNREADABLE);
	return 0;
}

/* Copies key and value of the label whose 32 bytes are at s->data[entry_off]; 1 = stop. */
CR_GLOBAL int cr_copy_v1_label(struct cr_scratch *s, __u32 entry_off)
{
	if (!s)
		return 1;
	entry_off &= CR_DATA_MASK;
	__u64 key_len = *(__u64 *)&s->data[entry_off];
	__u64 key_buf = *(__u64 *)&s->data[entry_off + 8];
	__u64 value_len = *(__u64 *)&s->data[entry_off + 16];
	__u64 value_buf = *(__u64 *)&s->data[entry_off + 24];
	if (key_buf == 0)
		return 0; /* hidden entry: the decoder skips it without reading */
	if (copy_v1_string(s, key_buf, key_len))
		return 1;
	return copy_v1_string(s, value_buf, value_len);
}

/* Widens the running span to the string copy_v1_string would copy; notes one over the bound. */
static __always_inline void span_add(struct cr_scratch *s, __u64 buf, __u64 len)
{
	if (buf == 0 || len == 0)
		return;
	if (len > CR_MAX_V1_STRING) {
		s->span_too_large = 1;
		return;
	}
	__u64 end = buf + len;
	if (end < buf) {
		/* wraps: no span; the per-string reads report it */
		s->span_lo = 0;
		s->span_hi = (__u64)-1;
		return;
	}
	if (buf < s->span_lo)
		s->span_lo = buf;
	if (end > s->span_hi)
		s->span_hi = end;
}

/* Adds the key and value of the label whose 32 bytes are at s->data[entry_off] to the span. */
CR_GLOBAL int cr_span_v1_label(struct cr_scratch *s, __u32 entry_off)
{
	if (!s)
		return 0;
	entry_off &= CR_DATA_MASK;
	__u64 key_buf = *(__u64 *)&s->data[entry_off + 8];
	if (key_buf == 0)
		return 0; /* hidden entry: the decoder skips it without reading */
	span_add(s, key_buf, *(__u64 *)&s->data[entry_off]);
	span_add(s, *(__u64 *)&s->data[entry_off + 24], *(__u64 *)&s->data[entry_off + 16]);
	return 0;
}

/*
 * Copies every key and value that the per-string reads (cr_copy_v1_label) would copy as ONE
 * chunk spanning them all, when that span fits in one read: a label set's strings are usually
 * allocated close together, and one read costs much less than 2 x count reads. The chunk holds
 * each string whole, which is all the decoder needs (Sample::read serves a range from inside a
 * larger chunk), plus whatever lies between them, which the decoder never reads. Returns 1 when
 * done, 0 when the span is empty, too wide or its read failed: the caller then copies the
 * strings one by one, which also sets the same flags as before.
 */
static __always_inline int copy_v1_span(struct cr_scratch *s, __u32 storage_off, __u32 count)
{
	s->span_lo = (__u64)-1;
	s->span_hi = 0;
	s->span_too_large = 0;
	for (__u32 i = 0; i < CR_MAX_V1_LABELS; i++) {
		if (i >= count)
			break;
		cr_span_v1_label(s, storage_off + i * CR_V1_LABEL_SIZE);
	}
	__u64 lo = s->span_lo, hi = s->span_hi;
	if (hi <= lo || hi - lo > CR_MAX_READ)
		return 0;
	if (cr_copy_chunk(s, lo, (__u32)(hi - lo)) < 0)
		return 0;
	if (s->span_too_large)
		set_flag(s, CR_FLAG_V1_SHIFT, CR_FMT_TOO_LARGE);
	return 1;
}

CR_GLOBAL int cr_read_v1(struct cr_scratch *s, __u64 tp, struct cr_slot_rule *rule)
{
	const int shift = CR_FLAG_V1_SHIFT;
	int r;

	if (!s || !rule)
		return 0;
	__u64 slot = cr_resolve_slot(s, tp, rule, shift);
	if (slot == 0)
		return 0;
	if (rule->layout == CR_V1_LAYOUT_INLINE) {
		/* ABI 0: the TLS object itself is {storage, count} */
		r = slot_chunk(s, slot, CR_V0_INLINE_SIZE);
		if (r < 0) {
			fail(s, shift, r, CR_FMT_RECORD_UNREADABLE);
			return 0;
		}
	} else {
		r = slot_chunk(s, slot, 8);
		if (r < 0) {
			fail(s, shift, r, CR_FMT_SLOT_UNREADABLE);
			return 0;
		}
		__u64 set = data_u64(s, r);
		if (set == 0)
			return 0;
		r = cr_copy_chunk(s, set, CR_V1_SET_SIZE);
		if (r < 0) {
			fail(s, shift, r, CR_FMT_RECORD_UNREADABLE);
			return 0;
		}
	}
	__u64 storage = data_u64(s, r);
	__u64 set_count = data_u64(s, r + 8);
	if (set_count == 0)
		return 0;
	if (set_count > CR_MAX_V1_LABELS) {
		/* like the decoder with max_labels = CR_MAX_V1_LABELS: the first entries are read */
		set_flag(s, shift, CR_FMT_TOO_LARGE);
		set_count = CR_MAX_V1_LABELS;
	}
	if (storage == 0)
		return 0; /* the decoder reports a NULL storage without reading */
	__u32 count = (__u32)set_count;
	r = cr_copy_chunk(s, storage, count * CR_V1_LABEL_SIZE);
	if (r < 0) {
		fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
		return 0;
	}
	__u32 storage_off = (__u32)r;
	if (copy_v1_span(s, storage_off, count))
		return 0;
	for (__u32 i = 0; i < CR_MAX_V1_LABELS; i++) {
		if (i >= count)
			break;
		if (cr_copy_v1_label(s, storage_off + i * CR_V1_LABEL_SIZE))
			break;
	}
	return 0;
}

/* The valid byte at `at`, read again after the copy: a change means a torn copy. */
static __always_inline void reread_valid(struct cr_scratch *s, __u64 at, __u8 valid)
{
	int r = cr_copy_chunk(s, at, 1);
	if (r < 0) {
		fail(s, CR_FLAG_V2_SHIFT, r, CR_FMT_REREAD_UNREADABLE);
		return;
	}
	if (s->data[bounded(r)] != valid)
		set_flag(s, CR_FLAG_V2_SHIFT, CR_FMT_TORN);
}

/*
 * Shortens the chunk whose bytes start at data offset `r`, the last one, to `len` bytes (no more
 * than it has) and zeroes its new padding, so that only those bytes leave the kernel.
 */
static __always_inline void trim_last_chunk(struct cr_scratch *s, int r, __u32 len)
{
	__u32 p = bounded(r - CR_CHUNK_HEADER_SIZE);
	len &= (2 * CR_MAX_READ - 1);
	struct cr_chunk_header *h = (void *)&s->data[p];
	h->len = len;
	__u32 tail = p + CR_CHUNK_HEADER_SIZE + (len & ~7U);
	if (len & 7) {
		/* little-endian: keep the low (len & 7) bytes of the last word */
		__u64 *word = (__u64 *)&s->data[tail];
		*word &= (1ULL << ((len & 7) * 8)) - 1;
	}
	s->header.data_len = p + CR_CHUNK_HEADER_SIZE + ((len + 7) & ~7U);
}

/* OTEP 4947 read in two reads: 28 bytes; if valid == 1, attrs_data_size bytes at +28 (capped). */
static __always_inline int read_otep_split(struct cr_scratch *s, __u64 record, __u8 *valid)
{
	const int shift = CR_FLAG_V2_SHIFT;
	int r = cr_copy_chunk(s, record, CR_V2_HEADER_SIZE);
	if (r < 0) {
		fail(s, shift, r, CR_FMT_RECORD_UNREADABLE);
		return 0;
	}
	__u32 off = bounded(r);
	*valid = s->data[off + CR_V2_VALID_OFFSET];
	__u32 size = *(__u16 *)&s->data[off + CR_V2_SIZE_OFFSET];
	if (*valid != 1)
		return 0;
	if (size > CR_MAX_V2_ATTRS) {
		set_flag(s, shift, CR_FMT_TOO_LARGE);
		size = CR_MAX_V2_ATTRS;
	}
	if (size > 0) {
		r = cr_copy_chunk(s, record + CR_V2_HEADER_SIZE, size);
		if (r < 0) {
			fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
			return 0;
		}
	}
	return 1;
}

/*
 * OTEP 4947: 28 bytes; if valid == 1, attrs_data_size bytes at +28 (capped); valid again.
 * Header and attrs are read together first: one read from the record to the end of its 4 KiB
 * page (at most 28 + CR_MAX_V2_ATTRS bytes, the largest record the program copies; a 4 KiB
 * boundary is a page boundary or inside a larger page, so this read never reaches a page the
 * record does not start in, and a fault there costs more than a read), one ascending copy with
 * the header first like the two reads it replaces, then cut to what the decoder reads (28 bytes,
 * or 28 + the capped attrs_data_size the copied header declares). When the attrs run past that
 * page, the chunk is cut to the header and the attrs are read on their own, as before; when the
 * first read fails, the two exact reads are done instead, which also set the flags.
 */
static __always_inline void read_otep_record(struct cr_scratch *s, __u64 record)
{
	const int shift = CR_FLAG_V2_SHIFT;
	__u8 valid = 0;
	__u32 room = CR_PAGE_GRANULE - (__u32)(record & (CR_PAGE_GRANULE - 1));
	if (room > CR_V2_HEADER_SIZE + CR_MAX_V2_ATTRS)
		room = CR_V2_HEADER_SIZE + CR_MAX_V2_ATTRS;
	int r = room >= CR_V2_HEADER_SIZE ? cr_copy_chunk(s, record, room) : COPY_FAULT;
	if (r >= 0) {
		__u32 off = bounded(r);
		valid = s->data[off + CR_V2_VALID_OFFSET];
		__u32 size = *(__u16 *)&s->data[off + CR_V2_SIZE_OFFSET];
		if (valid != 1) {
			trim_last_chunk(s, r, CR_V2_HEADER_SIZE);
			return;
		}
		if (size > CR_MAX_V2_ATTRS) {
			set_flag(s, shift, CR_FMT_TOO_LARGE);
			size = CR_MAX_V2_ATTRS;
		}
		if (CR_V2_HEADER_SIZE + size <= room) {
			trim_last_chunk(s, r, CR_V2_HEADER_SIZE + size);
		} else {
			trim_last_chunk(s, r, CR_V2_HEADER_SIZE);
			r = cr_copy_chunk(s, record + CR_V2_HEADER_SIZE, size);
			if (r < 0) {
				fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
				return;
			}
		}
	} else if (!read_otep_split(s, record, &valid)) {
		return;
	}
	reread_valid(s, record + CR_V2_VALID_OFFSET, valid);
}

/*
 * One draft entry at `at`: 2 bytes {key_index, len}, then len bytes if len <= `budget`.
 * Returns len, or -1 to stop (read failed, area full, or over the budget).
 */
CR_GLOBAL int cr_copy_draft_entry(struct cr_scratch *s, __u64 at, __u32 budget)
{
	const int shift = CR_FLAG_V2_SHIFT;
	if (!s)
		return -1;
	int r = cr_copy_chunk(s, at, 2);
	if (r < 0) {
		fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
		return -1;
	}
	__u32 len = s->data[bounded(r) + 1];
	if (len == 0)
		return 0;
	if (len > budget) {
		set_flag(s, shift, CR_FMT_TOO_LARGE);
		return -1;
	}
	r = cr_copy_chunk(s, at + 2, len);
	if (r < 0) {
		fail(s, shift, r, CR_FMT_ARRAY_UNREADABLE);
		return -1;
	}
	return (int)len;
}

/* Draft: 34 bytes; if valid == 1, attrs_count entries (<= CR_MAX_V2_ATTRS value bytes); valid again. */
static __always_inline void read_draft_record(struct cr_scratch *s, __u64 record)
{
	int r = cr_copy_chunk(s, record, CR_DRAFT_HEADER_SIZE);
	if (r < 0) {
		fail(s, CR_FLAG_V2_SHIFT, r, CR_FMT_RECORD_UNREADABLE);
		return;
	}
	__u32 off = bounded(r);
	__u8 valid = s->data[off + CR_DRAFT_VALID_OFFSET];
	__u32 count = s->data[off + CR_DRAFT_COUNT_OFFSET];
	if (valid != 1)
		return;
	__u64 at = record + CR_DRAFT_HEADER_SIZE;
	__u32 budget = CR_MAX_V2_ATTRS;
	for (__u32 i = 0; i < CR_MAX_DRAFT_ENTRIES; i++) {
		if (i >= count)
			break;
		int len = cr_copy_draft_entry(s, at, budget);
		if (len < 0)
			break;
		budget -= (__u32)len;
		at += 2 + (__u32)len;
	}
	reread_valid(s, record + CR_DRAFT_VALID_OFFSET, valid);
}

CR_GLOBAL int cr_read_v2(struct cr_scratch *s, __u64 tp, struct cr_slot_rule *rule)
{
	const int shift = CR_FLAG_V2_SHIFT;

	if (!s || !rule)
		return 0;
	__u64 slot = cr_resolve_slot(s, tp, rule, shift);
	if (slot == 0)
		return 0;
	int r = slot_chunk(s, slot, 8);
	if (r < 0) {
		fail(s, shift, r, CR_FMT_SLOT_UNREADABLE);
		return 0;
	}
	__u64 record = data_u64(s, r);
	if (record == 0)
		return 0;
	if (rule->layout == CR_V2_LAYOUT_DRAFT)
		read_draft_record(s, record);
	else
		read_otep_record(s, record);
	return 0;
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
		cr_copy_slots(s, tp, params);
		cr_read_v1(s, tp, &params->v1);
		cr_read_v2(s, tp, &params->v2);
	}

	__u32 len = s->header.data_len;
	len &= CR_DATA_MASK;
	s->header.data_len = len;
	if (bpf_ringbuf_output(&samples, s, CR_SAMPLE_HEADER_SIZE + len, CR_RB_NO_WAKEUP) != 0)
		count(CR_COUNTER_DROPPED);
	else
		count(CR_COUNTER_EMITTED);
	return 0;
}

/* sampler.h: layouts and constants shared by sampler.bpf.c and the Rust loader (src/layout.rs). */
/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Every struct here has a Rust #[repr(C)] mirror in src/layout.rs with the same size assertion,
 * and every CR_ constant has a Rust constant of the same name; a unit test in src/layout.rs parses
 * this file and fails if any value differs.
 */
#ifndef CONTEXT_READER_SAMPLER_H
#define CONTEXT_READER_SAMPLER_H

/* Kernel-side copy bounds (contract.md "eBPF bounds are smaller"). */
#define CR_MAX_V1_LABELS 32
#define CR_MAX_V1_STRING 256
#define CR_V1_LABEL_SIZE 32
#define CR_V1_SET_SIZE 24
#define CR_V2_HEADER_SIZE 28
#define CR_V2_VALID_OFFSET 24
#define CR_V2_SIZE_OFFSET 26
/* Draft record (custom_labels_current_set_v2 R0/R1): 34-byte header, valid @32, entry count @33. */
#define CR_DRAFT_HEADER_SIZE 34
#define CR_DRAFT_VALID_OFFSET 32
#define CR_DRAFT_COUNT_OFFSET 33
#define CR_MAX_DRAFT_ENTRIES 255
#define CR_V0_INLINE_SIZE 16
#define CR_MAX_V2_ATTRS 1024

/* Largest single user-memory read: v1 storage (32 labels x 32 bytes), the span of a label set's
 * strings when they are copied as one chunk, the OTEP 4947 header and attrs read together
 * (28 + 1024 bytes). Kept a power of two: the program masks lengths with 2 * CR_MAX_READ - 1. */
#define CR_MAX_READ 2048

/* Chunk area of one sample: records hold at most this many bytes after the sample header. */
#define CR_DATA_CAPACITY 32768
#define CR_DATA_MASK (CR_DATA_CAPACITY - 1)
/* Room past the capacity so that the verifier can check masked offsets without relations. */
#define CR_DATA_SLACK 8192

/* Ring buffer size in bytes (power of two, multiple of the page size). */
#define CR_RING_BYTES (4 * 1024 * 1024)
/* Watched processes. */
#define CR_MAX_PROCESSES 1024

/* Slot rule kinds (struct cr_slot_rule.kind). */
#define CR_RULE_NONE 0
#define CR_RULE_TP_RELATIVE 1
#define CR_RULE_DTV 2

/* cr_slot_rule.layout of the v1 rule */
#define CR_V1_LAYOUT_POINTER 0 /* ABI 1: slot holds a pointer to {storage, count, capacity} */
#define CR_V1_LAYOUT_INLINE 1  /* ABI 0: slot holds {storage, count} */
/* cr_slot_rule.layout of the v2 rule */
#define CR_V2_LAYOUT_OTEP 0  /* 28-byte header, attrs_data_size bytes of attrs */
#define CR_V2_LAYOUT_DRAFT 1 /* 34-byte header, attrs_count entries {key_index u8, len u8, bytes} */

/*
 * One way to turn a thread pointer into a slot address.
 * TP_RELATIVE: slot = TP + tp_offset.
 * DTV: dtv = *(u64 *)(TP + tp_offset); if glibc_counter, *(u64 *)(dtv - 16) >= module_id, else
 *      *(u64 *)dtv >= module_id; block = *(u64 *)(dtv + module_id * entry_size);
 *      block 0 or -1: not allocated; slot = block + block_offset.
 */
struct cr_slot_rule {
	__u32 kind;
	__u32 entry_size;
	__u32 glibc_counter;
	__u32 layout;
	__s64 tp_offset;
	__u64 module_id;
	__u64 block_offset;
};
#define CR_SLOT_RULE_SIZE 40

/* Value of the watched-processes hash map, keyed by tgid (u32). */
struct cr_process_params {
	struct cr_slot_rule v1;
	struct cr_slot_rule v2;
};
#define CR_PROCESS_PARAMS_SIZE 80

/*
 * Sample record as emitted to the ring buffer: this header, then `chunk_count` chunks in
 * `data_len` bytes. Each chunk is a struct cr_chunk_header followed by `len` bytes, padded with
 * zeroes to a multiple of 8. Chunks appear in the order the reads were done.
 */
struct cr_sample_header {
	__u32 tid;
	__u32 tgid;
	__u64 tp;
	__u64 flags;
	__u64 ktime_ns;
	__u32 cpu;
	__u32 chunk_count;
	__u32 data_len;
	__u32 reserved;
};
#define CR_SAMPLE_HEADER_SIZE 48

struct cr_chunk_header {
	__u64 addr;
	__u32 len;
	__u32 reserved;
};
#define CR_CHUNK_HEADER_SIZE 16

/*
 * Flags. Per-format bits are shifted by CR_FLAG_V1_SHIFT or CR_FLAG_V2_SHIFT.
 * A failed read produces no chunk; the bit says which read it was.
 */
#define CR_FLAG_V1_SHIFT 0
#define CR_FLAG_V2_SHIFT 16
#define CR_FMT_DTV_UNREADABLE 0x1     /* DTV pointer, DTV length or DTV entry read failed */
#define CR_FMT_DTV_SHORT 0x2          /* DTV length < module_id: block not in this thread's DTV */
#define CR_FMT_TLS_UNALLOCATED 0x4    /* DTV entry 0 or -1: block not allocated (no context) */
#define CR_FMT_SLOT_UNREADABLE 0x8    /* 8-byte slot read failed */
#define CR_FMT_RECORD_UNREADABLE 0x10 /* v1 24-byte set / v2 28-byte header read failed */
#define CR_FMT_ARRAY_UNREADABLE 0x20  /* v1 label storage / v2 attrs read failed */
#define CR_FMT_STRING_UNREADABLE 0x40 /* v1: some key or value read failed */
/* v1: count over the bound (first CR_MAX_V1_LABELS entries copied) or a key/value over the bound
 * (that string not copied); v2: attrs over the bound (first CR_MAX_V2_ATTRS bytes copied); draft:
 * entry values over CR_MAX_V2_ATTRS bytes in total (entries from there on not copied) */
#define CR_FMT_TOO_LARGE 0x80
#define CR_FMT_TORN 0x100             /* v2: valid byte changed during the copy */
#define CR_FMT_REREAD_UNREADABLE 0x200 /* v2: re-read of the valid byte failed */
#define CR_FMT_BUFFER_FULL 0x400      /* chunk area full: later reads skipped */
#define CR_FLAG_TP_UNREADABLE (1ULL << 32) /* task->thread TP field could not be read */
#define CR_FLAG_TP_ZERO (1ULL << 33)       /* thread pointer is 0: no reads done */

/* Indices of the per-CPU counters array. */
#define CR_COUNTER_EMITTED 0
#define CR_COUNTER_DROPPED 1
#define CR_COUNTER_SCRATCH_MISSING 2
#define CR_COUNTERS 4

#endif

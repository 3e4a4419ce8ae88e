//! Rust mirrors of the layouts and constants of `src/bpf/sampler.h` (a test keeps them equal).
//! The formats' own layouts are not written here: they come from `context-layout`, the one place
//! the reader's decoders take them from too, so the test ties the C header to the decoders.

use context_layout::{thread_ctx, v1};

/// Most v1 labels the kernel copies (a larger `count` sets the v1 `too_large` flag).
pub const CR_MAX_V1_LABELS: u64 = 32;
/// Longest v1 key or value the kernel copies, in bytes.
pub const CR_MAX_V1_STRING: u64 = 256;
/// Size of one `custom_labels_label_t`.
pub const CR_V1_LABEL_SIZE: u64 = v1::LABEL_SIZE;
/// Size of one `custom_labels_labelset_t`.
pub const CR_V1_SET_SIZE: u64 = v1::LABELSET_SIZE as u64;
/// Size of the OTEP 4947 record header.
pub const CR_V2_HEADER_SIZE: u64 = thread_ctx::OTEP_HEADER_SIZE as u64;
/// Offset of the `valid` byte in the OTEP 4947 record.
pub const CR_V2_VALID_OFFSET: u64 = thread_ctx::OTEP_VALID_OFFSET;
/// Offset of `attrs_data_size` in the OTEP 4947 record.
pub const CR_V2_SIZE_OFFSET: u64 = thread_ctx::OTEP_SIZE_OFFSET;
/// Size of the draft (R0/R1) record header.
pub const CR_DRAFT_HEADER_SIZE: u64 = thread_ctx::DRAFT_HEADER_SIZE as u64;
/// Offset of the `valid` byte in the draft record.
pub const CR_DRAFT_VALID_OFFSET: u64 = thread_ctx::DRAFT_VALID_OFFSET;
/// Offset of `attrs_count` in the draft record.
pub const CR_DRAFT_COUNT_OFFSET: u64 = thread_ctx::DRAFT_COUNT_OFFSET;
/// Most draft entries the kernel walks (attrs_count is a u8).
pub const CR_MAX_DRAFT_ENTRIES: u64 = 255;
/// Size of the ABI 0 inline TLS object `{storage, count}`.
pub const CR_V0_INLINE_SIZE: u64 = v1::V0_INLINE_SIZE as u64;
/// Most OTEP 4947 attribute bytes the kernel copies.
pub const CR_MAX_V2_ATTRS: u64 = 1024;
/// Largest single read the kernel does.
pub const CR_MAX_READ: u64 = 2048;
/// Bytes of chunks one sample can hold.
pub const CR_DATA_CAPACITY: u64 = 32768;
/// Mask the program applies to offsets in the chunk area.
pub const CR_DATA_MASK: u64 = CR_DATA_CAPACITY - 1;
/// Slack past the chunk area in the scratch buffer.
pub const CR_DATA_SLACK: u64 = 8192;
/// Ring buffer size in bytes.
pub const CR_RING_BYTES: u64 = 4 * 1024 * 1024;
/// Capacity of the watched-processes map.
pub const CR_MAX_PROCESSES: u64 = 1024;
/// `cr_slot_rule.kind`: no slot.
pub const CR_RULE_NONE: u64 = 0;
/// `cr_slot_rule.kind`: slot = TP + offset.
pub const CR_RULE_TP_RELATIVE: u64 = 1;
/// `cr_slot_rule.kind`: slot found through the DTV.
pub const CR_RULE_DTV: u64 = 2;
/// v1 rule layout: ABI 1, the slot holds a set pointer.
pub const CR_V1_LAYOUT_POINTER: u64 = 0;
/// v1 rule layout: ABI 0, the slot holds `{storage, count}`.
pub const CR_V1_LAYOUT_INLINE: u64 = 1;
/// v2 rule layout: OTEP 4947 28-byte header.
pub const CR_V2_LAYOUT_OTEP: u64 = 0;
/// v2 rule layout: draft 34-byte header with an entry count.
pub const CR_V2_LAYOUT_DRAFT: u64 = 1;
/// Size of `struct cr_slot_rule`.
pub const CR_SLOT_RULE_SIZE: u64 = 40;
/// Size of `struct cr_process_params`.
pub const CR_PROCESS_PARAMS_SIZE: u64 = 80;
/// Size of `struct cr_sample_header`.
pub const CR_SAMPLE_HEADER_SIZE: u64 = 48;
/// Size of `struct cr_chunk_header`.
pub const CR_CHUNK_HEADER_SIZE: u64 = 16;
/// Shift of the v1 format flags in the sample flags.
pub const CR_FLAG_V1_SHIFT: u64 = 0;
/// Shift of the v2 format flags in the sample flags.
pub const CR_FLAG_V2_SHIFT: u64 = 16;
/// Per-format flag: a DTV read failed.
pub const CR_FMT_DTV_UNREADABLE: u64 = 0x1;
/// Per-format flag: the thread's DTV is shorter than the module id.
pub const CR_FMT_DTV_SHORT: u64 = 0x2;
/// Per-format flag: the DTV entry is 0 or -1 (block not allocated).
pub const CR_FMT_TLS_UNALLOCATED: u64 = 0x4;
/// Per-format flag: the 8-byte slot could not be read.
pub const CR_FMT_SLOT_UNREADABLE: u64 = 0x8;
/// Per-format flag: the v1 set or v2 header could not be read.
pub const CR_FMT_RECORD_UNREADABLE: u64 = 0x10;
/// Per-format flag: the v1 label storage or v2 attrs could not be read.
pub const CR_FMT_ARRAY_UNREADABLE: u64 = 0x20;
/// Per-format flag: a v1 key or value could not be read.
pub const CR_FMT_STRING_UNREADABLE: u64 = 0x40;
/// Per-format flag: a count or length was over the kernel bound.
pub const CR_FMT_TOO_LARGE: u64 = 0x80;
/// Per-format flag: the v2 `valid` byte changed during the copy.
pub const CR_FMT_TORN: u64 = 0x100;
/// Per-format flag: the v2 `valid` re-read failed.
pub const CR_FMT_REREAD_UNREADABLE: u64 = 0x200;
/// Per-format flag: the chunk area was full, later reads were skipped.
pub const CR_FMT_BUFFER_FULL: u64 = 0x400;
/// Sample flag: the thread pointer field of the task could not be read.
pub const CR_FLAG_TP_UNREADABLE: u64 = 1 << 32;
/// Sample flag: the thread pointer was 0.
pub const CR_FLAG_TP_ZERO: u64 = 1 << 33;
/// Counter index: samples written to the ring buffer.
pub const CR_COUNTER_EMITTED: u64 = 0;
/// Counter index: samples lost because the ring buffer was full.
pub const CR_COUNTER_DROPPED: u64 = 1;
/// Counter index: samples lost because the CPU had no scratch entry.
pub const CR_COUNTER_SCRATCH_MISSING: u64 = 2;
/// Number of counters.
pub const CR_COUNTERS: u64 = 4;

/// `struct cr_slot_rule`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSlotRule {
    pub kind: u32,
    pub entry_size: u32,
    pub glibc_counter: u32,
    pub layout: u32,
    pub tp_offset: i64,
    pub module_id: u64,
    pub block_offset: u64,
}

/// `struct cr_process_params`: value of the watched-processes map, keyed by tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawProcessParams {
    pub v1: RawSlotRule,
    pub v2: RawSlotRule,
}

/// `struct cr_sample_header`: start of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSampleHeader {
    pub tid: u32,
    pub tgid: u32,
    pub tp: u64,
    pub flags: u64,
    pub ktime_ns: u64,
    pub cpu: u32,
    pub chunk_count: u32,
    pub data_len: u32,
    pub reserved: u32,
}

/// `struct cr_chunk_header`: precedes the bytes of one chunk.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawChunkHeader {
    pub addr: u64,
    pub len: u32,
    pub reserved: u32,
}

const _: () = assert!(size_of::<RawSlotRule>() as u64 == CR_SLOT_RULE_SIZE);
const _: () = assert!(size_of::<RawProcessParams>() as u64 == CR_PROCESS_PARAMS_SIZE);
const _: () = assert!(size_of::<RawSampleHeader>() as u64 == CR_SAMPLE_HEADER_SIZE);
const _: () = assert!(size_of::<RawChunkHeader>() as u64 == CR_CHUNK_HEADER_SIZE);
const _: () = assert!(core::mem::offset_of!(RawSampleHeader, flags) == 16);
const _: () = assert!(core::mem::offset_of!(RawSampleHeader, chunk_count) == 36);
const _: () = assert!(core::mem::offset_of!(RawSampleHeader, data_len) == 40);
const _: () = assert!(core::mem::offset_of!(RawSlotRule, tp_offset) == 16);
const _: () = assert!(core::mem::offset_of!(RawProcessParams, v2) == 40);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `#define CR_...` of sampler.h with its Rust value.
    const RUST_VALUES: &[(&str, u64)] = &[
        ("CR_MAX_V1_LABELS", CR_MAX_V1_LABELS),
        ("CR_MAX_V1_STRING", CR_MAX_V1_STRING),
        ("CR_V1_LABEL_SIZE", CR_V1_LABEL_SIZE),
        ("CR_V1_SET_SIZE", CR_V1_SET_SIZE),
        ("CR_V2_HEADER_SIZE", CR_V2_HEADER_SIZE),
        ("CR_V2_VALID_OFFSET", CR_V2_VALID_OFFSET),
        ("CR_V2_SIZE_OFFSET", CR_V2_SIZE_OFFSET),
        ("CR_DRAFT_HEADER_SIZE", CR_DRAFT_HEADER_SIZE),
        ("CR_DRAFT_VALID_OFFSET", CR_DRAFT_VALID_OFFSET),
        ("CR_DRAFT_COUNT_OFFSET", CR_DRAFT_COUNT_OFFSET),
        ("CR_MAX_DRAFT_ENTRIES", CR_MAX_DRAFT_ENTRIES),
        ("CR_V0_INLINE_SIZE", CR_V0_INLINE_SIZE),
        ("CR_MAX_V2_ATTRS", CR_MAX_V2_ATTRS),
        ("CR_MAX_READ", CR_MAX_READ),
        ("CR_DATA_CAPACITY", CR_DATA_CAPACITY),
        ("CR_DATA_MASK", CR_DATA_MASK),
        ("CR_DATA_SLACK", CR_DATA_SLACK),
        ("CR_RING_BYTES", CR_RING_BYTES),
        ("CR_MAX_PROCESSES", CR_MAX_PROCESSES),
        ("CR_RULE_NONE", CR_RULE_NONE),
        ("CR_RULE_TP_RELATIVE", CR_RULE_TP_RELATIVE),
        ("CR_RULE_DTV", CR_RULE_DTV),
        ("CR_V1_LAYOUT_POINTER", CR_V1_LAYOUT_POINTER),
        ("CR_V1_LAYOUT_INLINE", CR_V1_LAYOUT_INLINE),
        ("CR_V2_LAYOUT_OTEP", CR_V2_LAYOUT_OTEP),
        ("CR_V2_LAYOUT_DRAFT", CR_V2_LAYOUT_DRAFT),
        ("CR_SLOT_RULE_SIZE", CR_SLOT_RULE_SIZE),
        ("CR_PROCESS_PARAMS_SIZE", CR_PROCESS_PARAMS_SIZE),
        ("CR_SAMPLE_HEADER_SIZE", CR_SAMPLE_HEADER_SIZE),
        ("CR_CHUNK_HEADER_SIZE", CR_CHUNK_HEADER_SIZE),
        ("CR_FLAG_V1_SHIFT", CR_FLAG_V1_SHIFT),
        ("CR_FLAG_V2_SHIFT", CR_FLAG_V2_SHIFT),
        ("CR_FMT_DTV_UNREADABLE", CR_FMT_DTV_UNREADABLE),
        ("CR_FMT_DTV_SHORT", CR_FMT_DTV_SHORT),
        ("CR_FMT_TLS_UNALLOCATED", CR_FMT_TLS_UNALLOCATED),
        ("CR_FMT_SLOT_UNREADABLE", CR_FMT_SLOT_UNREADABLE),
        ("CR_FMT_RECORD_UNREADABLE", CR_FMT_RECORD_UNREADABLE),
        ("CR_FMT_ARRAY_UNREADABLE", CR_FMT_ARRAY_UNREADABLE),
        ("CR_FMT_STRING_UNREADABLE", CR_FMT_STRING_UNREADABLE),
        ("CR_FMT_TOO_LARGE", CR_FMT_TOO_LARGE),
        ("CR_FMT_TORN", CR_FMT_TORN),
        ("CR_FMT_REREAD_UNREADABLE", CR_FMT_REREAD_UNREADABLE),
        ("CR_FMT_BUFFER_FULL", CR_FMT_BUFFER_FULL),
        ("CR_FLAG_TP_UNREADABLE", CR_FLAG_TP_UNREADABLE),
        ("CR_FLAG_TP_ZERO", CR_FLAG_TP_ZERO),
        ("CR_COUNTER_EMITTED", CR_COUNTER_EMITTED),
        ("CR_COUNTER_DROPPED", CR_COUNTER_DROPPED),
        ("CR_COUNTER_SCRATCH_MISSING", CR_COUNTER_SCRATCH_MISSING),
        ("CR_COUNTERS", CR_COUNTERS),
    ];

    /// Evaluates the small expressions sampler.h uses: integers (hex or decimal, `ULL` suffix),
    /// names defined earlier, `*`, `-`, `<<`, and one level of parentheses.
    fn eval(expr: &str, defined: &std::collections::HashMap<String, u64>) -> u64 {
        let expr = expr.trim();
        if let Some(inner) = expr.strip_prefix('(').and_then(|e| e.strip_suffix(')')) {
            return eval(inner, defined);
        }
        for (op, apply) in [
            (" - ", (|a: u64, b: u64| a - b) as fn(u64, u64) -> u64),
            (" << ", |a, b| a << b),
            (" * ", |a, b| a * b),
        ] {
            if let Some((left, right)) = expr.split_once(op) {
                return apply(eval(left, defined), eval(right, defined));
            }
        }
        let literal = expr.trim_end_matches("ULL");
        if let Some(hex) = literal.strip_prefix("0x") {
            return u64::from_str_radix(hex, 16).expect(expr);
        }
        if let Ok(value) = literal.parse() {
            return value;
        }
        *defined
            .get(expr)
            .unwrap_or_else(|| panic!("unknown name {expr}"))
    }

    #[test]
    fn rust_constants_equal_sampler_h() {
        let header = include_str!("bpf/sampler.h");
        let mut defined = std::collections::HashMap::new();
        for line in header.lines() {
            let Some(rest) = line.strip_prefix("#define CR_") else {
                continue;
            };
            let (name, value) = rest.split_once(' ').expect(line);
            let value = value.split("/*").next().unwrap_or(value);
            let name = format!("CR_{name}");
            let value = eval(value, &defined);
            defined.insert(name, value);
        }
        assert_eq!(
            defined.len(),
            RUST_VALUES.len(),
            "sampler.h and RUST_VALUES list different names"
        );
        for (name, rust_value) in RUST_VALUES {
            assert_eq!(defined.get(*name), Some(rust_value), "{name}");
        }
    }
}

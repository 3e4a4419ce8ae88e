//! The one vocabulary of what is read, shared by the reader (its decoders and read plans) and the
//! eBPF sampler (its rules and, through `ebpf/src/layout.rs`, its C header `sampler.h`, which a
//! test compares with these values):
//!
//! * [`v1`] and [`thread_ctx`]: byte layouts of the formats in the target's memory (formats.md);
//! * [`SlotRule`] with [`DtvLayout`]: how a thread pointer becomes the address of a TLS slot;
//! * [`V1Layout`] and [`RecordLayout`]: what the slot of each format points to.
//!
//! Plain data, no I/O, no dependencies (`serde` only with the feature of that name).
#![forbid(unsafe_code)]

#[cfg(feature = "serde")]
use serde::Serialize;

/// custom-labels v1 (and the legacy v0 inline object).
pub mod v1 {
    /// `custom_labels_string_t`: `{len, buf}`.
    pub const STRING_SIZE: u64 = 16;
    /// `custom_labels_label_t`: key and value strings.
    pub const LABEL_SIZE: u64 = 2 * STRING_SIZE;
    /// `custom_labels_labelset_t`: `{storage, count, capacity}`.
    pub const LABELSET_SIZE: usize = 24;
    /// The ABI 0 TLS object itself: `{storage, count}`.
    pub const V0_INLINE_SIZE: usize = 16;
}

/// OTEP 4947 thread-context records and the 34-byte draft (R0/R1).
pub mod thread_ctx {
    /// The OTEP 4947 header: `trace_id[16] span_id[8] valid:u8 trace_flags:u8 attrs_data_size:u16`.
    pub const OTEP_HEADER_SIZE: usize = 28;
    /// Offset of the `valid` byte in the OTEP 4947 header.
    pub const OTEP_VALID_OFFSET: u64 = 24;
    /// Offset of the `attrs_data_size` (u16) in the OTEP 4947 header.
    pub const OTEP_SIZE_OFFSET: u64 = 26;
    /// The draft header: `trace_id[16] span_id[8] root_span_id[8] valid:u8 attrs_count:u8`.
    pub const DRAFT_HEADER_SIZE: usize = 34;
    /// Offset of the `valid` byte in the draft header.
    pub const DRAFT_VALID_OFFSET: u64 = 32;
    /// Offset of `attrs_count` (u8) in the draft header.
    pub const DRAFT_COUNT_OFFSET: u64 = 33;
}

/// Where the DTV is and how it is laid out, for one libc on one arch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct DtvLayout {
    /// The DTV pointer is read at `TP + pointer_offset`.
    pub pointer_offset: i64,
    /// Bytes per DTV entry: 16 on glibc (`dtv_t` union), 8 on musl.
    pub entry_size: u64,
    /// glibc keeps the slot count in `dtv[-1].counter`; musl in `dtv[0]`.
    pub glibc_counter: bool,
}

impl DtvLayout {
    /// Address of the word that holds the DTV length, given the DTV pointer.
    pub fn counter_addr(&self, dtv: u64) -> u64 {
        if self.glibc_counter {
            dtv.wrapping_sub(16)
        } else {
            dtv
        }
    }

    /// Address of the block pointer of `module_id`.
    pub fn entry_addr(&self, dtv: u64, module_id: u64) -> u64 {
        dtv.wrapping_add(module_id.wrapping_mul(self.entry_size))
    }
}

/// How to turn a thread pointer (TP) into the address of a TLS slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
pub enum SlotRule {
    /// slot = TP + offset: the module is in static TLS (local-exec, initial-exec, static TLSDESC).
    TpRelative { offset: i64 },
    /// slot = dtv[module_id] + offset, read per thread: `dtv = *(TP + dtv.pointer_offset)`; the
    /// DTV length (at `dtv.counter_addr`) must be `>= module_id`; a block pointer of 0 or -1 is
    /// an unallocated block, which means no context.
    Dtv {
        dtv: DtvLayout,
        module_id: u64,
        offset: u64,
    },
}

/// What a custom-labels slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum V1Layout {
    /// ABI version 1: the slot holds a pointer to `{storage, count, capacity}`.
    #[default]
    Pointer,
    /// ABI version 0: the slot holds `{storage, count}` inline.
    Inline,
}

/// Which record layout a thread-context slot points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum RecordLayout {
    /// The final 28-byte header (also R2/R3 writers of `custom_labels_current_set_v2`), then
    /// `attrs_data_size` bytes of attributes.
    #[default]
    Otep4947,
    /// R0/R1 34-byte header with root_span_id and an entry count; per entry `{key_index, len}`
    /// and `len` bytes.
    Draft,
}

const _: () = assert!(v1::LABEL_SIZE == 32);

//! Per-process read parameters: how to turn a thread pointer into each format's slot address.

use crate::error::EbpfError;
use crate::layout::{
    RawProcessParams, RawSlotRule, CR_RULE_DTV, CR_RULE_NONE, CR_RULE_TP_RELATIVE,
    CR_V1_LAYOUT_INLINE, CR_V1_LAYOUT_POINTER, CR_V2_LAYOUT_DRAFT, CR_V2_LAYOUT_OTEP,
};

/// How the kernel finds a format's TLS slot from a thread's thread pointer (TP).
///
/// The arithmetic is exactly the reader's (contract.md, "What the reader reads, exactly").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SlotRule {
    /// The process does not publish this format: nothing is read.
    #[default]
    None,
    /// slot = TP + offset (static TLS: local-exec / initial-exec, or a static TLSDESC).
    TpRelative { offset: i64 },
    /// DTV walk: `dtv = *(u64 *)(TP + pointer_offset)`; length = `*(u64 *)(dtv - 16)` when
    /// `glibc_counter` (glibc `dtv[-1].counter`), else `*(u64 *)dtv` (musl); the length must be
    /// `>= module_id`; `block = *(u64 *)(dtv + module_id * entry_size)`; block 0 or -1 means not
    /// allocated (no context); slot = block + offset.
    Dtv {
        pointer_offset: i64,
        entry_size: u8,
        glibc_counter: bool,
        module_id: u64,
        offset: u64,
    },
}

/// What a custom-labels slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum V1Layout {
    /// ABI 1: a pointer to `{storage, count, capacity}` (8 bytes at the slot, then 24 bytes).
    #[default]
    Pointer,
    /// ABI 0: the TLS object itself is `{storage, count}` (16 bytes at the slot).
    Inline,
}

/// What a thread-context record pointer points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum V2Layout {
    /// OTEP 4947 (also R2/R3 `custom_labels_current_set_v2`): 28-byte header, then
    /// `attrs_data_size` bytes (at most 1024 copied), then `valid` again.
    #[default]
    Otep4947,
    /// Draft R0/R1: 34-byte header; per entry 2 bytes `{key_index, len}` and `len` bytes (at
    /// most 1024 value bytes in all), then `valid` (offset 32) again.
    Draft,
}

/// What the kernel reads for one watched process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProcessParams {
    /// custom-labels v1 slot (`custom_labels_current_set`).
    pub v1: SlotRule,
    pub v1_layout: V1Layout,
    /// Thread-context slot (`otel_thread_ctx_v1` or `custom_labels_current_set_v2`).
    pub v2: SlotRule,
    pub v2_layout: V2Layout,
}

impl SlotRule {
    pub(crate) fn to_raw(
        self,
        format: &'static str,
        layout: u64,
    ) -> Result<RawSlotRule, EbpfError> {
        let layout = layout as u32;
        Ok(match self {
            SlotRule::None => RawSlotRule {
                kind: CR_RULE_NONE as u32,
                layout,
                ..RawSlotRule::default()
            },
            SlotRule::TpRelative { offset } => RawSlotRule {
                kind: CR_RULE_TP_RELATIVE as u32,
                layout,
                tp_offset: offset,
                ..RawSlotRule::default()
            },
            SlotRule::Dtv {
                pointer_offset,
                entry_size,
                glibc_counter,
                module_id,
                offset,
            } => {
                if entry_size != 8 && entry_size != 16 {
                    return Err(EbpfError::InvalidRule {
                        format,
                        reason: format!("DTV entry size {entry_size} (must be 8 or 16)"),
                    });
                }
                if module_id == 0 {
                    return Err(EbpfError::InvalidRule {
                        format,
                        reason: "DTV module id 0 (module ids start at 1)".to_string(),
                    });
                }
                RawSlotRule {
                    kind: CR_RULE_DTV as u32,
                    entry_size: u32::from(entry_size),
                    glibc_counter: u32::from(glibc_counter),
                    layout,
                    tp_offset: pointer_offset,
                    module_id,
                    block_offset: offset,
                }
            }
        })
    }
}

impl ProcessParams {
    pub(crate) fn to_raw(self) -> Result<RawProcessParams, EbpfError> {
        let v1_layout = match self.v1_layout {
            V1Layout::Pointer => CR_V1_LAYOUT_POINTER,
            V1Layout::Inline => CR_V1_LAYOUT_INLINE,
        };
        let v2_layout = match self.v2_layout {
            V2Layout::Otep4947 => CR_V2_LAYOUT_OTEP,
            V2Layout::Draft => CR_V2_LAYOUT_DRAFT,
        };
        Ok(RawProcessParams {
            v1: self.v1.to_raw("v1", v1_layout)?,
            v2: self.v2.to_raw("v2", v2_layout)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtv_rule_maps_every_field() {
        let rule = SlotRule::Dtv {
            pointer_offset: -8,
            entry_size: 8,
            glibc_counter: false,
            module_id: 3,
            offset: 0x40,
        };
        let raw = rule.to_raw("v2", CR_V2_LAYOUT_DRAFT).unwrap();
        assert_eq!(
            raw,
            RawSlotRule {
                kind: 2,
                entry_size: 8,
                glibc_counter: 0,
                layout: 1,
                tp_offset: -8,
                module_id: 3,
                block_offset: 0x40
            }
        );
    }

    #[test]
    fn tp_relative_keeps_negative_offset() {
        let raw = SlotRule::TpRelative { offset: -0x38 }
            .to_raw("v1", 0)
            .unwrap();
        assert_eq!((raw.kind, raw.tp_offset), (1, -0x38));
    }

    #[test]
    fn layouts_go_into_their_rules() {
        let params = ProcessParams {
            v1: SlotRule::TpRelative { offset: -8 },
            v1_layout: V1Layout::Inline,
            v2: SlotRule::None,
            v2_layout: V2Layout::Draft,
        };
        let raw = params.to_raw().unwrap();
        assert_eq!((raw.v1.layout, raw.v2.layout), (1, 1));
        assert_eq!(
            ProcessParams::default().to_raw().unwrap(),
            RawProcessParams::default()
        );
    }

    #[test]
    fn bad_dtv_rules_are_rejected() {
        let bad_size = SlotRule::Dtv {
            pointer_offset: 8,
            entry_size: 12,
            glibc_counter: true,
            module_id: 1,
            offset: 0,
        };
        assert!(matches!(
            bad_size.to_raw("v1", 0),
            Err(EbpfError::InvalidRule { format: "v1", .. })
        ));
        let bad_id = SlotRule::Dtv {
            pointer_offset: 8,
            entry_size: 16,
            glibc_counter: true,
            module_id: 0,
            offset: 0,
        };
        assert!(matches!(
            bad_id.to_raw("v2", 0),
            Err(EbpfError::InvalidRule { format: "v2", .. })
        ));
    }
}

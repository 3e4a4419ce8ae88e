//! Per-process read parameters: how to turn a thread pointer into each format's slot address, in
//! the shared vocabulary of `context-layout` (the reader's plan speaks it too), and their one
//! translation into the C layout `struct cr_slot_rule` of `sampler.h`.

pub use context_layout::{DtvLayout, RecordLayout, SlotRule, V1Layout};

use crate::error::EbpfError;
use crate::layout::{
    RawProcessParams, RawSlotRule, CR_RULE_DTV, CR_RULE_NONE, CR_RULE_TP_RELATIVE,
    CR_V1_LAYOUT_INLINE, CR_V1_LAYOUT_POINTER, CR_V2_LAYOUT_DRAFT, CR_V2_LAYOUT_OTEP,
};

/// What the kernel reads for one watched process (the arithmetic is exactly the reader's:
/// contract.md, "What the reader reads, exactly").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProcessParams {
    /// custom-labels v1 slot (`custom_labels_current_set`); `None`: nothing is read.
    pub v1: Option<SlotRule>,
    pub v1_layout: V1Layout,
    /// Thread-context slot (`otel_thread_ctx_v1` or `custom_labels_current_set_v2`).
    pub v2: Option<SlotRule>,
    pub v2_layout: RecordLayout,
}

/// `rule` as the kernel's `struct cr_slot_rule`, with the format's `layout` code.
fn raw_rule(
    rule: Option<SlotRule>,
    format: &'static str,
    layout: u64,
) -> Result<RawSlotRule, EbpfError> {
    let layout = layout as u32;
    Ok(match rule {
        None => RawSlotRule {
            kind: CR_RULE_NONE as u32,
            layout,
            ..RawSlotRule::default()
        },
        Some(SlotRule::TpRelative { offset }) => RawSlotRule {
            kind: CR_RULE_TP_RELATIVE as u32,
            layout,
            tp_offset: offset,
            ..RawSlotRule::default()
        },
        Some(SlotRule::Dtv {
            dtv,
            module_id,
            offset,
        }) => {
            if dtv.entry_size != 8 && dtv.entry_size != 16 {
                return Err(EbpfError::InvalidRule {
                    format,
                    reason: format!("DTV entry size {} (must be 8 or 16)", dtv.entry_size),
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
                entry_size: dtv.entry_size as u32,
                glibc_counter: u32::from(dtv.glibc_counter),
                layout,
                tp_offset: dtv.pointer_offset,
                module_id,
                block_offset: offset,
            }
        }
    })
}

impl ProcessParams {
    pub(crate) fn to_raw(self) -> Result<RawProcessParams, EbpfError> {
        let v1_layout = match self.v1_layout {
            V1Layout::Pointer => CR_V1_LAYOUT_POINTER,
            V1Layout::Inline => CR_V1_LAYOUT_INLINE,
        };
        let v2_layout = match self.v2_layout {
            RecordLayout::Otep4947 => CR_V2_LAYOUT_OTEP,
            RecordLayout::Draft => CR_V2_LAYOUT_DRAFT,
        };
        Ok(RawProcessParams {
            v1: raw_rule(self.v1, "v1", v1_layout)?,
            v2: raw_rule(self.v2, "v2", v2_layout)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtv(pointer_offset: i64, entry_size: u64, glibc_counter: bool) -> DtvLayout {
        DtvLayout {
            pointer_offset,
            entry_size,
            glibc_counter,
        }
    }

    #[test]
    fn dtv_rule_maps_every_field() {
        let rule = SlotRule::Dtv {
            dtv: dtv(-8, 8, false),
            module_id: 3,
            offset: 0x40,
        };
        let raw = raw_rule(Some(rule), "v2", CR_V2_LAYOUT_DRAFT).unwrap();
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
        let raw = raw_rule(Some(SlotRule::TpRelative { offset: -0x38 }), "v1", 0).unwrap();
        assert_eq!((raw.kind, raw.tp_offset), (1, -0x38));
    }

    #[test]
    fn layouts_go_into_their_rules() {
        let params = ProcessParams {
            v1: Some(SlotRule::TpRelative { offset: -8 }),
            v1_layout: V1Layout::Inline,
            v2: None,
            v2_layout: RecordLayout::Draft,
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
            dtv: dtv(8, 12, true),
            module_id: 1,
            offset: 0,
        };
        assert!(matches!(
            raw_rule(Some(bad_size), "v1", 0),
            Err(EbpfError::InvalidRule { format: "v1", .. })
        ));
        let bad_id = SlotRule::Dtv {
            dtv: dtv(8, 16, true),
            module_id: 0,
            offset: 0,
        };
        assert!(matches!(
            raw_rule(Some(bad_id), "v2", 0),
            Err(EbpfError::InvalidRule { format: "v2", .. })
        ));
    }
}

//! Executes a `ReadPlan` over any `Memory`: the process context from the plan's candidate
//! mappings, and for one thread the slot address from the thread pointer, then the records behind
//! it. Shared by every backend, so ptrace and eBPF decode alike.

use crate::decode::process_ctx::{read_mapping, MappingRead, ProcessContextRead, ThreadKeyMap};
use crate::decode::thread_ctx::{
    decode_record, RecordLayout, DRAFT_HEADER_SIZE, OTEP_HEADER_SIZE, OTEP_SPECULATIVE_READ,
};
use crate::decode::v1::{decode_v0_inline, decode_v1_set, V1Limits, LABELSET_SIZE};
use crate::decode::Decoded;
use crate::memory::{Memory, MemoryError, Prefetched};
use crate::plan::{ReadPlan, SlotPlan, SlotRule, V1Layout};
use crate::snapshot::{
    extend_bounded, push_bounded, ErrorKind, Format, ModuleContext, ProcessContext, ReadError,
    ThreadContext, ThreadSnapshot, V1Labels,
};

/// Schema versions under which `custom_labels_current_set_v2` points to the 28-byte layout.
const FINAL_LAYOUT_SCHEMAS: [&str; 2] = ["tlsdesc_v1_dev", "tls_v1"];

/// Where the slot of one thread is, if it has one.
pub fn slot_address(mem: &dyn Memory, tp: u64, rule: &SlotRule) -> Result<Option<u64>, ReadError> {
    let tls_err = |detail: String| ReadError::new(Format::Tls, ErrorKind::Unreadable, detail);
    match *rule {
        SlotRule::TpRelative { offset } => Ok(Some(tp.wrapping_add(offset as u64))),
        SlotRule::Dtv {
            dtv,
            module_id,
            offset,
        } => {
            let dtv_ptr_at = tp.wrapping_add(dtv.pointer_offset as u64);
            let dtv_ptr = mem
                .read_u64(dtv_ptr_at)
                .map_err(|e| tls_err(format!("DTV pointer: {e}")))?;
            let len = mem
                .read_u64(dtv.counter_addr(dtv_ptr))
                .map_err(|e| tls_err(format!("DTV length: {e}")))?;
            if module_id > len {
                // The thread's DTV predates the module: it never touched that TLS (legal).
                return Ok(None);
            }
            let block = mem
                .read_u64(dtv.entry_addr(dtv_ptr, module_id))
                .map_err(|e| tls_err(format!("DTV entry {module_id}: {e}")))?;
            if block == 0 || block == u64::MAX {
                return Ok(None); // TLS_DTV_UNALLOCATED or never set: no block, no context
            }
            Ok(Some(block.wrapping_add(offset)))
        }
    }
}

/// A slot's address and the word read there, or why there is none.
type SlotWord = Result<Option<(u64, Result<u64, MemoryError>)>, ReadError>;

/// Every slot word of one thread, in plan order (v1 then v2), with one batched read.
fn slot_words(mem: &dyn Memory, tp: u64, slots: &[&SlotPlan]) -> Vec<SlotWord> {
    let addrs: Vec<Result<Option<u64>, ReadError>> = slots
        .iter()
        .map(|s| slot_address(mem, tp, &s.rule))
        .collect();
    let mut words = vec![[0u8; 8]; slots.len()];
    let results = {
        let mut reqs: Vec<(u64, &mut [u8])> = addrs
            .iter()
            .zip(words.iter_mut())
            .filter_map(|(a, w)| match a {
                Ok(Some(addr)) => Some((*addr, &mut w[..])),
                _ => None,
            })
            .collect();
        mem.read_many(&mut reqs)
    };
    let mut results = results.into_iter();
    addrs
        .into_iter()
        .zip(words)
        .map(|(a, w)| {
            a.map(|a| {
                a.map(|addr| {
                    let r = results.next().expect("one result per request");
                    (addr, r.map(|()| u64::from_le_bytes(w)))
                })
            })
        })
        .collect()
}

fn slot_value(
    slot_word: &SlotWord,
    slot: &SlotPlan,
    format: Format,
) -> Result<Option<u64>, ReadError> {
    match slot_word {
        Err(e) => Err(e.clone()),
        Ok(None) => Ok(None),
        Ok(Some((_, Ok(v)))) => Ok(Some(*v)),
        Ok(Some((_, Err(e)))) => Err(ReadError::new(
            format,
            ErrorKind::Unreadable,
            format!("{} slot of {}: {e}", slot.symbol, slot.module),
        )),
    }
}

fn read_v1(
    mem: &dyn Memory,
    slot_word: &SlotWord,
    slot: &SlotPlan,
    layout: V1Layout,
    limits: &V1Limits,
) -> Decoded<V1Labels> {
    match layout {
        V1Layout::Pointer => match slot_value(slot_word, slot, Format::V1) {
            Ok(Some(set)) if set != 0 => decode_v1_set(mem, set, limits),
            Ok(_) => Decoded::none(),
            Err(e) => Decoded::err(e),
        },
        V1Layout::Inline => match slot_word {
            Ok(Some((addr, word))) => match word {
                // storage NULL: nothing installed
                Ok(0) => Decoded::none(),
                Ok(_) => decode_v0_inline(mem, *addr, limits),
                Err(e) => Decoded::err(ReadError::new(
                    Format::V1,
                    ErrorKind::Unreadable,
                    format!("v0 slot: {e}"),
                )),
            },
            Ok(None) => Decoded::none(),
            Err(e) => Decoded::err(e.clone()),
        },
    }
}

/// `custom_labels_current_set_v2` points to the final 28-byte layout when the process context
/// announces a final schema (R2/R3 writers), and to the 34-byte draft otherwise (R0/R1).
pub fn effective_layout(layout: RecordLayout, keys: &ThreadKeyMap) -> RecordLayout {
    let final_schema = keys
        .schema_version
        .as_deref()
        .is_some_and(|s| FINAL_LAYOUT_SCHEMAS.contains(&s));
    match layout {
        RecordLayout::Draft if final_schema => RecordLayout::Otep4947,
        l => l,
    }
}

fn read_v2(
    mem: &dyn Memory,
    slot_word: &SlotWord,
    slot: &SlotPlan,
    layout: RecordLayout,
    keys: &ThreadKeyMap,
) -> Decoded<ThreadContext> {
    let layout = effective_layout(layout, keys);
    match slot_value(slot_word, slot, Format::V2) {
        Ok(Some(record)) if record != 0 => decode_record(mem, record, layout, &keys.keys),
        Ok(_) => Decoded::none(),
        Err(e) => Decoded::err(e),
    }
}

/// Fills `thread` with what the plan finds for thread pointer `tp`. The first module defining a
/// format gives `v1`/`v2`; further modules go to `other_modules`. The slot words of all formats
/// are read together, then each format's records level by level.
pub fn read_thread(
    mem: &dyn Memory,
    tp: u64,
    plan: &ReadPlan,
    keys: &ThreadKeyMap,
    limits: &V1Limits,
    thread: &mut ThreadSnapshot,
) {
    let slots: Vec<&SlotPlan> = plan
        .v1
        .iter()
        .map(|p| &p.slot)
        .chain(plan.v2.iter().map(|p| &p.slot))
        .collect();
    let words = slot_words(mem, tp, &slots);
    let (v1_words, v2_words) = words.split_at(plan.v1.len());
    // Next level, for every format at once: the label-set headers and the records (with room
    // for their attributes) the slots point to.
    let mut ranges = Vec::new();
    for (p, word) in plan.v1.iter().zip(v1_words) {
        if let (V1Layout::Pointer, Ok(Some((_, Ok(set))))) = (p.layout, word) {
            if *set != 0 {
                ranges.push((*set, LABELSET_SIZE));
            }
        }
    }
    for (p, word) in plan.v2.iter().zip(v2_words) {
        if let Ok(Some((_, Ok(record)))) = word {
            if *record != 0 {
                let len = match effective_layout(p.layout, keys) {
                    RecordLayout::Otep4947 => otep_prefetch_len(*record),
                    RecordLayout::Draft => DRAFT_HEADER_SIZE,
                };
                ranges.push((*record, len));
            }
        }
    }
    let mut prefetched = Prefetched::new(mem);
    if ranges.len() > 1 {
        prefetched.fetch(&ranges);
    }
    let mem: &dyn Memory = &prefetched;
    for (i, (p, word)) in plan.v1.iter().zip(v1_words).enumerate() {
        let d = read_v1(mem, word, &p.slot, p.layout, limits);
        extend_bounded(&mut thread.errors, d.errors);
        if i == 0 {
            thread.v1 = d.value;
        } else {
            other(thread, &p.slot).v1 = d.value;
        }
    }
    for (i, (p, word)) in plan.v2.iter().zip(v2_words).enumerate() {
        let d = read_v2(mem, word, &p.slot, p.layout, keys);
        extend_bounded(&mut thread.errors, d.errors);
        if i == 0 {
            thread.v2 = d.value;
        } else {
            other(thread, &p.slot).v2 = d.value;
        }
    }
}

/// A record's header and up to `OTEP_SPECULATIVE_READ` bytes of it, not past the page the header
/// ends in (the rest of that page is mapped when the header is).
fn otep_prefetch_len(record: u64) -> usize {
    const PAGE: u64 = 4096;
    let header_end = record.wrapping_add(OTEP_HEADER_SIZE as u64 - 1);
    let to_page_end = PAGE - (header_end % PAGE) + OTEP_HEADER_SIZE as u64 - 1;
    to_page_end.min(OTEP_SPECULATIVE_READ as u64) as usize
}

fn other<'a>(thread: &'a mut ThreadSnapshot, slot: &SlotPlan) -> &'a mut ModuleContext {
    let i = match thread
        .other_modules
        .iter()
        .position(|m| m.module == slot.module)
    {
        Some(i) => i,
        None => {
            thread.other_modules.push(ModuleContext {
                module: slot.module.clone(),
                v1: None,
                v2: None,
            });
            thread.other_modules.len() - 1
        }
    };
    &mut thread.other_modules[i]
}

/// The first candidate mapping that holds a context wins; decoys are skipped silently; broken
/// contexts become top-level errors, and so does every further valid context (`ambiguous`, naming
/// both mappings by address and name).
pub fn read_process_context(
    mem: &dyn Memory,
    plan: &ReadPlan,
    max_payload: u32,
    errors: &mut Vec<ReadError>,
) -> (Option<ProcessContext>, ThreadKeyMap) {
    let mut found: Option<(u64, ProcessContextRead)> = None;
    for m in &plan.context_mappings {
        match read_mapping(mem, m.start, &m.name, max_payload) {
            MappingRead::Context(read) => match &found {
                None => found = Some((m.start, *read)),
                Some((start, first)) => push_bounded(
                    errors,
                    ReadError::new(
                        Format::ProcessContext,
                        ErrorKind::Ambiguous,
                        format!(
                        "another valid context mapping, {} at {:#x}, is ignored: the one reported \
                         is {} at {start:#x}",
                        m.name, m.start, first.context.mapping
                    ),
                    ),
                ),
            },
            MappingRead::NotAContext(_) | MappingRead::InProgress => {}
            MappingRead::Error(e) => push_bounded(errors, e),
        }
    }
    match found {
        Some((_, read)) => {
            if let Some(e) = read.key_map.unsupported_schema() {
                push_bounded(errors, e);
            }
            (Some(read.context), read.key_map)
        }
        None => (None, ThreadKeyMap::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // rules: tc-ours-schema-both, tc-schema-version
    /// `custom_labels_current_set_v2` records are read with the final 28-byte layout when the
    /// process context announces either name of the final schema, `tlsdesc_v1_dev` (what writers
    /// emit) or `tls_v1` (what the OTEP says it becomes), and as the 34-byte draft otherwise;
    /// `otel_thread_ctx_v1` is always the final layout.
    #[test]
    fn both_names_of_the_final_schema_select_the_final_layout() {
        let keys = |schema: Option<&str>| ThreadKeyMap {
            schema_version: schema.map(str::to_string),
            keys: Vec::new(),
        };
        for schema in ["tlsdesc_v1_dev", "tls_v1"] {
            assert_eq!(
                effective_layout(RecordLayout::Draft, &keys(Some(schema))),
                RecordLayout::Otep4947,
                "{schema}"
            );
        }
        for schema in [None, Some("go_pprof_labels_v1"), Some("tls_v2"), Some("")] {
            assert_eq!(
                effective_layout(RecordLayout::Draft, &keys(schema)),
                RecordLayout::Draft,
                "{schema:?}"
            );
            assert_eq!(
                effective_layout(RecordLayout::Otep4947, &keys(schema)),
                RecordLayout::Otep4947,
                "{schema:?}"
            );
        }
    }
}

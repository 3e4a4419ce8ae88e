//! Thread context records: OTEP 4947 `otel_thread_ctx_v1` (formats.md 2.3) and the earlier draft
//! layout behind `custom_labels_current_set_v2` (34-byte header, attribute *count*).

use std::collections::BTreeMap;

use super::Decoded;
use crate::memory::Memory;
use crate::snapshot::{
    id_hex, sort_attributes, Attribute, Bytes, ErrorKind, Format, ReadError, ThreadContext,
    ThreadContextLayout,
};

/// The header layouts (shared with the eBPF sampler) and which one a symbol points to.
pub use context_layout::thread_ctx::{
    DRAFT_COUNT_OFFSET, DRAFT_HEADER_SIZE, DRAFT_VALID_OFFSET, OTEP_HEADER_SIZE, OTEP_SIZE_OFFSET,
    OTEP_VALID_OFFSET,
};
pub use context_layout::RecordLayout;

fn err(kind: ErrorKind, detail: String) -> ReadError {
    ReadError::new(Format::V2, kind, detail)
}

/// Decodes the record at `record` (non-NULL) with the given layout, naming attributes through
/// `key_map` (index i = name of key index i).
pub fn decode_record(
    mem: &dyn Memory,
    record: u64,
    layout: RecordLayout,
    key_map: &[Option<Bytes>],
) -> Decoded<ThreadContext> {
    match layout {
        RecordLayout::Otep4947 => decode_otep(mem, record, key_map),
        RecordLayout::Draft => decode_draft(mem, record, key_map),
    }
}

/// How much of an OTEP 4947 record is read with its header when the address space allows (the
/// size writers allocate), so that header and attributes usually come in one read.
pub const OTEP_SPECULATIVE_READ: usize = 640;

fn decode_otep(mem: &dyn Memory, record: u64, key_map: &[Option<Bytes>]) -> Decoded<ThreadContext> {
    let mut buf = [0u8; OTEP_SPECULATIVE_READ];
    let got = match mem.read_upto(record, &mut buf, OTEP_HEADER_SIZE) {
        Ok(n) => n,
        Err(e) => return Decoded::err(err(ErrorKind::Unreadable, format!("record header: {e}"))),
    };
    let header: [u8; OTEP_HEADER_SIZE] = buf[..OTEP_HEADER_SIZE].try_into().expect("28 bytes");
    if header[OTEP_VALID_OFFSET as usize] != 1 {
        return Decoded::none(); // valid != 1: the writer says "ignore me"; legal
    }
    let size_at = OTEP_SIZE_OFFSET as usize;
    let attrs_size = u16::from_le_bytes([header[size_at], header[size_at + 1]]) as usize;
    let attrs = if OTEP_HEADER_SIZE + attrs_size <= got {
        buf[OTEP_HEADER_SIZE..OTEP_HEADER_SIZE + attrs_size].to_vec()
    } else {
        match mem.read_vec(record.wrapping_add(OTEP_HEADER_SIZE as u64), attrs_size) {
            Ok(a) => a,
            Err(e) => {
                return Decoded::err(err(
                    ErrorKind::Unreadable,
                    format!("{attrs_size} bytes of attrs_data: {e}"),
                ))
            }
        }
    };
    // Cheap insurance against a record changed under us (pitfall 2).
    if let Err(e) = still_valid(mem, record.wrapping_add(OTEP_VALID_OFFSET)) {
        return Decoded::err(e);
    }
    let mut errors = Vec::new();
    let mut entries = BTreeMap::new();
    let mut rest = &attrs[..];
    while !rest.is_empty() {
        if rest.len() < 2 || rest.len() < 2 + rest[1] as usize {
            errors.push(err(
                ErrorKind::Truncated,
                format!("{} trailing bytes of attrs_data_size {attrs_size} do not hold a complete entry", rest.len()),
            ));
            break;
        }
        let (index, len) = (rest[0], rest[1] as usize);
        entries.insert(index, rest[2..2 + len].to_vec()); // last occurrence wins
        rest = &rest[2 + len..];
    }
    let ctx = ThreadContext {
        layout: ThreadContextLayout::Otep4947,
        trace_id: id_hex(&header[0..16]),
        span_id: id_hex(&header[16..24]),
        root_span_id: None,
        trace_flags: Some(header[25]),
        attributes: name_attributes(entries, key_map),
    };
    Decoded {
        value: Some(ctx),
        errors,
    }
}

fn decode_draft(
    mem: &dyn Memory,
    record: u64,
    key_map: &[Option<Bytes>],
) -> Decoded<ThreadContext> {
    let mut header = [0u8; DRAFT_HEADER_SIZE];
    if let Err(e) = mem.read(record, &mut header) {
        return Decoded::err(err(
            ErrorKind::Unreadable,
            format!("draft record header: {e}"),
        ));
    }
    if header[DRAFT_VALID_OFFSET as usize] != 1 {
        return Decoded::none();
    }
    let count = header[DRAFT_COUNT_OFFSET as usize];
    let mut errors = Vec::new();
    let mut entries = BTreeMap::new();
    let mut at = record.wrapping_add(DRAFT_HEADER_SIZE as u64); // header read: no wrap
    for i in 0..count {
        let mut head = [0u8; 2];
        if let Err(e) = mem.read(at, &mut head) {
            errors.push(err(
                ErrorKind::Unreadable,
                format!("draft entry {i} of {count}: {e}"),
            ));
            break;
        }
        match mem.read_vec(at.wrapping_add(2), head[1] as usize) {
            Ok(v) => {
                entries.insert(head[0], v);
            }
            Err(e) => {
                errors.push(err(
                    ErrorKind::Unreadable,
                    format!("draft entry {i} value: {e}"),
                ));
                break;
            }
        }
        // Both reads succeeded, so this is at most u64::MAX; checked all the same.
        let Some(next) = at.checked_add(2 + u64::from(head[1])) else {
            break;
        };
        at = next;
    }
    if let Err(e) = still_valid(mem, record.wrapping_add(DRAFT_VALID_OFFSET)) {
        return Decoded::err(e);
    }
    let ctx = ThreadContext {
        layout: ThreadContextLayout::Draft,
        trace_id: id_hex(&header[0..16]),
        span_id: id_hex(&header[16..24]),
        root_span_id: id_hex(&header[24..32]),
        trace_flags: None,
        attributes: name_attributes(entries, key_map),
    };
    Decoded {
        value: Some(ctx),
        errors,
    }
}

/// Re-reads `valid` after the copy: anything but 1 now means the record changed under us.
fn still_valid(mem: &dyn Memory, valid_at: u64) -> Result<(), ReadError> {
    let mut valid = [0u8; 1];
    match mem.read_again(valid_at, &mut valid).map(|()| valid[0]) {
        Ok(1) => Ok(()),
        Ok(v) => Err(err(
            ErrorKind::Torn,
            format!("valid changed from 1 to {v} while copying"),
        )),
        Err(e) => Err(err(ErrorKind::Unreadable, format!("re-reading valid: {e}"))),
    }
}

fn name_attributes(entries: BTreeMap<u8, Vec<u8>>, key_map: &[Option<Bytes>]) -> Vec<Attribute> {
    let mut attrs: Vec<Attribute> = entries
        .into_iter()
        .map(
            |(index, value)| match key_map.get(index as usize).and_then(Option::as_ref) {
                Some(key) => Attribute::Named {
                    key: key.clone(),
                    value: Bytes(value),
                },
                None => Attribute::Unnamed {
                    key_index: index,
                    value: Bytes(value),
                },
            },
        )
        .collect();
    sort_attributes(&mut attrs);
    attrs
}

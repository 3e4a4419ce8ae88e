//! custom-labels v1 (and the legacy v0 inline layout): formats.md sections 1.5 and 1.6.

use std::collections::HashSet;

use super::Decoded;
use crate::memory::Memory;
use crate::snapshot::{
    push_bounded, sort_labels, Bytes, ErrorKind, Format, Label, ReadError, V1Labels,
};

/// `custom_labels_string_t`: `{len: size_t, buf: *const u8}`.
pub const STRING_SIZE: u64 = 16;
/// `custom_labels_label_t`: key string then value string.
pub const LABEL_SIZE: u64 = 2 * STRING_SIZE;
/// `custom_labels_labelset_t`: `{storage, count, capacity}`.
pub const LABELSET_SIZE: usize = 24;
/// The v0 TLS object itself: `{storage, count}`.
pub const V0_INLINE_SIZE: usize = 16;

const _: () = assert!(LABEL_SIZE == 32);

/// Upper bound of one storage-array read, whatever `V1Limits` says.
const MAX_ARRAY_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V1Limits {
    pub max_labels: u64,
    pub max_string_len: u64,
}

impl Default for V1Limits {
    fn default() -> Self {
        V1Limits {
            max_labels: 4096,
            max_string_len: 64 * 1024,
        }
    }
}

fn err(kind: ErrorKind, detail: String) -> ReadError {
    ReadError::new(Format::V1, kind, detail)
}

/// Decodes the v1 label set that `custom_labels_current_set` points to. `set` must be non-NULL.
pub fn decode_v1_set(mem: &dyn Memory, set: u64, limits: &V1Limits) -> Decoded<V1Labels> {
    let mut header = [0u8; LABELSET_SIZE];
    if let Err(e) = mem.read(set, &mut header) {
        return Decoded::err(err(ErrorKind::Unreadable, format!("label set header: {e}")));
    }
    let storage = u64::from_le_bytes(header[0..8].try_into().expect("8 bytes"));
    let count = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    decode_entries(mem, storage, count, limits, None)
}

/// Decodes the v0 layout, where the TLS object at `slot` *is* `{storage, count}`.
pub fn decode_v0_inline(mem: &dyn Memory, slot: u64, limits: &V1Limits) -> Decoded<V1Labels> {
    let mut header = [0u8; V0_INLINE_SIZE];
    if let Err(e) = mem.read(slot, &mut header) {
        return Decoded::err(err(
            ErrorKind::Unreadable,
            format!("v0 inline label set: {e}"),
        ));
    }
    let storage = u64::from_le_bytes(header[0..8].try_into().expect("8 bytes"));
    let count = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    decode_entries(mem, storage, count, limits, Some(0))
}

fn decode_entries(
    mem: &dyn Memory,
    storage: u64,
    count: u64,
    limits: &V1Limits,
    abi_version: Option<u32>,
) -> Decoded<V1Labels> {
    let mut errors = Vec::new();
    let mut labels = Vec::new();
    let done = |labels: Vec<Label>, errors| Decoded {
        value: Some(V1Labels {
            abi_version,
            labels,
        }),
        errors,
    };
    if count == 0 {
        return done(labels, errors);
    }
    let readable = if count > limits.max_labels {
        push_bounded(
            &mut errors,
            err(
                ErrorKind::TooLarge,
                format!(
                    "label count {count} exceeds the limit of {}; reading the first {}",
                    limits.max_labels, limits.max_labels
                ),
            ),
        );
        limits.max_labels
    } else {
        count
    };
    if storage == 0 {
        push_bounded(
            &mut errors,
            err(
                ErrorKind::Unreadable,
                format!("storage is NULL with count {count}"),
            ),
        );
        return done(labels, errors);
    }
    // One read for the whole array: the thread is stopped, so it is consistent. The product
    // cannot overflow with sane limits, but limits are configurable.
    let Some(array_len) = readable
        .checked_mul(LABEL_SIZE)
        .filter(|n| *n <= MAX_ARRAY_BYTES)
    else {
        push_bounded(
            &mut errors,
            err(
                ErrorKind::TooLarge,
                format!("{readable} labels do not fit in one read"),
            ),
        );
        return done(labels, errors);
    };
    let entries = match mem.read_vec(storage, array_len as usize) {
        Ok(v) => v,
        Err(e) => {
            push_bounded(
                &mut errors,
                err(ErrorKind::Unreadable, format!("label storage: {e}")),
            );
            return done(labels, errors);
        }
    };
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for (index, entry) in entries.chunks_exact(LABEL_SIZE as usize).enumerate() {
        let word =
            |i: usize| u64::from_le_bytes(entry[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let (key_len, key_buf, value_len, value_buf) = (word(0), word(1), word(2), word(3));
        if key_buf == 0 {
            continue; // rule 3: a hidden entry (also the middle of a careful delete)
        }
        if value_buf == 0 {
            push_bounded(
                &mut errors,
                err(
                    ErrorKind::Unreadable,
                    format!("label {index}: key present but value pointer is NULL"),
                ),
            );
            continue;
        }
        let key = match read_string(mem, key_buf, key_len, limits, index, "key") {
            Ok(k) => k,
            Err(e) => {
                push_bounded(&mut errors, e);
                continue;
            }
        };
        // Rule 5: first occurrence wins; later duplicates are normal mid-update states.
        if seen.contains(&key) {
            continue;
        }
        let value = match read_string(mem, value_buf, value_len, limits, index, "value") {
            Ok(v) => v,
            Err(e) => {
                push_bounded(&mut errors, e);
                continue;
            }
        };
        seen.insert(key.clone());
        labels.push(Label {
            key: Bytes(key),
            value: Bytes(value),
        });
    }
    sort_labels(&mut labels);
    done(labels, errors)
}

fn read_string(
    mem: &dyn Memory,
    buf: u64,
    len: u64,
    limits: &V1Limits,
    index: usize,
    what: &str,
) -> Result<Vec<u8>, ReadError> {
    if len > limits.max_string_len {
        return Err(err(
            ErrorKind::TooLarge,
            format!(
                "label {index}: {what} length {len} exceeds the limit of {}",
                limits.max_string_len
            ),
        ));
    }
    mem.read_vec(buf, len as usize)
        .map_err(|e| err(ErrorKind::Unreadable, format!("label {index}: {what}: {e}")))
}

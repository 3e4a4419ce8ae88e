//! custom-labels v1 (and the legacy v0 inline layout): formats.md sections 1.5 and 1.6.

use std::collections::HashSet;

use super::Decoded;
use crate::memory::{Memory, MemoryError};
use crate::snapshot::{
    push_bounded, sort_labels, Bytes, ErrorKind, Format, Label, ReadError, V1Labels,
};

/// The layouts, shared with the eBPF sampler.
pub use context_layout::v1::{LABELSET_SIZE, LABEL_SIZE, STRING_SIZE, V0_INLINE_SIZE};

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
    // Every key and value in one batch (one system call on a live process), then the rules in
    // entry order, so the result is the same as reading them one by one.
    let word = |entry: &[u8], i: usize| {
        u64::from_le_bytes(entry[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    };
    let mut wanted: Vec<(u64, usize)> = Vec::new();
    let mut want = |buf: u64, len: u64, index: usize, what: &str| {
        check_string_len(len, limits, index, what).map(|len| {
            wanted.push((buf, len));
            wanted.len() - 1
        })
    };
    let mut plans = Vec::new();
    for (index, entry) in entries.chunks_exact(LABEL_SIZE as usize).enumerate() {
        let (key_len, key_buf, value_len, value_buf) = (
            word(entry, 0),
            word(entry, 1),
            word(entry, 2),
            word(entry, 3),
        );
        if key_buf == 0 {
            continue; // rule 3: a hidden entry (also the middle of a careful delete)
        }
        if value_buf == 0 {
            plans.push((index, Err(null_value(index)), None));
            continue;
        }
        let key = want(key_buf, key_len, index, "key");
        let value = key
            .is_ok()
            .then(|| want(value_buf, value_len, index, "value"));
        plans.push((index, key, value));
    }
    let mut results = read_strings(mem, &wanted);
    let mut fetched = |slot: Result<usize, ReadError>, index: usize, what: &str| {
        let i = slot?;
        match &mut results[i] {
            Ok(bytes) => Ok(std::mem::take(bytes)),
            Err(e) => Err(err(
                ErrorKind::Unreadable,
                format!("label {index}: {what}: {e}"),
            )),
        }
    };
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for (index, key, value) in plans {
        let key = match fetched(key, index, "key") {
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
        let value = match fetched(value.expect("planned with the key"), index, "value") {
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

/// Reads the strings in batches of at most `MAX_BATCH_BYTES`, so that lengths a target claims
/// but cannot back are never all allocated at once.
fn read_strings(mem: &dyn Memory, wanted: &[(u64, usize)]) -> Vec<Result<Vec<u8>, MemoryError>> {
    const MAX_BATCH_BYTES: usize = 1 << 20;
    let mut out = Vec::with_capacity(wanted.len());
    let mut rest = wanted;
    while !rest.is_empty() {
        let mut bytes = 0usize;
        let n = rest
            .iter()
            .take_while(|(_, len)| {
                bytes = bytes.saturating_add(*len);
                bytes <= MAX_BATCH_BYTES
            })
            .count()
            .max(1);
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        let mut bufs: Vec<Vec<u8>> = batch.iter().map(|(_, len)| vec![0u8; *len]).collect();
        let results = {
            let mut reqs: Vec<(u64, &mut [u8])> = batch
                .iter()
                .zip(bufs.iter_mut())
                .map(|((addr, _), buf)| (*addr, buf.as_mut_slice()))
                .collect();
            mem.read_many(&mut reqs)
        };
        out.extend(
            bufs.into_iter()
                .zip(results)
                .map(|(buf, r)| r.map(|()| buf)),
        );
    }
    out
}

fn null_value(index: usize) -> ReadError {
    err(
        ErrorKind::Unreadable,
        format!("label {index}: key present but value pointer is NULL"),
    )
}

fn check_string_len(
    len: u64,
    limits: &V1Limits,
    index: usize,
    what: &str,
) -> Result<usize, ReadError> {
    if len > limits.max_string_len {
        return Err(err(
            ErrorKind::TooLarge,
            format!(
                "label {index}: {what} length {len} exceeds the limit of {}",
                limits.max_string_len
            ),
        ));
    }
    Ok(len as usize)
}

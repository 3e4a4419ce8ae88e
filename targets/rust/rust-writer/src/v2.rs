//! OTEP 4947 thread-context records (formats.md 2.3) built in Rust: 28-byte header
//! `{trace_id[16], span_id[8], valid u8, trace_flags u8, attrs_data_size u16}` then packed
//! `[key_index u8][length u8][value]` entries, in an 8-byte-aligned allocation.

use rust_target_protocol::v2_expect;
use serde_json::Value;
use std::sync::atomic::{compiler_fence, Ordering};

/// Header size of a record.
pub const HEADER_SIZE: usize = 28;

/// What a record holds.
#[derive(Clone, Debug)]
pub struct Record {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub valid: u8,
    pub trace_flags: u8,
    /// Entries in record order (values at most 255 bytes).
    pub entries: Vec<(u8, Vec<u8>)>,
    /// Total allocation size (at least header + entries); libdatadog-style fixed 640 bytes when set.
    pub allocation_size: Option<usize>,
}

impl Record {
    /// A valid record with ids derived from `seed` and the given text attributes.
    pub fn numbered(seed: u64, entries: &[(u8, &str)]) -> Record {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(0x4bf9_2f35_77b3_4da6 ^ seed).to_be_bytes());
        trace_id[8..].copy_from_slice(&(0xa3ce_929d_0e0e_4736 ^ seed).to_be_bytes());
        Record {
            trace_id,
            span_id: (0x00f0_67aa_0ba9_02b7 ^ seed).to_be_bytes(),
            valid: 1,
            trace_flags: 1,
            entries: entries
                .iter()
                .map(|(i, v)| (*i, v.as_bytes().to_vec()))
                .collect(),
            allocation_size: None,
        }
    }

    /// Bytes of attribute data.
    pub fn attrs_data_size(&self) -> usize {
        self.entries.iter().map(|(_, v)| 2 + v.len()).sum()
    }

    /// The `v2` object a reader must report (`null` unless `valid == 1`).
    pub fn expect(&self, key_map: &[&str]) -> Value {
        if self.valid != 1 {
            return Value::Null;
        }
        let entries: Vec<(u8, &[u8])> = self
            .entries
            .iter()
            .map(|(i, v)| (*i, v.as_slice()))
            .collect();
        v2_expect(
            &self.trace_id,
            &self.span_id,
            self.trace_flags,
            &entries,
            key_map,
        )
    }

    /// Builds the record in memory.
    pub fn build(&self) -> RecordBuffer {
        let used = HEADER_SIZE + self.attrs_data_size();
        let size = self.allocation_size.unwrap_or(used).max(used);
        assert!(
            self.attrs_data_size() <= u16::MAX as usize,
            "attrs_data_size must fit in a u16"
        );
        let mut buffer = RecordBuffer {
            words: vec![0u64; size.div_ceil(8)].into_boxed_slice(),
            size,
        };
        buffer.write(self);
        buffer
    }
}

/// An 8-byte-aligned record allocation.
pub struct RecordBuffer {
    words: Box<[u64]>,
    size: usize,
}

impl RecordBuffer {
    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.words.len() * 8;
        // SAFETY: the u64 slice is `len` initialised bytes, uniquely borrowed through `self`; u8
        // has no alignment or validity requirement.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Writes `record` into the buffer with `valid` last.
    fn write(&mut self, record: &Record) {
        let size = self.size;
        let bytes = self.bytes_mut();
        bytes[24] = 0;
        compiler_fence(Ordering::SeqCst);
        bytes[..16].copy_from_slice(&record.trace_id);
        bytes[16..24].copy_from_slice(&record.span_id);
        bytes[25] = record.trace_flags;
        bytes[26..28].copy_from_slice(&(record.attrs_data_size() as u16).to_ne_bytes());
        let mut offset = HEADER_SIZE;
        for (index, value) in &record.entries {
            assert!(value.len() <= 255, "an entry value is at most 255 bytes");
            bytes[offset] = *index;
            bytes[offset + 1] = value.len() as u8;
            bytes[offset + 2..offset + 2 + value.len()].copy_from_slice(value);
            offset += 2 + value.len();
        }
        debug_assert!(offset <= size);
        compiler_fence(Ordering::SeqCst);
        bytes[24] = record.valid;
    }

    /// Rewrites the record in place with the valid-flag protocol (valid = 0, fence, fields,
    /// fence, valid); the new content must fit the allocation.
    pub fn update_in_place(&mut self, record: &Record) {
        assert!(
            HEADER_SIZE + record.attrs_data_size() <= self.size,
            "record does not fit"
        );
        self.write(record);
    }

    /// The address to store in `otel_thread_ctx_v1`.
    pub fn as_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast()
    }

    /// The record's bytes (header and attribute area).
    pub fn as_bytes(&mut self) -> &[u8] {
        let size = self.size;
        &self.bytes_mut()[..size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_bytes_follow_the_otep_layout() {
        let record = Record {
            trace_id: [0x11; 16],
            span_id: [0x22; 8],
            valid: 1,
            trace_flags: 3,
            entries: vec![(0, b"GET".to_vec()), (5, vec![])],
            allocation_size: None,
        };
        let mut buffer = record.build();
        let mut expected = vec![0x11u8; 16];
        expected.extend([0x22; 8]);
        expected.extend([1, 3, 7, 0, 0, 3, b'G', b'E', b'T', 5, 0]);
        assert_eq!(buffer.as_bytes(), expected.as_slice());
        assert_eq!(buffer.as_ptr() as usize % 8, 0);
    }

    #[test]
    fn fixed_allocation_is_zero_padded() {
        let mut record = Record::numbered(1, &[(1, "x")]);
        record.allocation_size = Some(640);
        let mut buffer = record.build();
        assert_eq!(buffer.as_bytes().len(), 640);
        assert!(buffer.as_bytes()[HEADER_SIZE + 3..].iter().all(|&b| b == 0));
    }
}

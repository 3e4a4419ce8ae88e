//! custom-labels v1 label sets (formats.md 1.5) built in Rust: a 24-byte
//! `{storage, count, capacity}` header pointing to 32-byte `{key{len,buf}, value{len,buf}}`
//! entries. Entries are stored exactly as given (NULL keys and repeated keys included), so the
//! reader's skip and first-wins rules are exercised.

use rust_target_protocol::v1_expect;
use serde_json::Value;

/// One `custom_labels_string_t`.
#[repr(C)]
struct RawString {
    len: usize,
    buf: *const u8,
}

/// One `custom_labels_label_t`.
#[repr(C)]
struct RawLabel {
    key: RawString,
    value: RawString,
}

/// `custom_labels_labelset_t`.
#[repr(C)]
struct RawLabelSet {
    storage: *const RawLabel,
    count: usize,
    capacity: usize,
}

/// A label set and the memory it points to; the pointers inside stay valid while it lives
/// (boxes and vectors are never resized after construction).
pub struct LabelSet {
    header: Box<RawLabelSet>,
    _storage: Vec<RawLabel>,
    _bytes: Vec<Box<[u8]>>,
}

/// What a label set holds, in storage order: `None` keys are entries with a NULL `key.buf`.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    pub entries: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    /// Extra unused capacity beyond `count` (readers must ignore `capacity`).
    pub spare_capacity: usize,
}

impl Labels {
    /// Labels from (key, value) text pairs.
    pub fn pairs(pairs: &[(&str, &str)]) -> Labels {
        Labels {
            entries: pairs
                .iter()
                .map(|(k, v)| (Some(k.as_bytes().to_vec()), v.as_bytes().to_vec()))
                .collect(),
            spare_capacity: 0,
        }
    }

    /// The `v1` object a reader must report for this set.
    pub fn expect(&self) -> Value {
        let entries: Vec<(Option<&[u8]>, &[u8])> = self
            .entries
            .iter()
            .map(|(k, v)| (k.as_deref(), v.as_slice()))
            .collect();
        v1_expect(&entries)
    }

    /// Builds the in-memory label set.
    pub fn build(&self) -> LabelSet {
        let mut bytes: Vec<Box<[u8]>> = Vec::new();
        let mut storage: Vec<RawLabel> =
            Vec::with_capacity(self.entries.len() + self.spare_capacity);
        for (key, value) in &self.entries {
            let key = match key {
                Some(key) => {
                    let owned: Box<[u8]> = key.clone().into_boxed_slice();
                    let raw = RawString {
                        len: owned.len(),
                        buf: owned.as_ptr(),
                    };
                    bytes.push(owned);
                    raw
                }
                None => RawString {
                    len: 0,
                    buf: std::ptr::null(),
                },
            };
            let owned: Box<[u8]> = value.clone().into_boxed_slice();
            let value = RawString {
                len: owned.len(),
                buf: owned.as_ptr(),
            };
            bytes.push(owned);
            storage.push(RawLabel { key, value });
        }
        let header = Box::new(RawLabelSet {
            storage: storage.as_ptr(),
            count: storage.len(),
            capacity: storage.capacity(),
        });
        LabelSet {
            header,
            _storage: storage,
            _bytes: bytes,
        }
    }
}

impl LabelSet {
    /// The address to store in `custom_labels_current_set`.
    pub fn as_ptr(&self) -> *mut u8 {
        (&*self.header as *const RawLabelSet).cast_mut().cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_v1_abi() {
        assert_eq!(std::mem::size_of::<RawString>(), 16);
        assert_eq!(std::mem::size_of::<RawLabel>(), 32);
        assert_eq!(std::mem::size_of::<RawLabelSet>(), 24);
    }

    #[test]
    fn built_set_points_at_the_given_bytes() {
        let labels = Labels {
            entries: vec![
                (Some(b"k".to_vec()), b"value".to_vec()),
                (None, b"x".to_vec()),
            ],
            spare_capacity: 3,
        };
        let set = labels.build();
        let header = &*set.header;
        assert_eq!(header.count, 2);
        assert!(header.capacity >= 5);
        // SAFETY: storage holds `count` initialised entries owned by `set`.
        let entries = unsafe { std::slice::from_raw_parts(header.storage, header.count) };
        // SAFETY: each non-NULL buf points to len bytes owned by `set`.
        let key = unsafe { std::slice::from_raw_parts(entries[0].key.buf, entries[0].key.len) };
        assert_eq!(key, b"k");
        assert_eq!(entries[0].value.len, 5);
        assert!(entries[1].key.buf.is_null());
    }
}

//! Builders for fake address spaces (label sets, strings, thread-context records, process-context
//! headers and protobuf payloads laid out in an `ImageMemory`) and `Memory` wrappers that change
//! bytes between reads, to exercise the torn-read and seqlock rules.
//!
//! Every layout here is written from formats.md (sections 1.5, 2.3, 3.2, 3.5), never from the
//! decoders, so the tests check the decoders against the spec.

use std::cell::Cell;

use context_reader::decode::proto::{
    any_value, AnyValueMsg, ArrayValueMsg, KeyValueListMsg, KeyValueMsg, ProcessContextMsg,
    ResourceMsg,
};
use context_reader::memory::{ImageMemory, Memory, MemoryError};
use prost::Message;

/// First address handed out by `ImageBuilder`; nothing is mapped below it.
pub const IMAGE_BASE: u64 = 0x10_0000;
/// Unmapped bytes left after every allocation, so that any overrun hits unmapped memory.
pub const GUARD_GAP: u64 = 0x100;
/// An address that is never mapped by `ImageBuilder`.
pub const UNMAPPED: u64 = 0xdead_0000_0000;

/// One `custom_labels_string_t` (formats.md 1.5): `{len @0, buf @8}`.
#[derive(Debug, Clone)]
pub enum Str {
    /// Bytes placed in the image; `len` = their length, `buf` = their address.
    Bytes(Vec<u8>),
    /// `buf == NULL` with the given `len`.
    Null { len: u64 },
    /// Any `{len, buf}` pair, e.g. a pointer into unmapped memory or a huge length.
    Raw { len: u64, buf: u64 },
}

impl Str {
    pub fn text(s: &str) -> Str {
        Str::Bytes(s.as_bytes().to_vec())
    }
}

/// Lays out objects in an `ImageMemory`, each at a fresh 16-aligned address followed by an
/// unmapped guard gap.
pub struct ImageBuilder {
    pub mem: ImageMemory,
    next: u64,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    pub fn new() -> Self {
        ImageBuilder {
            mem: ImageMemory::new(),
            next: IMAGE_BASE,
        }
    }

    /// Maps `bytes` at a new address and returns it. Empty input still reserves an address
    /// (which then stays unmapped: a zero-length read there must not need memory).
    pub fn alloc(&mut self, bytes: &[u8]) -> u64 {
        let addr = self.next;
        self.mem.insert(addr, bytes.to_vec());
        let end = addr + bytes.len() as u64;
        self.next = end.div_ceil(16) * 16 + GUARD_GAP;
        addr
    }

    /// Maps `bytes` at a caller-chosen address (for layouts that need one, such as a header with
    /// its payload right after it).
    pub fn put(&mut self, addr: u64, bytes: &[u8]) {
        self.mem.insert(addr, bytes.to_vec());
        let end = addr + bytes.len() as u64;
        if end + GUARD_GAP > self.next {
            self.next = end.div_ceil(16) * 16 + GUARD_GAP;
        }
    }

    fn string_words(&mut self, s: &Str) -> (u64, u64) {
        match s {
            Str::Bytes(b) => {
                let buf = self.alloc(b);
                (b.len() as u64, buf)
            }
            Str::Null { len } => (*len, 0),
            Str::Raw { len, buf } => (*len, *buf),
        }
    }

    /// The `custom_labels_label_t` array (32 bytes per entry: key string, value string).
    pub fn label_storage(&mut self, labels: &[(Str, Str)]) -> u64 {
        let mut storage = Vec::with_capacity(labels.len() * 32);
        for (key, value) in labels {
            let (klen, kbuf) = self.string_words(key);
            let (vlen, vbuf) = self.string_words(value);
            for word in [klen, kbuf, vlen, vbuf] {
                storage.extend_from_slice(&word.to_le_bytes());
            }
        }
        self.alloc(&storage)
    }

    /// A v1 `custom_labels_labelset_t` `{storage @0, count @8, capacity @16}` whose count is the
    /// number of labels; returns the address of the set (what `custom_labels_current_set` holds).
    pub fn label_set(&mut self, labels: &[(Str, Str)]) -> u64 {
        let storage = self.label_storage(labels);
        self.label_set_raw(storage, labels.len() as u64, labels.len() as u64)
    }

    pub fn label_set_raw(&mut self, storage: u64, count: u64, capacity: u64) -> u64 {
        self.alloc(&words(&[storage, count, capacity]))
    }

    /// The v0 inline TLS object `{storage @0, count @8}`; returns the slot address.
    pub fn v0_inline(&mut self, labels: &[(Str, Str)]) -> u64 {
        let storage = self.label_storage(labels);
        self.alloc(&words(&[storage, labels.len() as u64]))
    }

    /// An OTEP 4947 record (formats.md 2.3) with the given header fields; `attrs` is the raw
    /// attrs_data that follows the 28-byte header (it may be longer than `attrs_data_size`).
    pub fn otep_record(&mut self, rec: &OtepRecord) -> u64 {
        self.alloc(&rec.bytes())
    }

    /// A draft (R0/R1) record: trace 0-15, span 16-23, root span 24-31, valid 32, count 33.
    pub fn draft_record(&mut self, rec: &DraftRecord) -> u64 {
        self.alloc(&rec.bytes())
    }

    /// A process-context mapping: the 32-byte header (formats.md 3.2) at a fresh address, with
    /// the payload placed in a separate allocation (as the reference writer does). Returns
    /// (mapping start, payload address).
    pub fn process_context(&mut self, header: &CtxHeader, payload: &[u8]) -> (u64, u64) {
        let payload_addr = if payload.is_empty() {
            UNMAPPED
        } else {
            self.alloc(payload)
        };
        let start = self.alloc(&header.bytes(payload_addr));
        (start, payload_addr)
    }

    pub fn build(self) -> ImageMemory {
        self.mem
    }
}

pub fn words(ws: &[u64]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// One packed thread-context entry: key_index, length, value bytes.
pub fn entry(key_index: u8, value: &[u8]) -> Vec<u8> {
    assert!(value.len() <= 255, "an entry value is at most 255 bytes");
    let mut e = vec![key_index, value.len() as u8];
    e.extend_from_slice(value);
    e
}

pub fn entries(list: &[(u8, &[u8])]) -> Vec<u8> {
    list.iter().flat_map(|(i, v)| entry(*i, v)).collect()
}

#[derive(Debug, Clone)]
pub struct OtepRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub valid: u8,
    pub trace_flags: u8,
    /// `None`: the length of `attrs`.
    pub attrs_data_size: Option<u16>,
    pub attrs: Vec<u8>,
}

impl OtepRecord {
    pub fn new(attrs: Vec<u8>) -> Self {
        OtepRecord {
            trace_id: W3C_TRACE_ID,
            span_id: W3C_SPAN_ID,
            valid: 1,
            trace_flags: 1,
            attrs_data_size: None,
            attrs,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let size = self.attrs_data_size.unwrap_or(self.attrs.len() as u16);
        let mut b = Vec::with_capacity(28 + self.attrs.len());
        b.extend_from_slice(&self.trace_id);
        b.extend_from_slice(&self.span_id);
        b.push(self.valid);
        b.push(self.trace_flags);
        b.extend_from_slice(&size.to_le_bytes());
        assert_eq!(b.len(), 28);
        b.extend_from_slice(&self.attrs);
        b
    }
}

#[derive(Debug, Clone)]
pub struct DraftRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub root_span_id: [u8; 8],
    pub valid: u8,
    /// `None`: the number of entries in `attrs` is not known here, so it must be given.
    pub attrs_count: u8,
    pub attrs: Vec<u8>,
}

impl DraftRecord {
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(34 + self.attrs.len());
        b.extend_from_slice(&self.trace_id);
        b.extend_from_slice(&self.span_id);
        b.extend_from_slice(&self.root_span_id);
        b.push(self.valid);
        b.push(self.attrs_count);
        assert_eq!(b.len(), 34);
        b.extend_from_slice(&self.attrs);
        b
    }
}

/// The W3C traceparent example ids (also the ones in conformance.md section 3).
pub const W3C_TRACE_ID: [u8; 16] = [
    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
];
pub const W3C_TRACE_ID_HEX: &str = "0af7651916cd43dd8448eb211c80319c";
pub const W3C_SPAN_ID: [u8; 8] = [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];
pub const W3C_SPAN_ID_HEX: &str = "b7ad6b7169203331";

/// The 32-byte OTEP 4719 header: signature @0, version @8, payload_size @12,
/// monotonic_published_at_ns @16, payload @24.
#[derive(Debug, Clone)]
pub struct CtxHeader {
    pub signature: [u8; 8],
    pub version: u32,
    /// `None`: the payload's length.
    pub payload_size: Option<u32>,
    pub published_at_ns: u64,
    /// `None`: where the builder placed the payload.
    pub payload_addr: Option<u64>,
    /// Length of the payload, used when `payload_size` is `None`.
    pub payload_len: u32,
}

impl CtxHeader {
    pub fn for_payload(payload: &[u8], published_at_ns: u64) -> Self {
        CtxHeader {
            signature: *b"OTEL_CTX",
            version: 2,
            payload_size: None,
            published_at_ns,
            payload_addr: None,
            payload_len: payload.len() as u32,
        }
    }

    pub fn bytes(&self, placed_payload: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        b.extend_from_slice(&self.signature);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&self.payload_size.unwrap_or(self.payload_len).to_le_bytes());
        b.extend_from_slice(&self.published_at_ns.to_le_bytes());
        b.extend_from_slice(&self.payload_addr.unwrap_or(placed_payload).to_le_bytes());
        assert_eq!(b.len(), 32);
        b
    }
}

// ---- protobuf payload helpers (messages of formats.md 3.5, encoded with prost) ----

pub fn av(value: any_value::Value) -> AnyValueMsg {
    AnyValueMsg { value: Some(value) }
}

pub fn av_str(s: &str) -> AnyValueMsg {
    av(any_value::Value::StringValue(s.as_bytes().to_vec()))
}

pub fn av_int(i: i64) -> AnyValueMsg {
    av(any_value::Value::IntValue(i))
}

pub fn av_array(values: Vec<AnyValueMsg>) -> AnyValueMsg {
    av(any_value::Value::ArrayValue(ArrayValueMsg { values }))
}

pub fn av_kvlist(values: Vec<KeyValueMsg>) -> AnyValueMsg {
    av(any_value::Value::KvlistValue(KeyValueListMsg { values }))
}

pub fn kv(key: &str, value: AnyValueMsg) -> KeyValueMsg {
    KeyValueMsg {
        key: key.as_bytes().to_vec(),
        value: Some(value),
    }
}

pub fn kv_str(key: &str, value: &str) -> KeyValueMsg {
    kv(key, av_str(value))
}

/// `threadlocal.attribute_key_map` in the R2+ form: an array of strings.
pub fn key_map_array(names: &[&str]) -> KeyValueMsg {
    kv(
        "threadlocal.attribute_key_map",
        av_array(names.iter().map(|n| av_str(n)).collect()),
    )
}

/// A `ProcessContext{resource = 1, attributes = 2}` payload.
pub fn process_context_payload(
    resource: Vec<KeyValueMsg>,
    attributes: Vec<KeyValueMsg>,
) -> Vec<u8> {
    ProcessContextMsg {
        resource: Some(ResourceMsg {
            attributes: resource,
            dropped_attributes_count: 0,
        }),
        attributes,
    }
    .encode_to_vec()
}

/// A bare `Resource` payload (writers before 2026-02-18).
pub fn bare_resource_payload(resource: Vec<KeyValueMsg>) -> Vec<u8> {
    ResourceMsg {
        attributes: resource,
        dropped_attributes_count: 0,
    }
    .encode_to_vec()
}

/// Protobuf LEN field: tag, varint length, bytes.
pub fn pb_len(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(field << 3 | 2));
    out.extend(varint(bytes.len() as u64));
    out.extend_from_slice(bytes);
    out
}

/// Protobuf VARINT field.
pub fn pb_varint(field: u32, value: u64) -> Vec<u8> {
    let mut out = varint(u64::from(field << 3));
    out.extend(varint(value));
    out
}

/// Protobuf I64 field.
pub fn pb_i64(field: u32, value: u64) -> Vec<u8> {
    let mut out = varint(u64::from(field << 3 | 1));
    out.extend_from_slice(&value.to_le_bytes());
    out
}

pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

// ---- Memory wrappers ----

/// Counts reads and remembers the largest one, to prove that decoders bound every length.
pub struct CountingMemory<M> {
    pub inner: M,
    pub reads: Cell<u64>,
    pub largest_read: Cell<usize>,
}

impl<M: Memory> CountingMemory<M> {
    pub fn new(inner: M) -> Self {
        CountingMemory {
            inner,
            reads: Cell::new(0),
            largest_read: Cell::new(0),
        }
    }
}

impl<M: Memory> Memory for CountingMemory<M> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.reads.set(self.reads.get() + 1);
        self.largest_read
            .set(self.largest_read.get().max(buf.len()));
        self.inner.read(addr, buf)
    }
}

/// Overwrites one byte at `addr` with `new_value` in every read that covers it, starting with
/// the `from_read`-th such read (1-based): models a writer that clears `valid` while the reader
/// copies the record.
pub struct ByteFlipMemory<M> {
    pub inner: M,
    pub addr: u64,
    pub new_value: u8,
    pub from_read: u32,
    pub covering_reads: Cell<u32>,
}

impl<M: Memory> ByteFlipMemory<M> {
    pub fn new(inner: M, addr: u64, new_value: u8, from_read: u32) -> Self {
        ByteFlipMemory {
            inner,
            addr,
            new_value,
            from_read,
            covering_reads: Cell::new(0),
        }
    }
}

impl<M: Memory> Memory for ByteFlipMemory<M> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inner.read(addr, buf)?;
        let end = addr + buf.len() as u64;
        if (addr..end).contains(&self.addr) {
            let n = self.covering_reads.get() + 1;
            self.covering_reads.set(n);
            if n >= self.from_read {
                buf[(self.addr - addr) as usize] = self.new_value;
            }
        }
        Ok(())
    }
}

/// A process-context header whose timestamp (8 bytes at `ts_addr`) is `base + k` on the k-th read
/// that touches it (0-based), for the first `changes` reads, then stays at `base + changes`: models
/// a writer that publishes `changes` times while the reader is reading. With `base == 0` and
/// `zero_reads`, the first `zero_reads` reads see 0 (update in progress) instead.
pub struct TimestampMemory<M> {
    pub inner: M,
    pub ts_addr: u64,
    pub base: u64,
    pub changes: u64,
    pub zero_reads: u64,
    pub touches: Cell<u64>,
}

impl<M: Memory> TimestampMemory<M> {
    pub fn changing(inner: M, ts_addr: u64, base: u64, changes: u64) -> Self {
        TimestampMemory {
            inner,
            ts_addr,
            base,
            changes,
            zero_reads: 0,
            touches: Cell::new(0),
        }
    }

    /// Timestamp reads 0 for the first `zero_reads` touches, then `base` for ever.
    pub fn zero_then(inner: M, ts_addr: u64, zero_reads: u64, base: u64) -> Self {
        TimestampMemory {
            inner,
            ts_addr,
            base,
            changes: 0,
            zero_reads,
            touches: Cell::new(0),
        }
    }

    fn value_for(&self, touch: u64) -> u64 {
        if touch < self.zero_reads {
            0
        } else {
            self.base + touch.min(self.changes)
        }
    }
}

impl<M: Memory> Memory for TimestampMemory<M> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inner.read(addr, buf)?;
        let end = addr + buf.len() as u64;
        let (ts_start, ts_end) = (self.ts_addr, self.ts_addr + 8);
        if addr < ts_end && ts_start < end {
            let touch = self.touches.get();
            self.touches.set(touch + 1);
            let ts = self.value_for(touch).to_le_bytes();
            for (i, b) in ts.iter().enumerate() {
                let a = ts_start + i as u64;
                if (addr..end).contains(&a) {
                    buf[(a - addr) as usize] = *b;
                }
            }
        }
        Ok(())
    }
}

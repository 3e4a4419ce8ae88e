//! One sampled thread as the kernel saw it: thread pointer, flags and the bytes of every read it did.

use crate::layout::*;

/// Why a ring-buffer record could not be decoded (only a kernel/user layout mismatch does this).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error(
        "sample record of {len} bytes is shorter than its {CR_SAMPLE_HEADER_SIZE}-byte header"
    )]
    ShortHeader { len: usize },
    #[error("sample record declares {data_len} chunk bytes but carries {available}")]
    DataLength { data_len: u64, available: usize },
    #[error("chunk {index} at record offset {offset} runs past the end of the record")]
    ChunkOverrun { index: u32, offset: usize },
    #[error("chunk {index} has length {len}, over the kernel bound {CR_MAX_READ}")]
    ChunkTooLong { index: u32, len: u32 },
}

/// Flags of one format (v1 or v2) in a sample. A set `*_unreadable` bit means the kernel's read
/// of that object failed, and there is no chunk for it (the decoder then reports `unreadable`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatFlags(pub u16);

impl FormatFlags {
    fn has(self, bit: u64) -> bool {
        u64::from(self.0) & bit != 0
    }
    /// A DTV read (pointer at TP, DTV length or DTV entry) failed.
    pub fn dtv_unreadable(self) -> bool {
        self.has(CR_FMT_DTV_UNREADABLE)
    }
    /// The thread's DTV is shorter than the module id (no block for this thread: no context).
    pub fn dtv_short(self) -> bool {
        self.has(CR_FMT_DTV_SHORT)
    }
    /// The DTV entry was 0 or -1: the TLS block is not allocated (no context, not an error).
    pub fn tls_unallocated(self) -> bool {
        self.has(CR_FMT_TLS_UNALLOCATED)
    }
    /// The 8-byte slot read failed.
    pub fn slot_unreadable(self) -> bool {
        self.has(CR_FMT_SLOT_UNREADABLE)
    }
    /// The v1 24-byte label set or the v2 28-byte header read failed.
    pub fn record_unreadable(self) -> bool {
        self.has(CR_FMT_RECORD_UNREADABLE)
    }
    /// The v1 label array or the v2 attribute bytes read failed.
    pub fn array_unreadable(self) -> bool {
        self.has(CR_FMT_ARRAY_UNREADABLE)
    }
    /// Some v1 key or value read failed.
    pub fn string_unreadable(self) -> bool {
        self.has(CR_FMT_STRING_UNREADABLE)
    }
    /// Over the kernel bounds: v1 `count > 32` (storage not copied) or a key/value longer than
    /// 256 bytes (that string not copied); v2 `attrs_data_size > 1024` (first 1024 bytes copied).
    pub fn too_large(self) -> bool {
        self.has(CR_FMT_TOO_LARGE)
    }
    /// v2: the `valid` byte read after the copy differs from the one read before.
    pub fn torn(self) -> bool {
        self.has(CR_FMT_TORN)
    }
    /// v2: the re-read of the `valid` byte failed.
    pub fn reread_unreadable(self) -> bool {
        self.has(CR_FMT_REREAD_UNREADABLE)
    }
    /// The sample's chunk area was full; reads after that point were skipped.
    pub fn buffer_full(self) -> bool {
        self.has(CR_FMT_BUFFER_FULL)
    }
    /// No bit set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// All flags of a sample, as the kernel set them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleFlags(pub u64);

impl SampleFlags {
    /// custom-labels v1 flags.
    pub fn v1(self) -> FormatFlags {
        FormatFlags((self.0 >> CR_FLAG_V1_SHIFT) as u16)
    }
    /// OTEP 4947 flags.
    pub fn v2(self) -> FormatFlags {
        FormatFlags((self.0 >> CR_FLAG_V2_SHIFT) as u16)
    }
    /// The task's saved thread pointer could not be read (nothing else was read).
    pub fn tp_unreadable(self) -> bool {
        self.0 & CR_FLAG_TP_UNREADABLE != 0
    }
    /// The task's saved thread pointer was 0 (nothing else was read).
    pub fn tp_zero(self) -> bool {
        self.0 & CR_FLAG_TP_ZERO != 0
    }
    /// Shorthand for `v2().torn()`.
    pub fn torn(self) -> bool {
        self.v2().torn()
    }
}

/// One sample of one thread of a watched process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub tid: u32,
    pub tgid: u32,
    /// The thread pointer the kernel used (x86-64 `thread.fsbase`, arm64 `thread.uw.tp_value`).
    pub tp: u64,
    pub flags: SampleFlags,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the sample was taken.
    pub ktime_ns: u64,
    pub cpu: u32,
    /// Every successful user-memory read, in the order done: (address, bytes).
    pub chunks: Vec<(u64, Vec<u8>)>,
}

impl Sample {
    /// Copies `buf.len()` bytes at `addr` out of the first chunk that holds the whole range.
    /// Returns false when no single chunk does (the kernel did not read those bytes). The first
    /// chunk wins where chunks overlap: for v2 that is the header as read before the attribute
    /// copy (the later re-read of `valid` only feeds the `torn` flag).
    /// An empty `buf` always succeeds, like a 0-byte `process_vm_readv` (v1 empty strings).
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        if buf.is_empty() {
            return true;
        }
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        for (start, bytes) in &self.chunks {
            let chunk_end = start.saturating_add(bytes.len() as u64);
            if *start <= addr && end <= chunk_end {
                let from = (addr - start) as usize;
                buf.copy_from_slice(&bytes[from..from + buf.len()]);
                return true;
            }
        }
        false
    }

    /// Decodes one ring-buffer record (a `cr_sample_header` followed by its chunks).
    pub fn parse(record: &[u8]) -> Result<Sample, RecordError> {
        let header_len = CR_SAMPLE_HEADER_SIZE as usize;
        if record.len() < header_len {
            return Err(RecordError::ShortHeader { len: record.len() });
        }
        let u32_at =
            |off: usize| u32::from_ne_bytes(record[off..off + 4].try_into().expect("4 bytes"));
        let u64_at =
            |off: usize| u64::from_ne_bytes(record[off..off + 8].try_into().expect("8 bytes"));
        let header = RawSampleHeader {
            tid: u32_at(0),
            tgid: u32_at(4),
            tp: u64_at(8),
            flags: u64_at(16),
            ktime_ns: u64_at(24),
            cpu: u32_at(32),
            chunk_count: u32_at(36),
            data_len: u32_at(40),
            reserved: u32_at(44),
        };
        let data_end = header_len + header.data_len as usize;
        if data_end > record.len() {
            return Err(RecordError::DataLength {
                data_len: u64::from(header.data_len),
                available: record.len() - header_len,
            });
        }
        let mut chunks = Vec::with_capacity(header.chunk_count.min(1024) as usize);
        let mut offset = header_len;
        for index in 0..header.chunk_count {
            let chunk_header_end = offset + CR_CHUNK_HEADER_SIZE as usize;
            if chunk_header_end > data_end {
                return Err(RecordError::ChunkOverrun { index, offset });
            }
            let addr = u64_at(offset);
            let len = u32_at(offset + 8);
            if u64::from(len) > CR_MAX_READ {
                return Err(RecordError::ChunkTooLong { index, len });
            }
            let bytes_end = chunk_header_end + len as usize;
            if bytes_end > data_end {
                return Err(RecordError::ChunkOverrun { index, offset });
            }
            chunks.push((addr, record[chunk_header_end..bytes_end].to_vec()));
            offset = chunk_header_end + (len as usize).div_ceil(8) * 8;
        }
        Ok(Sample {
            tid: header.tid,
            tgid: header.tgid,
            tp: header.tp,
            flags: SampleFlags(header.flags),
            ktime_ns: header.ktime_ns,
            cpu: header.cpu,
            chunks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(chunks: &[(u64, &[u8])], flags: u64) -> Vec<u8> {
        let mut data = Vec::new();
        for (addr, bytes) in chunks {
            data.extend_from_slice(&addr.to_ne_bytes());
            data.extend_from_slice(&(bytes.len() as u32).to_ne_bytes());
            data.extend_from_slice(&0u32.to_ne_bytes());
            data.extend_from_slice(bytes);
            data.resize(data.len().div_ceil(8) * 8, 0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&77u32.to_ne_bytes());
        out.extend_from_slice(&70u32.to_ne_bytes());
        out.extend_from_slice(&0x7f00_0000_1000u64.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&123u64.to_ne_bytes());
        out.extend_from_slice(&1u32.to_ne_bytes());
        out.extend_from_slice(&(chunks.len() as u32).to_ne_bytes());
        out.extend_from_slice(&(data.len() as u32).to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn parses_header_and_padded_chunks() {
        let rec = record(
            &[(0x1000, &[1, 2, 3]), (0x2000, &[9; 8]), (0x1001, b"x")],
            0x100 << 16,
        );
        let sample = Sample::parse(&rec).unwrap();
        assert_eq!(
            (sample.tid, sample.tgid, sample.tp, sample.cpu),
            (77, 70, 0x7f00_0000_1000, 1)
        );
        assert_eq!(
            sample.chunks,
            vec![
                (0x1000, vec![1, 2, 3]),
                (0x2000, vec![9; 8]),
                (0x1001, b"x".to_vec())
            ]
        );
        assert!(sample.flags.torn());
        assert!(sample.flags.v1().is_empty());
    }

    #[test]
    fn read_uses_first_covering_chunk() {
        let rec = record(&[(0x1000, &[1, 2, 3]), (0x1001, &[7])], 0);
        let sample = Sample::parse(&rec).unwrap();
        let mut two = [0u8; 2];
        assert!(sample.read(0x1001, &mut two));
        assert_eq!(two, [2, 3]);
        let mut one = [0u8; 1];
        assert!(sample.read(0x1001, &mut one));
        assert_eq!(one, [2]);
        assert!(!sample.read(0x1002, &mut two), "range past the chunk end");
        assert!(!sample.read(u64::MAX, &mut two), "overflowing range");
        let mut none = [0u8; 0];
        assert!(
            sample.read(0x9999, &mut none),
            "an empty read needs no chunk"
        );
    }

    #[test]
    fn rejects_truncated_records() {
        let rec = record(&[(0x1000, &[1, 2, 3])], 0);
        assert_eq!(
            Sample::parse(&rec[..20]),
            Err(RecordError::ShortHeader { len: 20 })
        );
        assert!(matches!(
            Sample::parse(&rec[..rec.len() - 1]),
            Err(RecordError::DataLength { .. })
        ));
        let mut lying = rec.clone();
        lying[36..40].copy_from_slice(&2u32.to_ne_bytes());
        assert!(matches!(
            Sample::parse(&lying),
            Err(RecordError::ChunkOverrun { index: 1, .. })
        ));
    }
}

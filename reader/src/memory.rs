//! The `Memory` trait every decoder reads through, and `ImageMemory`, an in-memory address space
//! used by byte-fixture tests and by the eBPF backend (whose samples are copied bytes).

use std::collections::BTreeMap;

/// A failed read of `len` bytes at `addr` in some address space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {len} bytes at {addr:#x}: {reason}")]
pub struct MemoryError {
    pub addr: u64,
    pub len: usize,
    pub reason: String,
}

impl MemoryError {
    pub fn new(addr: u64, len: usize, reason: impl Into<String>) -> Self {
        MemoryError {
            addr,
            len,
            reason: reason.into(),
        }
    }
}

/// An address space that can be read: a live process, a fixture image, a set of sampled buffers.
///
/// A read either fills the whole buffer or fails; a short read is an error (pitfall 25).
/// A read whose range would pass `u64::MAX` fails: after a successful read of `len` bytes at
/// `addr`, `addr + len` does not overflow.
pub trait Memory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    /// Reads several ranges at once; entry `i` of the result says whether `reqs[i]` was filled.
    /// A failed range leaves the others unaffected. Live processes do this in one system call
    /// (one dependency level of a thread's records); the default reads one range at a time.
    fn read_many(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), MemoryError>> {
        reqs.iter_mut()
            .map(|(addr, buf)| self.read(*addr, buf))
            .collect()
    }

    /// A read that must see the address space as it is now, not a copy made earlier in the same
    /// pass (the `valid` re-check of thread records). Only `Prefetched` tells the two apart.
    fn read_again(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.read(addr, buf)
    }

    /// Reads at least `min` bytes at `addr` and as many more of `buf` as the address space
    /// gives in the same read; returns how many were filled. The default reads exactly `min`;
    /// a live process fills up to the first unreadable page in one system call.
    fn read_upto(&self, addr: u64, buf: &mut [u8], min: usize) -> Result<usize, MemoryError> {
        let min = min.min(buf.len());
        self.read(addr, &mut buf[..min]).map(|()| min)
    }

    fn read_u8(&self, addr: u64) -> Result<u8, MemoryError> {
        let mut b = [0u8; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }
    fn read_u16(&self, addr: u64) -> Result<u16, MemoryError> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn read_u32(&self, addr: u64) -> Result<u32, MemoryError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_u64(&self, addr: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads `len` bytes into a new vector. Callers bound `len` before calling.
    fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }
}

impl<M: Memory + ?Sized> Memory for &M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(addr, buf)
    }
    fn read_many(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), MemoryError>> {
        (**self).read_many(reqs)
    }
    fn read_upto(&self, addr: u64, buf: &mut [u8], min: usize) -> Result<usize, MemoryError> {
        (**self).read_upto(addr, buf, min)
    }
    fn read_again(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read_again(addr, buf)
    }
}

/// Another address space with some ranges copied ahead in one batched read, so that the
/// decoders of several formats share one system call per dependency level. Reads inside a copied
/// range are served from the copy; everything else, and every `read_again`, goes to `inner`.
pub struct Prefetched<'a> {
    inner: &'a dyn Memory,
    copies: Vec<(u64, Vec<u8>)>,
}

impl<'a> Prefetched<'a> {
    pub fn new(inner: &'a dyn Memory) -> Self {
        Prefetched {
            inner,
            copies: Vec::new(),
        }
    }

    /// Copies the `(addr, len)` ranges with one `read_many`; ranges that cannot be read are
    /// left to the decoders, which then read (and report) them themselves.
    pub fn fetch(&mut self, ranges: &[(u64, usize)]) {
        let mut bufs: Vec<Vec<u8>> = ranges.iter().map(|(_, len)| vec![0u8; *len]).collect();
        let results = {
            let mut reqs: Vec<(u64, &mut [u8])> = ranges
                .iter()
                .zip(bufs.iter_mut())
                .map(|((addr, _), buf)| (*addr, buf.as_mut_slice()))
                .collect();
            self.inner.read_many(&mut reqs)
        };
        for ((addr, _), (buf, r)) in ranges.iter().zip(bufs.into_iter().zip(results)) {
            if r.is_ok() {
                self.copies.push((*addr, buf));
            }
        }
    }

    /// The copied bytes from `addr` to the end of the copy holding it, if at least `len` long.
    fn copied(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.copies.iter().find_map(|(start, bytes)| {
            let off = usize::try_from(addr.checked_sub(*start)?).ok()?;
            (off.checked_add(len)? <= bytes.len()).then(|| &bytes[off..])
        })
    }
}

impl Memory for Prefetched<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        match self.copied(addr, buf.len()) {
            Some(bytes) => {
                buf.copy_from_slice(&bytes[..buf.len()]);
                Ok(())
            }
            None => self.inner.read(addr, buf),
        }
    }
    fn read_many(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), MemoryError>> {
        // Copies first; the rest in one batch of the inner memory.
        let mut results: Vec<Option<Result<(), MemoryError>>> = reqs
            .iter_mut()
            .map(|(a, b)| {
                let bytes = self.copied(*a, b.len())?;
                b.copy_from_slice(&bytes[..b.len()]);
                Some(Ok(()))
            })
            .collect();
        let mut rest: Vec<(u64, &mut [u8])> = reqs
            .iter_mut()
            .zip(&results)
            .filter(|(_, r)| r.is_none())
            .map(|((a, b), _)| (*a, &mut **b))
            .collect();
        let mut inner = self.inner.read_many(&mut rest).into_iter();
        for r in results.iter_mut().filter(|r| r.is_none()) {
            *r = inner.next();
        }
        results
            .into_iter()
            .map(|r| r.expect("one inner result per uncopied range"))
            .collect()
    }
    fn read_upto(&self, addr: u64, buf: &mut [u8], min: usize) -> Result<usize, MemoryError> {
        match self.copied(addr, min.min(buf.len())) {
            Some(bytes) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                Ok(n)
            }
            None => self.inner.read_upto(addr, buf, min),
        }
    }
    fn read_again(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inner.read_again(addr, buf)
    }
}

/// A sparse address space made of byte regions. Reads must fall inside one region or a run of
/// adjacent ones; anything else is unmapped.
#[derive(Debug, Clone, Default)]
pub struct ImageMemory {
    regions: BTreeMap<u64, Vec<u8>>,
}

impl ImageMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `bytes` at `addr`, replacing whatever overlapping bytes were there before.
    ///
    /// # Panics
    /// If the region would reach past the last address (`addr + len > u64::MAX`): such an
    /// image cannot be addressed, so it is a bug in the test that builds it.
    pub fn insert(&mut self, addr: u64, bytes: impl Into<Vec<u8>>) -> &mut Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return self;
        }
        assert!(
            addr.checked_add(bytes.len() as u64).is_some(),
            "region at {addr:#x} ends past u64::MAX"
        );
        // Overlay on existing content so later inserts win byte by byte.
        let end = addr.saturating_add(bytes.len() as u64);
        let mut merged_start = addr;
        let mut merged_end = end;
        let overlapping: Vec<u64> = self
            .regions
            .range(..end)
            .filter(|(s, v)| s.saturating_add(v.len() as u64) >= addr)
            .map(|(s, _)| *s)
            .collect();
        for s in &overlapping {
            let v = &self.regions[s];
            merged_start = merged_start.min(*s);
            merged_end = merged_end.max(s + v.len() as u64);
        }
        let mut merged = vec![0u8; (merged_end - merged_start) as usize];
        for s in overlapping {
            let v = self.regions.remove(&s).expect("listed above");
            let off = (s - merged_start) as usize;
            merged[off..off + v.len()].copy_from_slice(&v);
        }
        let off = (addr - merged_start) as usize;
        merged[off..off + bytes.len()].copy_from_slice(&bytes);
        self.regions.insert(merged_start, merged);
        self
    }
}

impl Memory for ImageMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        if buf.is_empty() {
            return Ok(());
        }
        let fail = || MemoryError::new(addr, buf.len(), "unmapped");
        let end = addr.checked_add(buf.len() as u64).ok_or_else(fail)?;
        // Regions are merged on insert, so one region must cover the whole read.
        let (start, bytes) = self.regions.range(..=addr).next_back().ok_or_else(fail)?;
        let region_end = start + bytes.len() as u64;
        if end > region_end {
            return Err(fail());
        }
        let off = (addr - start) as usize;
        buf.copy_from_slice(&bytes[off..off + buf.len()]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_across_merged_regions() {
        let mut m = ImageMemory::new();
        m.insert(0x1000, vec![1, 2, 3, 4])
            .insert(0x1004, vec![5, 6]);
        let mut b = [0u8; 6];
        m.read(0x1000, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4, 5, 6]);
        assert!(m.read(0x1003, &mut [0u8; 4]).is_err());
        assert!(m.read(0xfff, &mut [0u8; 1]).is_err());
        assert!(m.read(u64::MAX, &mut [0u8; 2]).is_err());
    }

    #[test]
    fn read_many_reports_each_range() {
        let mut m = ImageMemory::new();
        m.insert(0x1000, vec![1, 2, 3, 4]);
        let (mut a, mut b, mut c) = ([0u8; 2], [0u8; 8], [0u8; 0]);
        let results = m.read_many(&mut [(0x1002, &mut a), (0x1000, &mut b), (0x9000, &mut c)]);
        assert_eq!(a, [3, 4]);
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().addr, 0x1000);
        assert!(results[2].is_ok(), "an empty range is always readable");
    }

    #[test]
    fn prefetched_serves_copies_and_rereads_live() {
        let mut m = ImageMemory::new();
        m.insert(0x1000, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let mut p = Prefetched::new(&m);
        p.fetch(&[(0x1000, 4), (0x5000, 4)]);
        let mut b = [0u8; 2];
        p.read(0x1001, &mut b).unwrap();
        assert_eq!(b, [2, 3]);
        // Past the copy: the inner memory answers.
        let mut c = [0u8; 4];
        p.read(0x1003, &mut c).unwrap();
        assert_eq!(c, [4, 5, 6, 7]);
        // read_upto gives what the copy holds from there on.
        let mut d = [0u8; 8];
        assert_eq!(p.read_upto(0x1002, &mut d, 1).unwrap(), 2);
        assert!(
            p.read(0x5000, &mut b).is_err(),
            "unreadable ranges are not copied"
        );
        // A live re-read is not served from the copy.
        m.insert(0x1000, vec![9]);
        let p2 = {
            let mut p2 = Prefetched::new(&m);
            p2.copies.push((0x1000, vec![1]));
            p2
        };
        let mut v = [0u8; 1];
        p2.read(0x1000, &mut v).unwrap();
        assert_eq!(v, [1]);
        p2.read_again(0x1000, &mut v).unwrap();
        assert_eq!(v, [9]);
    }

    #[test]
    fn later_insert_overwrites() {
        let mut m = ImageMemory::new();
        m.insert(0x10, vec![0; 8]).insert(0x12, vec![9, 9]);
        assert_eq!(m.read_vec(0x10, 8).unwrap(), vec![0, 0, 9, 9, 0, 0, 0, 0]);
    }
}

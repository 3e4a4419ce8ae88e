//! The ground vocabulary that discovery, plans and backends share: architecture, libc, the
//! `PT_TLS` segment and the DTV layout. Plain data with no I/O; everything else stands on it, and
//! it stands on nothing of this crate.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    Glibc,
    Musl,
}

/// The `PT_TLS` program header: the module's TLS initialisation image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TlsSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub filesz: u64,
    /// `p_align`, with 0 read as 1.
    pub align: u64,
}

/// Where the DTV is and how it is laid out, for one libc on one arch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DtvLayout {
    /// The DTV pointer is read at `TP + pointer_offset`.
    pub pointer_offset: i64,
    /// Bytes per DTV entry: 16 on glibc (`dtv_t` union), 8 on musl.
    pub entry_size: u64,
    /// glibc keeps the slot count in `dtv[-1].counter`; musl in `dtv[0]`.
    pub glibc_counter: bool,
}

impl DtvLayout {
    /// Address of the word that holds the DTV length, given the DTV pointer.
    pub fn counter_addr(&self, dtv: u64) -> u64 {
        if self.glibc_counter {
            dtv.wrapping_sub(16)
        } else {
            dtv
        }
    }

    /// Address of the block pointer of `module_id`.
    pub fn entry_addr(&self, dtv: u64, module_id: u64) -> u64 {
        dtv.wrapping_add(module_id.wrapping_mul(self.entry_size))
    }
}

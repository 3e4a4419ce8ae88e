//! The ground vocabulary that discovery, plans and backends share: architecture, libc, the
//! `PT_TLS` segment and the DTV layout (the last from `context-layout`, which the eBPF sampler
//! shares). Plain data with no I/O; everything else stands on it, and it stands on nothing of this
//! crate.

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

pub use context_layout::DtvLayout;

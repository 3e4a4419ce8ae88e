//! The read plan: everything discovery learnt about a process, as plain serialisable data.
//! Backends only execute plans; they never look at ELF files or maps.

use serde::Serialize;

use crate::abi::{Arch, Libc};
use crate::decode::thread_ctx::RecordLayout;

/// How to turn a thread pointer into the address of a TLS slot, and what a v1 slot holds: the
/// vocabulary the eBPF sampler's rules are made of too.
pub use context_layout::{SlotRule, V1Layout};

/// Which access model the slot was resolved through, for `--verbose` and the ELF lint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Static offset computed from the executable's `PT_TLS` (local-exec / relaxed initial-exec).
    ExecutableStatic,
    /// An initial-exec GOT slot (`TPOFF64`).
    InitialExecGot,
    /// A static TLSDESC descriptor.
    TlsDescStatic,
    /// A dynamic TLSDESC descriptor pointing at `{module, offset}`.
    TlsDescDynamic,
    /// A traditional general-dynamic `tls_index` (`DTPMOD64` + `DTPOFF64`).
    GeneralDynamic,
    /// A module-id relocation with symbol index 0 plus the symbol's own offset.
    LocalDynamic,
}

/// One TLS variable of one module, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotPlan {
    pub module: String,
    pub symbol: String,
    pub rule: SlotRule,
    pub resolution: Resolution,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct V1Plan {
    pub slot: SlotPlan,
    pub layout: V1Layout,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct V2Plan {
    pub slot: SlotPlan,
    pub layout: RecordLayout,
}

/// A mapping whose name says it may hold a process context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextMapping {
    pub start: u64,
    pub end: u64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadPlan {
    pub pid: i32,
    pub arch: Arch,
    pub libc: Libc,
    /// In lookup order (executable first, then load order); the first is the one reported as `v1`.
    pub v1: Vec<V1Plan>,
    pub v2: Vec<V2Plan>,
    pub context_mappings: Vec<ContextMapping>,
    /// Problems found while resolving (reported as top-level snapshot errors).
    #[serde(skip)]
    pub errors: Vec<crate::snapshot::ReadError>,
}

//! Backends produce per-thread slot contents by executing a `ReadPlan`.

pub mod core;
#[cfg(feature = "ebpf")]
pub mod ebpf;
pub mod procfs;
pub mod ptrace;

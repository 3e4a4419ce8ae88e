//! Backends produce per-thread slot contents by executing a `ReadPlan`.

#[cfg(feature = "ebpf")]
pub mod ebpf;
pub mod procfs;
pub mod ptrace;

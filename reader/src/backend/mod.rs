//! Backends produce per-thread slot contents by executing a `ReadPlan`.

pub mod core;
#[cfg(feature = "ebpf")]
pub mod ebpf;
pub mod ptrace;
#[allow(unsafe_code)] // the crate's one module of raw syscalls
pub mod sys;

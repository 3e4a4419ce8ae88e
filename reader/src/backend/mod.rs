//! Backends produce per-thread slot contents by executing a `ReadPlan`.

#[cfg(feature = "ebpf")]
pub mod ebpf;
pub mod procfs;
pub mod ptrace;
// `super::sys` for the ptrace backend, until it names `crate::sys` itself.
pub(crate) use crate::sys;

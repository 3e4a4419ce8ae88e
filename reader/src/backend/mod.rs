//! Backends produce per-thread slot contents by executing a `ReadPlan`.

pub mod ptrace;
pub mod sys;

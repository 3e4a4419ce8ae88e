//! context-reader: reads, from outside a running process, the context it publishes for profilers.
//!
//! Layers, each usable without the ones above it (see ARCHITECTURE.md):
//! `abi` (arch, libc, TLS segment, DTV layout: the shared vocabulary) -> `memory` + `decode`
//! (pure, over the `Memory` trait) -> `discovery` (maps, ELF, TLS arithmetic)
//! -> `plan` (what to read) -> `read` (executes a plan for one thread over any `Memory`) ->
//! `backend` (ptrace, eBPF) -> `session` (snapshots) -> `certify` (target protocol, comparison
//! with a writer's `expect`) -> `snapshot` + `render`.
//!
//! `unsafe` is denied everywhere but `backend::sys`, the one module of raw syscalls, where each
//! use carries its invariant.
#![deny(unsafe_code)]

pub mod abi;
pub mod backend;
pub mod certify;
pub mod decode;
pub mod discovery;
pub mod memory;
pub mod plan;
pub mod read;
pub mod session;
pub mod snapshot;

pub use session::{take_snapshot, ReaderError, Session, SnapshotOptions, SnapshotStats};
pub use snapshot::{Backend, Snapshot};
pub mod lint;
pub mod render;

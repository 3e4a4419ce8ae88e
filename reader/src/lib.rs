//! context-reader: reads, from outside a running process, the context it publishes for profilers.
//!
//! Layers, lowest first; a module imports only from layers below it (see ARCHITECTURE.md):
//!
//! 1. `abi`: arch, libc, TLS segment, DTV layout (the ground vocabulary, with `context-layout`);
//! 2. `memory`: the `Memory` trait and in-memory address spaces;
//! 3. `sys`: the raw syscalls (process memory, registers, file maps, priority, signals);
//! 4. `snapshot`: the output types, `Backend` and the error bound;
//! 5. `decode`: the format decoders, pure over `Memory`;
//! 6. `plan`: the read plan, plain data;
//! 7. `discovery`: maps, ELF files and TLS arithmetic -> a plan;
//! 8. `read`: executes a plan over any `Memory` (process context, one thread's slots);
//! 9. `backend`: `/proc` task helpers, ptrace and eBPF, each running `read` per thread;
//! 10. `session`: snapshots (plan cache, backend choice);
//! 11. `render`, `lint`: text output; the ELF lint behind `context-reader check`;
//! 12. `certify`: the target protocol, the comparison with a writer's `expect`, trials and reports.
//!
//! `unsafe` is denied everywhere but `sys`, the one module of raw syscalls, where each use
//! carries its invariant.
#![deny(unsafe_code)]

pub mod abi;
pub mod backend;
pub mod certify;
pub mod decode;
pub mod discovery;
pub mod lint;
pub mod memory;
pub mod plan;
pub mod read;
pub mod render;
pub mod session;
pub mod snapshot;
#[allow(unsafe_code)] // the crate's one module of raw syscalls
pub mod sys;

pub use session::{take_snapshot, ReaderError, Session, SnapshotOptions, SnapshotStats};
pub use snapshot::{Backend, Snapshot};

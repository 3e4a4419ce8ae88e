//! context-reader: reads, from outside a running process, the context it publishes for profilers.
//!
//! Layers, each usable without the ones above it (see ARCHITECTURE.md):
//! `memory` + `decode` (pure, over the `Memory` trait) -> `discovery` (maps, ELF, TLS arithmetic,
//! the read plan) -> `backend` (ptrace, eBPF) -> `snapshot` + `render`.

pub mod memory;
pub mod snapshot;
pub mod decode;
pub mod discovery;
pub mod plan;

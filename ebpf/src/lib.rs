//! eBPF sampling backend: a C CO-RE perf-event program that copies a thread's context records in the kernel, and its aya loader.
//!
//! The program (src/bpf/sampler.bpf.c) runs on software cpu-clock ticks. For a thread of a
//! watched process it reads the thread pointer, computes the custom-labels v1 and OTEP 4947
//! slots from per-process [`SlotRule`]s and copies exactly the ranges the ptrace reader would
//! read, as a list of chunks `(address, bytes)`. User space never chases pointers: it rebuilds
//! an address space from a [`Sample`]'s chunks ([`Sample::read`]) and runs the same decoders as
//! the ptrace backend over it.
//!
//! Invariants: the program's loops are bounded by the `CR_` constants of `src/bpf/sampler.h`
//! (32 labels, 256-byte strings, 1024 attribute bytes, 255 draft entries, 32 KiB of chunks per
//! sample); a read that fails leaves no chunk and sets a flag bit ([`FormatFlags`]); chunks come
//! in the order the reads were done; user space does no reads of the target at all.
//!
//! ```no_run
//! use context_reader_ebpf::{ProcessParams, Sampler, SamplerOptions, SlotRule};
//! let mut sampler = Sampler::load(SamplerOptions::default())?;
//! sampler.watch(1234, &ProcessParams { v2: Some(SlotRule::TpRelative { offset: -8 }), ..Default::default() })?;
//! let samples = sampler.collect(std::time::Duration::from_secs(2), |_| false)?;
//! # Ok::<(), context_reader_ebpf::EbpfError>(())
//! ```
#![deny(unsafe_code)]

pub mod error;
pub mod layout;
mod pod;
pub mod rules;
pub mod sample;
pub mod sampler;
pub mod shared;

pub use error::EbpfError;
pub use layout::{CR_MAX_V1_LABELS, CR_MAX_V1_STRING, CR_MAX_V2_ATTRS};
pub use rules::{DtvLayout, ProcessParams, RecordLayout, SlotRule, V1Layout};
pub use sample::{FormatFlags, RecordError, Sample, SampleFlags};
pub use sampler::{Attachment, Sampler, SamplerOptions, Stats, ThreadAttachment, KERNEL_BTF_PATH};
pub use shared::{SharedSampler, Trigger, Watch};

/// The compiled BPF object for the target architecture (built by build.rs), 8-byte aligned.
pub static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sampler.bpf.o"));

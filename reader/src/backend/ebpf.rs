//! The eBPF backend: the kernel program copies, on each sampled thread, exactly the bytes the
//! decoders read; here they become a `Memory` again and go through `read::read_thread`, so both
//! backends decode alike. Nothing is stopped (except, on aarch64, one TP check per thread).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use context_reader_ebpf::layout::{CR_MAX_V1_LABELS, CR_MAX_V1_STRING, CR_MAX_V2_ATTRS};
use context_reader_ebpf::rules::{
    ProcessParams, SlotRule as KernelRule, V1Layout as KernelV1, V2Layout as KernelV2,
};
use context_reader_ebpf::sample::Sample;
use context_reader_ebpf::sampler::{Sampler, SamplerOptions};
pub use context_reader_ebpf::{error::EbpfError, sampler::Stats as KernelStats};

use super::ptrace::{list_threads, thread_name};
use crate::decode::process_ctx::ThreadKeyMap;
use crate::decode::thread_ctx::RecordLayout;
use crate::decode::v1::V1Limits;
use crate::memory::{Memory, MemoryError};
use crate::plan::{ReadPlan, SlotRule, V1Layout};
use crate::read::{effective_layout, read_thread};
use crate::snapshot::{ErrorKind, Format, ReadError, ThreadSnapshot};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EbpfOptions {
    /// Longest collection window; collection ends earlier once every thread was sampled.
    pub duration: Duration,
    pub frequency_hz: u64,
}

impl Default for EbpfOptions {
    fn default() -> Self {
        EbpfOptions {
            duration: Duration::from_secs(2),
            frequency_hz: 99,
        }
    }
}

/// The bytes one sample copied, as an address space.
struct SampleMemory<'a>(&'a Sample);

impl Memory for SampleMemory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        if self.0.read(addr, buf) {
            Ok(())
        } else {
            Err(MemoryError::new(
                addr,
                buf.len(),
                "not copied by the eBPF program (unreadable or beyond its bounds)",
            ))
        }
    }
}

fn kernel_rule(rule: &SlotRule) -> KernelRule {
    match *rule {
        SlotRule::TpRelative { offset } => KernelRule::TpRelative { offset },
        SlotRule::Dtv {
            dtv,
            module_id,
            offset,
        } => KernelRule::Dtv {
            pointer_offset: dtv.pointer_offset,
            entry_size: dtv.entry_size as u8,
            glibc_counter: dtv.glibc_counter,
            module_id,
            offset,
        },
    }
}

/// The kernel reads one module per format: the one reported as `v1`/`v2`.
fn kernel_params(plan: &ReadPlan, keys: &ThreadKeyMap) -> ProcessParams {
    let mut params = ProcessParams::default();
    if let Some(v1) = plan.v1.first() {
        params.v1 = kernel_rule(&v1.slot.rule);
        params.v1_layout = match v1.layout {
            V1Layout::Pointer => KernelV1::Pointer,
            V1Layout::Inline => KernelV1::Inline,
        };
    }
    if let Some(v2) = plan.v2.first() {
        params.v2 = kernel_rule(&v2.slot.rule);
        params.v2_layout = match effective_layout(v2.layout, keys) {
            RecordLayout::Otep4947 => KernelV2::Otep4947,
            RecordLayout::Draft => KernelV2::Draft,
        };
    }
    params
}

#[derive(Debug, Clone, Default)]
pub struct EbpfStats {
    pub kernel: KernelStats,
    /// Samples dropped because their thread pointer disagreed with ptrace (aarch64, pitfall 24).
    pub stale_tp: u64,
}

/// Samples the threads of `pid` and decodes each thread's latest sample.
pub fn snapshot_threads(
    pid: i32,
    only: Option<&[i32]>,
    plan: &ReadPlan,
    keys: &ThreadKeyMap,
    opts: &EbpfOptions,
) -> Result<(Vec<ThreadSnapshot>, Vec<ReadError>, EbpfStats), EbpfError> {
    // The kernel copies at most this much; the decoder must bound itself the same way so that a
    // larger set is reported as too large rather than as memory the kernel did not copy.
    let limits = V1Limits {
        max_labels: CR_MAX_V1_LABELS,
        max_string_len: CR_MAX_V1_STRING,
    };
    let mut errors = Vec::new();
    if plan.v1.len() > 1 || plan.v2.len() > 1 {
        errors.push(ReadError::new(
            Format::Tls,
            ErrorKind::Unsupported,
            "several modules define a context symbol; the eBPF backend samples only the first (use --backend ptrace for all)",
        ));
    }
    let primary = ReadPlan {
        v1: plan.v1.iter().take(1).cloned().collect(),
        v2: plan.v2.iter().take(1).cloned().collect(),
        ..plan.clone()
    };
    let tids: BTreeSet<i32> = list_threads(pid)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| only.is_none_or(|o| o.contains(t)))
        .collect();
    let expected_tp = expected_thread_pointers(&tids);

    let mut sampler = Sampler::load(SamplerOptions {
        frequency_hz: opts.frequency_hz,
    })?;
    sampler.watch(pid as u32, &kernel_params(&primary, keys))?;
    let mut latest: BTreeMap<i32, Sample> = BTreeMap::new();
    let mut stats = EbpfStats::default();
    let mut remaining = tids.clone();
    sampler.collect(opts.duration, |s| {
        let tid = s.tid as i32;
        if !tids.contains(&tid) {
            return false;
        }
        if expected_tp.get(&tid).is_some_and(|tp| *tp != s.tp) {
            stats.stale_tp += 1;
            return false;
        }
        latest.insert(tid, s.clone());
        remaining.remove(&tid);
        remaining.is_empty()
    })?;
    stats.kernel = sampler.stats()?;
    drop(sampler);

    let threads = tids
        .iter()
        .map(|&tid| {
            let mut thread = ThreadSnapshot::new(tid, thread_name(pid, tid));
            match latest.get(&tid) {
                Some(sample) => {
                    read_thread(
                        &SampleMemory(sample),
                        sample.tp,
                        &primary,
                        keys,
                        &limits,
                        &mut thread,
                    );
                    if sample.flags.v2().too_large() {
                        thread.errors.retain(|e| e.format != Format::V2);
                        thread.errors.push(ReadError::new(
                            Format::V2,
                            ErrorKind::TooLarge,
                            format!(
                                "attrs_data_size exceeds the {CR_MAX_V2_ATTRS} bytes the eBPF program copies"
                            ),
                        ));
                        thread.v2 = None;
                    }
                    if sample.flags.torn() {
                        thread.errors.push(ReadError::new(
                            Format::V2,
                            ErrorKind::Torn,
                            "valid changed while the kernel copied the record",
                        ));
                        thread.v2 = None;
                    }
                }
                None => thread.errors.push(ReadError::new(
                    Format::Tls,
                    ErrorKind::NotSampled,
                    format!(
                        "thread {tid} was not on CPU during the {:.1} s collection window",
                        opts.duration.as_secs_f64()
                    ),
                )),
            }
            thread
        })
        .collect();
    Ok((threads, errors, stats))
}

/// On aarch64 the kernel's saved TP can be stale right after exec (platform.md): learn each
/// thread's real TP once with a brief ptrace stop and drop samples that disagree.
#[cfg(target_arch = "aarch64")]
fn expected_thread_pointers(tids: &BTreeSet<i32>) -> BTreeMap<i32, u64> {
    tids.iter()
        .filter_map(|&tid| {
            let stop = super::ptrace::ThreadStop::seize(tid).ok()?;
            stop.thread_pointer().ok().map(|tp| (tid, tp))
        })
        .collect()
}

#[cfg(not(target_arch = "aarch64"))]
fn expected_thread_pointers(_: &BTreeSet<i32>) -> BTreeMap<i32, u64> {
    BTreeMap::new()
}

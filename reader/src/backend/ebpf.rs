//! The eBPF backend: the kernel program copies, on each sampled thread, exactly the bytes the
//! decoders read; here they become a `Memory` again and go through `read::read_thread`, so both
//! backends decode alike. Nothing is stopped (except, on aarch64, one TP check per thread).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub use context_reader_ebpf::{EbpfError, Stats as KernelStats};
use context_reader_ebpf::{
    ProcessParams, Sample, SharedSampler, Trigger, CR_MAX_V1_LABELS, CR_MAX_V1_STRING,
    CR_MAX_V2_ATTRS,
};

use super::procfs::{list_threads, thread_name};
use crate::decode::process_ctx::ThreadKeyMap;
use crate::decode::v1::V1Limits;
use crate::memory::{Memory, MemoryError};
use crate::plan::ReadPlan;
use crate::read::{effective_layout, read_thread};
use crate::snapshot::{ErrorKind, Format, ReadError, ThreadSnapshot};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EbpfOptions {
    /// Longest collection window; collection ends earlier once every thread was sampled.
    pub duration: Duration,
    /// Samples per second of a thread's own CPU time: each thread gets a task-clock perf event
    /// that fires after every `1 / frequency_hz` s it spends on CPU (1000 Hz: a thread on CPU
    /// for 1 ms of the window is sampled). Also the per-CPU cpu-clock frequency of the fallback
    /// used when threads cannot get their own event (e.g. no file descriptors left).
    pub frequency_hz: u64,
}

impl Default for EbpfOptions {
    fn default() -> Self {
        EbpfOptions {
            duration: Duration::from_secs(2),
            frequency_hz: 1000,
        }
    }
}

/// Loads and verifies the process-wide sampler now, if no snapshot has yet (the first eBPF
/// snapshot does it otherwise). Returns how long the load took, or `None` if it was loaded.
pub fn preload() -> Result<Option<Duration>, EbpfError> {
    if SharedSampler::global_is_loaded() {
        return Ok(None);
    }
    let _realtime = crate::sys::raise_to_realtime();
    SharedSampler::global().map(|shared| Some(shared.load_time()))
}

/// How often the collection loop checks that the process is still there.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(50);

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

/// The kernel reads one module per format: the one reported as `v1`/`v2`. The plan's rules are
/// the kernel's (one vocabulary, `context-layout`): nothing is translated here.
fn kernel_params(plan: &ReadPlan, keys: &ThreadKeyMap) -> ProcessParams {
    let mut params = ProcessParams::default();
    if let Some(v1) = plan.v1.first() {
        params.v1 = Some(v1.slot.rule);
        params.v1_layout = v1.layout;
    }
    if let Some(v2) = plan.v2.first() {
        params.v2 = Some(v2.slot.rule);
        params.v2_layout = effective_layout(v2.layout, keys);
    }
    params
}

#[derive(Debug, Clone)]
pub struct EbpfStats {
    /// The program's kernel counters over this snapshot's window (deltas; with several
    /// concurrent snapshots in one process they include the others' runs). `samples` counts the
    /// samples of this snapshot's process.
    pub kernel: KernelStats,
    /// Samples dropped because their thread pointer disagreed with ptrace (aarch64, pitfall 24).
    pub stale_tp: u64,
    /// Time spent loading and verifying the program, when this snapshot did it (the first
    /// eBPF snapshot of the process; later ones reuse the loaded program).
    pub load_time: Option<Duration>,
    /// Threads that got their own task-clock event.
    pub threads_attached: usize,
    /// Threads that could not (exited first, or out of file descriptors).
    pub threads_unattached: usize,
    /// Whether per-CPU cpu-clock events were added because some threads had no event.
    pub cpu_fallback: bool,
    /// The process exited during the window: the threads sampled before are reported.
    pub process_exited: bool,
    /// Whether the reader's thread ran at real-time priority during the snapshot (the error
    /// otherwise, e.g. "Operation not permitted"); set by `Session::snapshot`, which raises it
    /// for eBPF snapshots (`sys::RealtimeGuard`).
    pub realtime: Result<(), String>,
}

impl Default for EbpfStats {
    fn default() -> Self {
        EbpfStats {
            kernel: KernelStats::default(),
            stale_tp: 0,
            load_time: None,
            threads_attached: 0,
            threads_unattached: 0,
            cpu_fallback: false,
            process_exited: false,
            realtime: Ok(()),
        }
    }
}

fn kernel_delta(before: &KernelStats, after: &KernelStats, samples: u64) -> KernelStats {
    KernelStats {
        samples,
        drops: after.drops.saturating_sub(before.drops),
        run_count: after.run_count.saturating_sub(before.run_count),
        run_time_ns: after.run_time_ns.saturating_sub(before.run_time_ns),
        run_stats_enabled: after.run_stats_enabled,
    }
}

/// Whether `pid` is still running: listed in /proc and not a zombie (a process whose parent
/// has not reaped it yet stays listed, with no threads left to sample).
fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain any byte.
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
    {
        Some(state) => !matches!(state, "Z" | "X" | "x"),
        None => true,
    }
}

/// Samples the threads of `pid` and decodes each thread's latest sample.
///
/// The program is loaded once per process ([`SharedSampler::global`]) and shared by every
/// snapshot, including concurrent ones. If the process exits during the window, the threads
/// sampled before keep their entries, the others get `thread_exited`, a top-level
/// `thread_exited` entry says so, and `EbpfStats::process_exited` is set.
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
    // Names first: they cannot be read once the process is gone.
    let mut names: BTreeMap<i32, _> = tids
        .iter()
        .map(|&tid| (tid, thread_name(pid, tid)))
        .collect();
    let expected_tp = expected_thread_pointers(&tids);

    let mut stats = EbpfStats::default();
    let loaded_before = SharedSampler::global_is_loaded();
    let shared = SharedSampler::global()?;
    if !loaded_before {
        stats.load_time = Some(shared.load_time());
    }
    let frequency_hz = opts.frequency_hz.max(1);
    let trigger = Trigger::Threads {
        tids: tids.iter().map(|&t| t as u32).collect(),
        period: Duration::from_secs(1) / u32::try_from(frequency_hz).unwrap_or(u32::MAX),
        fallback_hz: frequency_hz,
    };
    let before = shared.stats()?;
    let mut watch = shared.watch(pid as u32, &kernel_params(&primary, keys), &trigger)?;
    stats.threads_attached = watch.threads_attached();
    stats.threads_unattached = watch.threads_failed().len();
    stats.cpu_fallback = watch.cpu_fallback();
    // CPU time of each thread when the window opens, to say how long an unsampled one ran.
    let cpu_before: BTreeMap<i32, u64> = tids
        .iter()
        .filter_map(|&tid| Some((tid, thread_cpu_ns(pid, tid)?)))
        .collect();

    let mut latest: BTreeMap<i32, Sample> = BTreeMap::new();
    let mut remaining = tids.clone();
    let mut received = 0u64;
    let deadline = Instant::now() + opts.duration;
    while !remaining.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        watch.collect((deadline - now).min(EXIT_CHECK_INTERVAL), |s| {
            received += 1;
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
        if !process_alive(pid) {
            stats.process_exited = true;
            break;
        }
    }
    drop(watch);
    stats.kernel = kernel_delta(&before, &shared.stats()?, received);

    if stats.process_exited {
        errors.push(ReadError::new(
            Format::Tls,
            ErrorKind::ThreadExited,
            format!(
                "process {pid} exited during the eBPF collection window; threads sampled before are reported"
            ),
        ));
    }
    let threads = tids
        .iter()
        .map(|&tid| {
            let name = names.remove(&tid).unwrap_or_else(|| thread_name(pid, tid));
            let mut thread = ThreadSnapshot::new(tid, name);
            match latest.get(&tid) {
                Some(sample) => decode_sample(sample, &primary, keys, &limits, &mut thread),
                None if stats.process_exited
                    || !std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists() =>
                {
                    thread.errors.push(ReadError::new(
                        Format::Tls,
                        ErrorKind::ThreadExited,
                        format!("thread {tid} exited before it was sampled"),
                    ))
                }
                None => {
                    let ran = match (cpu_before.get(&tid), thread_cpu_ns(pid, tid)) {
                        (Some(before), Some(after)) => format!(
                            "; it was on CPU for {:.1} ms of it",
                            after.saturating_sub(*before) as f64 / 1e6
                        ),
                        _ => String::new(),
                    };
                    thread.errors.push(ReadError::new(
                        Format::Tls,
                        ErrorKind::NotSampled,
                        format!(
                            "thread {tid} was not sampled in the {:.1} s collection window (each thread is sampled after {:.1} ms on CPU){ran}",
                            opts.duration.as_secs_f64(),
                            1e3 / frequency_hz as f64
                        ),
                    ))
                }
            }
            thread
        })
        .collect();
    Ok((threads, errors, stats))
}

fn decode_sample(
    sample: &Sample,
    plan: &ReadPlan,
    keys: &ThreadKeyMap,
    limits: &V1Limits,
    thread: &mut ThreadSnapshot,
) {
    read_thread(&SampleMemory(sample), sample.tp, plan, keys, limits, thread);
    if sample.flags.v2().too_large() {
        thread.errors.retain(|e| e.format != Format::V2);
        thread.errors.push(ReadError::new(
            Format::V2,
            ErrorKind::TooLarge,
            format!("attrs_data_size exceeds the {CR_MAX_V2_ATTRS} bytes the eBPF program copies"),
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

/// The thread's total time on CPU in ns (`/proc/PID/task/TID/schedstat`, first field), if the
/// kernel reports it.
fn thread_cpu_ns(pid: i32, tid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v1::decode_v1_set;
    use crate::snapshot::{Bytes, Label};
    use context_reader_ebpf::sample::SampleFlags;

    fn words(values: &[u64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A v1 sample as the kernel sends it when a set's strings are close together: set, label
    /// array, then ONE chunk spanning every key and value with unrelated bytes between them.
    fn span_sample(span_len: usize) -> Sample {
        let mut span = vec![0xee_u8; span_len];
        for (at, text) in [
            (0x00, &b"abc"[..]),
            (0x08, b"hello"),
            (0x10, b"xy"),
            (0x20, b"k"),
        ] {
            if at + text.len() <= span_len {
                span[at..at + text.len()].copy_from_slice(text);
            }
        }
        Sample {
            tid: 1,
            tgid: 1,
            tp: 0x7000,
            flags: SampleFlags(0),
            ktime_ns: 0,
            cpu: 0,
            chunks: vec![
                (0x1000, words(&[0x2000, 2, 2])),
                (0x2000, words(&[3, 0x3000, 2, 0x3010, 1, 0x3020, 5, 0x3008])),
                (0x3000, span),
            ],
        }
    }

    #[test]
    fn v1_strings_decode_from_inside_one_spanning_chunk() {
        let limits = V1Limits {
            max_labels: CR_MAX_V1_LABELS,
            max_string_len: CR_MAX_V1_STRING,
        };
        let sample = span_sample(0x21);
        let decoded = decode_v1_set(&SampleMemory(&sample), 0x1000, &limits);
        assert_eq!(decoded.errors, vec![]);
        let label = |k: &[u8], v: &[u8]| Label {
            key: Bytes(k.to_vec()),
            value: Bytes(v.to_vec()),
        };
        assert_eq!(
            decoded.value.expect("labels").labels,
            vec![label(b"abc", b"xy"), label(b"k", b"hello")]
        );

        // One byte short: the last key is not wholly inside any chunk, so it is unreadable.
        let short = span_sample(0x20);
        let decoded = decode_v1_set(&SampleMemory(&short), 0x1000, &limits);
        assert_eq!(
            decoded.value.expect("labels").labels,
            vec![label(b"abc", b"xy")]
        );
        assert_eq!(decoded.errors.len(), 1, "{:?}", decoded.errors);
        assert_eq!(decoded.errors[0].kind, ErrorKind::Unreadable);
    }
}

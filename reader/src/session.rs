//! A reading session on one process: keeps the read plan while the maps stay the same and takes
//! snapshots with the chosen backend.

use std::time::{Duration, Instant};

use crate::backend::procfs::{live_task, process_exited};
use crate::backend::ptrace::{walk_threads, Fault, StopStats, ThreadCache, WalkError};
use crate::decode::process_ctx::DEFAULT_MAX_PAYLOAD;
use crate::decode::v1::V1Limits;
use crate::discovery::{self, maps};
use crate::plan::ReadPlan;
use crate::read::{read_process_context, read_thread};
use crate::snapshot::{
    extend_bounded, push_bounded, Backend, ErrorKind, Format, ReadError, Snapshot,
};
use crate::sys::{self, ProcessMemory};

#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    pub backend: Backend,
    /// Only these threads (all when `None`).
    pub threads: Option<Vec<i32>>,
    /// Bounds of the ptrace backend (the eBPF backend uses the kernel program's own).
    pub v1_limits: V1Limits,
    pub max_payload: u32,
    #[cfg(feature = "ebpf")]
    pub ebpf: crate::backend::ebpf::EbpfOptions,
    #[doc(hidden)]
    pub fault: Option<Fault>,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            backend: Backend::Ptrace,
            threads: None,
            v1_limits: V1Limits::default(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            #[cfg(feature = "ebpf")]
            ebpf: Default::default(),
            fault: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("no such process: {0}")]
    NoSuchProcess(i32),
    #[error("process {0} exited during the snapshot")]
    ProcessExited(i32),
    #[error(
        "not allowed to read process {pid} ({detail}): run as the same user with ptrace allowed by \
         /proc/sys/kernel/yama/ptrace_scope, or as root / with CAP_SYS_PTRACE"
    )]
    Permission { pid: i32, detail: String },
    #[error("reading /proc/{pid}: {source}")]
    Proc { pid: i32, source: std::io::Error },
    #[error("interrupted")]
    Interrupted,
    #[error("injected fault")]
    Injected,
    #[error("core file: {0}")]
    Core(#[from] crate::backend::core::CoreError),
    #[error("the {0:?} backend is not available in this build (built without the `ebpf` feature)")]
    BackendUnavailable(Backend),
    #[error(
        "the core backend reads core files, not a running process: `context-reader core CORE`"
    )]
    CoreOfLiveProcess,
    #[cfg(feature = "ebpf")]
    #[error("eBPF backend unavailable: {0}")]
    Ebpf(#[from] crate::backend::ebpf::EbpfError),
}

/// What a snapshot cost.
#[derive(Debug, Clone, Default)]
pub struct SnapshotStats {
    pub total: Duration,
    pub stops: StopStats,
    /// Time spent in discovery (ELF files, TLS resolution) when this snapshot had to rediscover
    /// (the first one, and after the maps changed); `None` when the cached plan was used.
    pub discovery: Option<Duration>,
    /// How the reader thread was scheduled during the snapshot: `SCHED_FIFO`, a raised nice
    /// value, or normal priority, with why it could not be raised.
    pub scheduling: Option<String>,
    #[cfg(feature = "ebpf")]
    pub ebpf: Option<crate::backend::ebpf::EbpfStats>,
}

/// Reads of `/proc/PID/maps` after the first, at most, to see the same listing twice.
const MAPS_READS: usize = 4;

pub struct Session {
    pid: i32,
    opts: SnapshotOptions,
    cached: Option<(String, ReadPlan)>,
    /// Thread names, thread pointers and start times kept between snapshots.
    threads: ThreadCache,
    /// How long the last rediscovery took, until a snapshot reports it.
    discovery: Option<Duration>,
}

/// The nice value the reader runs at during a ptrace snapshot when `SCHED_FIFO` is refused.
const SNAPSHOT_NICE: i32 = -10;

/// Holds the reader thread's raised scheduling until dropped (the guards are only held for
/// their `Drop`, which restores the scheduling).
#[allow(dead_code)]
enum RaisedScheduling {
    Realtime(sys::RealtimeGuard),
    Nice(sys::RaisedPriority),
    Normal,
}

/// Raises the reader thread for the span of a snapshot: `SCHED_FIFO` where allowed, else
/// a lower nice value. A thread stopped by the reader waits for the reader to get a CPU; against
/// 1000 spinning threads a nice -10 reader gets about 1% of the CPUs, so one snapshot took
/// minutes. The reader sleeps or blocks whenever it is not working, so real-time priority takes
/// the CPU only for the reads themselves. Returns the guard and what `--stats` says about it.
fn raise_scheduling() -> (RaisedScheduling, String) {
    let fifo = match sys::raise_to_realtime() {
        Ok(guard) => return (RaisedScheduling::Realtime(guard), "SCHED_FIFO 1".into()),
        Err(e) => e,
    };
    match sys::raise_priority(SNAPSHOT_NICE) {
        Ok(guard) => (
            RaisedScheduling::Nice(guard),
            format!("nice {SNAPSHOT_NICE} (SCHED_FIFO: {})", fifo.desc()),
        ),
        Err(e) => (
            RaisedScheduling::Normal,
            format!(
                "normal priority (SCHED_FIFO: {}; setpriority({SNAPSHOT_NICE}): {})",
                fifo.desc(),
                e.desc()
            ),
        ),
    }
}

impl Session {
    pub fn new(pid: i32, opts: SnapshotOptions) -> Result<Self, ReaderError> {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(ReaderError::NoSuchProcess(pid));
        }
        Ok(Session {
            pid,
            opts,
            cached: None,
            threads: ThreadCache::new(),
            discovery: None,
        })
    }

    /// The current read plan, rediscovered whenever the mappings it depends on changed (dlopen,
    /// a new context mapping). Heap growth and anonymous mappings (thread stacks, malloc arenas)
    /// change `/proc/PID/maps` all the time in a busy writer but not the plan, so they do not
    /// trigger discovery.
    pub fn plan(&mut self) -> Result<&ReadPlan, ReaderError> {
        self.plan_through(live_task(self.pid))
    }

    /// [`Session::plan`], reading `/proc` and memory through `task` (see `live_task`).
    fn plan_through(&mut self, task: i32) -> Result<&ReadPlan, ReaderError> {
        let pid = self.pid;
        let read_maps = || {
            std::fs::read_to_string(format!("/proc/{task}/maps")).map_err(|e| proc_error(pid, e))
        };
        let mut text = read_maps()?;
        let mut key = maps::plan_relevant_lines(&text);
        if self.cached.as_ref().is_none_or(|(k, _)| *k != key) {
            // A read of `maps` longer than a page is not atomic: a mapping that moves between
            // two read() calls can be missed. Rediscover only from a listing seen twice alike.
            for _ in 0..MAPS_READS {
                let again = read_maps()?;
                let again_key = maps::plan_relevant_lines(&again);
                let stable = again_key == key;
                (text, key) = (again, again_key);
                if stable {
                    break;
                }
            }
            let mappings = maps::parse_maps(&text).map_err(|e| ReaderError::Proc {
                pid,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            })?;
            let started = Instant::now();
            let plan = discovery::discover(task, &mappings, &ProcessMemory::new(task));
            self.discovery = Some(started.elapsed());
            self.cached = Some((key, plan));
        }
        Ok(&self.cached.as_ref().expect("just filled").1)
    }

    pub fn snapshot(&mut self) -> Result<(Snapshot, SnapshotStats), ReaderError> {
        let started = Instant::now();
        let pid = self.pid;
        let opts = self.opts.clone();
        // The whole snapshot (discovery, the walk or the eBPF window, the checks after) at raised
        // priority: whatever part runs at a fair share behind the target's busy threads is what
        // the snapshot waits for.
        let (raised, scheduling) = raise_scheduling();
        let task = live_task(pid);
        let mem = ProcessMemory::new(task);
        let plan = self.plan_through(task)?.clone();
        let mut errors = plan.errors.clone();
        let (process_context, keys) =
            read_process_context(&mem, &plan, opts.max_payload, &mut errors);
        let mut stats = SnapshotStats {
            discovery: self.discovery.take(),
            scheduling: Some(scheduling),
            ..SnapshotStats::default()
        };
        let threads = match opts.backend {
            Backend::Ptrace => {
                let walked = walk_threads(
                    pid,
                    opts.threads.as_deref(),
                    opts.fault,
                    &mut self.threads,
                    &mut stats.stops,
                    |tp, thread| read_thread(&mem, tp, &plan, &keys, &opts.v1_limits, thread),
                );
                match walked {
                    Ok((threads, walk_errors)) => {
                        extend_bounded(&mut errors, walk_errors);
                        threads
                    }
                    Err(WalkError::Permission(e)) => {
                        return Err(ReaderError::Permission {
                            pid,
                            detail: format!("PTRACE_SEIZE: {}", e.desc()),
                        })
                    }
                    Err(WalkError::ProcessExited) => return Err(ReaderError::ProcessExited(pid)),
                    Err(WalkError::Interrupted) => return Err(ReaderError::Interrupted),
                    Err(WalkError::Injected) => return Err(ReaderError::Injected),
                }
            }
            #[cfg(feature = "ebpf")]
            Backend::Ebpf => {
                let only = opts.threads.as_deref();
                let (threads, ebpf_errors, mut ebpf_stats) =
                    crate::backend::ebpf::snapshot_threads(pid, only, &plan, &keys, &opts.ebpf)?;
                ebpf_stats.realtime = match &raised {
                    RaisedScheduling::Realtime(_) => Ok(()),
                    _ => Err(stats.scheduling.clone().unwrap_or_default()),
                };
                extend_bounded(&mut errors, ebpf_errors);
                stats.ebpf = Some(ebpf_stats);
                threads
            }
            #[cfg(not(feature = "ebpf"))]
            Backend::Ebpf => return Err(ReaderError::BackendUnavailable(Backend::Ebpf)),
            // A live process is not a core file: `snapshot_core` reads those.
            Backend::Core => return Err(ReaderError::CoreOfLiveProcess),
        };
        // The eBPF backend reports a process that exited during its window itself (with what it
        // sampled before); any other snapshot of a process that is gone now is not one.
        if !ebpf_saw_exit(&stats) && process_exited(pid) {
            return Err(ReaderError::ProcessExited(pid));
        }
        let mut snapshot = Snapshot {
            pid,
            backend: opts.backend,
            process_context,
            threads,
            errors,
        };
        snapshot.normalise();
        stats.total = started.elapsed();
        // Back to normal priority: from here on a busy target may keep the reader waiting for a
        // CPU, but every thread is resumed and the snapshot is complete.
        drop(raised);
        Ok((snapshot, stats))
    }
}

#[cfg(feature = "ebpf")]
fn ebpf_saw_exit(stats: &SnapshotStats) -> bool {
    stats.ebpf.as_ref().is_some_and(|e| e.process_exited)
}

#[cfg(not(feature = "ebpf"))]
fn ebpf_saw_exit(_: &SnapshotStats) -> bool {
    false
}

fn proc_error(pid: i32, e: std::io::Error) -> ReaderError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ReaderError::NoSuchProcess(pid),
        std::io::ErrorKind::PermissionDenied => ReaderError::Permission {
            pid,
            detail: format!("/proc/{pid}/maps: {e}"),
        },
        _ => ReaderError::Proc { pid, source: e },
    }
}

/// The snapshot of every thread of the core file at `core` (backend `core`), and the plan it
/// executed. Module files are the `NT_FILE` paths under `sysroot` (`/` for a core of this
/// machine); what the core or the sysroot lacks is in `errors`. `opts.backend` is not used.
pub fn snapshot_core(
    core: &std::path::Path,
    sysroot: &std::path::Path,
    opts: &SnapshotOptions,
) -> Result<(Snapshot, ReadPlan), ReaderError> {
    let core = crate::backend::core::CoreFile::open(core)?;
    Ok(snapshot_of_core(&core, sysroot, opts))
}

/// [`snapshot_core`] of a core already parsed.
pub fn snapshot_of_core(
    core: &crate::backend::core::CoreFile,
    sysroot: &std::path::Path,
    opts: &SnapshotOptions,
) -> (Snapshot, ReadPlan) {
    use crate::backend::core::CoreFiles;
    use crate::snapshot::{Bytes, ThreadSnapshot};
    let maps = core.mappings();
    let files = CoreFiles::resolve(core, sysroot);
    let mem = files.memory(core);
    let plan = discovery::discover_with(&files, core.pid, &maps, &mem);
    let mut errors = plan.errors.clone();
    let (process_context, keys) = read_process_context(&mem, &plan, opts.max_payload, &mut errors);
    let threads = core
        .threads
        .iter()
        .filter(|t| {
            opts.threads
                .as_ref()
                .is_none_or(|only| only.contains(&t.tid))
        })
        .map(|t| {
            // A core holds the name of the main thread only (NT_PRPSINFO); the others are empty.
            let name = match &core.name {
                Some(n) if t.tid == core.pid => Bytes(n.clone()),
                _ => Bytes(Vec::new()),
            };
            let mut thread = ThreadSnapshot::new(t.tid, name);
            match t.tp {
                Ok(tp) => read_thread(&mem, tp, &plan, &keys, &opts.v1_limits, &mut thread),
                Err(ref e) => push_bounded(
                    &mut thread.errors,
                    ReadError::new(Format::Tls, ErrorKind::Unreadable, e.clone()),
                ),
            }
            thread
        })
        .collect();
    let mut snapshot = Snapshot {
        pid: core.pid,
        backend: Backend::Core,
        process_context,
        threads,
        errors,
    };
    snapshot.normalise();
    (snapshot, plan)
}

/// One snapshot of `pid`.
pub fn take_snapshot(pid: i32, opts: &SnapshotOptions) -> Result<Snapshot, ReaderError> {
    Session::new(pid, opts.clone())?.snapshot().map(|(s, _)| s)
}

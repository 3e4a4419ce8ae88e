//! `context-bench point`: one measurement with the reader library, in a process of its own so that
//! a time budget can interrupt a snapshot cleanly: the watchdog raises SIGINT, the reader's handler
//! sets its flag, and the ptrace walk resumes the thread it holds and stops (the flag is sticky, so
//! the process ends with the point). Prints one JSON `PointResult` on stdout.

use std::time::{Duration, Instant};

use context_reader::snapshot::{Backend, ErrorKind, Snapshot};
use context_reader::sys;
use context_reader::{ReaderError, Session, SnapshotOptions};
use serde::{Deserialize, Serialize};

/// What the target publishes per worker thread (bench/c/target.c).
pub const TARGET_LABELS: usize = 8;
pub const TARGET_ATTRIBUTES: usize = 6;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct EbpfCost {
    pub samples: u64,
    pub drops: u64,
    pub run_count: u64,
    pub run_time_ns: u64,
    pub stats_enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapResult {
    pub total_us: f64,
    /// Threads in the snapshot.
    pub threads: usize,
    /// Threads whose 8 labels and 6-attribute record were read.
    pub complete: usize,
    /// Threads the eBPF backend did not sample.
    pub not_sampled: usize,
    /// ptrace: how long each thread was stopped.
    pub windows_us: Vec<f64>,
    pub ebpf: Option<EbpfCost>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct PointResult {
    /// Plan discovery before the first snapshot (maps + ELF), not part of the snapshot times.
    pub discovery_us: f64,
    pub snapshots: Vec<SnapResult>,
    /// The budget ran out: a snapshot in progress was abandoned (its thread resumed) or none more
    /// was started.
    pub interrupted: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PointArgs {
    #[arg(long)]
    pub pid: i32,
    #[arg(long)]
    pub ebpf: bool,
    /// Most snapshots to take.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Time budget for the whole point, in ms.
    #[arg(long)]
    pub budget_ms: u64,
    /// Pause between snapshots, in ms (0: flat out).
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// Only these threads.
    #[arg(long, value_delimiter = ',')]
    pub threads: Option<Vec<i32>>,
}

fn summarise(snapshot: &Snapshot, stats: &context_reader::SnapshotStats) -> SnapResult {
    let complete = snapshot
        .threads
        .iter()
        .filter(|t| {
            t.v1.as_ref()
                .is_some_and(|v1| v1.labels.len() == TARGET_LABELS)
                && t.v2
                    .as_ref()
                    .is_some_and(|v2| v2.attributes.len() == TARGET_ATTRIBUTES)
        })
        .count();
    let not_sampled = snapshot
        .threads
        .iter()
        .filter(|t| t.errors.iter().any(|e| e.kind == ErrorKind::NotSampled))
        .count();
    SnapResult {
        total_us: stats.total.as_secs_f64() * 1e6,
        threads: snapshot.threads.len(),
        complete,
        not_sampled,
        windows_us: stats
            .stops
            .windows
            .iter()
            .map(|w| w.as_secs_f64() * 1e6)
            .collect(),
        ebpf: stats.ebpf.as_ref().map(|e| EbpfCost {
            samples: e.kernel.samples,
            drops: e.kernel.drops,
            run_count: e.kernel.run_count,
            run_time_ns: e.kernel.run_time_ns,
            stats_enabled: e.kernel.run_stats_enabled,
        }),
    }
}

pub fn run(args: &PointArgs) -> PointResult {
    let mut result = PointResult::default();
    if let Err(e) = sys::install_interrupt_handler() {
        result.error = Some(format!("installing the SIGINT handler: {e}"));
        return result;
    }
    let budget = Duration::from_millis(args.budget_ms);
    let deadline = Instant::now() + budget;
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
    });
    let opts = SnapshotOptions {
        backend: if args.ebpf {
            Backend::Ebpf
        } else {
            Backend::Ptrace
        },
        threads: args.threads.clone(),
        ..SnapshotOptions::default()
    };
    let mut session = match Session::new(args.pid, opts) {
        Ok(s) => s,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    let started = Instant::now();
    if let Err(e) = session.plan() {
        result.error = Some(e.to_string());
        return result;
    }
    result.discovery_us = started.elapsed().as_secs_f64() * 1e6;
    while (result.snapshots.len() as u64) < args.count {
        if sys::interrupted() || Instant::now() >= deadline {
            result.interrupted = true;
            break;
        }
        match session.snapshot() {
            Ok((snapshot, stats)) => result.snapshots.push(summarise(&snapshot, &stats)),
            Err(ReaderError::Interrupted) => {
                result.interrupted = true;
                break;
            }
            Err(e) => {
                result.error = Some(e.to_string());
                break;
            }
        }
        let pause_until = Instant::now() + Duration::from_millis(args.interval_ms);
        while Instant::now() < pause_until.min(deadline) && !sys::interrupted() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    result
}

//! The benchmark run: which points, in which order, with which budgets.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::point::PointResult;
use crate::report;
use crate::target::{run_gdb, throughput, GdbRun, Rate, Target};
use crate::RunArgs;

/// How many snapshots and how much time each point gets.
#[derive(Debug, Clone)]
pub struct Config {
    pub quick: bool,
    pub thread_counts: Vec<usize>,
    pub throughput_threads: Vec<usize>,
    pub throughput_window: Duration,
    /// Longest a ptrace point may take (a busy target can hold one snapshot for minutes).
    pub ptrace_budget: Duration,
    /// Longest one gdb run may take.
    pub gdb_timeout: Duration,
    /// Threads read when no full ptrace snapshot fits the budget.
    pub subset: usize,
}

impl Config {
    pub fn new(args: &RunArgs) -> Config {
        let quick = args.quick;
        Config {
            quick,
            thread_counts: args
                .threads
                .clone()
                .unwrap_or_else(|| vec![2, 16, 128, 1000]),
            throughput_threads: if quick { vec![16] } else { vec![2, 16, 1000] },
            throughput_window: Duration::from_secs(if quick { 2 } else { 5 }),
            ptrace_budget: Duration::from_secs(if quick { 10 } else { 30 }),
            gdb_timeout: Duration::from_secs(if quick { 20 } else { 60 }),
            subset: 8,
        }
    }

    pub fn ptrace_count(&self, threads: usize, busy: bool) -> u64 {
        let big = threads >= 1000;
        match (self.quick, busy, big) {
            (false, false, false) => 30,
            (false, false, true) => 10,
            (false, true, false) => 10,
            (false, true, true) => 3,
            (true, false, false) => 5,
            (true, false, true) | (true, true, false) => 3,
            (true, true, true) => 1,
        }
    }

    /// Idle threads are never on CPU, so an eBPF snapshot of them always lasts the whole window.
    pub fn ebpf_count(&self, threads: usize, busy: bool) -> u64 {
        match (self.quick, busy) {
            (_, false) | (true, true) => 1,
            (false, true) if threads >= 128 => 2,
            (false, true) => 5,
        }
    }

    pub fn gdb_count(&self, threads: usize, busy: bool) -> usize {
        match (self.quick, busy, threads) {
            (true, _, _) => 1,
            (false, true, n) if n >= 128 => 1,
            (false, true, _) => 3,
            (false, false, n) if n >= 1000 => 2,
            (false, false, _) => 5,
        }
    }
}

/// A reader backend on one target: the full snapshots that fit the budget and, when none did, a
/// snapshot of a few threads only (ptrace), from which the full time is extrapolated.
#[derive(Debug, Clone, Default)]
pub struct ReaderRun {
    pub full: PointResult,
    pub subset: Option<(usize, PointResult)>,
}

impl ReaderRun {
    pub fn totals(&self) -> Vec<f64> {
        self.full.snapshots.iter().map(|s| s.total_us).collect()
    }

    /// Median snapshot time in us and whether it was extrapolated from a subset.
    pub fn median_us(&self, threads: usize) -> Option<(f64, bool)> {
        if let Some(m) = crate::stats::quantile(&self.totals(), 0.5) {
            return Some((m, false));
        }
        let (k, sub) = self.subset.as_ref()?;
        let t = sub.snapshots.first()?.total_us;
        Some((t * threads as f64 / *k as f64, true))
    }

    /// Stop windows of the full snapshots, else of the subset.
    pub fn windows(&self) -> (Vec<f64>, bool) {
        let full: Vec<f64> = self
            .full
            .snapshots
            .iter()
            .flat_map(|s| s.windows_us.iter().copied())
            .collect();
        if !full.is_empty() {
            return (full, false);
        }
        let sub = self
            .subset
            .iter()
            .flat_map(|(_, r)| {
                r.snapshots
                    .iter()
                    .flat_map(|s| s.windows_us.iter().copied())
            })
            .collect();
        (sub, true)
    }
}

#[derive(Debug, Clone)]
pub struct Point {
    pub threads: usize,
    pub busy: bool,
    pub ptrace: ReaderRun,
    pub ebpf: ReaderRun,
    pub gdb: Vec<GdbRun>,
}

#[derive(Debug, Clone)]
pub struct ThroughputMode {
    pub backend: &'static str,
    /// None: flat out.
    pub interval: Option<Duration>,
    pub rate: Rate,
    pub snapshots: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Throughput {
    pub threads: usize,
    /// No reader: before the first reader window and after each one.
    pub baselines: Vec<Rate>,
    pub modes: Vec<ThroughputMode>,
}

#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub load_start: String,
    pub load_end: String,
    pub date: String,
    pub commit: String,
}

pub struct Results {
    pub config: Config,
    pub machine: Machine,
    pub points: Vec<Point>,
    pub throughput: Vec<Throughput>,
    pub runtime: Duration,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn command_line(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mut commit = command_line(Command::new("git").args(["rev-parse", "--short", "HEAD"]));
    if !command_line(Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]))
        .is_empty()
    {
        commit.push_str(" (with uncommitted changes)");
    }
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        load_start: loadavg(),
        load_end: String::new(),
        date: command_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        commit,
    }
}

/// How long a point may overrun its budget before it is killed. The watchdog interrupts a ptrace
/// walk between threads, but an eBPF snapshot (program load, a collection window of up to 2 s)
/// runs to its end, and a reader starved of CPU by a busy target can take long over either.
const OVERRUN: Duration = Duration::from_secs(20);

/// Runs `context-bench point ARGS` and parses its JSON. A child that overruns its budget by
/// `OVERRUN` is killed (the kernel detaches its tracees) and reported as an error of the point.
fn run_point(args: &[String], budget: Duration) -> Result<PointResult> {
    let exe = std::env::current_exe().context("finding context-bench")?;
    let mut child = Command::new(exe)
        .arg("point")
        .args(args)
        .arg("--budget-ms")
        .arg(budget.as_millis().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting context-bench point")?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let hard = Instant::now() + budget + OVERRUN;
    while child.try_wait()?.is_none() {
        if Instant::now() >= hard {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(PointResult {
                interrupted: true,
                error: Some(format!(
                    "killed after overrunning its {} s budget by {} s (reader starved of CPU?)",
                    budget.as_secs(),
                    OVERRUN.as_secs()
                )),
                ..PointResult::default()
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = reader.join().unwrap_or_default();
    serde_json::from_str(text.trim()).with_context(|| format!("parsing the point result {text:?}"))
}

fn reader_args(pid: i32, ebpf: bool, count: u64, interval_ms: u64) -> Vec<String> {
    let mut args = vec![
        "--pid".to_string(),
        pid.to_string(),
        "--count".into(),
        count.to_string(),
        "--interval-ms".into(),
        interval_ms.to_string(),
    ];
    if ebpf {
        args.push("--ebpf".into());
    }
    args
}

fn ptrace_run(cfg: &Config, target: &Target, busy: bool) -> Result<ReaderRun> {
    let count = cfg.ptrace_count(target.threads, busy);
    let full = run_point(&reader_args(target.pid, false, count, 0), cfg.ptrace_budget)?;
    let mut run = ReaderRun { full, subset: None };
    if run.full.snapshots.is_empty() && run.full.interrupted {
        let tids = target.worker_tids();
        let k = cfg.subset.min(tids.len()).max(1);
        let step = (tids.len() / k).max(1);
        let chosen: Vec<String> = tids
            .iter()
            .step_by(step)
            .take(k)
            .map(|t| t.to_string())
            .collect();
        let mut args = reader_args(target.pid, false, 1, 0);
        args.push("--threads".into());
        args.push(chosen.join(","));
        let sub = run_point(&args, cfg.ptrace_budget)?;
        run.subset = Some((chosen.len(), sub));
    }
    Ok(run)
}

fn ebpf_run(cfg: &Config, target: &Target, busy: bool) -> Result<ReaderRun> {
    let count = cfg.ebpf_count(target.threads, busy);
    // Each snapshot loads the program and collects for at most 2 s.
    let budget = Duration::from_secs(5 * count + 10);
    let full = run_point(&reader_args(target.pid, true, count, 0), budget)?;
    Ok(ReaderRun { full, subset: None })
}

fn gdb_runs(cfg: &Config, target: &Target, busy: bool) -> Vec<GdbRun> {
    let mut runs = Vec::new();
    for _ in 0..cfg.gdb_count(target.threads, busy) {
        match run_gdb(target.pid, cfg.gdb_timeout) {
            Ok(run) => {
                let stop = run.timed_out;
                runs.push(run);
                if stop {
                    break;
                }
            }
            Err(e) => {
                eprintln!("  gdb: {e:#}");
                break;
            }
        }
    }
    runs
}

fn measure_point(cfg: &Config, threads: usize, busy: bool) -> Result<Point> {
    let target = Target::start(threads, busy)?;
    let ptrace = ptrace_run(cfg, &target, busy)?;
    let ebpf = ebpf_run(cfg, &target, busy)?;
    let gdb = gdb_runs(cfg, &target, busy);
    Ok(Point {
        threads,
        busy,
        ptrace,
        ebpf,
        gdb,
    })
}

/// Baseline windows (no reader) alternate with the reader windows, so that each reader window is
/// compared with the baselines right before and after it: on a shared machine the throughput
/// drifts with the other work.
fn measure_throughput(cfg: &Config, threads: usize) -> Result<Throughput> {
    let mut target = Target::start(threads, true)?;
    let window = cfg.throughput_window;
    // Let the workers get going before the first baseline.
    std::thread::sleep(Duration::from_millis(500));
    let mut baselines = Vec::new();
    let mut modes = Vec::new();
    let baseline = |target: &mut Target| {
        throughput(target, || {
            std::thread::sleep(window);
            Ok(())
        })
    };
    baselines.push(baseline(&mut target)?);
    for (backend, ebpf) in [("ptrace", false), ("ebpf", true)] {
        for interval in [Some(Duration::from_secs(1)), None] {
            let ms = interval.map_or(0, |i| i.as_millis() as u64);
            let args = reader_args(target.pid, ebpf, u64::MAX, ms);
            let mut result = None;
            let rate = throughput(&mut target, || {
                result = Some(run_point(&args, window)?);
                Ok(())
            })?;
            let result = result.expect("set by the closure");
            modes.push(ThroughputMode {
                backend,
                interval,
                rate,
                snapshots: result.snapshots.len(),
                error: result.error,
            });
            baselines.push(baseline(&mut target)?);
        }
    }
    Ok(Throughput {
        threads,
        baselines,
        modes,
    })
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is in the workspace")
        .to_path_buf()
}

pub fn run_all(args: &RunArgs) -> Result<()> {
    let started = Instant::now();
    let cfg = Config::new(args);
    let out = args.out.clone().unwrap_or_else(|| {
        if cfg.quick {
            workspace_root().join("target/bench-quick")
        } else {
            workspace_root().join("docs")
        }
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut machine = machine();
    eprintln!(
        "context-bench: {} CPUs ({}), kernel {}, load average {}",
        machine.nproc, machine.cpu, machine.kernel, machine.load_start
    );
    let mut points = Vec::new();
    for busy in [false, true] {
        for &threads in &cfg.thread_counts {
            let t = Instant::now();
            let point = measure_point(&cfg, threads, busy)
                .with_context(|| format!("{threads} threads, busy: {busy}"))?;
            eprintln!(
                "  {:>5} threads {:<4}: {} ({:.0} s)",
                threads,
                if busy { "busy" } else { "idle" },
                report::point_line(&point),
                t.elapsed().as_secs_f64()
            );
            points.push(point);
        }
    }
    let mut tput = Vec::new();
    for &threads in &cfg.throughput_threads {
        let t = Instant::now();
        let result = measure_throughput(&cfg, threads)
            .with_context(|| format!("throughput with {threads} threads"))?;
        eprintln!(
            "  throughput, {threads} busy threads: {} ({:.0} s)",
            report::throughput_line(&result),
            t.elapsed().as_secs_f64()
        );
        tput.push(result);
    }
    machine.load_end = loadavg();
    let results = Results {
        config: cfg,
        machine,
        points,
        throughput: tput,
        runtime: started.elapsed(),
    };
    report::write(&results, &out)
}

//! `context-reader`: the command line. Parses arguments, runs sessions, prints snapshots.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use context_reader::sys;
use context_reader::Backend;
use context_reader::{render, ReaderError, Session, Snapshot, SnapshotOptions, SnapshotStats};

#[derive(Parser, Debug)]
#[command(
    name = "context-reader",
    version,
    about = "Shows the context a process publishes for profilers: custom-labels v1, OTEP 4947 thread context, OTEP 4719 process context",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Lint writer binaries or DSOs: can a reader find and resolve their context symbols?
    Check(CheckArgs),
    /// Certify a writer: run it, read what it declares in `CONTEXT-READY`, compare (docs/certify.md).
    Certify(CertifyArgs),
    /// Read the context of every thread of a core file (gcore's or the kernel's).
    Core(CoreArgs),
}

#[derive(clap::Args, Debug)]
struct CoreArgs {
    /// The core file.
    core: std::path::PathBuf,
    /// Where the files the core maps (its NT_FILE paths) are: a copy of the crashed machine's
    /// root, or `/` for a core of this machine. Each is checked against the core's build id.
    #[arg(long, default_value = "/")]
    sysroot: std::path::PathBuf,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Only these threads (comma-separated tids).
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<i32>>,
    /// Largest process-context payload accepted, in bytes.
    #[arg(long, default_value_t = context_reader::decode::process_ctx::DEFAULT_MAX_PAYLOAD)]
    max_payload: u32,
    /// Also print the read plan (modules, symbols, access models, slot rules) on stderr.
    #[arg(long)]
    verbose: bool,
}

#[derive(clap::Args, Debug)]
struct CertifyArgs {
    /// Backends to read the writer with (eBPF runs it with `--busy` added).
    #[arg(long, value_enum, default_value_t = CertifyBackend::All)]
    backend: CertifyBackend,
    /// Write report.json, junit.xml and summary.md into this directory.
    #[arg(long, value_name = "DIR")]
    report: Option<std::path::PathBuf>,
    /// Seconds the writer gets to print CONTEXT-READY, and again to exit after stdin EOF.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// The writer's command line (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<String>,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum CertifyBackend {
    Ptrace,
    Ebpf,
    All,
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// ELF executables or shared objects.
    #[arg(required = true)]
    files: Vec<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
}

#[derive(clap::Args, Debug)]
struct ReadArgs {
    /// Process to read.
    pid: Option<i32>,
    #[arg(long, value_enum, default_value_t = Backend::Ptrace)]
    backend: Backend,
    /// Print one snapshot and exit.
    #[arg(long, conflicts_with_all = ["interval", "count"])]
    once: bool,
    /// Time between snapshots, e.g. 500ms, 1s, 2m.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    interval: Duration,
    /// Stop after N snapshots.
    #[arg(long)]
    count: Option<u64>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Only these threads (comma-separated tids).
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<i32>>,
    /// Print snapshot time, discovery time and the stop-window distribution on stderr.
    #[arg(long)]
    stats: bool,
    /// Largest process-context payload accepted, in bytes.
    #[arg(long, default_value_t = context_reader::decode::process_ctx::DEFAULT_MAX_PAYLOAD)]
    max_payload: u32,
    /// eBPF: longest collection window per snapshot (ends early once every thread was sampled).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    duration: Duration,
    /// eBPF: samples per second of each thread's own CPU time (per-thread task-clock events;
    /// 1000: a thread on CPU for 1 ms of the window is sampled), in Hz.
    #[arg(long, default_value_t = 1000)]
    frequency: u64,
    /// Also print the read plan (modules, symbols, access models, slot rules) on stderr.
    #[arg(long)]
    verbose: bool,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq)]
enum OutputFormat {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 500ms, 1s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use ms, s or m)")),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

const EXIT_USAGE: u8 = 1;
const EXIT_TARGET: u8 = 2;
const EXIT_EBPF: u8 = 3;
/// `certify` stopped by SIGINT/SIGTERM (128 + SIGINT, as a shell reports it).
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match cli.command {
        Some(Command::Check(args)) => lint(&args),
        Some(Command::Certify(args)) => certify(&args),
        Some(Command::Core(args)) => core(&args),
        None => read(cli.read),
    }
}

fn read(args: ReadArgs) -> ExitCode {
    let Some(pid) = args.pid else {
        eprintln!("context-reader: give a PID to read, or `check FILE...` (see --help)");
        return ExitCode::from(EXIT_USAGE);
    };
    if let Err(e) = sys::install_interrupt_handler() {
        eprintln!("context-reader: cannot install the Ctrl-C handler: {e}");
    }
    let opts = SnapshotOptions {
        backend: args.backend,
        threads: args.threads.clone(),
        max_payload: args.max_payload,
        ebpf: context_reader::backend::ebpf::EbpfOptions {
            duration: args.duration,
            frequency_hz: args.frequency,
        },
        ..SnapshotOptions::default()
    };
    let mut session = match Session::new(pid, opts) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if args.verbose {
        match session.plan() {
            Ok(plan) => eprintln!("{}", serde_json::to_string_pretty(plan).unwrap_or_default()),
            Err(e) => return fail(&e),
        }
    }
    let count = if args.once { Some(1) } else { args.count };
    let mut taken = 0u64;
    loop {
        let (snapshot, stats) = match session.snapshot() {
            Ok(s) => s,
            Err(ReaderError::Interrupted) => return ExitCode::SUCCESS,
            Err(e) => {
                if args.verbose {
                    if let ReaderError::Ebpf(ebpf) = &e {
                        if let Some(log) = ebpf.verifier_log() {
                            eprintln!("verifier log:\n{log}");
                        }
                    }
                }
                return fail(&e);
            }
        };
        if print_snapshot(args.format, &snapshot).is_err() {
            return ExitCode::SUCCESS; // stdout closed (e.g. piped into head)
        }
        if args.stats {
            print_stats(&stats);
        }
        if stats.ebpf.as_ref().is_some_and(|e| e.process_exited) {
            eprintln!(
                "context-reader: process {pid} exited during the eBPF collection window (threads sampled before it are reported)"
            );
            return ExitCode::from(EXIT_TARGET);
        }
        taken += 1;
        if count.is_some_and(|c| taken >= c) {
            return ExitCode::SUCCESS;
        }
        let deadline = std::time::Instant::now() + args.interval;
        while std::time::Instant::now() < deadline {
            if sys::interrupted() {
                return ExitCode::SUCCESS;
            }
            std::thread::sleep(Duration::from_millis(20).min(args.interval));
        }
    }
}

fn core(args: &CoreArgs) -> ExitCode {
    let opts = SnapshotOptions {
        backend: Backend::Core,
        threads: args.threads.clone(),
        max_payload: args.max_payload,
        ..SnapshotOptions::default()
    };
    let (snapshot, plan) =
        match context_reader::session::snapshot_core(&args.core, &args.sysroot, &opts) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("context-reader: {}: {e}", args.core.display());
                return ExitCode::from(EXIT_TARGET);
            }
        };
    if args.verbose {
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        );
    }
    let _ = print_snapshot(args.format, &snapshot);
    ExitCode::SUCCESS
}

/// One snapshot on stdout: a JSON line or the escaped text; an error when stdout is closed.
fn print_snapshot(format: OutputFormat, snapshot: &Snapshot) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string(snapshot).expect("snapshots serialise")
        ),
        OutputFormat::Text => write!(out, "{}", render::text(snapshot)),
    }?;
    out.flush()
}

fn print_stats(stats: &SnapshotStats) {
    if let Some(ebpf) = &stats.ebpf {
        let k = &ebpf.kernel;
        let cost = match k.mean_run_ns() {
            Some(ns) => format!("{ns:.0} ns per program run over {} runs", k.run_count),
            None => "program run time not available (BPF stats could not be enabled)".into(),
        };
        let discovery = match stats.discovery {
            Some(d) => format!("discovery {:.3} ms; ", d.as_secs_f64() * 1e3),
            None => String::new(),
        };
        let load = match ebpf.load_time {
            Some(t) => format!("program loaded in {:.1} ms", t.as_secs_f64() * 1e3),
            None => "program reused".into(),
        };
        let priority = match &ebpf.realtime {
            Ok(()) => "real-time priority".to_string(),
            Err(e) => format!("priority not raised ({e})"),
        };
        let fallback = if ebpf.cpu_fallback {
            " (plus per-CPU events: some threads had none)"
        } else {
            ""
        };
        eprintln!(
            "ebpf: {:.3} ms; {discovery}{load}; {priority}; per-thread events {}, threads without {}{fallback}; samples {}, drops {}, stale thread pointers {}; {cost}",
            stats.total.as_secs_f64() * 1e3,
            ebpf.threads_attached,
            ebpf.threads_unattached,
            k.samples,
            k.drops,
            ebpf.stale_tp
        );
        return;
    }
    let mut windows = stats.stops.windows.clone();
    windows.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| {
        windows
            .get(((windows.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let discovery = match stats.discovery {
        Some(d) => format!("discovery {:.3} ms", d.as_secs_f64() * 1e3),
        None => "discovery cached".into(),
    };
    eprintln!(
        "snapshot: {:.3} ms; {discovery}; threads stopped: {} ({} in batches); stop window p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        stats.total.as_secs_f64() * 1e3,
        windows.len(),
        stats.stops.batched,
        us(at(0.5)),
        us(at(0.99)),
        us(windows.last().copied().unwrap_or_default()),
    );
    if let Some(scheduling) = &stats.scheduling {
        eprintln!("snapshot: reader scheduled at {scheduling}");
    }
}

fn fail(e: &ReaderError) -> ExitCode {
    eprintln!("context-reader: {e}");
    ExitCode::from(match e {
        ReaderError::BackendUnavailable(Backend::Ebpf) | ReaderError::Ebpf(_) => EXIT_EBPF,
        ReaderError::CoreOfLiveProcess => EXIT_USAGE,
        _ => EXIT_TARGET,
    })
}

/// `check FILE...`: the ELF lint of each file.
fn lint(args: &CheckArgs) -> ExitCode {
    let mut clean = true;
    for file in &args.files {
        match context_reader::lint::lint_file(file) {
            Ok(report) => {
                clean &= report.is_clean();
                match args.format {
                    OutputFormat::Json => println!(
                        "{}",
                        serde_json::to_string(&report).expect("reports serialise")
                    ),
                    OutputFormat::Text => print!("{}", context_reader::lint::report_text(&report)),
                }
            }
            Err(e) => {
                eprintln!("context-reader check: {e}");
                return ExitCode::from(EXIT_TARGET);
            }
        }
    }
    ExitCode::from(if clean { 0 } else { 1 })
}

/// `context-reader certify`: one trial per backend (conformance.md section 4), each printed with
/// its verdict and JSON-path diffs; exit 0 only if every trial passed, else 1.
fn certify(args: &CertifyArgs) -> ExitCode {
    use context_reader::certify::report::{write_failure, CertifyReport, TrialId, TrialRecord};
    use context_reader::certify::trial::{run_trial, SessionReader, TrialOptions, Verdict};
    let backends: &[Backend] = match args.backend {
        CertifyBackend::Ptrace => &[Backend::Ptrace],
        CertifyBackend::Ebpf => &[Backend::Ebpf],
        CertifyBackend::All => &[Backend::Ptrace, Backend::Ebpf],
    };
    let (program, program_args) = match args.command.split_first() {
        Some(split) => split,
        None => {
            eprintln!("context-reader certify: give the writer's command after `--`");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let scenario = program_args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--scenario") {
            Some("") => program_args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        })
        .unwrap_or_else(|| "default".to_string());
    let fallback_writer = std::path::Path::new(program)
        .file_name()
        .map_or(program.clone(), |f| f.to_string_lossy().into_owned());
    let timeout = Duration::from_secs(args.timeout.max(1));
    // Ctrl-C ends the running trial with its writer killed (it has a process group of its own,
    // so the terminal's SIGINT does not reach it), and no further trial starts.
    if let Err(e) = sys::install_interrupt_handler() {
        eprintln!("context-reader: cannot install the Ctrl-C handler: {e}");
    }
    let mut records = Vec::new();
    for &backend in backends {
        if sys::interrupted() {
            break;
        }
        let name = backend.to_string();
        // The command as run: eBPF samples threads on CPU, so its writer gets `--busy`.
        let mut command = args.command.clone();
        if backend == Backend::Ebpf {
            command.push("--busy".to_string());
        }
        let mut cmd = std::process::Command::new(program);
        cmd.args(&command[1..]);
        let opts = TrialOptions {
            ready_timeout: timeout,
            exit_timeout: timeout,
            ..TrialOptions::for_backend(backend)
        };
        let mut reader = SessionReader::new(SnapshotOptions {
            backend,
            ..SnapshotOptions::default()
        });
        let outcome = run_trial(cmd, backend, &opts, &mut |req| reader.snapshot(req.pid));
        let writer = if outcome.writer.is_empty() {
            fallback_writer.clone()
        } else {
            outcome.writer.clone()
        };
        let verdict = match outcome.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
        };
        println!(
            "{name}: {verdict} {writer} ({scenario}, {:.1} s)",
            outcome.duration.as_secs_f64()
        );
        for line in outcome.detail.lines() {
            println!("  {line}");
        }
        let record = TrialRecord::new(
            TrialId {
                writer,
                command,
                backend: name.to_string(),
                case: scenario.clone(),
            },
            &outcome,
        );
        if let (Some(dir), Verdict::Fail) = (&args.report, outcome.verdict) {
            if let Err(e) = write_failure(dir, &record.name, &outcome.expect, &outcome.observed) {
                eprintln!("context-reader certify: {}: {e}", dir.display());
            }
        }
        records.push(record);
    }
    if sys::interrupted() {
        eprintln!("context-reader certify: interrupted; no writer left running");
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    let report = CertifyReport::new(records);
    let passed = report
        .trials
        .iter()
        .filter(|t| t.verdict == Verdict::Pass)
        .count();
    if report.passed() {
        println!(
            "certified: {passed} of {} trials passed",
            report.trials.len()
        );
    } else {
        println!(
            "NOT certified: {passed} of {} trials passed",
            report.trials.len()
        );
    }
    if let Some(dir) = &args.report {
        match report.write(dir) {
            Ok(()) => println!("report: {}", dir.display()),
            Err(e) => {
                eprintln!(
                    "context-reader certify: cannot write the report to {}: {e}",
                    dir.display()
                );
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    ExitCode::from(if report.passed() { 0 } else { 1 })
}

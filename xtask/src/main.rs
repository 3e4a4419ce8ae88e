//! `cargo xtask`: setup, build, conformance, tests, and the aarch64 VM leg of context-reader.

mod apt_sources;
mod bench;
mod compat;
mod coverage;
mod cpio;
mod cross;
mod dist;
mod emitters;
mod guest;
mod paths;
mod process;
mod setup;
mod smoke;
mod soak;
mod tracers;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use paths::Paths;
use process::run;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, set up and test context-reader")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    Aarch64,
    All,
}

impl Arch {
    fn legs(self) -> setup::Legs {
        setup::Legs {
            x86_64: self != Arch::Aarch64,
            aarch64: self != Arch::X86_64,
            bench: false,
            tracers: false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Ptrace,
    Ebpf,
    /// Cores of the targets (x86-64: `gcore` of the running target; aarch64 guest: the kernel's
    /// dump), read with `context-reader core`.
    Core,
    All,
}

#[derive(Subcommand)]
enum Task {
    /// Install what this machine lacks (Debian 12; idempotent; needs root only to install).
    Setup {
        #[arg(long, value_enum, default_value = "all")]
        arch: Arch,
    },
    /// Set up, build, and run the conformance suite.
    Conformance {
        #[arg(long, value_enum, default_value = "all")]
        backend: Backend,
        #[arg(long, value_enum, default_value = "x86_64")]
        arch: Arch,
        /// Print the case names instead of running them.
        #[arg(long)]
        list: bool,
        /// Every scenario on every variant (release checks); by default decoding scenarios run on
        /// one variant per decoding class (rule in conformance/README.md).
        #[arg(long)]
        full: bool,
        /// Certify this writer command instead of the catalogue: runs
        /// `context-reader certify -- sh -c 'exec CMD ARGS'` in the current directory.
        #[arg(long, value_name = "CMD ARGS")]
        external: Option<String>,
        /// Write report.json, junit.xml and summary.md into DIR (`CONFORMANCE_REPORT`; x86_64).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
        /// Run only cases whose name contains this.
        filter: Option<String>,
    },
    /// Set up, then fmt, clippy, all tests on x86_64, and the aarch64 leg.
    Test {
        #[arg(long, value_enum, default_value = "all")]
        arch: Arch,
    },
    /// What CI runs: `test` for both arches.
    Ci,
    /// Write conformance/SPEC-COVERAGE.md: which case checks which rule of
    /// conformance/rules.toml (builds and runs nothing).
    Coverage {
        /// Fail if the committed file is stale or a case names an unknown rule id.
        #[arg(long)]
        check: bool,
        /// Print every case found and the rules it declares, instead.
        #[arg(long)]
        cases: bool,
    },
    /// Install gdb, then benchmark the ptrace and eBPF backends against gdb (needs root; about 10
    /// min): docs/benchmarks.md and docs/bench-*.svg.
    Bench(bench::BenchArgs),
    /// Export the test-vector corpus (cores, ELF files, expect.json, read plans; layout in its
    /// README) into DIR, check it with its Python checker and pack DIR.tar.xz.
    Corpus {
        dir: PathBuf,
        /// Only vectors whose `VARIANT/SCENARIO` contains this.
        filter: Option<String>,
    },
    /// Long fuzz run of the decoders, read_thread, discovery and ELF inspection (release build
    /// with overflow checks; `FUZZ_CASES`, split over the fuzz targets of reader/tests/it/fuzz.rs).
    Fuzz {
        #[arg(long, default_value_t = 10_000_000)]
        cases: u64,
    },
    /// Long runs of the hostile suite: the reader SIGKILLed mid-snapshot, the churn soak.
    Soak {
        /// Reader kills (`KILL_TEST_KILLS`).
        #[arg(long, default_value_t = 10_000)]
        kills: u64,
        /// ptrace snapshots of the churning writers (`CHURN_SOAK_SNAPSHOTS`).
        #[arg(long, default_value_t = 1_000_000)]
        snapshots: u64,
        /// eBPF snapshots of the churning writers (`CHURN_SOAK_EBPF_SNAPSHOTS`; 0: ptrace only).
        #[arg(long, default_value_t = 1_000)]
        ebpf_snapshots: u64,
    },
    /// Real tracers from their registries (pinned): install, certify, the README's compatibility
    /// table.
    Tracers {
        #[command(subcommand)]
        action: TracersAction,
    },
    /// Release tarballs of context-reader for x86-64 and aarch64 in target/dist/, the aarch64 one
    /// checked in the VM.
    Dist {
        /// Skip running the aarch64 binary in the VM.
        #[arg(long)]
        no_vm: bool,
    },
    /// Run an aarch64 program in a fresh VM and exit with its exit code (a cargo runner).
    VmRun {
        program: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Check the VM runner with tiny glibc and musl C programs.
    VmSmoke,
    /// Run Debian's cargo for aarch64 with the VM runner, e.g. `cargo xtask cross test -p context-reader`.
    Cross {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_args: Vec<OsString>,
    },
}

#[derive(Subcommand)]
enum TracersAction {
    /// Install the pinned tracers (and Node) under target/tracers/ (pip, npm; idempotent).
    Install,
    /// Print the command that runs a tracer's app (for `conformance --external`).
    Command { name: String },
    /// Install, certify every tracer app on the backends, write target/tracers/results/ and
    /// regenerate the README's compatibility table.
    Certify {
        #[arg(long, value_enum, default_value = "all")]
        backend: Backend,
    },
    /// Certify the minimal READY-line emitters of docs/certify.md (C, Python, Node, Go, Java)
    /// as the document has them.
    Emitters {
        #[arg(long, value_enum, default_value = "all")]
        backend: Backend,
    },
    /// Regenerate the README's compatibility table from results files.
    Table {
        /// Directory of results files (default target/tracers/results).
        #[arg(long)]
        input: Option<PathBuf>,
    },
}

/// What `cargo xtask tracers` needs installed: the host tools and pip / npm.
const TRACER_LEGS: setup::Legs = setup::Legs {
    x86_64: false,
    aarch64: false,
    bench: false,
    tracers: true,
};

fn certify_emitters(paths: &Paths, backends: &str) -> Result<()> {
    run(host_cargo(paths).args(["build", "-p", "context-reader"]))?;
    emitters::certify(paths, &paths.target.join("debug/context-reader"), backends)
}

fn tracers_task(paths: &Paths, action: TracersAction) -> Result<()> {
    let legs = TRACER_LEGS;
    match action {
        TracersAction::Install => {
            setup::setup(legs, &paths.cache)?;
            tracers::install(paths)
        }
        TracersAction::Command { name } => {
            println!("{}", tracers::command(paths, tracers::find(&name)?)?);
            Ok(())
        }
        TracersAction::Certify { backend } => {
            setup::setup(legs, &paths.cache)?;
            tracers::certify(paths, || host_cargo(paths), backend.live_backends()?)
        }
        TracersAction::Emitters { backend } => {
            setup::setup(legs, &paths.cache)?;
            certify_emitters(paths, backend.live_backends()?)
        }
        TracersAction::Table { input } => {
            let dir = input.unwrap_or_else(|| tracers::results_dir(paths));
            compat::update_readme(paths, &compat::rows_from_results_dir(&dir)?)
        }
    }
}

/// rustup's cargo, the one that started us.
fn host_cargo(paths: &Paths) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&paths.workspace);
    cmd
}

impl Backend {
    /// The value of `CONFORMANCE_BACKENDS`, which decides which backends get trials.
    fn conformance_backends(self) -> &'static str {
        match self {
            Backend::Ptrace => "ptrace",
            Backend::Ebpf => "ebpf",
            Backend::Core => "core",
            Backend::All => "ptrace,ebpf,core",
        }
    }

    /// The backends that read a live writer (`context-reader certify`): all but `core`.
    fn live_backends(self) -> Result<&'static str> {
        match self {
            Backend::Core => bail!("a live writer is certified with ptrace and eBPF, not core"),
            Backend::All => Ok("ptrace,ebpf"),
            b => Ok(b.conformance_backends()),
        }
    }
}

/// Which conformance cases to run, from `cargo xtask conformance`'s options.
#[derive(Clone, Copy, Default)]
struct Selection<'a> {
    list: bool,
    full: bool,
    external: Option<&'a str>,
    filter: Option<&'a str>,
    /// Absolute.
    report: Option<&'a Path>,
}

/// Turns `cargo test` into a run of the conformance binary with the user's selection: backends
/// by `CONFORMANCE_BACKENDS` (trials are named `ARCH/BACKEND/...`, each binary makes its own
/// arch's), reports by `CONFORMANCE_REPORT`, `--list` and FILTER for libtest-mimic.
fn conformance_test(cmd: &mut Command, backend: Backend, select: &Selection) {
    cmd.args(["test", "-p", "conformance", "--test", "conformance", "--"])
        .env("CONFORMANCE_BACKENDS", backend.conformance_backends());
    let Selection {
        list,
        full,
        external: _,
        filter,
        report,
    } = *select;
    if full {
        cmd.env("CONFORMANCE_FULL", "1");
    }
    if list {
        cmd.arg("--list");
    }
    cmd.args(filter);
    if let Some(dir) = report {
        cmd.env("CONFORMANCE_REPORT", dir);
    }
}

/// `--external 'CMD ARGS'`: `context-reader certify` of that command line, run by `sh` (so the
/// user's quoting holds) in the caller's directory; `"$@"` receives the `--busy` certify adds for
/// eBPF.
fn certify_external(reader: &Path, backend: Backend, line: &str, report: Option<&Path>) -> Command {
    let mut cmd = Command::new(reader);
    cmd.arg("certify").args([
        "--backend",
        match backend {
            Backend::Ptrace => "ptrace",
            Backend::Ebpf => "ebpf",
            Backend::All => "all",
            Backend::Core => unreachable!("conformance() refuses --external with --backend core"),
        },
    ]);
    if let Some(dir) = report {
        cmd.arg("--report").arg(dir);
    }
    cmd.args(["--", "sh", "-c", &format!("exec {line} \"$@\""), "sh"]);
    cmd
}

fn conformance(paths: &Paths, backend: Backend, arch: Arch, select: &Selection) -> Result<()> {
    let legs = arch.legs();
    if (select.external.is_some() || select.report.is_some()) && legs.aarch64 {
        // The guest holds only what the archive packs from the cross target dir.
        bail!("--external and --report run on the host (x86_64): the aarch64 VM cannot run an arbitrary host command nor leave files behind");
    }
    if select.external.is_some() && backend == Backend::Core {
        bail!("--external certifies with ptrace and eBPF (`certify --backend`); the core column is the catalogue's");
    }
    setup::setup(legs, &paths.cache)?;
    if let Some(line) = select.external {
        run(host_cargo(paths).args(["build", "-p", "context-reader"]))?;
        let reader = paths.target.join("debug").join("context-reader");
        return run(&mut certify_external(&reader, backend, line, select.report));
    }
    if legs.x86_64 {
        run(host_cargo(paths).args(["build", "--workspace"]))?;
        let mut test = host_cargo(paths);
        conformance_test(&mut test, backend, select);
        run(&mut test)?;
    }
    if legs.aarch64 {
        conformance_aarch64(paths, backend, select)?;
    }
    Ok(())
}

/// Cross-builds everything the suite runs (reader, BPF object, targets) and runs the conformance
/// binary in one VM. The whole matrix takes 12-20 min of emulation, so this VM may run longer
/// than the default limit of one VM.
fn conformance_aarch64(paths: &Paths, backend: Backend, select: &Selection) -> Result<()> {
    // context-bench is a host tool (it drives gdb and the host reader): not for the guest.
    run(cross::cargo(paths)?.args([
        "build",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "context-bench",
    ]))?;
    let mut test = cross::cargo(paths)?;
    conformance_test(
        &mut test,
        backend,
        &Selection {
            external: None,
            ..*select
        },
    );
    // The core column's cores come from the kernel in the guest, which has no gdb (the
    // runner's `CoreSource`).
    test.env("CONFORMANCE_BACKENDS", backend.conformance_backends());
    if std::env::var_os("XTASK_VM_TIMEOUT_SECS").is_none() {
        test.env("XTASK_VM_TIMEOUT_SECS", "3000");
    }
    run(&mut test)
}

/// `cargo test --release` of the fuzz targets with `cases` in all; release builds check integer
/// overflow only when asked, and overflow is one of the things the fuzzing looks for.
fn fuzz_command(cmd: &mut Command, cases: u64) -> &mut Command {
    cmd.args([
        "test",
        "--release",
        "-p",
        "context-reader",
        "--test",
        "it",
        "fuzz::",
        "--",
        "--nocapture",
    ])
    .env("FUZZ_CASES", cases.to_string())
    .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
    .env("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true")
}

/// Both backends unless the caller chose (`CONFORMANCE_BACKENDS` set in the environment).
fn all_backends(cmd: &mut Command) -> &mut Command {
    if std::env::var_os("CONFORMANCE_BACKENDS").is_none() {
        cmd.env("CONFORMANCE_BACKENDS", Backend::All.conformance_backends());
    }
    cmd
}

/// The steps of `cargo xtask test` as they ran: name, wall time, passed.
#[derive(Default)]
struct StepTimes(Vec<(String, Duration, bool)>);

impl StepTimes {
    /// Runs one step, timing it; a failure is printed and recorded, not returned, so that later
    /// steps still run.
    fn run(&mut self, name: &str, step: impl FnOnce() -> Result<()>) {
        eprintln!("xtask test: step `{name}`");
        let started = Instant::now();
        let result = step();
        let took = started.elapsed();
        if let Err(e) = &result {
            eprintln!("xtask test: step `{name}` failed after {took:.0?}: {e:#}");
        }
        self.0.push((name.to_string(), took, result.is_ok()));
    }

    fn failed(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, _, ok)| !ok)
            .map(|(name, _, _)| name.as_str())
            .collect()
    }

    /// The table every CI log ends with, so the time budget is visible.
    fn table(&self) -> String {
        let mut out = String::from("| step | time | result |\n|---|---:|---|\n");
        let mut total = Duration::ZERO;
        for (name, took, ok) in &self.0 {
            total += *took;
            let verdict = if *ok { "passed" } else { "FAILED" };
            out += &format!("| {name} | {} | {verdict} |\n", minutes(*took));
        }
        out += &format!("| total | {} | |\n", minutes(total));
        out
    }
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02} ({s} s)", s / 60, s % 60)
}

/// Runs every step even when an earlier one failed, then prints how long each took and fails
/// naming all that failed.
fn test(paths: &Paths, arch: Arch) -> Result<()> {
    let legs = arch.legs();
    let mut steps = StepTimes::default();
    steps.run("setup", || setup::setup(legs, &paths.cache));
    let _ = std::fs::remove_file(vm_failures_log(paths));
    let result = test_steps(paths, legs, &mut steps);
    eprintln!("\nxtask test: time per step\n{}", steps.table());
    if let Ok(failures) = std::fs::read_to_string(vm_failures_log(paths)) {
        eprintln!("xtask test: the last lines of each failed aarch64 VM run\n{failures}");
    }
    result?;
    let failed = steps.failed();
    if !failed.is_empty() {
        bail!("failed steps: {}", failed.join(", "));
    }
    eprintln!("xtask test: all steps passed");
    Ok(())
}

fn test_steps(paths: &Paths, legs: setup::Legs, steps: &mut StepTimes) -> Result<()> {
    if !steps.failed().is_empty() {
        bail!("setup failed: nothing else can run");
    }
    if legs.x86_64 {
        steps.run("fmt", || {
            run(host_cargo(paths).args(["fmt", "--all", "--check"]))
        });
        // Reads sources only (no target is built): well under a second.
        steps.run("spec coverage", || {
            coverage::run(&paths.workspace, true, false)
        });
        steps.run("clippy", || {
            run(host_cargo(paths).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        });
        // `cargo test` builds other packages' binaries only as test harnesses: the conformance
        // runner needs the real target and reader executables, so build them first.
        steps.run("x86_64 build", || {
            run(host_cargo(paths).args(["build", "--workspace", "--bins", "--tests"]))
        });
        steps.run("x86_64 tests (all but conformance)", || {
            run(all_backends(&mut host_cargo(paths)).args([
                "test",
                "--workspace",
                "--exclude",
                "conformance",
                "--no-fail-fast",
            ]))
        });
        // The suite's reports (docs/certify.md) stay in the target dir for CI to show.
        let report = paths.target.join("conformance-report");
        steps.run("x86_64 conformance", || {
            run(all_backends(&mut host_cargo(paths))
                .args(["test", "-p", "conformance", "--no-fail-fast"])
                .env("CONFORMANCE_REPORT", &report))
        });
        // The core column again from the kernel's dumps, the aarch64 guest's producer: cheap
        // (about 20 ms a case), so every case the ptrace column has, where gcore's column above
        // takes a selection.
        steps.run("x86_64 conformance, core column from kernel dumps", || {
            run(host_cargo(paths)
                .args(["test", "-p", "conformance", "--test", "conformance"])
                .env("CONFORMANCE_BACKENDS", "core")
                .env("CONFORMANCE_CORE_SOURCE", "kernel"))
        });
        // The corpus of the executable local-exec placements (`basic` of each), checked by the
        // independent Python checker: the proof that the vectors describe themselves.
        steps.run("x86_64 corpus check", || {
            let dir = paths.target.join("corpus-ci");
            let _ = std::fs::remove_dir_all(&dir);
            corpus(paths, &dir, Some("exe-le/basic"), false)
        });
        // The real tracers from their registries (pinned), both backends, and the README's
        // compatibility table generated from the results.
        steps.run("x86_64 tracers", || {
            setup::setup(TRACER_LEGS, &paths.cache)?;
            tracers::certify(paths, || host_cargo(paths), Backend::All.live_backends()?)
        });
        // The READY-line emitters of docs/certify.md, as the document has them.
        steps.run("x86_64 emitters (docs/certify.md)", || {
            setup::setup(TRACER_LEGS, &paths.cache)?;
            certify_emitters(paths, Backend::All.live_backends()?)
        });
    }
    if legs.aarch64 {
        steps.run("aarch64 vm-smoke", || smoke::run_smoke(paths));
        // The reader's own tests in the VM (decoders, ptrace and eBPF against live writers). Doc
        // tests are left out: each would boot a VM of its own.
        steps.run("aarch64 reader tests", || {
            run(cross::cargo(paths)?.args([
                "test",
                "-p",
                "context-reader",
                "--no-fail-fast",
                "--lib",
                "--tests",
            ]))
        });
        // The eBPF crate's own tests (the loader, the shared sampler, per-thread events): every
        // wait in them is bounded and a watchdog names the phase a test hung in.
        steps.run("aarch64 ebpf tests", || {
            run(cross::cargo(paths)?.args([
                "test",
                "-p",
                "context-reader-ebpf",
                "--no-fail-fast",
                "--lib",
                "--tests",
            ]))
        });
        steps.run("aarch64 conformance", || {
            conformance_aarch64(paths, Backend::All, &Selection::default())
        });
    }
    Ok(())
}

/// `cargo xtask corpus`: the exporter (conformance/examples/corpus.rs) into `dir`, then its
/// independent checker; with `pack`, `dir.tar.xz` and its size.
fn corpus(paths: &Paths, dir: &std::path::Path, filter: Option<&str>, pack: bool) -> Result<()> {
    let dir = std::env::current_dir()?.join(dir);
    run(host_cargo(paths).args(["build", "--workspace", "--bins"]))?;
    let mut export = host_cargo(paths);
    export
        .args(["run", "-p", "conformance", "--example", "corpus", "--"])
        .arg(&dir);
    if let Some(f) = filter {
        export.arg(f);
    }
    run(&mut export)?;
    run(Command::new("python3")
        .arg(dir.join("corpus_check.py"))
        .arg(&dir))?;
    if pack {
        let archive = dir.with_extension("tar.xz");
        run(Command::new("tar")
            .arg("-cJf")
            .arg(&archive)
            .arg("-C")
            .arg(&dir)
            .arg("."))?;
        let size = std::fs::metadata(&archive)?.len();
        eprintln!(
            "xtask corpus: {} ({:.1} MB)",
            archive.display(),
            size as f64 / 1e6
        );
    }
    Ok(())
}

fn vm_run(paths: &Paths, program: &std::path::Path, args: &[OsString]) -> Result<u8> {
    let outcome = guest::run_in_vm(&paths.cache, program, args)?;
    let code = if outcome.timed_out {
        eprintln!(
            "xtask vm-run: timed out; VM killed (set XTASK_VM_TIMEOUT_SECS to change the limit)"
        );
        124
    } else {
        match outcome.exit_code {
            Some(code) => u8::try_from(code).unwrap_or(1),
            None => {
                eprintln!("xtask vm-run: the VM ended without printing an exit code (kernel panic or guest crash): failure");
                125
            }
        }
    };
    if code != 0 {
        record_vm_failure(program, code, &outcome.output);
    }
    Ok(code)
}

/// Where `vm-run` appends the last lines of each failed guest run, which `xtask test` prints
/// after its step table: a CI log shown only in part then still says why an aarch64 step failed
/// (a watchdog's message, a panic) rather than only that it did. The cross cargo passes the path
/// to its runner in [`VM_FAILURES_LOG_VAR`] (its own target dir is another).
fn vm_failures_log(paths: &Paths) -> std::path::PathBuf {
    paths.target.join("xtask-vm-failures.log")
}

const VM_FAILURES_LOG_VAR: &str = "XTASK_VM_FAILURES_LOG";

const VM_FAILURE_TAIL_LINES: usize = 25;

fn record_vm_failure(program: &std::path::Path, code: u8, output: &str) {
    let Some(log) = std::env::var_os(VM_FAILURES_LOG_VAR) else {
        return;
    };
    let lines: Vec<&str> = output.lines().collect();
    let tail = &lines[lines.len().saturating_sub(VM_FAILURE_TAIL_LINES)..];
    let entry = format!(
        "### {} (exit code {code})\n```\n{}\n```\n",
        program.display(),
        tail.join("\n")
    );
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, entry.as_bytes()));
    if let Err(e) = appended {
        eprintln!("xtask vm-run: cannot record the failure: {e}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = Paths::discover();
    let result = match cli.command {
        Task::Setup { arch } => setup::setup(arch.legs(), &paths.cache),
        Task::Conformance {
            backend,
            arch,
            list,
            full,
            external,
            report,
            filter,
        } => {
            // Relative to where the user ran xtask (cargo test runs in the package directory).
            let report = report.map(|d| std::env::current_dir().unwrap_or_default().join(d));
            conformance(
                &paths,
                backend,
                arch,
                &Selection {
                    list,
                    full,
                    external: external.as_deref(),
                    filter: filter.as_deref(),
                    report: report.as_deref(),
                },
            )
        }
        Task::Test { arch } => test(&paths, arch),
        Task::Ci => test(&paths, Arch::All),
        Task::Coverage { check, cases } => coverage::run(&paths.workspace, check, cases),
        Task::Bench(args) => bench::bench(&paths, &args),
        Task::Fuzz { cases } => run(fuzz_command(&mut host_cargo(&paths), cases)),
        Task::Corpus { dir, filter } => corpus(&paths, &dir, filter.as_deref(), true),
        Task::Soak {
            kills,
            snapshots,
            ebpf_snapshots,
        } => soak::run(
            || host_cargo(&paths),
            &soak::Soak {
                kills,
                snapshots,
                ebpf_snapshots,
            },
        ),
        Task::Tracers { action } => tracers_task(&paths, action),
        Task::Dist { no_vm } => setup::setup(Arch::All.legs(), &paths.cache)
            .and_then(|()| dist::dist(&paths, || host_cargo(&paths), !no_vm)),
        Task::VmRun { program, args } => match vm_run(&paths, &program, &args) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Task::VmSmoke => smoke::run_smoke(&paths),
        Task::Cross { cargo_args } => cross::cargo(&paths).and_then(|mut c| {
            if cargo_args.is_empty() {
                bail!("usage: cargo xtask cross CARGO_SUBCOMMAND [ARGS...]");
            }
            run(c.args(&cargo_args)).context("cross cargo")
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_writers_go_to_certify_through_sh() {
        let cmd = certify_external(
            Path::new("/t/context-reader"),
            Backend::All,
            "python3 w.py --x 'a b'",
            Some(Path::new("/tmp/r")),
        );
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(
            args,
            [
                "certify",
                "--backend",
                "all",
                "--report",
                "/tmp/r",
                "--",
                "sh",
                "-c",
                "exec python3 w.py --x 'a b' \"$@\"",
                "sh"
            ]
        );
    }

    #[test]
    fn conformance_selection_goes_to_env_and_libtest_args() {
        let mut cmd = Command::new("cargo");
        conformance_test(
            &mut cmd,
            Backend::All,
            &Selection {
                list: true,
                full: true,
                external: None,
                filter: Some("many-threads"),
                report: Some(Path::new("/tmp/r")),
            },
        );
        assert_eq!(
            process::describe(&cmd),
            "cargo test -p conformance --test conformance -- --list many-threads"
        );
        let env: Vec<_> = cmd.get_envs().collect();
        assert!(env.contains(&(
            "CONFORMANCE_BACKENDS".as_ref(),
            Some("ptrace,ebpf,core".as_ref())
        )));
        assert!(env.contains(&("CONFORMANCE_REPORT".as_ref(), Some("/tmp/r".as_ref()))));
        assert!(env.contains(&("CONFORMANCE_FULL".as_ref(), Some("1".as_ref()))));
        let mut cmd = Command::new("cargo");
        conformance_test(&mut cmd, Backend::Ebpf, &Selection::default());
        let env: Vec<_> = cmd.get_envs().collect();
        assert_eq!(
            env,
            [("CONFORMANCE_BACKENDS".as_ref(), Some("ebpf".as_ref()))]
        );
    }

    #[test]
    fn arch_maps_to_legs() {
        let legs = |a: Arch| (a.legs().x86_64, a.legs().aarch64);
        assert_eq!(legs(Arch::X86_64), (true, false));
        assert_eq!(legs(Arch::Aarch64), (false, true));
        assert_eq!(legs(Arch::All), (true, true));
    }

    #[test]
    fn cli_parses_runner_invocation_with_test_flags() {
        let cli = Cli::try_parse_from(["xtask", "vm-run", "/t/bin", "--exact", "x", "--nocapture"])
            .unwrap();
        let Task::VmRun { program, args } = cli.command else {
            panic!("not vm-run")
        };
        assert_eq!(program, PathBuf::from("/t/bin"));
        assert_eq!(args, ["--exact", "x", "--nocapture"]);
    }
}

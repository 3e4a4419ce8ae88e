//! Runs one conformance case through the reader's own certification trial
//! (`context_reader::certify::trial::run_trial`: spawn behind a kill-on-drop guard, `CONTEXT-READY`,
//! snapshot, `compare` with `expect` (a series for churn), stdin EOF, exit 0). This file only
//! chooses the command and how snapshots are taken: the reader library, or the `context-reader`
//! binary end to end.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use context_reader::certify::trial::{
    run_trial, ReadRequest, SessionReader, TrialOptions, TrialOutcome, Verdict,
};
use context_reader::SnapshotOptions;
use context_targets::{Backend, Variant};
use serde_json::Value;

const READER_TIMEOUT: Duration = Duration::from_secs(120);

/// How a trial reads the target.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReaderMode {
    /// `context_reader::Session` in this process.
    Library,
    /// The `context-reader PID --once --format json` binary, end to end.
    Binary,
}

#[derive(Clone)]
pub struct Case {
    pub backend: Backend,
    pub variant: Arc<Variant>,
    pub scenario: String,
    pub reader: ReaderMode,
}

fn snapshot_binary(pid: i32, backend: Backend) -> Result<Value, String> {
    run_reader_binary(&[
        &pid.to_string(),
        "--once",
        "--format",
        "json",
        "--backend",
        &backend.to_string(),
    ])
}

/// Runs the `context-reader` binary with `args` and parses the one JSON line it prints.
fn run_reader_binary(args: &[&str]) -> Result<Value, String> {
    let bin = context_targets::reader_bin();
    if !bin.is_file() {
        return Err(format!(
            "reader binary {} missing: build it with `cargo build -p context-reader` (cargo xtask conformance does) or set CONTEXT_READER_BIN",
            bin.display()
        ));
    }
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + READER_TIMEOUT;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "context-reader did not finish within {READER_TIMEOUT:?}"
                ));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let out = out_thread.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(format!(
            "context-reader exited with {status}; stderr: {err}"
        ));
    }
    let text =
        String::from_utf8(out).map_err(|_| "context-reader printed non-UTF-8".to_string())?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 {
        return Err(format!(
            "context-reader --once printed {} lines, expected exactly one",
            lines.len()
        ));
    }
    serde_json::from_str(lines[0]).map_err(|e| format!("context-reader output is not JSON: {e}"))
}

/// A core of the running target, written by `gcore` (gdb's: it stops every thread with ptrace,
/// dumps, detaches, so the target runs on) into `dir`.
fn gcore(pid: i32, dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let prefix = dir.join("core");
    let out = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("gcore (gdb; `cargo xtask setup` installs it): {e}"))?;
    let core = dir.join(format!("core.{pid}"));
    if !out.status.success() || !core.is_file() {
        return Err(format!(
            "gcore {pid} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(core)
}

/// Where the core column's cores come from. On x86-64, `gcore` of the running target, which
/// then exits on stdin EOF like in every other column. The aarch64 VM guest has no gdb (its arm64
/// build needs some 30 more libraries in the guest, and attaching it under emulation costs
/// seconds a case), so there the kernel writes the core: the target runs in a temporary working
/// directory, where the kernel's default `core_pattern` (`core`) puts the dump, and is killed with
/// SIGABRT once it is ready. Both read with the sysroot `/`. `CONFORMANCE_CORE_SOURCE=gcore|kernel`
/// overrides the arch's default (e.g. on a machine without gdb).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CoreSource {
    Gcore,
    KernelDump,
}

pub fn core_source() -> CoreSource {
    match std::env::var("CONFORMANCE_CORE_SOURCE").as_deref() {
        Ok("gcore") => CoreSource::Gcore,
        Ok("kernel") => CoreSource::KernelDump,
        Ok(other) => panic!("CONFORMANCE_CORE_SOURCE: {other:?} is neither gcore nor kernel"),
        Err(_) if cfg!(target_arch = "aarch64") => CoreSource::KernelDump,
        Err(_) => CoreSource::Gcore,
    }
}

/// How long the kernel may take to write a target's core (a few MB even under emulation).
const KERNEL_DUMP_TIMEOUT: Duration = Duration::from_secs(60);

/// Lets the targets spawned from now on dump core (their soft `RLIMIT_CORE` raised to the hard
/// limit), and checks that the kernel writes cores into the crashing process's directory.
fn enable_kernel_dumps() -> Result<(), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern")
        .map_err(|e| format!("/proc/sys/kernel/core_pattern: {e}"))?;
    let pattern = pattern.trim();
    if pattern.starts_with('|') || pattern.starts_with('/') {
        return Err(format!(
            "kernel.core_pattern is {pattern:?}: the core column needs a pattern relative to \
             the crashing process's directory (the default `core`)"
        ));
    }
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    if hard == 0 {
        return Err("RLIMIT_CORE hard limit is 0: no core can be dumped".to_string());
    }
    setrlimit(Resource::RLIMIT_CORE, hard, hard).map_err(|e| format!("RLIMIT_CORE: {e}"))
}

/// The kernel's core of the target `pid`, which runs in `dir`: SIGABRT, then a wait until the
/// target has ended (its dump is then complete) that leaves it to the trial to reap.
fn kernel_core(pid: i32, dir: &std::path::Path) -> Result<std::path::PathBuf, String> {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;
    let target = Pid::from_raw(pid);
    kill(target, Signal::SIGABRT).map_err(|e| format!("SIGABRT to {pid}: {e}"))?;
    let deadline = Instant::now() + KERNEL_DUMP_TIMEOUT;
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
    loop {
        match waitid(Id::Pid(target), flags) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(WaitStatus::StillAlive) => {
                return Err(format!(
                    "the target did not end within {KERNEL_DUMP_TIMEOUT:?} of SIGABRT"
                ))
            }
            Ok(WaitStatus::Signaled(_, _, true)) => break,
            Ok(status) => {
                return Err(format!(
                    "the target ended as {status:?} after SIGABRT, without a core"
                ))
            }
            Err(e) => return Err(format!("waitid {pid}: {e}")),
        }
    }
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
        .ok_or_else(|| format!("the kernel dumped core, but not into {}", dir.display()))
}

/// The core column: a core of the target (see [`CoreSource`]; `kernel_dump_dir` is the
/// target's working directory when the kernel writes it) read by `context-reader core`
/// (library, or the binary end to end).
fn snapshot_core(
    pid: i32,
    mode: ReaderMode,
    kernel_dump_dir: Option<&std::path::Path>,
) -> Result<Value, String> {
    let gcore_dir;
    let core = match kernel_dump_dir {
        Some(cwd) => kernel_core(pid, cwd)?,
        None => {
            gcore_dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
            gcore(pid, gcore_dir.path())?
        }
    };
    match mode {
        ReaderMode::Binary => {
            let path = core.to_string_lossy();
            run_reader_binary(&["core", &path, "--format", "json"])
        }
        ReaderMode::Library => context_reader::session::snapshot_core(
            &core,
            std::path::Path::new("/"),
            &SnapshotOptions::default(),
        )
        .map(|(s, _)| s.to_json())
        .map_err(|e| format!("reader: {e}")),
    }
}

/// Where failing cases leave their expect/observed documents.
fn dump(case_name: &str, expect: &Value, observed: &Value) -> String {
    let dir = std::env::temp_dir().join("conformance");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{}.json", case_name.replace('/', "__")));
    let doc = serde_json::json!({"expect": expect, "observed": observed});
    match std::fs::write(
        &file,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    ) {
        Ok(()) => format!("expect and observed: {}", file.display()),
        Err(e) => format!("(could not write {}: {e})", file.display()),
    }
}

/// A trial's outcome as a libtest result (a failure leaves both documents in `$TMPDIR`).
pub fn into_result(name: &str, outcome: TrialOutcome) -> Result<(), String> {
    match outcome.verdict {
        Verdict::Pass => Ok(()),
        Verdict::Fail => Err(format!(
            "{}{}",
            outcome.detail,
            dump(name, &outcome.expect, &outcome.observed)
        )),
        Verdict::Error => Err(outcome.detail),
    }
}

/// Runs one case and returns its whole outcome (for reports).
pub fn run_case_outcome(name: &str, case: &Case) -> TrialOutcome {
    let busy = case.backend == Backend::Ebpf;
    let mut cmd = case.variant.command(&case.scenario, busy);
    let mut opts = TrialOptions::for_backend(case.backend);
    let kernel_dump_dir =
        (case.backend == Backend::Core && core_source() == CoreSource::KernelDump).then(|| {
            let dir = tempfile::tempdir().expect("a temporary directory for the target's core");
            cmd.current_dir(dir.path());
            opts.read_ends_writer = true;
            dir
        });
    if kernel_dump_dir.is_some() {
        static ENABLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        if let Err(e) = ENABLED.get_or_init(enable_kernel_dumps) {
            return TrialOutcome::error(e.clone());
        }
    }
    let mut library = SessionReader::new(SnapshotOptions {
        backend: case.backend,
        ..SnapshotOptions::default()
    });
    let mut read = |req: ReadRequest| match case.reader {
        _ if case.backend == Backend::Core => snapshot_core(
            req.pid,
            case.reader,
            kernel_dump_dir.as_ref().map(|d| d.path()),
        ),
        // A series (churn) goes through one session even in binary cases.
        ReaderMode::Binary if !req.series => snapshot_binary(req.pid, case.backend),
        _ => library.snapshot(req.pid),
    };
    let outcome = run_trial(cmd, case.backend, &opts, &mut read);
    if std::env::var_os("CONFORMANCE_TIMING").is_some_and(|v| v == "1") {
        let parts: Vec<String> = outcome
            .phases
            .iter()
            .map(|(p, d)| format!("{p} {:.0} ms", d.as_secs_f64() * 1e3))
            .collect();
        eprintln!("timing {name}: {}", parts.join(", "));
    }
    outcome
}

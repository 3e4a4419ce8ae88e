//! Runs one conformance case: spawns the target behind a kill-on-drop guard, waits for
//! `CONTEXT-READY`, takes a snapshot (reader library, or the `context-reader` binary end to end),
//! compares it with `expect` through `conformance::compare` (many snapshots for churn), closes stdin
//! and requires exit 0. Shared by the libtest-mimic suite (`conformance.rs`) and the tests of
//! external-writer certification (`external.rs`).

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conformance::{compare, has_churn, ChurnSeries};
use context_reader::snapshot::BackendKind;
use context_reader::{Session, SnapshotOptions};
use context_targets::{Backend, RunningTarget, Variant};
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
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
    /// External target: run `sh -c "exec CMD"` exactly as given (plus `--busy` for eBPF).
    pub external: Option<String>,
}

impl Case {
    /// A writer the catalogue does not know, run as the shell command line `line`.
    pub fn external(line: &str, backend: Backend) -> Case {
        let program = line.split_whitespace().next().unwrap_or("external");
        Case {
            backend,
            variant: Arc::new(context_targets::external_variant(program)),
            scenario: String::new(),
            reader: ReaderMode::Library,
            external: Some(line.to_string()),
        }
    }
}

fn backend_kind(backend: Backend) -> BackendKind {
    match backend {
        Backend::Ptrace => BackendKind::Ptrace,
        Backend::Ebpf => BackendKind::Ebpf,
        Backend::Core => BackendKind::Core,
    }
}

fn snapshot_binary(pid: i32, backend: Backend) -> Result<Value, String> {
    let pid = pid.to_string();
    run_reader_binary(&[
        &pid,
        "--once",
        "--format",
        "json",
        "--backend",
        backend.name(),
    ])
}

/// Runs the `context-reader` binary with `args`; its one line of JSON.
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

fn session(pid: i32, backend: Backend) -> Result<Session, String> {
    let opts = SnapshotOptions {
        backend: backend_kind(backend),
        ..SnapshotOptions::default()
    };
    Session::new(pid, opts).map_err(|e| format!("reader: {e}"))
}

fn snapshot_with(session: &mut Session) -> Result<Value, String> {
    session
        .snapshot()
        .map(|(s, _)| s.to_json())
        .map_err(|e| format!("reader: {e}"))
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

fn churn_snapshots(backend: Backend) -> usize {
    match backend {
        Backend::Ptrace => 25,
        Backend::Ebpf => 3,
        Backend::Core => 1,
    }
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

/// The core column: a `gcore` of the target read by `context-reader core` (library, or the
/// binary end to end).
fn snapshot_core(pid: i32, mode: ReaderMode) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let core = gcore(pid, dir.path())?;
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

/// `expect` as a core shows it: a core holds the name of the main thread only (`pr_fname` of
/// `NT_PRPSINFO`; Linux has no note for the others), so the other threads' expected names are
/// the empty string the core backend reports. Everything else is compared as it is.
fn expect_in_core(expect: &mut Value, pid: i32) {
    for t in expect["threads"].as_array_mut().into_iter().flatten() {
        if t["tid"] != pid {
            if let Some(name) = t.get_mut("name") {
                *name = Value::String(String::new());
            }
        }
    }
}

/// With `CONFORMANCE_TIMING=1`, each case prints how long its phases took (start to
/// `CONTEXT-READY`, reading, shutdown), to find where a case spends its time (e.g. in the VM).
struct PhaseTimer {
    enabled: bool,
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl PhaseTimer {
    fn new() -> Self {
        PhaseTimer {
            enabled: std::env::var_os("CONFORMANCE_TIMING").is_some_and(|v| v == "1"),
            last: Instant::now(),
            phases: Vec::new(),
        }
    }

    fn lap(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.phases.push((phase, now - self.last));
        self.last = now;
    }

    fn print(&self, name: &str) {
        if self.enabled {
            let parts: Vec<String> = self
                .phases
                .iter()
                .map(|(p, d)| format!("{p} {:.0} ms", d.as_secs_f64() * 1e3))
                .collect();
            eprintln!("timing {name}: {}", parts.join(", "));
        }
    }
}

pub fn run_case(name: &str, case: &Case) -> Result<Option<String>, String> {
    let mut timer = PhaseTimer::new();
    let result = run_case_timed(name, case, &mut timer);
    timer.print(name);
    result
}

fn run_case_timed(
    name: &str,
    case: &Case,
    timer: &mut PhaseTimer,
) -> Result<Option<String>, String> {
    let busy = case.backend == Backend::Ebpf;
    let cmd = match &case.external {
        Some(line) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("exec {line}{}", if busy { " --busy" } else { "" }));
            // Relative paths in the command are the user's: `cargo test` runs us in the package dir.
            if let Some(dir) = std::env::var_os("CONFORMANCE_EXTERNAL_DIR") {
                c.current_dir(dir);
            }
            c
        }
        None => case.variant.command(&case.scenario, busy),
    };
    let mut target = RunningTarget::spawn(cmd)?;
    let ready = target.wait_ready(READY_TIMEOUT)?;
    timer.lap("ready");
    if ready.pid != target.pid() {
        return Err(format!(
            "CONTEXT-READY pid {} but the spawned process is {}",
            ready.pid,
            target.pid()
        ));
    }
    let mut expect = ready.expect.clone();
    if let Some(obj) = expect.as_object_mut() {
        obj.entry("backend")
            .or_insert_with(|| Value::String(case.backend.name().to_string()));
    }
    if case.backend == Backend::Core {
        expect_in_core(&mut expect, ready.pid);
    }
    let mut last_observed = Value::Null;
    let report = if case.backend == Backend::Core {
        last_observed = snapshot_core(ready.pid, case.reader)?;
        compare(&expect, &last_observed)
    } else if has_churn(&expect) {
        // Many snapshots through one session, judged as a series (conformance::ChurnSeries).
        let mut session = session(ready.pid, case.backend)?;
        let mut series = ChurnSeries::new(&expect);
        for _ in 0..churn_snapshots(case.backend) {
            last_observed = snapshot_with(&mut session)?;
            if !series.observe(&last_observed) {
                break;
            }
        }
        series.finish()
    } else {
        last_observed = match case.reader {
            ReaderMode::Binary => snapshot_binary(ready.pid, case.backend)?,
            ReaderMode::Library => snapshot_with(&mut session(ready.pid, case.backend)?)?,
        };
        compare(&expect, &last_observed)
    };
    timer.lap("read");
    if !report.ok() {
        return Err(format!(
            "{}{}",
            report.render(40),
            dump(name, &expect, &last_observed)
        ));
    }
    let status = target.finish(EXIT_TIMEOUT)?;
    timer.lap("exit");
    if !status.success() {
        return Err(format!(
            "snapshot matched, but the target exited with {status} after stdin EOF"
        ));
    }
    Ok(case.external.as_ref().map(|_| report.render(0)))
}

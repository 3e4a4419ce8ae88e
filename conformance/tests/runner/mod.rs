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
    let cmd = case.variant.command(&case.scenario, busy);
    let mut library = SessionReader::new(SnapshotOptions {
        backend: case.backend,
        ..SnapshotOptions::default()
    });
    let mut read = |req: ReadRequest| match case.reader {
        _ if case.backend == Backend::Core => snapshot_core(req.pid, case.reader),
        // A series (churn) goes through one session even in binary cases.
        ReaderMode::Binary if !req.series => snapshot_binary(req.pid, case.backend),
        _ => library.snapshot(req.pid),
    };
    let outcome = run_trial(
        cmd,
        case.backend,
        &TrialOptions::for_backend(case.backend),
        &mut read,
    );
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

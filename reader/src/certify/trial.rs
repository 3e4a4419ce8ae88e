//! One certification trial (conformance.md section 4): spawn the writer ([`RunningTarget`]), wait
//! for `CONTEXT-READY`, read it, compare with `expect` ([`compare`], or a [`ChurnSeries`] of
//! snapshots when `expect` describes churning threads), close stdin and require exit 0. Every way
//! a writer can misbehave (no READY line, malformed JSON, early exit, a pid that is not the spawned
//! process, no exit after stdin EOF) ends in a [`Verdict::Error`] that says which, within the
//! timeouts, with the writer killed. Used by `context-reader certify` and the conformance suite.

use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compare::{compare, has_churn, ChurnSeries, Report};
use super::protocol::RunningTarget;
use crate::session::{Session, SnapshotOptions};
use crate::snapshot::Backend;

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The reader reported exactly what the writer declared, and the writer exited 0 on EOF.
    Pass,
    /// The writer spoke the protocol, but the reader saw something else (see the diffs).
    Fail,
    /// The trial could not be judged: the writer broke the protocol, or the reader failed.
    Error,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

/// Bounds of one trial.
#[derive(Debug, Clone)]
pub struct TrialOptions {
    /// From start to the `CONTEXT-READY` line.
    pub ready_timeout: Duration,
    /// From stdin EOF to the writer's exit.
    pub exit_timeout: Duration,
    /// Snapshots of a churning writer (a series, stopped at the first difference).
    pub churn_snapshots: usize,
    /// The read ends the writer (a reader of the kernel's core dump kills it with a dumping
    /// signal): after a matching snapshot the writer is reaped, and how it ended is not judged.
    pub read_ends_writer: bool,
}

impl TrialOptions {
    /// The suite's defaults for `backend`: 60 s to READY, 20 s to exit, 25 churn snapshots with
    /// ptrace and 3 with eBPF (each eBPF snapshot is a sampling window).
    pub fn for_backend(backend: Backend) -> Self {
        TrialOptions {
            ready_timeout: Duration::from_secs(60),
            exit_timeout: Duration::from_secs(20),
            churn_snapshots: match backend {
                Backend::Ptrace => 25,
                Backend::Ebpf => 3,
                // A core is one instant; churn cases are not generated for it.
                Backend::Core => 1,
            },
            read_ends_writer: false,
        }
    }
}

/// What a trial asks its reader for: one snapshot of `pid`; `series` is true while reading a
/// churning writer (many snapshots, best taken through one session).
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest {
    pub pid: i32,
    pub series: bool,
}

/// Reads snapshots through one in-process [`Session`], created on the first request.
pub struct SessionReader {
    opts: SnapshotOptions,
    session: Option<Session>,
}

impl SessionReader {
    pub fn new(opts: SnapshotOptions) -> Self {
        SessionReader {
            opts,
            session: None,
        }
    }

    pub fn snapshot(&mut self, pid: i32) -> Result<Value, String> {
        let session = match &mut self.session {
            Some(s) => s,
            None => self
                .session
                .insert(Session::new(pid, self.opts.clone()).map_err(|e| format!("reader: {e}"))?),
        };
        session
            .snapshot()
            .map(|(s, _)| s.to_json())
            .map_err(|e| format!("reader: {e}"))
    }
}

/// The result of one trial.
#[derive(Debug, Clone)]
pub struct TrialOutcome {
    pub verdict: Verdict,
    /// The writer's name from `CONTEXT-READY` (empty when it never got that far or gave none).
    pub writer: String,
    /// What went wrong (an error), or the comparison's summary (what was right and wrong).
    pub detail: String,
    /// The comparison (empty when the trial never compared).
    pub report: Report,
    /// `expect` as compared (with `backend` filled in) and the last snapshot read.
    pub expect: Value,
    pub observed: Value,
    /// How long each phase took: `ready`, `read`, `exit`.
    pub phases: Vec<(&'static str, Duration)>,
    /// The whole trial.
    pub duration: Duration,
}

impl TrialOutcome {
    /// A trial that could not start: `detail` says why.
    pub fn error(detail: String) -> Self {
        TrialOutcome {
            verdict: Verdict::Error,
            writer: String::new(),
            detail,
            report: Report::default(),
            expect: Value::Null,
            observed: Value::Null,
            phases: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// Runs one trial of the writer `cmd` read by `read` (conformance.md section 4). `backend` is the
/// name `expect` gets as its `backend` when the writer left it out.
pub fn run_trial(
    cmd: Command,
    backend: Backend,
    opts: &TrialOptions,
    read: &mut dyn FnMut(ReadRequest) -> Result<Value, String>,
) -> TrialOutcome {
    let start = Instant::now();
    let mut outcome = TrialOutcome::error(String::new());
    let result = run(cmd, backend, opts, read, &mut outcome);
    if let Err(e) = result {
        outcome.verdict = Verdict::Error;
        outcome.detail = e;
    }
    outcome.duration = start.elapsed();
    outcome
}

fn run(
    cmd: Command,
    backend: Backend,
    opts: &TrialOptions,
    read: &mut dyn FnMut(ReadRequest) -> Result<Value, String>,
    outcome: &mut TrialOutcome,
) -> Result<(), String> {
    let mut lap = Instant::now();
    let mut phase = |outcome: &mut TrialOutcome, name: &'static str| {
        let now = Instant::now();
        outcome.phases.push((name, now - lap));
        lap = now;
    };
    let mut target = RunningTarget::spawn(cmd)?;
    let ready = target.wait_ready(opts.ready_timeout)?;
    phase(outcome, "ready");
    outcome.writer = ready.writer.clone();
    if ready.pid != target.pid() {
        return Err(format!(
            "CONTEXT-READY pid {} but the spawned process is {}",
            ready.pid,
            target.pid()
        ));
    }
    let mut expect = ready.expect;
    if let Some(obj) = expect.as_object_mut() {
        obj.entry("backend")
            .or_insert_with(|| Value::String(backend.to_string()));
    }
    if backend == Backend::Core {
        names_in_core(&mut expect, ready.pid);
    }
    outcome.expect = expect;
    let expect = &outcome.expect;
    let report = if has_churn(expect) {
        let mut series = ChurnSeries::new(expect);
        for _ in 0..opts.churn_snapshots.max(1) {
            outcome.observed = read(ReadRequest {
                pid: ready.pid,
                series: true,
            })?;
            if !series.observe(&outcome.observed) {
                break;
            }
        }
        series.finish()
    } else {
        outcome.observed = read(ReadRequest {
            pid: ready.pid,
            series: false,
        })?;
        compare(expect, &outcome.observed)
    };
    phase(outcome, "read");
    outcome.detail = report.render(40);
    outcome.report = report;
    if !outcome.report.ok() {
        outcome.verdict = Verdict::Fail;
        return Ok(()); // the target is killed on drop
    }
    let status = target.finish(opts.exit_timeout)?;
    phase(outcome, "exit");
    if !status.success() && !opts.read_ends_writer {
        return Err(format!(
            "snapshot matched, but the writer exited with {status} after stdin EOF"
        ));
    }
    outcome.verdict = Verdict::Pass;
    Ok(())
}

/// `expect` as a core shows it: a core holds the name of the main thread only (`pr_fname` of
/// `NT_PRPSINFO`; Linux has no note for the others), so the other threads' expected names are
/// the empty string the core backend reports. Everything else is compared as it is.
fn names_in_core(expect: &mut Value, pid: i32) {
    for t in expect["threads"].as_array_mut().into_iter().flatten() {
        if t["tid"] != pid {
            if let Some(name) = t.get_mut("name") {
                *name = Value::String(String::new());
            }
        }
    }
}

//! The conformance suite: one libtest-mimic trial per `ARCH/BACKEND/VARIANT/SCENARIO`, generated
//! from the targets catalogue (data, not code). Each trial spawns the target behind a kill-on-drop
//! guard, waits for `CONTEXT-READY`, takes a snapshot (reader library; the `basic` case of every
//! variant runs the `context-reader` binary end to end), compares it with `expect` through
//! `conformance::check`, closes stdin and requires exit 0.
//!
//! Environment: `CONFORMANCE_BACKENDS=ptrace,ebpf` (default `ptrace`) picks the backends;
//! `CONFORMANCE_EBPF_SCENARIOS=all|basic,churn,...` the eBPF scenarios (default all; `basic` on
//! aarch64, where each eBPF case costs seconds of emulated verification);
//! `CONFORMANCE_EXTERNAL='CMD ARGS'` replaces the catalogue by one external target (trials
//! `ARCH/BACKEND/external/<program name>`); `CONTEXT_READER_BIN` overrides the reader binary
//! (default `<dir of this test binary>/../context-reader`).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conformance::{check, check_churn_thread, Report};
use context_reader::snapshot::BackendKind;
use context_reader::{Session, SnapshotOptions};
use context_targets::{catalogue, Backend, RunningTarget, Variant};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const READER_TIMEOUT: Duration = Duration::from_secs(120);

/// How a trial reads the target.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ReaderMode {
    /// `context_reader::Session` in this process.
    Library,
    /// The `context-reader PID --once --format json` binary, end to end.
    Binary,
}

#[derive(Clone)]
struct Case {
    backend: Backend,
    variant: Arc<Variant>,
    scenario: String,
    reader: ReaderMode,
    /// External target: run `sh -c "exec CMD"` exactly as given (plus `--busy` for eBPF).
    external: Option<String>,
}

fn backends() -> Vec<Backend> {
    let list = std::env::var("CONFORMANCE_BACKENDS").unwrap_or_else(|_| "ptrace".to_string());
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Backend::from_name(s)
                .unwrap_or_else(|| panic!("CONFORMANCE_BACKENDS: unknown backend {s:?}"))
        })
        .collect()
}

/// Scenarios the eBPF backend runs on this arch. Under aarch64 emulation each eBPF case loads the
/// program anew (4-12 s of verification in the guest), so the full eBPF matrix would not fit the
/// CI budget: there the eBPF backend runs `basic` of every variant (which also carries the
/// untouched `idle` thread) unless `CONFORMANCE_EBPF_SCENARIOS=all` or a list widens it.
fn ebpf_scenario_selected(arch: &str, scenario: &str) -> bool {
    let default = if arch == "aarch64" { "basic" } else { "all" };
    let list = std::env::var("CONFORMANCE_EBPF_SCENARIOS").unwrap_or_else(|_| default.to_string());
    list == "all" || list.split(',').any(|s| s.trim() == scenario)
}

fn backend_kind(backend: Backend) -> BackendKind {
    match backend {
        Backend::Ptrace => BackendKind::Ptrace,
        Backend::Ebpf => BackendKind::Ebpf,
    }
}

fn reader_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CONTEXT_READER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("context-reader"))
        .expect("target dir")
}

fn snapshot_binary(pid: i32, backend: Backend) -> Result<Value, String> {
    let bin = reader_bin();
    if !bin.is_file() {
        return Err(format!(
            "reader binary {} missing: build it with `cargo build -p context-reader` (cargo xtask conformance does) or set CONTEXT_READER_BIN",
            bin.display()
        ));
    }
    let mut child = Command::new(&bin)
        .args([
            &pid.to_string(),
            "--once",
            "--format",
            "json",
            "--backend",
            backend.name(),
        ])
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
    }
}

fn run_case(name: &str, case: &Case) -> Result<Option<String>, String> {
    let busy = case.backend == Backend::Ebpf;
    let cmd = match &case.external {
        Some(line) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("exec {line}{}", if busy { " --busy" } else { "" }));
            c
        }
        None => case.variant.command(&case.scenario, busy),
    };
    let mut target = RunningTarget::spawn(cmd)?;
    let ready = target.wait_ready(READY_TIMEOUT)?;
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
    let churn = expect["threads"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t.get("churn").is_some()));

    let mut report = Report::default();
    let mut last_observed = Value::Null;
    if churn {
        // Many snapshots; every churning thread must be consistent in each, counters never go back,
        // and an in-place writer must not be invisible in all of them.
        let mut session = session(ready.pid, case.backend)?;
        let churners: Vec<(i64, Value)> = expect["threads"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["tid"].as_i64()?, t.get("churn")?.clone())))
            .collect();
        let mut last: Vec<(u64, u64)> = vec![(0, 0); churners.len()];
        let mut v2_seen = vec![false; churners.len()];
        for round in 0..churn_snapshots(case.backend) {
            let observed = snapshot_with(&mut session)?;
            let r = check(&expect, &observed);
            report.compared += r.compared;
            report.sections = r.sections;
            report.diffs.extend(r.diffs.into_iter().map(|mut d| {
                d.path = format!("snapshot {round}: {}", d.path);
                d
            }));
            for (k, (tid, form)) in churners.iter().enumerate() {
                let Some(thread) = observed["threads"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["tid"] == *tid)
                else {
                    continue; // reported by check
                };
                let mut scratch = Report::default();
                let (v1n, v2n) = check_churn_thread(form, thread, "", &mut scratch);
                let (prev_v1, prev_v2) = &mut last[k];
                for (seen, prev, what) in [(v1n, prev_v1, "v1"), (v2n, prev_v2, "v2")] {
                    if let Some(n) = seen {
                        if n < *prev {
                            report.diffs.push(conformance::Diff {
                                path: format!(
                                    "snapshot {round}: $.threads[tid={tid}].{what} counter"
                                ),
                                expected: format!(">= {prev}"),
                                observed: n.to_string(),
                            });
                        }
                        *prev = n;
                    }
                }
                v2_seen[k] |= v2n.is_some();
            }
            last_observed = observed;
            if !report.ok() {
                break;
            }
        }
        for (k, (tid, _)) in churners.iter().enumerate() {
            if report.ok() && !v2_seen[k] {
                report.diffs.push(conformance::Diff {
                    path: format!("$.threads[tid={tid}].v2"),
                    expected: "a consistent record in at least one snapshot".to_string(),
                    observed: "null in every snapshot".to_string(),
                });
            }
        }
    } else {
        let observed = match case.reader {
            ReaderMode::Binary => snapshot_binary(ready.pid, case.backend)?,
            ReaderMode::Library => snapshot_with(&mut session(ready.pid, case.backend)?)?,
        };
        report = check(&expect, &observed);
        last_observed = observed;
    }
    if !report.ok() {
        return Err(format!(
            "{}{}",
            report.render(40),
            dump(name, &expect, &last_observed)
        ));
    }
    let status = target.finish(EXIT_TIMEOUT)?;
    if !status.success() {
        return Err(format!(
            "snapshot matched, but the target exited with {status} after stdin EOF"
        ));
    }
    Ok(case.external.as_ref().map(|_| report.render(0)))
}

fn trial(name: String, case: Case) -> Trial {
    let kind = format!("{:?}", case.reader).to_lowercase();
    Trial::test(name.clone(), move || match run_case(&name, &case) {
        Ok(Some(summary)) => {
            println!("{name}: {summary}");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(Failed::from(e)),
    })
    .with_kind(kind)
}

fn catalogue_trials(arch: &str) -> Vec<Trial> {
    let mut trials = Vec::new();
    let wanted = backends();
    for variant in catalogue().into_iter().map(Arc::new) {
        // One case of every variant (basic, else its first scenario) runs the binary end to end.
        let end_to_end = variant
            .scenarios
            .iter()
            .find(|s| *s == "basic")
            .or(variant.scenarios.first())
            .cloned();
        for scenario in &variant.scenarios {
            for backend in variant
                .backends_for(scenario)
                .into_iter()
                .filter(|b| wanted.contains(b))
                .filter(|b| *b != Backend::Ebpf || ebpf_scenario_selected(arch, scenario))
            {
                let reader = if Some(scenario) == end_to_end.as_ref() {
                    ReaderMode::Binary
                } else {
                    ReaderMode::Library
                };
                let name = format!("{arch}/{}/{}/{scenario}", backend.name(), variant.name);
                let case = Case {
                    backend,
                    variant: Arc::clone(&variant),
                    scenario: scenario.clone(),
                    reader,
                    external: None,
                };
                trials.push(trial(name, case));
            }
        }
    }
    trials
}

fn external_trials(arch: &str, line: &str) -> Vec<Trial> {
    let program = line.split_whitespace().next().unwrap_or("external");
    let writer = std::path::Path::new(program)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let variant = Arc::new(context_targets::external_variant(program));
    backends()
        .into_iter()
        .map(|backend| {
            let name = format!("{arch}/{}/external/{writer}", backend.name());
            let case = Case {
                backend,
                variant: Arc::clone(&variant),
                scenario: String::new(),
                reader: ReaderMode::Library,
                external: Some(line.to_string()),
            };
            trial(name, case)
        })
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    let arch = std::env::consts::ARCH;
    let trials = match std::env::var("CONFORMANCE_EXTERNAL") {
        Ok(line) if !line.trim().is_empty() => external_trials(arch, &line),
        _ => catalogue_trials(arch),
    };
    libtest_mimic::run(&args, trials).exit();
}

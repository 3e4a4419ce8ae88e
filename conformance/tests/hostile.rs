//! The hostile suite: readers against targets that publish broken or adversarial context, die
//! under the reader, or churn (issue 11). One libtest-mimic trial per
//! `hostile/BACKEND/CASE` (the cases of `context_targets::hostile_target()`, `--case NAME`), plus
//! `kill/ptrace/kill-200` (the reader binary SIGKILLed mid-snapshot, [`kill`]) and
//! `soak/BACKEND/churn` (many snapshots of churning writers, [`soak`]).
//!
//! A hostile case's `CONTEXT-READY` declares what a robust reader must report (form in
//! targets/README.md, "The hostile target"); for every snapshot this runner checks:
//! * the snapshot is taken (no panic, no process-level error) `snapshots` times in one session;
//! * the declared `errors` entries (format + one of the kinds) are on the declared threads and at
//!   the top level, and every other entry is declared in `errors` or `allow` (so nothing is `torn`
//!   unless declared: the targets here never change a record while it is read);
//! * declared `name`, `v1`, `v2` and `process_context` match (`conformance::compare`);
//!   `process_context` may be `"any"` or `{"one_of": [...]}` (null then needs no declaration);
//! * bounds: the JSON line is at most `bounds.max_json_bytes`, no list holds more than
//!   [`MAX_LISTED_PER_FORMAT`] entries of one format (`omitted` summaries aside, always allowed);
//! * at least `min_threads` threads are listed; with `text_clean`, the text rendering holds no raw
//!   control or bidirectional-formatting character;
//! * afterwards no thread of the target is in a ptrace stop or traced, and the target exits 0 on
//!   stdin EOF.
//!
//! Environment: `CONFORMANCE_BACKENDS=ptrace,ebpf` (default `ptrace`, as the conformance suite),
//! `KILL_TEST_KILLS` (default [`kill::CI_KILLS`]), `KILL_TEST_SEED`, `CHURN_SOAK_SNAPSHOTS`
//! (ptrace, default [`soak::CI_SNAPSHOTS_PTRACE`]), `CHURN_SOAK_EBPF_SNAPSHOTS` (default
//! [`soak::CI_SNAPSHOTS_EBPF`]), `CONTEXT_READER_BIN` (the reader binary of the kill test).

#[path = "hostile/kill.rs"]
mod kill;
#[path = "hostile/proc.rs"]
mod proc;
#[path = "hostile/soak.rs"]
mod soak;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

use context_reader::{render, Session, SnapshotOptions};
use context_targets::{hostile_target, selected_backends, Backend, RunningTarget};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a just-detached thread may still show `t` before it counts as left stopped.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// The most entries of one format one `errors` list may hold (the reader's own bound is smaller:
/// a few entries per format and one `omitted` summary; this is the limit of what the suite
/// accepts as "bounded", independent of the target's data).
pub const MAX_LISTED_PER_FORMAT: usize = 16;

/// The cases, the backends they run on, and the spec rules (conformance/rules.toml) each checks
/// (read by `cargo xtask coverage`: one case per line, rule ids as string literals). eBPF runs
/// the cases whose bytes it copies in the kernel (thread records); process-context cases read the
/// mapping from user space with the same code for both backends, so only a few run on eBPF too
/// (a payload size of 0, a timestamp stuck at 0, a bomb: the reader MUSTs on process contexts
/// are then checked through both backends' sessions), and 2,000 spinning threads cannot all be
/// sampled on two CPUs.
#[rustfmt::skip]
const CASES: &[(&str, &[Backend], &[&str])] = &[
    ("unmapped", &[Backend::Ptrace, Backend::Ebpf], &["v1-ours-short-read", "tc-ours-short-read"]),
    ("noncanonical", &[Backend::Ptrace, Backend::Ebpf], &["v1-ours-short-read", "tc-ours-short-read"]),
    ("guard-page", &[Backend::Ptrace, Backend::Ebpf], &["v1-ours-short-read", "tc-ours-short-read"]),
    ("self-ref", &[Backend::Ptrace, Backend::Ebpf], &["v1-ours-bound-count"]),
    ("huge", &[Backend::Ptrace, Backend::Ebpf], &["v1-ours-bound-count", "tc-ours-bound-attrs", "tc-stop-at-incomplete-entry"]),
    ("bytes", &[Backend::Ptrace, Backend::Ebpf], &["v1-labels-are-bytes", "tc-utf8-strings"]),
    ("pc-size-zero", &[Backend::Ptrace, Backend::Ebpf], &["pc-ours-payload-size", "pc-graceful"]),
    ("pc-size-huge", &[Backend::Ptrace], &["pc-ours-payload-size", "pc-graceful"]),
    ("pc-dangling", &[Backend::Ptrace], &["pc-graceful"]),
    ("pc-stuck", &[Backend::Ptrace, Backend::Ebpf], &["pc-timestamp-nonzero", "pc-ours-bounded-retries"]),
    ("pc-republish", &[Backend::Ptrace], &["pc-reread-header", "pc-update-zero-first", "pc-mapping-established", "pc-ours-bounded-retries"]),
    ("pc-two-mappings", &[Backend::Ptrace], &["pc-singleton"]),
    ("pc-bomb-depth", &[Backend::Ptrace, Backend::Ebpf], &["pc-ours-bound-decoding", "pc-ours-protobuf-robust"]),
    ("pc-bomb-length", &[Backend::Ptrace], &["pc-ours-bound-decoding"]),
    ("pc-bomb-width", &[Backend::Ptrace], &["pc-ours-bound-decoding"]),
    ("threads-2000", &[Backend::Ptrace], &["tc-read-stopped", "v1-read-while-suspended"]),
    ("thread-churn", &[Backend::Ptrace, Backend::Ebpf], &["tc-read-stopped", "v1-read-while-suspended"]),
    ("busy-loop", &[Backend::Ptrace, Backend::Ebpf], &["tc-read-stopped"]),
    ("kill-200", &[Backend::Ptrace], &["tc-read-stopped"]),
    ("leader-exit", &[Backend::Ptrace], &[]),
];

/// Reader options of the suite: the backend's defaults, with the eBPF sampler at 999 Hz so that
/// every spinning thread is seen in a fraction of the window (the default 99 Hz takes seconds for
/// the 25 threads of `huge` on two loaded CPUs).
pub fn options(backend: Backend) -> SnapshotOptions {
    let mut opts = SnapshotOptions {
        backend,
        ..SnapshotOptions::default()
    };
    opts.ebpf.frequency_hz = 999;
    opts
}

/// Spawns the hostile target for `case` (with `--busy` for sampling backends) and waits for
/// `CONTEXT-READY`.
pub fn spawn_hostile(
    case: &str,
    backend: Backend,
) -> Result<(RunningTarget, context_targets::Ready), String> {
    let mut cmd = Command::new(hostile_target());
    cmd.args(["--case", case]);
    if backend == Backend::Ebpf {
        cmd.arg("--busy");
    }
    let mut target = RunningTarget::spawn(cmd)?;
    let ready = target.wait_ready(READY_TIMEOUT)?;
    if ready.pid != target.pid() {
        return Err(format!(
            "CONTEXT-READY pid {} but the spawned process is {}",
            ready.pid,
            target.pid()
        ));
    }
    Ok((target, ready))
}

/// One declared `{format, kind}`: `kind` is a name or a list of alternatives.
fn matches(want: &Value, entry: &Value) -> bool {
    if want["format"] != entry["format"] {
        return false;
    }
    match &want["kind"] {
        Value::Array(kinds) => kinds.iter().any(|k| *k == entry["kind"]),
        k => *k == entry["kind"],
    }
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map_or(&[], Vec::as_slice)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// Checks one `errors` list against a declaration (`errors` required, `allow` tolerated) and the
/// per-format bound; appends what is wrong to `problems`.
fn check_errors(where_: &str, observed: &Value, declared: &Value, problems: &mut Vec<String>) {
    let entries = list(observed, "errors");
    for want in list(declared, "errors") {
        if !entries.iter().any(|e| matches(want, e)) {
            problems.push(format!(
                "{where_}: expected an error {}, observed errors {}",
                short(want),
                short(&Value::Array(entries.to_vec()))
            ));
        }
    }
    let mut per_format: std::collections::BTreeMap<String, usize> = Default::default();
    for e in entries {
        if e["kind"] == "omitted" {
            continue;
        }
        *per_format
            .entry(e["format"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        let declared_somewhere = list(declared, "errors")
            .iter()
            .chain(list(declared, "allow"))
            .any(|w| matches(w, e));
        if !declared_somewhere {
            problems.push(format!(
                "{where_}: undeclared error {} (torn, or not what this case publishes)",
                short(e)
            ));
        }
    }
    for (format, n) in per_format {
        if n > MAX_LISTED_PER_FORMAT {
            problems.push(format!(
                "{where_}: {n} {format} errors listed, more than the bound of {MAX_LISTED_PER_FORMAT} per format"
            ));
        }
    }
}

/// Compares the declared keys of `declared` (among `keys`) with `observed`.
fn check_declared(
    where_: &str,
    declared: &Value,
    observed: &Value,
    keys: &[&str],
    problems: &mut Vec<String>,
) {
    let mut subset = serde_json::Map::new();
    for k in keys {
        if let Some(v) = declared.get(*k) {
            subset.insert((*k).to_string(), v.clone());
        }
    }
    let report = conformance::compare(&Value::Object(subset), observed);
    for d in report.diffs {
        problems.push(format!("{where_}: {d}"));
    }
}

fn check_process_context(expect: &Value, observed: &Value, problems: &mut Vec<String>) {
    let declared = &expect["process_context"];
    let seen = &observed["process_context"];
    match declared {
        Value::String(s) if s == "any" => {}
        Value::Object(o) if o.contains_key("one_of") => {
            let options = list(declared, "one_of");
            let ok = seen.is_null()
                || options
                    .iter()
                    .any(|opt| conformance::compare(opt, seen).ok());
            if !ok {
                problems.push(format!(
                    "process_context: neither null nor one of the {} published payloads (torn?): {}",
                    options.len(),
                    short(seen)
                ));
            }
        }
        _ => check_declared(
            "process context",
            expect,
            observed,
            &["process_context"],
            problems,
        ),
    }
}

const NOT_SAMPLED: &str = r#"{"format": "tls", "kind": "not_sampled"}"#;

/// Whether the eBPF backend says it never caught this thread on CPU.
fn not_sampled(thread: &Value) -> bool {
    list(thread, "errors")
        .iter()
        .any(|e| e["format"] == "tls" && e["kind"] == "not_sampled")
}

/// A character the text rendering must never print raw: C0/C1 controls but the newline that ends
/// its lines, and the bidirectional formatting characters (Trojan Source, CVE-2021-42574).
fn unsafe_for_terminal(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Everything a hostile case declares, checked on one snapshot.
fn check_snapshot(expect: &Value, snapshot: &context_reader::Snapshot, problems: &mut Vec<String>) {
    let json_text = serde_json::to_string(snapshot).expect("snapshots serialise");
    let max = expect["bounds"]["max_json_bytes"]
        .as_u64()
        .unwrap_or(1 << 20);
    if json_text.len() as u64 > max {
        problems.push(format!(
            "snapshot is {} bytes of JSON, more than the case's bound of {max}",
            json_text.len()
        ));
    }
    let observed = snapshot.to_json();
    check_process_context(expect, &observed, problems);
    check_errors("top level", &observed, expect, problems);
    let threads = list(&observed, "threads");
    let min = expect["min_threads"].as_u64().unwrap_or(0) as usize;
    if threads.len() < min {
        problems.push(format!(
            "{} threads listed, the target has at least {min}",
            threads.len()
        ));
    }
    let tids: Vec<i64> = threads.iter().filter_map(|t| t["tid"].as_i64()).collect();
    if !tids.windows(2).all(|w| w[0] < w[1]) {
        problems.push("threads not sorted by tid".to_string());
    }
    let declared = list(expect, "threads");
    let mut unsampled = 0;
    for d in declared {
        let tid = d["tid"].as_i64().unwrap_or(-1);
        let where_ = format!("thread {tid} {}", short(&d["name"]));
        match threads.iter().find(|t| t["tid"].as_i64() == Some(tid)) {
            None => problems.push(format!("{where_}: not listed")),
            // The sampling backend reads only threads it caught on CPU; one it did not catch
            // says so and nothing else (the target spins every thread, so this is rare).
            Some(t) if not_sampled(t) => {
                check_errors(
                    &where_,
                    t,
                    &serde_json::json!({"allow": [serde_json::from_str::<Value>(NOT_SAMPLED).expect("json")]}),
                    problems,
                );
                unsampled += 1;
            }
            Some(t) => {
                check_declared(&where_, d, t, &["name", "v1", "v2"], problems);
                check_errors(&where_, t, d, problems);
            }
        }
    }
    if unsampled > 0 && unsampled * 2 > declared.len() {
        problems.push(format!(
            "{unsampled} of {} declared threads not sampled: too few read to judge",
            declared.len()
        ));
    }
    for t in threads {
        if !declared.iter().any(|d| d["tid"] == t["tid"]) {
            let where_ = format!("thread {} (not declared)", t["tid"]);
            check_errors(&where_, t, &expect["other_threads"], problems);
        }
    }
    if expect["text_clean"] == Value::Bool(true) {
        let text = render::text(snapshot);
        let raw: Vec<String> = text
            .chars()
            .filter(|c| unsafe_for_terminal(*c))
            .map(|c| format!("U+{:04X}", c as u32))
            .collect();
        if !raw.is_empty() {
            problems.push(format!(
                "text output prints {} raw control/bidi character(s): {}",
                raw.len(),
                raw.join(" ")
            ));
        }
    }
}

fn run_hostile(case: &str, backend: Backend) -> Result<String, String> {
    let (target, ready) = spawn_hostile(case, backend)?;
    let expect = &ready.expect;
    let mut session =
        Session::new(ready.pid, options(backend)).map_err(|e| format!("reader: {e}"))?;
    let rounds = expect["snapshots"].as_u64().unwrap_or(1).max(1);
    let mut problems = Vec::new();
    for round in 0..rounds {
        let taken = catch_unwind(AssertUnwindSafe(|| session.snapshot()));
        let snapshot = match taken {
            Err(_) => return Err(format!("snapshot {round}: the reader panicked")),
            Ok(Err(e)) => {
                problems.push(format!("snapshot {round} of {rounds} failed: reader: {e}"));
                break;
            }
            Ok(Ok((snapshot, _))) => snapshot,
        };
        let before = problems.len();
        check_snapshot(expect, &snapshot, &mut problems);
        if problems.len() > before {
            problems.insert(before, format!("snapshot {round} of {rounds}:"));
            break;
        }
    }
    let stuck = proc::stuck_threads(ready.pid, STOP_GRACE);
    if !stuck.is_empty() {
        problems.push(format!(
            "{} thread(s) left stopped or traced after the snapshots: {}",
            stuck.len(),
            stuck
                .iter()
                .take(5)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if case == "busy-loop" {
        // The syscall-free spinner (plan 1) must still run after being stopped and resumed.
        let addr = ready.notes["counters"].as_u64().unwrap_or(0);
        let before = proc::read_counters(ready.pid, addr, 2)?;
        let stalled = proc::wait_progress(ready.pid, addr, &before, &[1], Duration::from_secs(10))?;
        if !stalled.is_empty() {
            problems.push("the busy-loop thread made no progress after the snapshot".into());
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let status = target.finish(EXIT_TIMEOUT)?;
    if !status.success() {
        return Err(format!(
            "read as declared, but the target exited with {status} after stdin EOF"
        ));
    }
    Ok(format!("{rounds} snapshot(s) as declared"))
}

fn main() {
    let args = Arguments::from_args();
    // Hostile targets and soaks test reading live processes; cores are the conformance suite's.
    let wanted: Vec<Backend> = selected_backends()
        .into_iter()
        .filter(|b| *b != Backend::Core)
        .collect();
    let mut trials = Vec::new();
    for (case, case_backends, _rules) in CASES {
        for backend in case_backends.iter().filter(|b| wanted.contains(b)) {
            let name = format!("hostile/{}/{case}", backend);
            let (case, backend) = (*case, *backend);
            trials.push(Trial::test(name, move || {
                run_hostile(case, backend).map(|_| ()).map_err(Failed::from)
            }));
        }
    }
    if wanted.contains(&Backend::Ptrace) {
        trials.push(Trial::test("kill/ptrace/detector", || {
            kill::detector().map(|_| ()).map_err(Failed::from)
        }));
        trials.push(Trial::test("kill/ptrace/kill-200", || {
            kill::run()
                .map(|s| println!("kill/ptrace/kill-200: {s}"))
                .map_err(Failed::from)
        }));
    }
    for backend in wanted {
        trials.push(Trial::test(format!("soak/{}/churn", backend), move || {
            soak::run(backend)
                .map(|s| println!("soak/{}/churn: {s}", backend))
                .map_err(Failed::from)
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}

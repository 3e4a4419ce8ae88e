//! `context-reader certify` against small shell writers that speak the target protocol well or
//! badly: a minimal correct writer passes; a wrong `expect` fails at its JSON path; a writer that
//! never prints READY, prints malformed JSON, exits early, claims another pid or ignores stdin EOF
//! gets an error verdict naming that, within its timeout, and nothing it started is left running.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The timeout of the writers that must be waited for (no READY, no exit after EOF).
const SHORT: u64 = 2;
/// The timeout of the writers whose verdict must come at once: a result well within it shows that
/// certify did not wait for it.
const LONG: u64 = 60;
/// Slack for a slow machine (the aarch64 leg runs this in an emulated VM).
const SLACK: Duration = Duration::from_secs(10);

/// Runs `context-reader certify --backend ptrace --timeout SECS -- sh -c SCRIPT` with `$PIDS` a
/// file where the script writes the pids it wants checked; returns the output, the time it took
/// and those pids.
fn certify_sh(script: &str, timeout_secs: u64) -> (Output, Duration, Vec<i32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_context-reader"))
        .args(["certify", "--backend", "ptrace", "--timeout"])
        .arg(timeout_secs.to_string())
        .args(["--", "sh", "-c", script])
        .env("PIDS", &pids)
        .output()
        .expect("run context-reader certify");
    let took = start.elapsed();
    let listed = std::fs::read_to_string(&pids)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    (out, took, listed)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every listed process has exited (gone, or a zombie waiting for its reaper) within a second.
fn assert_none_running(pids: &[i32]) {
    assert!(!pids.is_empty(), "the writer listed no pids");
    let deadline = Instant::now() + Duration::from_secs(1);
    for pid in pids {
        loop {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let running = status
                .lines()
                .find_map(|l| l.strip_prefix("State:"))
                .is_some_and(|s| !s.trim_start().starts_with('Z'));
            if !running {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process {pid} still running after certify"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A `CONTEXT-READY` line for the shell's own pid, with `expect` as given (JSON).
fn ready(expect: &str) -> String {
    format!(
        r#"echo "CONTEXT-READY {{\"protocol\": 1, \"pid\": $$, \"writer\": \"sh-writer\", \"expect\": {expect}}}""#
    )
}

/// What a shell publishes: no process context, no errors.
const NOTHING: &str = r#"{\"process_context\": null, \"errors\": []}"#;

/// An error verdict giving `reason`, reached within `timeout_secs` (plus slack).
fn assert_error(out: &Output, took: Duration, timeout_secs: u64, reason: &str) {
    let text = stdout(out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ptrace: ERROR"), "{text}");
    assert!(text.contains(reason), "no {reason:?} in:\n{text}");
    assert!(text.contains("NOT certified: 0 of 1"), "{text}");
    let bound = if timeout_secs == LONG {
        SLACK
    } else {
        Duration::from_secs(timeout_secs) + SLACK
    };
    assert!(
        took < bound,
        "took {took:?} with a {timeout_secs} s timeout"
    );
}

#[test]
fn a_minimal_shell_writer_is_certified() {
    let script = format!("echo $$ > $PIDS; {}; exec cat > /dev/null", ready(NOTHING));
    let (out, _, pids) = certify_sh(&script, LONG);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ptrace: PASS sh-writer (default"), "{text}");
    assert!(text.contains("certified: 1 of 1 trials passed"), "{text}");
    assert_none_running(&pids);
}

#[test]
fn a_wrong_expect_fails_at_its_json_path() {
    let expect = r#"{\"process_context\": {\"version\": 2}, \"errors\": []}"#;
    let script = format!("echo $$ > $PIDS; {}; exec cat > /dev/null", ready(expect));
    let (out, _, pids) = certify_sh(&script, LONG);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ptrace: FAIL sh-writer"), "{text}");
    assert!(
        text.contains(
            r#"$.process_context [pc-locate-mapping, pc-validate-header, pc-timestamp-nonzero]: expected {"version":2}, observed null"#
        ),
        "{text}"
    );
    assert_none_running(&pids);
}

#[test]
fn a_writer_that_never_gets_ready_is_killed_with_what_it_started() {
    // A child of its own keeps stdout open too; both are in the writer's process group.
    let script = "sleep 1000 & echo $$ $! > $PIDS; echo preparing; exec sleep 1000";
    let (out, took, pids) = certify_sh(script, SHORT);
    assert_error(&out, took, SHORT, "no CONTEXT-READY within 2s (killed)");
    assert_eq!(pids.len(), 2);
    assert_none_running(&pids);
}

#[test]
fn malformed_ready_json_is_an_error() {
    let script = r#"echo $$ > $PIDS; echo 'CONTEXT-READY {"protocol": 1, "pid":'; exec sleep 1000"#;
    let (out, took, pids) = certify_sh(script, LONG);
    assert_error(&out, took, LONG, "CONTEXT-READY is not JSON");
    assert_none_running(&pids);
}

#[test]
fn a_ready_line_without_expect_is_an_error() {
    let script =
        r#"echo $$ > $PIDS; echo "CONTEXT-READY {\"protocol\": 1, \"pid\": $$}"; exec sleep 1000"#;
    let (out, took, pids) = certify_sh(script, LONG);
    assert_error(&out, took, LONG, r#"CONTEXT-READY: no "expect""#);
    assert_none_running(&pids);
}

#[test]
fn a_writer_that_exits_early_is_an_error_with_its_status() {
    let script = "echo $$ > $PIDS; echo starting; echo 'cannot publish' >&2; exit 3";
    let (out, took, pids) = certify_sh(script, LONG);
    assert_error(
        &out,
        took,
        LONG,
        "stdout closed before CONTEXT-READY (exited with exit status: 3); stderr: cannot publish",
    );
    assert_none_running(&pids);
}

#[test]
fn a_writer_that_closes_stdout_and_goes_on_is_killed() {
    let script = "echo $$ > $PIDS; exec sleep 1000 > /dev/null";
    let (out, took, pids) = certify_sh(script, SHORT);
    assert_error(
        &out,
        took,
        SHORT,
        "stdout closed before CONTEXT-READY (still running, killed)",
    );
    assert_none_running(&pids);
}

#[test]
fn a_ready_line_for_another_pid_is_an_error() {
    let script = format!(
        "echo $$ > $PIDS; {}; exec cat > /dev/null",
        ready(NOTHING).replace("$$", "1")
    );
    let (out, took, pids) = certify_sh(&script, LONG);
    assert_error(
        &out,
        took,
        LONG,
        "CONTEXT-READY pid 1 but the spawned process is",
    );
    assert_none_running(&pids);
}

#[test]
fn a_writer_that_ignores_stdin_eof_is_killed() {
    // Correct context, but `sleep` never reads stdin: the comparison passes, the exit never comes.
    let script = format!("echo $$ > $PIDS; {}; exec sleep 1000", ready(NOTHING));
    let (out, took, pids) = certify_sh(&script, SHORT);
    assert_error(
        &out,
        took,
        SHORT,
        "did not exit within 2s of stdin EOF (killed)",
    );
    assert_none_running(&pids);
}

#[test]
fn a_writer_that_is_not_there_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_context-reader"))
        .args([
            "certify",
            "--backend",
            "ptrace",
            "--",
            "/nonexistent/writer",
        ])
        .output()
        .expect("run context-reader certify");
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ptrace: ERROR writer"), "{text}");
    assert!(text.contains("cannot start"), "{text}");
    assert!(!Path::new("/nonexistent/writer").exists());
}

#[test]
fn ctrl_c_ends_certify_with_the_writer_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let script = "sleep 1000 & echo $$ $! > $PIDS; exec sleep 1000";
    let mut certify = Command::new(env!("CARGO_BIN_EXE_context-reader"))
        .args(["certify", "--backend", "ptrace", "--timeout"])
        .arg(LONG.to_string())
        .args(["--", "sh", "-c", script])
        .env("PIDS", &pids)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run context-reader certify");
    // Wait until the writer runs (it wrote its pids), then interrupt certify as a terminal would.
    let deadline = Instant::now() + SLACK;
    let listed: Vec<i32> = loop {
        let text = std::fs::read_to_string(&pids).unwrap_or_default();
        let listed: Vec<i32> = text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if listed.len() == 2 {
            break listed;
        }
        assert!(Instant::now() < deadline, "the writer never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let start = Instant::now();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(certify.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = certify.wait().expect("certify exits");
    assert!(start.elapsed() < SLACK, "took {:?}", start.elapsed());
    assert_eq!(status.code(), Some(130));
    assert_none_running(&listed);
}

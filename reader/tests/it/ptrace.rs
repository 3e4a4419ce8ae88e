//! End to end over a live process: a small C writer (tests/it/c) publishes all three formats from
//! the executable or from a TLSDESC DSO, with glibc and musl, and the ptrace snapshot must equal
//! what it wrote. Also: no thread stays stopped when a snapshot fails half-way.

use context_reader::backend::ptrace::Fault;
use context_reader::snapshot::ErrorKind;
use context_reader::{take_snapshot, ReaderError, Session, SnapshotOptions};
use rstest::rstest;

use crate::writer::{build_writer, expected, main_thread_name, Libc, Placement, Tracer, Writer};

// rules: tc-read-stopped, v1-read-while-suspended, tc-readers-all-models
#[rstest]
#[case::glibc_executable(Libc::Glibc, Placement::Executable)]
#[case::glibc_tlsdesc_dso(Libc::Glibc, Placement::TlsdescDso)]
#[case::musl_executable(Libc::Musl, Placement::Executable)]
#[case::musl_tlsdesc_dso(Libc::Musl, Placement::TlsdescDso)]
fn snapshot_equals_what_the_writer_published(#[case] libc: Libc, #[case] placement: Placement) {
    let exe = build_writer(libc, placement);
    let writer = Writer::start(&exe);
    let mut got = take_snapshot(writer.pid(), &SnapshotOptions::default())
        .expect("snapshot")
        .to_json();
    // The one field the writer cannot know in advance; checked for presence.
    let published = got["process_context"]
        .as_object_mut()
        .and_then(|pc| pc.remove("published_at_ns"));
    assert!(published.and_then(|v| v.as_u64()).is_some_and(|t| t > 0));
    let name = main_thread_name(&exe);
    let want = expected(writer.pid(), &writer.tids, &name);
    assert_eq!(got, want, "\n got: {got:#}\nwant: {want:#}");
}

fn status_field(pid: i32, tid: i32, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// Threads in a ptrace stop show state `t` and a non-zero TracerPid.
fn stopped_or_traced_threads(pid: i32) -> Vec<String> {
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")) else {
            continue; // exited since the listing (thread churn)
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        if field("TracerPid:") != "0" || field("State:").starts_with('t') {
            bad.push(format!(
                "{tid}: State {} TracerPid {}",
                field("State:"),
                field("TracerPid:")
            ));
        }
    }
    bad
}

// rules: tc-read-stopped
#[rstest]
#[case::error(Fault::ErrorAt(1))]
#[case::panic(Fault::PanicAt(1))]
fn threads_run_again_after_a_snapshot_fails_half_way(#[case] fault: Fault) {
    let writer = Writer::start(&build_writer(Libc::Glibc, Placement::Executable));
    let opts = SnapshotOptions {
        fault: Some(fault),
        ..SnapshotOptions::default()
    };
    let outcome = std::panic::catch_unwind(|| take_snapshot(writer.pid(), &opts));
    match fault {
        Fault::ErrorAt(_) => assert!(matches!(
            outcome,
            Ok(Err(context_reader::ReaderError::Injected))
        )),
        Fault::PanicAt(_) => assert!(outcome.is_err(), "the injected panic propagates"),
    }
    assert_eq!(
        stopped_or_traced_threads(writer.pid()),
        Vec::<String>::new()
    );
    // And the process can be read again: nothing is still attached.
    let again = take_snapshot(writer.pid(), &SnapshotOptions::default()).expect("second snapshot");
    assert_eq!(again.threads.len(), 3);
}

/// Running threads go through the batch path; a failure there must resume the whole batch,
/// including threads interrupted but not yet served.
#[rstest]
#[case::error(Fault::ErrorAt(2))]
#[case::panic(Fault::PanicAt(2))]
fn busy_threads_run_again_after_a_batch_fails_half_way(#[case] fault: Fault) {
    let exe = build_writer(Libc::Glibc, Placement::Executable);
    let writer = Writer::start_with(&exe, &["--threads", "6", "--busy"]);
    let opts = SnapshotOptions {
        fault: Some(fault),
        ..SnapshotOptions::default()
    };
    let outcome = std::panic::catch_unwind(|| take_snapshot(writer.pid(), &opts));
    match fault {
        Fault::ErrorAt(_) => assert!(matches!(outcome, Ok(Err(ReaderError::Injected)))),
        Fault::PanicAt(_) => assert!(outcome.is_err(), "the injected panic propagates"),
    }
    assert_eq!(
        stopped_or_traced_threads(writer.pid()),
        Vec::<String>::new()
    );
    // Read again, through the batch path, and the result is what the writer published.
    let mut session = Session::new(writer.pid(), SnapshotOptions::default()).expect("session");
    let (snapshot, stats) = session.snapshot().expect("snapshot of busy threads");
    assert!(
        stats.stops.batched > 0,
        "busy threads are read in batches: {stats:?}"
    );
    let name = main_thread_name(&exe);
    let mut got = snapshot.to_json();
    got["process_context"]
        .as_object_mut()
        .unwrap()
        .remove("published_at_ns");
    let want = expected(writer.pid(), &writer.tids, &name);
    assert_eq!(got, want, "\n got: {got:#}\nwant: {want:#}");
    assert_eq!(
        stopped_or_traced_threads(writer.pid()),
        Vec::<String>::new()
    );
}

/// A thread held by another tracer (issue 11, defect 3) is that thread's error naming the
/// tracer; the other threads are read, and the held thread's stop is left as found.
#[test]
fn threads_held_by_another_tracer_are_named_and_left_as_found() {
    let writer = Writer::start_with(
        &build_writer(Libc::Glibc, Placement::Executable),
        &["--threads", "3"],
    );
    let (running, stopped, free) = (writer.tids[0], writer.tids[1], writer.tids[2]);
    let holder_running = Tracer::hold(running, false);
    let holder_stopped = Tracer::hold(stopped, true);
    let snapshot = take_snapshot(writer.pid(), &SnapshotOptions::default())
        .expect("other tracers do not fail the snapshot");
    let thread = |tid: i32| {
        snapshot
            .threads
            .iter()
            .find(|t| t.tid == tid)
            .unwrap_or_else(|| panic!("thread {tid} in the snapshot"))
    };
    for (tid, tracer) in [(running, holder_running.pid), (stopped, holder_stopped.pid)] {
        let t = thread(tid);
        assert_eq!(t.v1, None);
        assert_eq!(t.errors.len(), 1, "{:?}", t.errors);
        assert_eq!(t.errors[0].kind, ErrorKind::Ptrace);
        assert!(
            t.errors[0].detail.contains(&format!("TracerPid {tracer}")),
            "{}",
            t.errors[0].detail
        );
    }
    assert!(thread(free).v1.is_some() && thread(free).errors.is_empty());
    assert!(thread(writer.pid()).errors.is_empty());
    // Left exactly as found: still held by the same tracers, the stopped one still stopped.
    assert_eq!(
        status_field(writer.pid(), running, "TracerPid:"),
        holder_running.pid.to_string()
    );
    assert_eq!(
        status_field(writer.pid(), stopped, "TracerPid:"),
        holder_stopped.pid.to_string()
    );
    assert!(status_field(writer.pid(), stopped, "State:").starts_with('t'));
    assert!(!status_field(writer.pid(), running, "State:").starts_with('t'));
}

// rules: tc-read-stopped
/// Thread churn (issue 11, defect 2): threads that exit while listed make PTRACE_SEIZE say EPERM;
/// that is the thread's exit, never a permission failure of the snapshot.
#[test]
fn a_thread_churning_process_is_read_snapshot_after_snapshot() {
    let writer = Writer::start_with(
        &build_writer(Libc::Glibc, Placement::Executable),
        &["--threads", "2", "--churn", "4"],
    );
    let mut session = Session::new(writer.pid(), SnapshotOptions::default()).expect("session");
    for i in 0..150 {
        let (snapshot, _) = session
            .snapshot()
            .unwrap_or_else(|e| panic!("snapshot {i} failed: {e}"));
        for tid in &writer.tids {
            let t = snapshot
                .threads
                .iter()
                .find(|t| t.tid == *tid)
                .unwrap_or_else(|| panic!("worker {tid} in snapshot {i}"));
            assert!(t.v1.is_some() && t.v2.is_some(), "snapshot {i}: {t:?}");
        }
    }
    assert_eq!(
        stopped_or_traced_threads(writer.pid()),
        Vec::<String>::new()
    );
}

/// A process that has exited (a zombie not yet reaped) is reported as exited, not as a
/// permission problem (issue 11, defect 3).
#[test]
fn an_exited_process_is_not_a_permission_error() {
    let writer = Writer::start(&build_writer(Libc::Glibc, Placement::Executable));
    let pid = writer.pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
        .expect("kill");
    // Not reaped (the writer is waited for on drop): wait for the zombie.
    while !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    }) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let outcome = take_snapshot(pid, &SnapshotOptions::default());
    assert!(
        matches!(outcome, Err(ReaderError::ProcessExited(p)) if p == pid),
        "{outcome:?}"
    );
    assert!(outcome.unwrap_err().to_string().contains("exited"));
}

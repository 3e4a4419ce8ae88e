//! The eBPF backend over a live, busy writer: the snapshot must equal what the writer published,
//! and equal the ptrace snapshot of the same process, thread by thread (needs root).

use context_reader::snapshot::Backend;
use context_reader::{take_snapshot, SnapshotOptions};
use serde_json::Value;

use crate::writer::{build_writer, expected, main_thread_name, Libc, Placement, Writer};

/// Drops `published_at_ns` (unknowable in advance) and error details (free text), keeping kinds.
fn comparable(mut v: Value) -> Value {
    if let Some(pc) = v["process_context"].as_object_mut() {
        pc.remove("published_at_ns");
    }
    for t in v["threads"].as_array_mut().into_iter().flatten() {
        for e in t["errors"].as_array_mut().into_iter().flatten() {
            e.as_object_mut().map(|o| o.remove("detail"));
        }
    }
    v
}

// rules: tc-read-stopped, v1-read-while-suspended, tc-readers-all-models
#[rstest::rstest]
#[case::glibc_executable(Libc::Glibc, Placement::Executable)]
#[case::glibc_tlsdesc_dso(Libc::Glibc, Placement::TlsdescDso)]
#[case::musl_executable(Libc::Musl, Placement::Executable)]
#[case::musl_tlsdesc_dso(Libc::Musl, Placement::TlsdescDso)]
fn ebpf_snapshot_equals_what_was_published_and_the_ptrace_snapshot(
    #[case] libc: Libc,
    #[case] placement: Placement,
) {
    let exe = build_writer(libc, placement);
    let writer = Writer::start_with(&exe, &["--busy"]);
    let opts = SnapshotOptions {
        backend: Backend::Ebpf,
        ..SnapshotOptions::default()
    };
    let ebpf = comparable(
        take_snapshot(writer.pid(), &opts)
            .expect("ebpf snapshot")
            .to_json(),
    );

    let name = main_thread_name(&exe);
    let mut want = expected(writer.pid(), &writer.tids, &name);
    want["backend"] = "ebpf".into();
    // The main thread blocks on stdin, so a sampler never sees it on CPU.
    for t in want["threads"].as_array_mut().unwrap() {
        if t["tid"] == writer.pid() {
            t["errors"] = serde_json::json!([{"format": "tls", "kind": "not_sampled"}]);
        }
    }
    assert_eq!(ebpf, want, "\n got: {ebpf:#}\nwant: {want:#}");

    let mut ptrace = comparable(
        take_snapshot(writer.pid(), &SnapshotOptions::default())
            .unwrap()
            .to_json(),
    );
    ptrace["backend"] = "ebpf".into();
    for (e, p) in ebpf["threads"]
        .as_array()
        .unwrap()
        .iter()
        .zip(ptrace["threads"].as_array().unwrap())
    {
        if e["tid"] != writer.pid() {
            assert_eq!(e, p, "thread {} differs between backends", e["tid"]);
        }
    }
}

/// Issue 11, defect 7: the target exits during the collection window. The threads sampled before
/// keep their entries, the rest say `thread_exited`, a top-level entry says the process exited,
/// and the snapshot is returned rather than an error.
#[test]
fn ebpf_snapshot_keeps_what_was_sampled_when_the_process_exits_during_the_window() {
    use context_reader::backend::ebpf::{preload, EbpfOptions};
    use context_reader::Session;
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::time::Duration;

    // Loaded first, so that the kill below lands in the collection window, not in the load.
    preload().expect("loading the eBPF sampler");
    let exe = build_writer(Libc::Glibc, Placement::Executable);
    let writer = Writer::start_with(&exe, &["--busy"]);
    let pid = writer.pid();
    let opts = SnapshotOptions {
        backend: Backend::Ebpf,
        // Far longer than the kill delay: the main thread blocks on stdin and is never sampled,
        // so only the exit can end this window early.
        ebpf: EbpfOptions {
            duration: Duration::from_secs(30),
            ..EbpfOptions::default()
        },
        ..SnapshotOptions::default()
    };
    let mut session = Session::new(pid, opts).expect("session");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        kill(Pid::from_raw(pid), Signal::SIGKILL)
    });
    let result = session.snapshot();
    killer.join().unwrap().expect("SIGKILL the writer");
    let (snapshot, stats) = result.expect("a snapshot, not an error, when the process exits");
    assert!(
        stats.ebpf.as_ref().is_some_and(|e| e.process_exited),
        "{stats:?}"
    );
    let mut got = comparable(snapshot.to_json());
    for e in got["errors"].as_array_mut().into_iter().flatten() {
        e.as_object_mut().map(|o| o.remove("detail"));
    }
    assert_eq!(
        got["errors"],
        serde_json::json!([{"format": "tls", "kind": "thread_exited"}]),
        "the snapshot says the process exited: {got:#}"
    );
    let name = main_thread_name(&exe);
    let mut want = expected(pid, &writer.tids, &name);
    for t in want["threads"].as_array_mut().unwrap() {
        if t["tid"] == pid {
            t["errors"] = serde_json::json!([{"format": "tls", "kind": "thread_exited"}]);
        }
    }
    assert_eq!(
        got["threads"], want["threads"],
        "busy workers were sampled before the exit and keep their entries"
    );
}

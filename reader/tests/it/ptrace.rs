//! End to end over a live process: a small C writer (tests/it/c) publishes all three formats from
//! the executable or from a TLSDESC DSO, with glibc and musl, and the ptrace snapshot must equal
//! what it wrote. Also: no thread stays stopped when a snapshot fails half-way.

use context_reader::backend::ptrace::Fault;
use context_reader::{take_snapshot, SnapshotOptions};
use rstest::rstest;

use crate::writer::{build_writer, expected, Libc, Placement, Writer};

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
    let name: String = exe
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    let want = expected(writer.pid(), &writer.tids, &name);
    assert_eq!(got, want, "\n got: {got:#}\nwant: {want:#}");
}

/// Threads in a ptrace stop show state `t` and a non-zero TracerPid.
fn stopped_or_traced_threads(pid: i32) -> Vec<String> {
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid = entry.unwrap().file_name().to_string_lossy().into_owned();
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
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

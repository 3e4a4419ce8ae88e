//! External-writer certification, shown on a writer this workspace does not build: the pure-Python
//! OTEP 4719 writer in `examples/python-writer`. It must be certified on both backends, and each
//! defect it can be told to publish must fail certification with a diff at the field it broke.

mod runner;

use context_targets::Backend;
use runner::{run_case, Case, ReaderMode};

fn python_writer(args: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python-writer/process_context_writer.py"
    );
    format!("python3 {script} {args}")
}

#[test]
fn python_writer_is_certified_with_ptrace_by_the_binary() {
    // End to end: `context-reader PID --once --format json`, as a user would certify.
    let case = Case {
        reader: ReaderMode::Binary,
        ..Case::external(&python_writer(""), Backend::Ptrace)
    };
    let report = run_case("external/python/ptrace", &case);
    assert!(report.is_ok(), "{}", report.unwrap_err());
}

#[test]
fn python_writer_is_certified_with_ebpf() {
    let report = run_case(
        "external/python/ebpf",
        &Case::external(&python_writer(""), Backend::Ebpf),
    );
    assert!(report.is_ok(), "{}", report.unwrap_err());
}

#[test]
fn python_writer_defects_fail_with_the_broken_field() {
    for (bug, path) in [
        // Never ready: the reader reports no process context at all.
        ("timestamp-zero", "$.process_context"),
        // The payload no longer decodes: no context, and an error names it.
        ("short-payload", "$.errors[0]"),
        // The writer's claim disagrees with what it published.
        ("wrong-service", "service.name"),
    ] {
        let case = Case::external(&python_writer(&format!("--bug {bug}")), Backend::Ptrace);
        match run_case(&format!("external/python/bug-{bug}"), &case) {
            Ok(summary) => panic!("--bug {bug} was certified: {summary:?}"),
            Err(diff) => assert!(
                diff.contains(path),
                "--bug {bug}: the report does not name {path}:\n{diff}"
            ),
        }
    }
}

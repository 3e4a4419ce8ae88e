//! External-writer certification, shown on a writer this workspace does not build: the pure-Python
//! OTEP 4719 writer in `examples/python-writer`, certified by the `context-reader certify` binary
//! exactly as a writer's author would run it (this file only calls it). It must be certified on
//! both backends with reports that validate (report.json against its schema, JUnit parsed back),
//! and each defect it can be told to publish must fail certification at the field it broke.

use std::path::Path;
use std::process::{Command, Output};

use context_reader::certify::report::{CertifyReport, SCHEMA_VERSION};
use context_reader::certify::trial::Verdict;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/python-writer/process_context_writer.py"
);

/// `context-reader certify ARGS -- python3 SCRIPT WRITER_ARGS`.
fn certify(args: &[&str], writer_args: &[&str]) -> Output {
    let bin = context_targets::reader_bin();
    assert!(
        bin.is_file(),
        "{} missing: `cargo build -p context-reader` first (cargo xtask does)",
        bin.display()
    );
    Command::new(&bin)
        .arg("certify")
        .args(args)
        .args(["--", "python3", SCRIPT])
        .args(writer_args)
        .output()
        .expect("run context-reader certify")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn python_writer_is_certified_on_both_backends_with_valid_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = certify(
        &[
            "--backend",
            "all",
            "--report",
            &dir.path().display().to_string(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    check_reports(dir.path(), &["ptrace", "ebpf"]);
}

/// report.json parses under the documented schema (`deny_unknown_fields` structs of
/// `certify::report`), agrees with junit.xml as parsed back by quick-junit, and summary.md has a
/// table per backend.
fn check_reports(dir: &Path, backends: &[&str]) {
    let json = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    let report: CertifyReport = serde_json::from_str(&json).expect("report.json has the schema");
    assert_eq!(report.schema, SCHEMA_VERSION);
    let arch = std::env::consts::ARCH;
    let seen: Vec<&str> = report.trials.iter().map(|t| t.backend.as_str()).collect();
    assert_eq!(seen, backends);
    for t in &report.trials {
        assert_eq!(t.verdict, Verdict::Pass, "{t:?}");
        assert_eq!(t.arch, arch);
        assert_eq!(t.writer, "python-process-context-writer");
        assert_eq!(t.case, "default");
        assert_eq!(t.command[..2], ["python3".to_string(), SCRIPT.to_string()]);
        assert_eq!(
            t.command.last().map(String::as_str) == Some("--busy"),
            t.backend == "ebpf"
        );
        assert!(!t.kernel.is_empty() && t.kernel != "unknown");
        assert!(t.diffs.is_empty());
        assert_eq!(
            t.name,
            format!("{arch}/{}/python-process-context-writer/default", t.backend)
        );
    }
    let xml = std::fs::read_to_string(dir.join("junit.xml")).expect("junit.xml");
    let junit = quick_junit::Report::deserialize_from_str(&xml).expect("JUnit parses");
    assert_eq!(junit.tests, backends.len());
    assert_eq!((junit.failures, junit.errors), (0, 0));
    let cases: Vec<String> = junit
        .test_suites
        .iter()
        .flat_map(|s| s.test_cases.iter().map(|c| c.name.as_str().to_string()))
        .collect();
    for t in &report.trials {
        assert!(cases.contains(&t.name), "{} not in junit.xml", t.name);
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).expect("summary.md");
    for b in backends {
        assert!(
            summary.contains(&format!("## {arch} / {b} ")),
            "no {b} table:\n{summary}"
        );
    }
    assert!(
        summary.contains("| python-process-context-writer | pass |"),
        "{summary}"
    );
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
        let dir = tempfile::tempdir().expect("tempdir");
        let out = certify(
            &[
                "--backend",
                "ptrace",
                "--report",
                &dir.path().display().to_string(),
            ],
            &["--bug", bug],
        );
        let shown = text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "--bug {bug} was certified:\n{shown}"
        );
        assert!(shown.contains("ptrace: FAIL"), "--bug {bug}:\n{shown}");
        assert!(
            shown.contains(path),
            "--bug {bug}: the output does not name {path}:\n{shown}"
        );
        let report: CertifyReport = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("report.json")).expect("report.json"),
        )
        .expect("schema");
        let trial = &report.trials[0];
        assert_eq!(trial.verdict, Verdict::Fail);
        assert!(
            trial.diffs.iter().any(|d| d.path.contains(path)),
            "{trial:?}"
        );
        let xml = std::fs::read_to_string(dir.path().join("junit.xml")).expect("junit.xml");
        let junit = quick_junit::Report::deserialize_from_str(&xml).expect("JUnit parses");
        assert_eq!((junit.tests, junit.failures), (1, 1));
        let failures = dir.path().join("failures");
        assert_eq!(
            std::fs::read_dir(&failures).map(|d| d.count()).unwrap_or(0),
            1,
            "expect and observed kept in {}",
            failures.display()
        );
    }
}

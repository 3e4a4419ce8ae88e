//! `context-reader check` on every target variant, pinned with insta, and on fixtures built to
//! break one rule each, which it must flag (conformance.md section 6).
//!
//! The fixtures are built by `build.rs`. x86-64 only for now: the pins are per arch (none
//! recorded for aarch64 yet).
#![cfg(target_arch = "x86_64")]

use std::path::{Path, PathBuf};

use context_reader::lint::{lint_file, report_text};

/// The variant's executable and every DSO beside it, reported with paths relative to its folder.
fn lint_variant_files(exe: &Path) -> (String, bool) {
    let dir = exe.parent().expect("variant folder");
    let mut files: Vec<PathBuf> = vec![exe.to_path_buf()];
    let mut dsos: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("variant folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "so"))
        .collect();
    dsos.sort();
    files.extend(dsos);
    let mut out = String::new();
    let mut clean = true;
    for f in files {
        let report = lint_file(f.to_str().expect("utf-8 path")).expect("lint runs");
        clean &= report.is_clean();
        let text = report_text(&report);
        out.push_str(&text.replace(&format!("{}/", dir.display()), ""));
    }
    (out, clean)
}

#[test]
fn lint_report_of_every_variant_is_pinned() {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/lint");
    let _guard = settings.bind_to_scope();
    let mut seen = 0;
    for v in context_targets::catalogue() {
        if v.kind != context_targets::WriterKind::C || !v.executable.exists() {
            continue;
        }
        let (text, _) = lint_variant_files(&v.executable);
        insta::assert_snapshot!(v.name.clone(), text);
        seen += 1;
    }
    assert!(seen > 0, "no C variant was built");
}

/// A fixture built by `build.rs` (`lint-fixtures/<case>/<file>`).
fn fixture(path: &str) -> PathBuf {
    Path::new(env!("LINT_FIXTURES")).join(path)
}

fn violation_codes(file: &Path) -> Vec<&'static str> {
    let report = lint_file(file.to_str().unwrap()).unwrap();
    report.violations.iter().map(|v| v.code).collect()
}

// rules: v1-dso-tlsdesc, v1-dso-filename
#[test]
fn a_conforming_dso_is_clean() {
    let so = fixture("conforming/libcustomlabels.so");
    assert_eq!(
        violation_codes(&so),
        Vec::<&str>::new(),
        "{}",
        report_text(&lint_file(so.to_str().unwrap()).unwrap())
    );
}

// rules: v1-dso-filename
#[test]
fn flags_a_v1_dso_with_a_non_conforming_name() {
    assert_eq!(
        violation_codes(&fixture("misnamed/libwriter.so")),
        vec!["v1-dso-name"]
    );
}

// rules: v1-abi-version-export, v1-current-set-export
#[test]
fn flags_v1_symbols_missing_from_dynsym() {
    let exe = fixture("no-dynsym/writer");
    let codes = violation_codes(&exe);
    assert!(
        codes.iter().filter(|c| **c == "not-in-dynsym").count() >= 2,
        "{codes:?}"
    );
}

// rules: tc-no-local-dynamic
#[test]
fn flags_otep_symbol_reachable_only_through_local_dynamic() {
    let so = fixture("local-dynamic/libcustomlabels.so");
    let codes = violation_codes(&so);
    assert!(
        codes.contains(&"otep-local-dynamic"),
        "{codes:?}\n{}",
        report_text(&lint_file(so.to_str().unwrap()).unwrap())
    );
}

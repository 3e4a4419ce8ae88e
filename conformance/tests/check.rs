//! `context-reader check` on every target variant, pinned with insta, and on fixtures built to
//! break one rule each, which it must flag (conformance.md section 6).
//!
//! x86-64 only for now: the fixtures are compiled at test time and the aarch64 VM has no
//! compiler, and the pins are per arch (none recorded for aarch64 yet).
#![cfg(target_arch = "x86_64")]

use std::path::{Path, PathBuf};
use std::process::Command;

use context_reader::check::{check_file, report_text};

/// The variant's executable and every DSO beside it, reported with paths relative to its folder.
fn check_variant_files(exe: &Path) -> (String, bool) {
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
        let report = check_file(f.to_str().expect("utf-8 path")).expect("check runs");
        clean &= report.is_clean();
        let text = report_text(&report);
        out.push_str(&text.replace(&format!("{}/", dir.display()), ""));
    }
    (out, clean)
}

#[test]
fn check_report_of_every_variant_is_pinned() {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/check");
    let _guard = settings.bind_to_scope();
    let mut seen = 0;
    for v in context_targets::catalogue() {
        if v.kind != context_targets::WriterKind::C || !v.executable.exists() {
            continue;
        }
        let (text, _) = check_variant_files(&v.executable);
        insta::assert_snapshot!(v.name.clone(), text);
        seen += 1;
    }
    assert!(seen > 0, "no C variant was built");
}

fn cc() -> Command {
    Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
}

fn build(cmd: &mut Command) {
    let out = cmd.output().expect("compiler runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check_fixtures/ctx.c");

fn violation_codes(file: &Path) -> Vec<&'static str> {
    let report = check_file(file.to_str().unwrap()).unwrap();
    report.violations.iter().map(|v| v.code).collect()
}

/// Builds the fixture as a TLSDESC DSO at `so` (the file name is what the name rule looks at).
fn build_tlsdesc_dso(so: &std::path::Path) {
    let descriptors = if cfg!(target_arch = "x86_64") {
        "-mtls-dialect=gnu2"
    } else {
        "-mtls-dialect=desc"
    };
    build(
        cc().args(["-O1", "-fPIC", "-shared", descriptors, "-o"])
            .arg(so)
            .arg(FIXTURE),
    );
}

#[test]
fn a_conforming_dso_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("libcustomlabels.so");
    build_tlsdesc_dso(&so);
    assert_eq!(
        violation_codes(&so),
        Vec::<&str>::new(),
        "{}",
        report_text(&check_file(so.to_str().unwrap()).unwrap())
    );
}

#[test]
fn flags_a_v1_dso_with_a_non_conforming_name() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("libwriter.so");
    build_tlsdesc_dso(&so);
    assert_eq!(violation_codes(&so), vec!["v1-dso-name"]);
}

#[test]
fn flags_v1_symbols_missing_from_dynsym() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.c");
    std::fs::write(
        &main,
        "void set(void *); int main(void) { set(0); return 0; }\n",
    )
    .unwrap();
    let exe = dir.path().join("writer");
    // No --dynamic-list / --export-dynamic-symbol: the symbols stay in .symtab.
    build(cc().args(["-O1", "-o"]).arg(&exe).arg(&main).arg(FIXTURE));
    let codes = violation_codes(&exe);
    assert!(
        codes.iter().filter(|c| **c == "not-in-dynsym").count() >= 2,
        "{codes:?}"
    );
}

#[test]
fn flags_otep_symbol_reachable_only_through_local_dynamic() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("libcustomlabels.so");
    // Protected visibility + local-dynamic: the module reaches its TLS through a module-base
    // relocation with symbol index 0, which OTEP 4947 excludes.
    build(
        cc().args([
            "-O1",
            "-fPIC",
            "-shared",
            "-ftls-model=local-dynamic",
            "-fvisibility=protected",
            "-o",
        ])
        .arg(&so)
        .arg(FIXTURE),
    );
    let codes = violation_codes(&so);
    assert!(
        codes.contains(&"otep-local-dynamic"),
        "{codes:?}\n{}",
        report_text(&check_file(so.to_str().unwrap()).unwrap())
    );
}

//! Builds the fixtures of `tests/lint.rs` (writer files that each break one rule of
//! `context-reader check`, and one that breaks none) for the target arch with `cc`'s compiler
//! detection, so no compiler runs at test time. A compiler failure fails the build with its output.

use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURE: &str = "tests/lint_fixtures/ctx.c";

fn compiler() -> Command {
    cc::Build::new()
        .cargo_metadata(false)
        .get_compiler()
        .to_command()
}

fn build(out: &Path, args: &[&str], sources: &[&Path]) {
    std::fs::create_dir_all(out.parent().expect("fixture folder")).expect("fixture folder");
    let mut cmd = compiler();
    cmd.args(["-O1"])
        .args(args)
        .arg("-o")
        .arg(out)
        .args(sources);
    let result = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        result.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn main() {
    println!("cargo:rerun-if-changed={FIXTURE}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("lint-fixtures");
    let fixture = Path::new(FIXTURE);
    let descriptors = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "-mtls-dialect=gnu2",
        _ => "-mtls-dialect=desc",
    };
    let tlsdesc_dso = ["-fPIC", "-shared", descriptors];
    // The file name is what the v1 name rule looks at.
    build(
        &out.join("conforming/libcustomlabels.so"),
        &tlsdesc_dso,
        &[fixture],
    );
    build(&out.join("misnamed/libwriter.so"), &tlsdesc_dso, &[fixture]);
    // No --dynamic-list / --export-dynamic-symbol: the symbols stay in .symtab only.
    let main = out.join("main.c");
    std::fs::create_dir_all(&out).expect("fixture folder");
    std::fs::write(
        &main,
        "void set(void *); int main(void) { set(0); return 0; }\n",
    )
    .expect("main.c");
    build(&out.join("no-dynsym/writer"), &[], &[&main, fixture]);
    // Protected visibility + local-dynamic: the module reaches its TLS through a module-base
    // relocation with symbol index 0, which OTEP 4947 excludes.
    build(
        &out.join("local-dynamic/libcustomlabels.so"),
        &[
            "-fPIC",
            "-shared",
            "-ftls-model=local-dynamic",
            "-fvisibility=protected",
        ],
        &[fixture],
    );
    println!("cargo:rustc-env=LINT_FIXTURES={}", out.display());
}

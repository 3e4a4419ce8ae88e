//! Builds the benchmark target (`c/target.c`) with the C compiler `cc` picks, with debug info so
//! that gdb can resolve its TLS symbols; the driver finds it through `BENCH_TARGET`.

use std::path::PathBuf;

fn main() {
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("c/target.c");
    println!("cargo:rerun-if-changed={}", src.display());
    // The header it shares with the reader's integration-test writer.
    let shared = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../reader/tests/it/c");
    println!(
        "cargo:rerun-if-changed={}",
        shared.join("ctx_writer.h").display()
    );
    let exe = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("bench-target");
    let tool = cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .get_compiler();
    let mut cmd = tool.to_command();
    cmd.args(["-O2", "-g", "-pthread", "-Wall"])
        .arg(format!("-I{}", shared.display()))
        .arg("-o")
        .arg(&exe)
        .arg(&src);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run `cargo xtask setup`)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("cargo:rustc-env=BENCH_TARGET={}", exe.display());
}

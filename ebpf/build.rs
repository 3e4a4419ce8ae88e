//! Compiles src/bpf/sampler.bpf.c with clang for the target architecture into OUT_DIR/sampler.bpf.o,
//! and the C test targets of tests/c with the target's C compiler (cc crate) into OUT_DIR/test-targets.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Clang binaries tried in order; `CONTEXT_READER_CLANG` overrides them.
const CLANG_CANDIDATES: &[&str] = &["clang-14", "clang"];

fn main() {
    compile_bpf();
    compile_test_targets();
}

/// The C programs the root end-to-end tests sample, built for the target so that the aarch64 VM
/// leg runs them too; tests find them through `CR_TEST_TARGET_*` (compile-time env).
fn compile_test_targets() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let c_dir = manifest_dir.join("tests").join("c");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("test-targets");
    std::fs::create_dir_all(&out_dir).expect("creating OUT_DIR/test-targets");
    for file in [
        "common.h",
        "tp_relative.c",
        "dtv_main.c",
        "dtv_module.c",
        "layouts.c",
        "bench_writer.c",
    ] {
        println!("cargo:rerun-if-changed={}", c_dir.join(file).display());
    }
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(1)
        .get_compiler();
    let build = |env_name: &str, output: &str, args: &[&str]| {
        let out = out_dir.join(output);
        let mut command = compiler.to_command();
        command
            .args(["-g", "-Wall", "-Werror", "-pthread", "-I"])
            .arg(&c_dir)
            .args(args.iter().map(|a| {
                if a.ends_with(".c") {
                    c_dir.join(a).into_os_string()
                } else {
                    a.into()
                }
            }))
            .arg("-o")
            .arg(&out);
        let result = command
            .output()
            .unwrap_or_else(|e| panic!("context-reader-ebpf: running {command:?}: {e}"));
        if !result.status.success() {
            panic!(
                "context-reader-ebpf: building test target {output} failed: {command:?}\n{}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
        println!("cargo:rustc-env={env_name}={}", out.display());
    };
    build(
        "CR_TEST_TARGET_TP_RELATIVE",
        "tp_relative",
        &["tp_relative.c"],
    );
    build("CR_TEST_TARGET_LAYOUTS", "layouts", &["layouts.c"]);
    build(
        "CR_TEST_TARGET_BENCH_WRITER",
        "bench_writer",
        &["bench_writer.c"],
    );
    // traditional general dynamic (__tls_get_addr), so the slot is only reachable through the DTV
    let traditional_dialect = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "-mtls-dialect=trad",
        _ => "-mtls-dialect=gnu",
    };
    build(
        "CR_TEST_TARGET_DTV_MODULE",
        "dtv_module.so",
        &["-fPIC", "-shared", traditional_dialect, "dtv_module.c"],
    );
    build(
        "CR_TEST_TARGET_DTV_MAIN",
        "dtv_main",
        &["dtv_main.c", "-ldl"],
    );
}

fn compile_bpf() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let bpf_dir = manifest_dir.join("src").join("bpf");
    let source = bpf_dir.join("sampler.bpf.c");
    for file in ["sampler.bpf.c", "sampler.h", "vmlinux_min.h"] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=CONTEXT_READER_CLANG");

    let arch_define = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "-D__TARGET_ARCH_x86",
        Ok("aarch64") => "-D__TARGET_ARCH_arm64",
        Ok(other) => panic!(
            "context-reader-ebpf: the BPF sampler supports x86_64 and aarch64 targets, not {other}"
        ),
        Err(error) => panic!("context-reader-ebpf: CARGO_CFG_TARGET_ARCH: {error}"),
    };

    let candidates: Vec<String> = match env::var("CONTEXT_READER_CLANG") {
        Ok(clang) => vec![clang],
        Err(_) => CLANG_CANDIDATES.iter().map(|c| c.to_string()).collect(),
    };
    let clang = candidates
        .iter()
        .find(|clang| {
            Command::new(clang)
                .arg("--version")
                .output()
                .map(|out| out.status.success())
                .unwrap_or(false)
        })
        .unwrap_or_else(|| {
            panic!(
                "context-reader-ebpf: no clang found (tried {}) to compile {}. \
                 Run `cargo xtask setup` (installs clang-14, llvm-14, libbpf-dev, bpftool), \
                 or set CONTEXT_READER_CLANG to a clang that targets BPF.",
                candidates.join(", "),
                source.display()
            )
        });

    let libbpf_headers = [
        "/usr/include/bpf/bpf_helpers.h",
        "/usr/include/bpf/bpf_core_read.h",
    ];
    for header in libbpf_headers {
        if !std::path::Path::new(header).exists() {
            panic!(
                "context-reader-ebpf: {header} is missing (package libbpf-dev). Run `cargo xtask setup`."
            );
        }
    }

    let object = out_dir.join("sampler.bpf.o");
    let output = Command::new(clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-Wall",
            "-Werror",
            arch_define,
        ])
        .arg("-I")
        .arg(&bpf_dir)
        .arg("-c")
        .arg(&source)
        .arg("-o")
        .arg(&object)
        .output()
        .unwrap_or_else(|error| panic!("context-reader-ebpf: running {clang}: {error}"));
    if !output.status.success() {
        panic!(
            "context-reader-ebpf: {clang} failed to compile {}:\n{}{}",
            source.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

//! Builds the integration-test writer (tests/it/c) for the target arch, glibc and musl,
//! executable and TLSDESC DSO, so that the tests also run where there is no compiler (the aarch64
//! VM). A variant that cannot be built is recorded as `<name>.error`: the tests that need it fail
//! with that message, while the library itself still builds.

use std::path::{Path, PathBuf};
use std::process::Command;

const SYMBOLS: [&str; 3] = [
    "custom_labels_current_set",
    "custom_labels_abi_version",
    "otel_thread_ctx_v1",
];

fn run(mut cmd: Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{cmd:?}: {e} (run `cargo xtask setup`)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn build(
    tool: &cc::Tool,
    c_dir: &Path,
    dir: &Path,
    exe: &Path,
    dso: bool,
    arch: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut link = tool.to_command();
    link.args(["-g", "-O1", "-pthread", "-o"])
        .arg(exe)
        .arg(c_dir.join("writer.c"));
    if dso {
        let dialect = if arch == "x86_64" {
            "-mtls-dialect=gnu2"
        } else {
            "-mtls-dialect=desc"
        };
        let mut so = tool.to_command();
        so.args(["-g", "-O1", "-fPIC", "-shared", dialect, "-o"])
            .arg(dir.join("libcustomlabels-it.so"))
            .arg(c_dir.join("ctx.c"));
        run(so)?;
        link.arg(format!("-L{}", dir.display()))
            .arg("-lcustomlabels-it")
            .arg(format!("-Wl,-rpath,{}", dir.display()));
    } else {
        link.arg(c_dir.join("ctx.c"));
        link.args(SYMBOLS.map(|s| format!("-Wl,--export-dynamic-symbol={s}")));
    }
    run(link)
}

fn main() {
    let c_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("tests/it/c");
    println!("cargo:rerun-if-changed={}", c_dir.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("it-writers");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets it");
    for libc in ["glibc", "musl"] {
        let mut b = cc::Build::new();
        b.opt_level(1).cargo_metadata(false).cargo_warnings(false);
        if libc == "musl" {
            // Debian's musl-tools wrapper on x86-64; xtask's wrapper for the aarch64 cross build.
            b.compiler(if arch == "x86_64" {
                "musl-gcc"
            } else {
                "aarch64-linux-musl-gcc"
            });
        }
        for placement in ["executable", "tlsdescdso"] {
            let name = format!("w-{libc}-{placement}");
            let dir = out.join(&name);
            let result = b
                .try_get_compiler()
                .map_err(|e| e.to_string())
                .and_then(|tool| {
                    build(
                        &tool,
                        &c_dir,
                        &dir,
                        &dir.join(&name),
                        placement != "executable",
                        &arch,
                    )
                });
            let error_file = out.join(format!("{name}.error"));
            match result {
                Ok(()) => {
                    let _ = std::fs::remove_file(&error_file);
                }
                Err(e) => {
                    println!(
                        "cargo:warning=test writer {name} not built: {}",
                        e.lines().next().unwrap_or("")
                    );
                    std::fs::create_dir_all(&out).expect("OUT_DIR is writable");
                    std::fs::write(&error_file, e).expect("OUT_DIR is writable");
                }
            }
        }
    }
    // The other-tracer helper of the ptrace tests (glibc, like the default compiler).
    let tracer = out.join("tracer");
    let result = cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .try_get_compiler()
        .map_err(|e| e.to_string())
        .and_then(|tool| {
            std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            let mut cmd = tool.to_command();
            cmd.args(["-O1", "-o"])
                .arg(&tracer)
                .arg(c_dir.join("tracer.c"));
            run(cmd)
        });
    let error_file = out.join("tracer.error");
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&error_file);
        }
        Err(e) => {
            println!(
                "cargo:warning=test helper tracer not built: {}",
                e.lines().next().unwrap_or("")
            );
            std::fs::write(&error_file, e).expect("OUT_DIR is writable");
        }
    }
}

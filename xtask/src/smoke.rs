//! `cargo xtask vm-smoke`: proves the aarch64 toolchains and the VM runner with tiny C programs
//! (glibc dynamic, musl static, musl dynamic) that use TLS from two threads and exit with 3.

use crate::cross::MUSL_SPECS;
use crate::paths::Paths;
use crate::process::run;
use anyhow::{bail, Result};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const PROGRAM: &str = r#"/* xtask vm-smoke: TLS per thread, exit code 3 */
#include <pthread.h>
#include <stdio.h>
static __thread int value = 5;
static void *thread_main(void *seen) { value = 7; *(int *)seen = value; return 0; }
int main(int argc, char **argv) {
    int seen = 0;
    pthread_t thread;
    (void)argc;
    if (pthread_create(&thread, 0, thread_main, &seen) != 0 || pthread_join(thread, 0) != 0) return 1;
    printf("%s: main=%d thread=%d\n", argv[0], value, seen);
    return 3;
}
"#;

/// (name, extra gcc flags)
const VARIANTS: &[(&str, &[&str])] = &[
    ("smoke-glibc-dynamic", &[]),
    ("smoke-musl-static", &["-specs", MUSL_SPECS, "-static"]),
    ("smoke-musl-dynamic", &["-specs", MUSL_SPECS]),
];

pub fn run_smoke(paths: &Paths) -> Result<()> {
    let dir = paths.cache.join("smoke");
    std::fs::create_dir_all(&dir)?;
    let source = dir.join("smoke.c");
    std::fs::write(&source, PROGRAM)?;
    let mut script = String::from("#!/bin/sh\n# xtask vm-smoke: run each variant, report its exit code\ncd \"$(dirname \"$0\")\"\n");
    for (name, flags) in VARIANTS {
        run(Command::new("aarch64-linux-gnu-gcc")
            .args(*flags)
            .args(["-O2", "-pthread", "-o"])
            .arg(dir.join(name))
            .arg(&source))?;
        script.push_str(&format!("./{name}; echo \"{name} exit $?\"\n"));
    }
    let script_path = dir.join("smoke.sh");
    std::fs::write(&script_path, script)?;
    std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o755))?;
    let outcome = crate::guest::run_in_vm(&paths.cache, &script_path, &[])?;
    let mut failures = Vec::new();
    if outcome.exit_code.is_none() {
        failures.push("the VM printed no exit marker".to_string());
    }
    for (name, _) in VARIANTS {
        for expected in [
            format!("./{name}: main=5 thread=7\n"),
            format!("{name} exit 3\n"),
        ] {
            if !outcome.output.contains(&expected) {
                failures.push(format!("missing {expected:?}"));
            }
        }
    }
    if !failures.is_empty() {
        bail!("vm-smoke failed: {}", failures.join("; "));
    }
    eprintln!(
        "xtask vm-smoke: {} aarch64 programs ran in the VM with the expected output",
        VARIANTS.len()
    );
    Ok(())
}

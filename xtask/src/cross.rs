//! The aarch64 cross build: Debian's `rustc-web` (rustup has no aarch64 std here) driven by
//! `/usr/bin/cargo`, linked with the GNU cross gcc, tests run by `xtask vm-run` in a VM.

use crate::paths::Paths;
use anyhow::Result;
use std::path::PathBuf;
use std::process::Command;

pub const TARGET: &str = "aarch64-unknown-linux-gnu";

/// musl for aarch64: the cross gcc with the specs file that `musl-dev:arm64` ships.
pub const MUSL_SPECS: &str = "/usr/lib/aarch64-linux-musl/musl-gcc.specs";

/// Set by rustup's cargo for its children; they would point Debian's cargo back at rustup.
const HOST_TOOLCHAIN_ENV: &[&str] = &[
    "RUSTC",
    "RUSTDOC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO",
    "RUSTUP_TOOLCHAIN",
    "LD_LIBRARY_PATH",
    "CARGO_TARGET_DIR",
];

/// Directory of the cross build, apart from the host's (different compiler, different metadata).
pub fn target_dir(paths: &Paths) -> PathBuf {
    paths.target.join("aarch64-debian-rustc")
}

/// Writes `aarch64-linux-musl-gcc` (a wrapper adding the musl specs) into the cache's bin dir.
pub fn write_musl_wrapper(paths: &Paths) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let bin = paths.cache.join("bin");
    std::fs::create_dir_all(&bin)?;
    let wrapper = bin.join("aarch64-linux-musl-gcc");
    let text = format!("#!/bin/sh\n# written by cargo xtask: musl C compiler for aarch64\nexec aarch64-linux-gnu-gcc -specs {MUSL_SPECS} \"$@\"\n");
    if std::fs::read_to_string(&wrapper).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&wrapper, text)?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(bin)
}

/// `/usr/bin/cargo` set up to build and test for aarch64; add the subcommand and its arguments.
pub fn cargo(paths: &Paths) -> Result<Command> {
    let mut cmd = Command::new("/usr/bin/cargo");
    for name in HOST_TOOLCHAIN_ENV {
        cmd.env_remove(name);
    }
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name == "CARGO_CRATE_NAME"
            || name == "CARGO_BIN_NAME"
            || name == "CARGO_PRIMARY_PACKAGE"
        {
            cmd.env_remove(&*name);
        }
    }
    // A step that rebuilt xtask meanwhile (a nested `cargo run -p xtask`) leaves this process's
    // executable "(deleted)": the new build at the same path is the runner, and the suffix
    // would be split off as a subcommand by cargo.
    let exe = std::env::current_exe()?;
    let exe = exe.to_string_lossy();
    let runner = format!("{} vm-run", exe.strip_suffix(" (deleted)").unwrap_or(&exe));
    let musl_bin = write_musl_wrapper(paths)?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(musl_bin).chain(std::env::split_paths(&path)))?;
    cmd.env("PATH", path)
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTDOC", "/usr/bin/rustdoc")
        .env("CARGO_BUILD_TARGET", TARGET)
        .env("CARGO_TARGET_DIR", target_dir(paths))
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        )
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER", runner)
        .env("CC_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-gcc")
        .env("CXX_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-g++")
        .env("AR_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-ar")
        .env("XTASK_CACHE", &paths.cache)
        .env(crate::VM_FAILURES_LOG_VAR, crate::vm_failures_log(paths))
        .current_dir(&paths.workspace);
    Ok(cmd)
}

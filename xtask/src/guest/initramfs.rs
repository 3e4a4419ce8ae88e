//! The guest's initramfs: a base archive built once per content (busybox, `/init`, the glibc and
//! musl runtimes) and a per-run archive (the program, the files it needs at the same absolute paths
//! as on the host, and `/xtask-run.sh`). Linux unpacks concatenated archives in order.

use super::assets::{guest_dir, Assets};
use crate::cpio::CpioWriter;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the glibc cross runtime lives on the host.
const GLIBC_RUNTIME: &str = "/usr/aarch64-linux-gnu/lib";
/// musl's dynamic loader (also its libc) from `musl:arm64`.
const MUSL_LOADER: &str = "/lib/ld-musl-aarch64.so.1";
/// The per-run archive must fit comfortably in the guest's 1024 MiB with the unpacked copy.
const MAX_RUN_ARCHIVE_BYTES: u64 = 400 << 20;

const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
# /init of the xtask aarch64 guest: mount the usual file systems, run /xtask-run.sh, print its exit
# code between markers and power off. /tmp stays on the rootfs: the per-run archive may put
# files there (a host CARGO_TARGET_DIR under /tmp).
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
if [ -f /xtask-run.sh ]; then
    sh /xtask-run.sh </dev/null
    code=$?
else
    echo "xtask guest: no /xtask-run.sh in the initramfs"
    code=125
fi
echo "@@xtask-exit@@ $code @@"
poweroff -f
"#;

/// Sanitizer runtimes are large and unused in the guest.
fn is_guest_runtime_lib(name: &str) -> bool {
    let sanitizer = ["libasan", "libtsan", "liblsan", "libhwasan", "libubsan"]
        .iter()
        .any(|s| name.starts_with(s));
    !sanitizer && (name.starts_with("ld-") || name.contains(".so."))
}

/// FNV-1a, to name cached archives after what went into them.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

/// Builds (once per content) the base archive and returns its path.
pub(super) fn base_archive(cache: &Path, assets: &Assets) -> Result<PathBuf> {
    let mut libs: Vec<(String, PathBuf)> = std::fs::read_dir(GLIBC_RUNTIME)
        .with_context(|| {
            format!("reading {GLIBC_RUNTIME}: run `cargo xtask setup --arch aarch64`")
        })?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            is_guest_runtime_lib(&name).then(|| (name, e.path()))
        })
        .collect();
    libs.sort();
    let mut key = fnv1a(INIT_SCRIPT.as_bytes(), 0xcbf29ce484222325);
    key = fnv1a(assets.busybox.as_os_str().as_bytes(), key);
    for (name, path) in &libs {
        let meta = std::fs::symlink_metadata(path)?;
        key = fnv1a(
            format!("{name}:{}:{:?}", meta.len(), meta.modified().ok()).as_bytes(),
            key,
        );
    }
    let musl = Path::new(MUSL_LOADER).is_file();
    key = fnv1a(&[u8::from(musl)], key);
    let path = guest_dir(cache).join(format!("base-{key:016x}.cpio"));
    if path.is_file() {
        return Ok(path);
    }
    let mut cpio = CpioWriter::new(Vec::new());
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "lib",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "root",
        "etc",
        "usr/aarch64-linux-gnu",
    ] {
        cpio.dir(dir, 0o755)?;
    }
    cpio.char_device("dev/console", 0o600, 5, 1)?;
    cpio.char_device("dev/null", 0o666, 1, 3)?;
    cpio.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    cpio.file("bin/busybox", 0o755, &std::fs::read(&assets.busybox)?)?;
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    cpio.file("etc/group", 0o644, b"root:x:0:\n")?;
    // The loader searches /lib; the multiarch and cross-prefix paths point there too.
    cpio.symlink("lib64", "lib")?;
    cpio.symlink("lib/aarch64-linux-gnu", ".")?;
    cpio.symlink("usr/lib", "../lib")?;
    cpio.symlink("usr/aarch64-linux-gnu/lib", "../../lib")?;
    for (name, path) in &libs {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            cpio.symlink(
                &format!("lib/{name}"),
                &std::fs::read_link(path)?.to_string_lossy(),
            )?;
        } else {
            cpio.file(&format!("lib/{name}"), 0o755, &std::fs::read(path)?)?;
        }
    }
    if musl {
        cpio.file(
            "lib/ld-musl-aarch64.so.1",
            0o755,
            &std::fs::read(MUSL_LOADER)?,
        )?;
    }
    let bytes = cpio.finish()?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// POSIX shell single-quoting of arbitrary bytes (no NUL).
pub fn shell_quote(bytes: &[u8]) -> Vec<u8> {
    let mut quoted = vec![b'\''];
    for &b in bytes {
        if b == b'\'' {
            quoted.extend_from_slice(b"'\\''");
        } else {
            quoted.push(b);
        }
    }
    quoted.push(b'\'');
    quoted
}

/// Environment passed into the guest: what test harnesses and our crates read.
pub(super) fn is_forwarded_env(name: &str) -> bool {
    let prefixes = [
        "RUST_",
        "CARGO_",
        "CONFORMANCE_",
        "INSTA_",
        "CONTEXT_",
        "XTASK_GUEST_",
        "PROPTEST_",
    ];
    prefixes.iter().any(|p| name.starts_with(p))
        && name != "CARGO_MAKEFLAGS"
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `/xtask-run.sh`: cd to the host's working directory, set the environment, run the program.
pub fn run_script(
    cwd: &Path,
    env: &[(String, OsString)],
    program: &Path,
    args: &[OsString],
) -> Vec<u8> {
    let mut script = b"# written by xtask vm-run\ncd ".to_vec();
    script.extend(shell_quote(cwd.as_os_str().as_bytes()));
    script.extend_from_slice(b" || exit 126\n");
    for (name, value) in env {
        script.extend_from_slice(format!("export {name}=").as_bytes());
        script.extend(shell_quote(value.as_bytes()));
        script.push(b'\n');
    }
    script.extend_from_slice(b"exec ");
    script.extend(shell_quote(program.as_os_str().as_bytes()));
    for arg in args {
        script.push(b' ');
        script.extend(shell_quote(arg.as_bytes()));
    }
    script.push(b'\n');
    script
}

/// Host files to put in the per-run archive, by absolute guest path.
#[derive(Default)]
pub(super) struct RunFiles {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, PathBuf>,
    symlinks: BTreeMap<PathBuf, PathBuf>,
}

impl RunFiles {
    fn add_parents(&mut self, path: &Path) {
        for ancestor in path.ancestors().skip(1) {
            if ancestor != Path::new("/") && !ancestor.as_os_str().is_empty() {
                self.dirs.insert(ancestor.to_path_buf());
            }
        }
    }

    /// Adds a file, symlink or whole tree; `skip` filters out files and directories by name.
    fn add(&mut self, path: &Path, skip: &dyn Fn(&Path, bool) -> bool) -> Result<()> {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("reading {}", path.display()))?;
        self.add_parents(path);
        if meta.file_type().is_symlink() {
            self.symlinks
                .insert(path.to_path_buf(), std::fs::read_link(path)?);
        } else if meta.is_dir() {
            self.dirs.insert(path.to_path_buf());
            for entry in std::fs::read_dir(path)?.flatten() {
                let child = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if !skip(&child, is_dir) {
                    self.add(&child, skip)?;
                }
            }
        } else if meta.is_file() {
            self.files.insert(path.to_path_buf(), path.to_path_buf());
        }
        Ok(())
    }

    pub(super) fn archive(&self, script: &[u8]) -> Result<Vec<u8>> {
        let total: u64 = self
            .files
            .keys()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        if total > MAX_RUN_ARCHIVE_BYTES {
            bail!(
                "the files for the VM take {} MiB, more than the {} MiB limit",
                total >> 20,
                MAX_RUN_ARCHIVE_BYTES >> 20
            );
        }
        let rel = |p: &Path| {
            p.strip_prefix("/")
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        };
        let mut cpio = CpioWriter::new(Vec::with_capacity(total as usize + 4096));
        for dir in &self.dirs {
            cpio.dir(&rel(dir), 0o755)?;
        }
        for (guest, host) in &self.files {
            let mode = std::fs::metadata(host)?.permissions().mode();
            cpio.file(
                &rel(guest),
                mode & 0o7777,
                &std::fs::read(host).with_context(|| format!("reading {}", host.display()))?,
            )?;
        }
        for (guest, target) in &self.symlinks {
            cpio.symlink(&rel(guest), &target.to_string_lossy())?;
        }
        cpio.file("xtask-run.sh", 0o755, script)?;
        Ok(cpio.finish()?)
    }
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Collects what a test binary may need in the guest: itself, the other executables of its cargo
/// profile directory (`CARGO_BIN_EXE_*`), build-script outputs (compiled C targets), the
/// workspace sources (fixtures, snapshots) and `XTASK_VM_INCLUDE` (colon-separated paths).
pub(super) fn collect_run_files(program: &Path, workspace: &Path) -> Result<RunFiles> {
    let mut files = RunFiles::default();
    let none = |_: &Path, _: bool| false;
    files.add(program, &none)?;
    let parent = program.parent().context("program has no directory")?;
    let profile_dir = if parent
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        parent.parent().unwrap_or(parent)
    } else {
        parent
    };
    if let Ok(entries) = std::fs::read_dir(profile_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let executable = entry
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if executable && is_elf(&path) {
                files.add(&path, &none)?;
            }
        }
    }
    let build_outputs = |p: &Path, is_dir: bool| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        !is_dir
            && [".o", ".a", ".d", ".rlib", ".rmeta"]
                .iter()
                .any(|ext| name.ends_with(ext))
    };
    if let Ok(entries) = std::fs::read_dir(profile_dir.join("build")) {
        for entry in entries.flatten() {
            let out = entry.path().join("out");
            if out.is_dir() {
                files.add(&out, &build_outputs)?;
            }
        }
    }
    let sources = |p: &Path, is_dir: bool| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        is_dir && (name == "target" || name == ".git")
    };
    files.add(workspace, &sources)?;
    if let Some(extra) = std::env::var_os("XTASK_VM_INCLUDE") {
        for path in std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()) {
            files.add(&path, &none)?;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::super::{exit_code_in, EXIT_MARKER};
    use super::*;

    #[test]
    fn init_script_prints_the_marker_format_the_host_parses() {
        let marker_line = INIT_SCRIPT
            .lines()
            .find(|l| l.contains(EXIT_MARKER))
            .unwrap();
        assert_eq!(exit_code_in(&marker_line.replace("$code", "7")), Some(7));
    }

    #[test]
    fn run_script_quotes_everything() {
        let script = run_script(
            Path::new("/work/it's"),
            &[("RUST_BACKTRACE".into(), "1".into())],
            Path::new("/t/bin"),
            &["--exact".into(), "a b'c".into()],
        );
        assert_eq!(
            String::from_utf8(script).unwrap(),
            "# written by xtask vm-run\ncd '/work/it'\\''s' || exit 126\nexport RUST_BACKTRACE='1'\nexec '/t/bin' '--exact' 'a b'\\''c'\n"
        );
    }

    #[test]
    fn forwards_only_harness_environment() {
        assert!(is_forwarded_env("RUST_BACKTRACE"));
        assert!(is_forwarded_env("CONFORMANCE_BACKENDS"));
        assert!(!is_forwarded_env("CARGO_MAKEFLAGS"));
        assert!(!is_forwarded_env("PATH"));
        assert!(!is_forwarded_env("HOME"));
    }

    #[test]
    fn guest_runtime_libs_skip_sanitizers_and_link_time_files() {
        assert!(is_guest_runtime_lib("libc.so.6"));
        assert!(is_guest_runtime_lib("ld-linux-aarch64.so.1"));
        assert!(is_guest_runtime_lib("libstdc++.so.6.0.30"));
        assert!(!is_guest_runtime_lib("libasan.so.8.0.0"));
        assert!(!is_guest_runtime_lib("libc.so"));
        assert!(!is_guest_runtime_lib("libc.a"));
    }
}

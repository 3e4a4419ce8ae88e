//! The aarch64 guest: kernel and busybox from Debian's arm64 archive, an initramfs, and a
//! qemu-system runner that boots one VM per command and returns the command's exit code.
//!
//! Layout of the initramfs: a base archive built once (busybox, `/init`, the glibc and musl
//! runtimes) plus a small per-run archive appended to it (the program, the files it needs at the
//! same absolute paths as on the host, and `/xtask-run.sh`). Linux unpacks concatenated archives
//! in order.

use crate::cpio::CpioWriter;
use crate::process::{output, run};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Printed by `/init` after the command ends: `@@xtask-exit@@ <code> @@`.
const EXIT_MARKER: &str = "@@xtask-exit@@ ";
const EXIT_MARKER_END: &str = " @@";

/// Where the glibc cross runtime lives on the host.
const GLIBC_RUNTIME: &str = "/usr/aarch64-linux-gnu/lib";
/// musl's dynamic loader (also its libc) from `musl:arm64`.
const MUSL_LOADER: &str = "/lib/ld-musl-aarch64.so.1";
/// The per-run archive must fit comfortably in the guest's 1024 MiB with the unpacked copy.
const MAX_RUN_ARCHIVE_BYTES: u64 = 400 << 20;
/// Default limit for one VM, boot to poweroff; `XTASK_VM_TIMEOUT_SECS` overrides it.
const DEFAULT_TIMEOUT_SECS: u64 = 1800;

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

/// Kernel and busybox extracted from their arm64 packages.
pub struct Assets {
    pub kernel: PathBuf,
    pub busybox: PathBuf,
}

fn guest_dir(cache: &Path) -> PathBuf {
    cache.join("aarch64-guest")
}

/// The concrete kernel package that `linux-image-cloud-arm64` depends on, from
/// `apt-cache depends` output.
pub fn kernel_package_from_depends(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let name = line
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends:")?
            .trim();
        let name = name.strip_suffix(":arm64").unwrap_or(name);
        name.starts_with("linux-image-").then(|| name.to_string())
    })
}

/// Downloads `package` (an arm64 package) and extracts the members matching `pattern` into `dest`.
fn download_and_extract(package: &str, pattern: &str, dest: &Path) -> Result<()> {
    let work = dest.join("download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    run(Command::new("apt-get")
        .args([
            "download",
            "-q",
            "-o",
            "APT::Sandbox::User=root",
            &format!("{package}:arm64"),
        ])
        .current_dir(&work))?;
    let deb = std::fs::read_dir(&work)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let tar = work.join("data.tar");
    let tar_file = std::fs::File::create(&tar)?;
    run(Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(tar_file))?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&work)
        .args(["--wildcards", pattern]))?;
    Ok(())
}

fn find_one(dir: &Path, prefix: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .with_context(|| format!("no {prefix}* in {}", dir.display()))
}

/// Fetches the guest kernel and busybox unless the current versions are already cached, and
/// records their paths for [`assets`].
pub fn fetch_assets(cache: &Path) -> Result<Assets> {
    let root = guest_dir(cache);
    let depends =
        output(Command::new("apt-cache").args(["depends", "linux-image-cloud-arm64:arm64"]))?;
    let kernel_package = kernel_package_from_depends(&depends)
        .with_context(|| format!("cannot find the kernel package in `apt-cache depends linux-image-cloud-arm64:arm64`:\n{depends}"))?;
    let kernel_dir = root.join(&kernel_package);
    let kernel = kernel_dir.join("vmlinuz");
    if !kernel.is_file() {
        download_and_extract(&kernel_package, "./boot/vmlinuz-*", &kernel_dir)?;
        std::fs::rename(
            find_one(&kernel_dir.join("download/boot"), "vmlinuz-")?,
            &kernel,
        )?;
        std::fs::remove_dir_all(kernel_dir.join("download"))?;
    }
    let show = output(Command::new("apt-cache").args([
        "show",
        "--no-all-versions",
        "busybox-static:arm64",
    ]))?;
    let busybox_version = show
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .context("busybox-static:arm64 has no Version")?
        .to_string();
    let busybox_dir = root.join(format!(
        "busybox-static-{}",
        busybox_version.replace(':', "_")
    ));
    let busybox = busybox_dir.join("busybox");
    if !busybox.is_file() {
        download_and_extract("busybox-static", "./bin/busybox", &busybox_dir)?;
        std::fs::rename(busybox_dir.join("download/bin/busybox"), &busybox)?;
        std::fs::remove_dir_all(busybox_dir.join("download"))?;
    }
    std::fs::write(
        root.join("current"),
        format!("{}\n{}\n", kernel.display(), busybox.display()),
    )?;
    eprintln!(
        "xtask setup: aarch64 guest kernel {} and busybox {busybox_version}",
        kernel_package
    );
    Ok(Assets { kernel, busybox })
}

/// The assets recorded by the last [`fetch_assets`].
pub fn assets(cache: &Path) -> Result<Assets> {
    let recorded = guest_dir(cache).join("current");
    let text = std::fs::read_to_string(&recorded).with_context(|| {
        format!(
            "{} is missing: run `cargo xtask setup --arch aarch64` first",
            recorded.display()
        )
    })?;
    let mut lines = text.lines().map(PathBuf::from);
    let (Some(kernel), Some(busybox)) = (lines.next(), lines.next()) else {
        bail!("{} is malformed", recorded.display())
    };
    for path in [&kernel, &busybox] {
        if !path.is_file() {
            bail!(
                "{} is missing: run `cargo xtask setup --arch aarch64`",
                path.display()
            );
        }
    }
    Ok(Assets { kernel, busybox })
}

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
fn base_archive(cache: &Path, assets: &Assets) -> Result<PathBuf> {
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
fn is_forwarded_env(name: &str) -> bool {
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

/// The exit code in a line of guest output, if the line carries the marker.
pub fn exit_code_in(line: &str) -> Option<i32> {
    let start = line.find(EXIT_MARKER)? + EXIT_MARKER.len();
    let rest = &line[start..];
    let end = rest.find(EXIT_MARKER_END)?;
    rest[..end].trim().parse().ok()
}

/// Host files to put in the per-run archive, by absolute guest path.
#[derive(Default)]
struct RunFiles {
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

    fn archive(&self, script: &[u8]) -> Result<Vec<u8>> {
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
fn collect_run_files(program: &Path, workspace: &Path) -> Result<RunFiles> {
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

/// What came out of one VM.
pub struct VmOutcome {
    /// The command's exit code, `None` when the VM printed no exit marker.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Guest console output, CR removed, marker line left out.
    pub output: String,
}

/// Boots a VM that runs `program args` with the host's working directory and environment
/// forwarded, echoing the guest console to stdout.
pub fn run_in_vm(cache: &Path, program: &Path, args: &[OsString]) -> Result<VmOutcome> {
    let assets = assets(cache)?;
    let base = base_archive(cache, &assets)?;
    let program = std::fs::canonicalize(program)
        .with_context(|| format!("no program {}", program.display()))?;
    let cwd = std::env::current_dir()?;
    let workspace = cwd
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(&cwd)
        .to_path_buf();
    let mut env: Vec<(String, OsString)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| is_forwarded_env(k))
        .collect();
    // insta asks `cargo metadata` for the workspace root, and there is no cargo in the guest.
    if !env.iter().any(|(k, _)| k == "INSTA_WORKSPACE_ROOT") {
        env.push((
            "INSTA_WORKSPACE_ROOT".into(),
            workspace.clone().into_os_string(),
        ));
    }
    let script = run_script(&cwd, &env, &program, args);
    let run_archive = collect_run_files(&program, &workspace)?.archive(&script)?;

    let run_dir = std::env::temp_dir().join(format!("xtask-vm-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir)?;
    let initrd = run_dir.join("initrd.cpio");
    std::fs::copy(&base, &initrd).with_context(|| format!("copying {}", base.display()))?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&initrd)?
        .write_all(&run_archive)?;

    let timeout = std::env::var("XTASK_VM_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    let mut qemu = Command::new("qemu-system-aarch64");
    qemu.args([
        "-M",
        "virt",
        "-cpu",
        "max,pauth-impdef=on",
        "-smp",
        "2",
        "-m",
        "1024",
    ])
    .args(["-nographic", "-no-reboot", "-nic", "none"])
    .arg("-kernel")
    .arg(&assets.kernel)
    .arg("-initrd")
    .arg(&initrd)
    .args(["-append", "console=ttyAMA0 rdinit=/init panic=-1 quiet"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    eprintln!(
        "xtask vm-run: booting aarch64 VM for {} ({} MiB initramfs, timeout {timeout} s)",
        program.display(),
        std::fs::metadata(&initrd)?.len() >> 20
    );
    let started = Instant::now();
    let mut child = qemu
        .spawn()
        .context("cannot start qemu-system-aarch64: run `cargo xtask setup --arch aarch64`")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let reader = std::thread::spawn(move || {
        let mut output = String::new();
        let mut exit_code = None;
        let mut lines = BufReader::new(stdout);
        let mut raw = Vec::new();
        let mut out = std::io::stdout();
        while lines.read_until(b'\n', &mut raw).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&raw).replace('\r', "");
            raw.clear();
            if let Some(code) = exit_code_in(&line) {
                exit_code = Some(code);
                continue;
            }
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
            output.push_str(&line);
        }
        (exit_code, output)
    });
    let deadline = started + Duration::from_secs(timeout);
    let mut timed_out = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (exit_code, output) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("guest output reader panicked"))?;
    let _ = std::fs::remove_dir_all(&run_dir);
    eprintln!(
        "xtask vm-run: VM ended after {:.1} s, exit code {exit_code:?}",
        started.elapsed().as_secs_f64()
    );
    Ok(VmOutcome {
        exit_code,
        timed_out,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_concrete_kernel_package() {
        let text =
            "linux-image-cloud-arm64:arm64\n  Depends: linux-image-6.1.0-57-cloud-arm64:arm64\n";
        assert_eq!(
            kernel_package_from_depends(text).as_deref(),
            Some("linux-image-6.1.0-57-cloud-arm64")
        );
        assert_eq!(
            kernel_package_from_depends("linux-image-cloud-arm64:arm64\n"),
            None
        );
    }

    #[test]
    fn exit_marker_is_found_and_parsed() {
        assert_eq!(exit_code_in("@@xtask-exit@@ 0 @@\n"), Some(0));
        assert_eq!(
            exit_code_in("[  1.2] noise @@xtask-exit@@ 101 @@"),
            Some(101)
        );
        assert_eq!(exit_code_in("@@xtask-exit@@ $code @@"), None);
        assert_eq!(exit_code_in("test result: ok"), None);
    }

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
        assert!(is_forwarded_env("CONFORMANCE_EXTERNAL"));
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

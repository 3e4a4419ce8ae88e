//! The aarch64 guest: a qemu-system runner that boots one VM per command and returns the
//! command's exit code. `assets` fetches the kernel and busybox, `initramfs` packs what the VM
//! boots (a cached base archive plus a small per-run archive).

mod assets;
mod initramfs;

pub use assets::fetch_assets;

use anyhow::{Context, Result};
use initramfs::{base_archive, collect_run_files, is_forwarded_env, run_script};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Printed by `/init` after the command ends: `@@xtask-exit@@ <code> @@`.
const EXIT_MARKER: &str = "@@xtask-exit@@ ";
const EXIT_MARKER_END: &str = " @@";
/// Default limit for one VM, boot to poweroff; `XTASK_VM_TIMEOUT_SECS` overrides it.
const DEFAULT_TIMEOUT_SECS: u64 = 1800;

/// The exit code in a line of guest output, if the line carries the marker.
pub fn exit_code_in(line: &str) -> Option<i32> {
    let start = line.find(EXIT_MARKER)? + EXIT_MARKER.len();
    let rest = &line[start..];
    let end = rest.find(EXIT_MARKER_END)?;
    rest[..end].trim().parse().ok()
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
    let assets = assets::assets(cache)?;
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
    fn exit_marker_is_found_and_parsed() {
        assert_eq!(exit_code_in("@@xtask-exit@@ 0 @@\n"), Some(0));
        assert_eq!(
            exit_code_in("[  1.2] noise @@xtask-exit@@ 101 @@"),
            Some(101)
        );
        assert_eq!(exit_code_in("@@xtask-exit@@ $code @@"), None);
        assert_eq!(exit_code_in("test result: ok"), None);
    }
}

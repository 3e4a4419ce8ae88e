//! `cargo xtask dist`: release tarballs of `context-reader` for x86-64 and aarch64.
//!
//! Each tarball `target/dist/context-reader-<version>-<arch>-linux.tar.gz` holds one directory
//! with the binary (built with the `release-dist` profile, release without debug info; a profile
//! named `dist` would have cargo build into target/dist itself), `README.md`
//! (docs/dist-README.md) and `LICENSE`. The eBPF program is not a separate file: `ebpf/build.rs`
//! compiles it and the loader embeds it with `include_bytes_aligned!`, and this task checks that
//! each binary carries exactly one eBPF ELF object. The aarch64 tarball is then unpacked and its
//! binary run in one VM (`--version`, and a snapshot of our C writer, compared on the host with
//! the writer's `expect`; `certify` too once the binary has it). `SHA256SUMS` lists both
//! tarballs.

use crate::paths::Paths;
use crate::process::{output, run};
use crate::{cross, guest};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo profile of release binaries (workspace Cargo.toml): `release` without debug info.
const PROFILE: &str = "release-dist";

/// `e_machine` of an eBPF ELF object.
const EM_BPF: u16 = 247;

/// How many 64-bit little-endian eBPF ELF objects `bytes` contains (headers only: magic, class,
/// data, version, then `e_machine` at offset 18).
pub fn embedded_bpf_objects(bytes: &[u8]) -> usize {
    const HEADER: &[u8] = b"\x7fELF\x02\x01\x01";
    bytes
        .windows(20)
        .filter(|w| w.starts_with(HEADER) && u16::from_le_bytes([w[18], w[19]]) == EM_BPF)
        .count()
}

fn reader_version(paths: &Paths) -> Result<String> {
    let manifest = std::fs::read_to_string(paths.workspace.join("reader/Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .context("reader/Cargo.toml has no version")
}

/// Packs `binary` with the README and licence into `out/<name>.tar.gz` (owner, group and times
/// fixed, names sorted, so the same inputs give the same archive) and returns its path.
fn pack(paths: &Paths, binary: &Path, name: &str, out: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let objects = embedded_bpf_objects(&bytes);
    if objects != 1 {
        bail!(
            "{} embeds {objects} eBPF objects, expected exactly 1",
            binary.display()
        );
    }
    let stage = out.join(name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    std::fs::create_dir_all(&stage)?;
    std::fs::copy(binary, stage.join("context-reader"))?;
    std::fs::copy(
        paths.workspace.join("docs/dist-README.md"),
        stage.join("README.md"),
    )?;
    std::fs::copy(paths.workspace.join("LICENSE"), stage.join("LICENSE"))?;
    let tarball = out.join(format!("{name}.tar.gz"));
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-czf",
        ])
        .arg(&tarball)
        .arg("-C")
        .arg(out)
        .arg(name))?;
    std::fs::remove_dir_all(&stage)?;
    eprintln!(
        "xtask dist: {} ({} KiB, eBPF object embedded)",
        tarball.display(),
        std::fs::metadata(&tarball)?.len() >> 10
    );
    Ok(tarball)
}

pub fn dist(paths: &Paths, host_cargo: impl Fn() -> Command, check_in_vm: bool) -> Result<()> {
    let version = reader_version(paths)?;
    let out = paths.target.join("dist");
    std::fs::create_dir_all(&out)?;

    run(host_cargo().args(["build", "--profile", PROFILE, "-p", "context-reader"]))?;
    let x86 = pack(
        paths,
        &paths.target.join(PROFILE).join("context-reader"),
        &format!("context-reader-{version}-x86_64-linux"),
        &out,
    )?;

    run(cross::cargo(paths)?.args(["build", "--profile", PROFILE, "-p", "context-reader"]))?;
    let arm_binary = cross::target_dir(paths)
        .join(cross::TARGET)
        .join(PROFILE)
        .join("context-reader");
    let arm_name = format!("context-reader-{version}-aarch64-linux");
    let arm = pack(paths, &arm_binary, &arm_name, &out)?;

    let sums = output(
        Command::new("sha256sum")
            .arg(x86.file_name().context("tarball name")?)
            .arg(arm.file_name().context("tarball name")?)
            .current_dir(&out),
    )?;
    std::fs::write(out.join("SHA256SUMS"), sums)?;

    if check_in_vm {
        check_aarch64_tarball(paths, &arm, &arm_name, &version)?;
    }
    Ok(())
}

/// The guest script: the tarball's binary prints its version, then reads the C writer once its
/// READY line is out; everything the host judges is printed between markers.
const GUEST_SCRIPT: &str = r#"#!/bin/sh
# written by cargo xtask dist: run the aarch64 release binary from its unpacked tarball
cd "$(dirname "$0")"
BIN="./NAME/context-reader"
echo "@@version@@ $($BIN --version)"
mkfifo writer.in
./writer --scenario basic < writer.in > writer.out &
exec 3> writer.in
i=0
while ! grep -q '^CONTEXT-READY ' writer.out; do
    i=$((i + 1))
    if [ "$i" -gt 600 ]; then echo "writer never ready"; exit 1; fi
    sleep 0.1
done
echo "@@ready@@ $(grep '^CONTEXT-READY ' writer.out | head -n 1)"
pid=$(sed -n 's/^CONTEXT-READY {"protocol": *1, *"pid": *\([0-9]*\).*/\1/p' writer.out | head -n 1)
echo "@@snapshot@@ $($BIN "$pid" --once --format json)"
code=$?
exec 3>&-
wait
# Once the binary has `certify` (issue 13), the same writer is certified by it too.
if $BIN certify --help >/dev/null 2>&1; then
    $BIN certify -- ./writer --scenario basic
    echo "@@certify@@ $?"
fi
exit $code
"#;

fn marked<'a>(output: &'a str, marker: &str) -> Option<&'a str> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(marker))
        .map(str::trim)
}

/// Where `expect` (the writer's claim) and `observed` (the reader's snapshot) disagree, on the
/// keys `expect` names (conformance.md section 4: a key absent from `expect` is not compared;
/// threads are matched by `tid`). The conformance crate's `compare` is the full comparison; this
/// smoke only needs the same rule on a small writer, without making xtask depend on the suite.
pub fn differences(expect: &Value, observed: &Value, path: &str, out: &mut Vec<String>) {
    match (expect, observed) {
        (Value::Object(e), Value::Object(o)) => {
            for (key, value) in e {
                match o.get(key) {
                    Some(seen) => differences(value, seen, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(o)) if path.ends_with(".threads") => {
            if e.len() != o.len() {
                out.push(format!("{path}: {} threads, observed {}", e.len(), o.len()));
            }
            for thread in e {
                let tid = &thread["tid"];
                match o.iter().find(|t| &t["tid"] == tid) {
                    Some(seen) => differences(thread, seen, &format!("{path}[tid={tid}]"), out),
                    None => out.push(format!("{path}[tid={tid}]: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(o)) => {
            if e.len() != o.len() {
                out.push(format!("{path}: length {}, observed {}", e.len(), o.len()));
            }
            for (i, (a, b)) in e.iter().zip(o).enumerate() {
                differences(a, b, &format!("{path}[{i}]"), out);
            }
        }
        (e, o) if e != o => out.push(format!("{path}: expected {e}, observed {o}")),
        _ => {}
    }
}

/// Builds the basic C writer for aarch64 (our `targets/c` sources, glibc PIE, TLS in the
/// executable) next to the unpacked tarball and runs both in one VM.
fn check_aarch64_tarball(paths: &Paths, tarball: &Path, name: &str, version: &str) -> Result<()> {
    let dir = paths.target.join("dist/vm-check");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    run(Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(&dir))?;
    let c = paths.workspace.join("targets/c");
    let dynamic_list = dir.join("dynamic-list");
    std::fs::write(
        &dynamic_list,
        "{ custom_labels_abi_version; custom_labels_current_set; otel_thread_ctx_v1; };\n",
    )?;
    run(Command::new("aarch64-linux-gnu-gcc")
        .args(["-std=gnu11", "-pthread", "-O1", "-fPIE", "-pie"])
        .arg(format!("-I{}", c.display()))
        .args([
            "-DWRITER_NAME=\"c-dist-check\"",
            "-DPC_MODE_DEFAULT=\"memfd\"",
            "-DCTX_HAS_V1=1",
            "-DCTX_ALIGN=8",
        ])
        .args(
            ["writer.c", "buf.c", "pc.c", "ctx_tls.c"]
                .iter()
                .map(|f| c.join(f)),
        )
        .arg(format!("-Wl,--dynamic-list={}", dynamic_list.display()))
        .arg("-o")
        .arg(dir.join("writer")))?;
    let script = dir.join("check.sh");
    std::fs::write(&script, GUEST_SCRIPT.replace("NAME", name))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    }
    // The tarball's directory is not next to the script's executables: include it.
    let mut include = std::env::var_os("XTASK_VM_INCLUDE").unwrap_or_default();
    if !include.is_empty() {
        include.push(":");
    }
    include.push(dir.join(name));
    std::env::set_var("XTASK_VM_INCLUDE", include);
    let outcome = guest::run_in_vm(&paths.cache, &script, &[])?;

    let mut failures = Vec::new();
    if outcome.exit_code != Some(0) {
        failures.push(format!(
            "the guest script exited with {:?}",
            outcome.exit_code
        ));
    }
    let want_version = format!("context-reader {version}");
    match marked(&outcome.output, "@@version@@") {
        Some(v) if v == want_version => {}
        other => failures.push(format!("--version printed {other:?}, not {want_version:?}")),
    }
    let ready = marked(&outcome.output, "@@ready@@")
        .and_then(|l| l.strip_prefix("CONTEXT-READY "))
        .and_then(|j| serde_json::from_str::<Value>(j).ok());
    let snapshot =
        marked(&outcome.output, "@@snapshot@@").and_then(|j| serde_json::from_str::<Value>(j).ok());
    match (ready, snapshot) {
        (Some(ready), Some(snapshot)) => {
            let mut diffs = Vec::new();
            differences(&ready["expect"], &snapshot, "$", &mut diffs);
            let threads = snapshot["threads"].as_array().map_or(0, Vec::len);
            if threads == 0 {
                diffs.push("the snapshot lists no thread".into());
            }
            failures.extend(diffs);
        }
        _ => failures.push("no READY line or no snapshot in the guest output".into()),
    }
    match marked(&outcome.output, "@@certify@@") {
        None => eprintln!("xtask dist: this binary has no `certify`: checked by snapshot only"),
        Some("0") => eprintln!("xtask dist: `context-reader certify` passed in the VM"),
        Some(code) => failures.push(format!("`context-reader certify` exited with {code}")),
    }
    if !failures.is_empty() {
        bail!(
            "the aarch64 tarball failed in the VM:\n  {}",
            failures.join("\n  ")
        );
    }
    std::fs::remove_dir_all(&dir)?;
    eprintln!("xtask dist: the aarch64 binary from {} ran in the VM: version, and a snapshot of the C writer equal to its expect", tarball.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bpf_objects_are_counted_by_their_elf_header() {
        let mut bytes = vec![0u8; 64];
        bytes.extend_from_slice(b"\x7fELF\x02\x01\x01");
        bytes.extend_from_slice(&[0; 11]);
        bytes.extend_from_slice(&EM_BPF.to_le_bytes());
        bytes.extend_from_slice(&[0; 40]);
        // An x86-64 ELF header (e_machine 62) is not an eBPF object.
        bytes.extend_from_slice(b"\x7fELF\x02\x01\x01");
        bytes.extend_from_slice(&[0; 11]);
        bytes.extend_from_slice(&62u16.to_le_bytes());
        assert_eq!(embedded_bpf_objects(&bytes), 1);
        assert_eq!(embedded_bpf_objects(&bytes[..70]), 0);
    }

    #[test]
    fn differences_follow_the_expect_keys_and_match_threads_by_tid() {
        let expect = json!({"pid": 7, "threads": [{"tid": 9, "v2": {"span_id": "ab"}}, {"tid": 8, "v1": null}]});
        let same = json!({"pid": 7, "backend": "ptrace", "threads": [
            {"tid": 8, "v1": null, "errors": []}, {"tid": 9, "v2": {"span_id": "ab", "trace_flags": 1}}]});
        let mut diffs = Vec::new();
        differences(&expect, &same, "$", &mut diffs);
        assert!(diffs.is_empty(), "{diffs:?}");
        let other = json!({"pid": 7, "threads": [{"tid": 9, "v2": {"span_id": "ac"}}]});
        differences(&expect, &other, "$", &mut diffs);
        assert_eq!(
            diffs,
            [
                "$.threads: 2 threads, observed 1",
                "$.threads[tid=9].v2.span_id: expected \"ab\", observed \"ac\"",
                "$.threads[tid=8]: missing"
            ]
        );
    }
}

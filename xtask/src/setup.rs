//! `cargo xtask setup`: installs the Debian packages a fresh Debian 12 machine lacks.
//!
//! Idempotent: it asks dpkg what is installed and does nothing (no `apt-get update`, no root
//! needed) when everything is there. The aarch64 leg adds the arm64 foreign architecture, a
//! backports source derived from the machine's own Debian mirror, the cross toolchains, Debian's
//! `rustc-web` with the arm64 std, and qemu 10 from backports.

use crate::apt_sources;
use crate::process::{output, run};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// Host tools: BPF compiler and headers, musl and lld for the C targets, libclang for bindgen,
/// protoc for the process-context protobuf, gdb for `gcore` (the conformance core column and
/// `cargo xtask corpus`), xz for the corpus.
const HOST_PACKAGES: &[&str] = &[
    "clang-14",
    "llvm-14",
    "lld-14",
    "libclang-14-dev",
    "libbpf-dev",
    "bpftool",
    "musl-tools",
    "g++",
    "protobuf-compiler",
    "gdb",
    "xz-utils",
];

/// The benchmark's baseline (`cargo xtask bench` reads the same TLS slots with gdb).
const BENCH_PACKAGES: &[&str] = &["gdb"];

/// Cross toolchains for aarch64 (glibc and musl via its gcc specs file) and the Rust that can
/// target aarch64 here (Debian's; rustup has no other targets available).
const AARCH64_PACKAGES: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "g++-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "musl-dev:arm64",
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev:arm64",
];

/// Installed with `-t <codename>-backports`: a plain install would remove the image's backported
/// qemu-utils and bring bookworm's qemu 7.2.
const AARCH64_BACKPORTS_PACKAGES: &[&str] = &["qemu-system-arm"];

/// What `cargo xtask tracers install` runs: a Python virtualenv (pip comes with it) and npm. Debian's
/// npm brings Node 18, which only runs npm: the tracer apps run on the Node that npm installs.
/// Go and a JDK build and run the Go and Java emitters of docs/certify.md (Node's and Python's
/// run on Debian's Node and python3).
const TRACER_PACKAGES: &[&str] = &["python3-venv", "golang-go", "default-jdk-headless"];
const TRACER_NPM_PACKAGE: &str = "npm";

const BACKPORTS_SOURCE_FILE: &str = "/etc/apt/sources.list.d/xtask-backports.sources";

/// Which legs to prepare.
#[derive(Debug, Clone, Copy)]
pub struct Legs {
    pub x86_64: bool,
    pub aarch64: bool,
    /// What `cargo xtask bench` needs besides the host tools.
    pub bench: bool,
    /// What `cargo xtask tracers` needs to install the real tracers (pip, npm) and to certify
    /// the emitters of docs/certify.md (Go, a JDK).
    pub tracers: bool,
}

/// What dpkg says about one package.
fn installed_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}\t${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (status, version) = text.split_once('\t')?;
    (out.status.success() && status.starts_with("ii")).then(|| version.to_string())
}

fn codename() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .context("/etc/os-release has no VERSION_CODENAME")
}

fn machine_sources() -> Vec<apt_sources::Source> {
    let mut sources = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        sources.extend(apt_sources::parse_one_line(&text));
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            let path = entry.path();
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match path.extension().and_then(|e| e.to_str()) {
                Some("sources") => sources.extend(apt_sources::parse_deb822(&text)),
                Some("list") => sources.extend(apt_sources::parse_one_line(&text)),
                _ => {}
            }
        }
    }
    sources
}

/// Whether `program` is an executable file in a directory of PATH.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// Everything setup would change, computed without changing anything.
struct Missing {
    packages: Vec<&'static str>,
    backports_packages: Vec<&'static str>,
    arm64_architecture: bool,
    backports_source: Option<String>,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.packages.is_empty()
            && self.backports_packages.is_empty()
            && !self.arm64_architecture
            && self.backports_source.is_none()
    }
}

fn find_missing(legs: Legs) -> Result<Missing> {
    let mut missing = Missing {
        packages: Vec::new(),
        backports_packages: Vec::new(),
        arm64_architecture: false,
        backports_source: None,
    };
    // The aarch64 leg cross-builds the same crates, so it needs the host tools too.
    if legs.x86_64 || legs.aarch64 || legs.bench || legs.tracers {
        missing.packages.extend(
            HOST_PACKAGES
                .iter()
                .filter(|p| installed_version(p).is_none()),
        );
    }
    if legs.bench {
        missing.packages.extend(
            BENCH_PACKAGES
                .iter()
                .filter(|p| installed_version(p).is_none()),
        );
    }
    if legs.tracers {
        missing.packages.extend(
            TRACER_PACKAGES
                .iter()
                .filter(|p| installed_version(p).is_none()),
        );
        // Any npm will do (a machine may have Node from elsewhere): Debian's only when none.
        if !on_path("npm") {
            missing.packages.push(TRACER_NPM_PACKAGE);
        }
    }
    if legs.aarch64 {
        missing.packages.extend(
            AARCH64_PACKAGES
                .iter()
                .filter(|p| installed_version(p).is_none()),
        );
        missing.backports_packages.extend(
            AARCH64_BACKPORTS_PACKAGES
                .iter()
                .filter(|p| !installed_version(p).is_some_and(|v| v.contains("~bpo"))),
        );
        let foreign = output(Command::new("dpkg").arg("--print-foreign-architectures"))?;
        missing.arm64_architecture = !foreign.split_whitespace().any(|a| a == "arm64");
        let codename = codename()?;
        let sources = machine_sources();
        if !apt_sources::has_suite(&sources, &format!("{codename}-backports")) {
            missing.backports_source = Some(apt_sources::backports_source(&sources, &codename).with_context(|| {
                format!("no apt source serves `{codename}`, so a {codename}-backports source cannot be derived")
            })?);
        }
    }
    Ok(missing)
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// Installs what is missing for `legs`, then fetches the aarch64 guest kernel and busybox.
pub fn setup(legs: Legs, cache: &Path) -> Result<()> {
    let missing = find_missing(legs)?;
    if missing.is_empty() {
        eprintln!("xtask setup: all packages present");
    } else {
        let mut what: Vec<String> = missing
            .packages
            .iter()
            .chain(&missing.backports_packages)
            .map(|p| p.to_string())
            .collect();
        if missing.arm64_architecture {
            what.push("dpkg architecture arm64".into());
        }
        if missing.backports_source.is_some() {
            what.push(format!("apt source {BACKPORTS_SOURCE_FILE}"));
        }
        if !is_root() {
            bail!(
                "setup needs root to install: {}. Run `cargo xtask setup` as root (or with sudo).",
                what.join(", ")
            );
        }
        eprintln!("xtask setup: installing {}", what.join(", "));
        if missing.arm64_architecture {
            run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
        }
        if let Some(text) = &missing.backports_source {
            std::fs::write(BACKPORTS_SOURCE_FILE, text)
                .with_context(|| format!("writing {BACKPORTS_SOURCE_FILE}"))?;
        }
        run(apt_get().args(["update", "-q"]))?;
        if !missing.packages.is_empty() {
            run(apt_get()
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing.packages))?;
        }
        if !missing.backports_packages.is_empty() {
            let suite = format!("{}-backports", codename()?);
            run(apt_get()
                .args([
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "-t",
                    &suite,
                ])
                .args(&missing.backports_packages))?;
        }
        let still = find_missing(legs)?;
        if !still.is_empty() {
            bail!(
                "after installing, still missing: {:?} {:?}",
                still.packages,
                still.backports_packages
            );
        }
    }
    if legs.aarch64 {
        crate::guest::fetch_assets(cache)?;
    }
    Ok(())
}

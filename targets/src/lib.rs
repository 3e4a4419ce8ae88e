//! Conformance targets: the catalogue of writer variants (C variants built by `build.rs`, Rust
//! variants listed in `targets/rust/variants.json`). The target protocol of conformance.md
//! section 4 (spawn, `CONTEXT-READY` handshake, stdin-EOF shutdown, kill on drop) is the reader's
//! `context_reader::certify::protocol`, re-exported here.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

pub use context_reader::certify::protocol::{self, Ready, RunningTarget};

include!("scenarios.rs");
include!("selection.rs");

/// A reader backend a case runs against: the reader's own enum.
pub use context_reader::Backend;

/// The backends named in `CONFORMANCE_BACKENDS` (comma-separated; `ptrace` when unset), as the
/// suites select them. An unknown name is a panic: a typo must not shrink a suite.
pub fn selected_backends() -> Vec<Backend> {
    let list = std::env::var("CONFORMANCE_BACKENDS").unwrap_or_else(|_| "ptrace".to_string());
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Backend::from_name(s)
                .unwrap_or_else(|| panic!("CONFORMANCE_BACKENDS: unknown backend {s:?}"))
        })
        .collect()
}

/// Who wrote the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterKind {
    C,
    Rust,
}

/// One target variant: a program that speaks the target protocol.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub kind: WriterKind,
    pub executable: PathBuf,
    /// Arguments placed before `--scenario NAME`.
    pub args: Vec<String>,
    /// Extra environment (e.g. `GLIBC_TUNABLES` to force dynamic TLS).
    pub env: Vec<(String, String)>,
    pub scenarios: Vec<String>,
    /// Formats published: any of `v1`, `v2`, `process_context`.
    pub formats: Vec<String>,
    /// Backends per scenario; see [`Variant::backends_for`].
    backends: Vec<Backend>,
    /// Scenarios excluded from the eBPF backend (beyond its bounds or its sampling model).
    ebpf_excluded: Vec<String>,
    /// For C variants: `"static"` or `"dynamic"` when the writer's own report of where its OTEP 4947
    /// slot lives (relative to the thread pointer) must say so; `None` when either is legal.
    pub tls_block: Option<String>,
    /// The build dimensions (libc, linking, place, access model, alignment, toolchain, mapping).
    pub properties: serde_json::Value,
}

impl Variant {
    /// The backends this scenario applies to. The eBPF backend needs `--busy` targets and is
    /// bounded (contract: 32 labels, 1024 attribute bytes), so `many-threads` is ptrace only.
    /// The core backend applies wherever ptrace does, but for `churn`: a core is one instant,
    /// and the churn verdict needs a series of reads of the running writer.
    pub fn backends_for(&self, scenario: &str) -> Vec<Backend> {
        let mut backends: Vec<Backend> = self
            .backends
            .iter()
            .copied()
            .filter(|b| *b != Backend::Ebpf || !self.ebpf_excluded.iter().any(|s| s == scenario))
            .collect();
        if backends.contains(&Backend::Ptrace) && scenario != "churn" {
            backends.push(Backend::Core);
        }
        backends
    }

    /// What can change the bytes a decoding scenario publishes, or how they are laid out: the
    /// writer's implementation, libc, compiler, linker and process-context mapping. Not the TLS
    /// placement (linking mode, executable/DSO/dlopen, access model, alignment), which only moves
    /// the slot and is covered by the [`PLACEMENT_SCENARIOS`] of every variant. The arch is implied:
    /// each arch's suite has its own binaries.
    pub fn decoding_class(&self) -> String {
        let p = &self.properties;
        match self.kind {
            // Computed by build.rs (`Spec::decoding_class` in variants.rs, shared with xtask).
            WriterKind::C => p["decoding_class"].as_str().unwrap_or("c/-").to_string(),
            // One Rust program per writer implementation, each with LLD and GNU ld; the `-dso`
            // builds place the same code's TLS in a shared object.
            WriterKind::Rust => self.name.replace("-dso", ""),
        }
    }

    /// The command line for one scenario (the runner adds `--busy` for sampling backends).
    pub fn command(&self, scenario: &str, busy: bool) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.executable);
        cmd.args(&self.args).arg("--scenario").arg(scenario);
        if busy {
            cmd.arg("--busy");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

const C_CATALOGUE: &str = include_str!(concat!(env!("OUT_DIR"), "/catalogue.json"));

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The C variants built by `build.rs` for this target triple.
pub fn c_variants() -> Vec<Variant> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(C_CATALOGUE).expect("build.rs writes valid JSON");
    entries
        .into_iter()
        .map(|e| Variant {
            name: e["name"].as_str().unwrap_or_default().to_string(),
            kind: WriterKind::C,
            executable: PathBuf::from(e["executable"].as_str().unwrap_or_default()),
            args: strings(&e, "args"),
            env: e["env"]
                .as_array()
                .map(|pairs| {
                    pairs
                        .iter()
                        .filter_map(|p| {
                            Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            scenarios: strings(&e, "scenarios"),
            formats: strings(&e, "formats"),
            backends: vec![Backend::Ptrace, Backend::Ebpf],
            ebpf_excluded: vec!["many-threads".to_string()],
            tls_block: e["tls_block"].as_str().map(str::to_string),
            properties: e,
        })
        .collect()
}

/// The hostile target built by `build.rs` from `c/hostile.c` (not a catalogue variant): one
/// `--case NAME` per class of adversarial input, each declaring in `CONTEXT-READY` what a robust
/// reader must report (form documented in targets/README.md, "The hostile target").
pub fn hostile_target() -> PathBuf {
    PathBuf::from(concat!(env!("OUT_DIR"), "/c/hostile/hostile"))
}

/// Where cargo put the Rust target binaries: `CONTEXT_TARGETS_BIN_DIR`, else the parent of the
/// directory of the running executable (`target/<profile>/deps/x` -> `target/<profile>`).
pub fn rust_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CONTEXT_TARGETS_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

/// The `context-reader` binary the suites run end to end: `CONTEXT_READER_BIN`, else
/// `context-reader` beside the parent of the running test binary's directory
/// (`target/<profile>/deps/x` -> `target/<profile>/context-reader`). It is not built here.
pub fn reader_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CONTEXT_READER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("context-reader"))
        .expect("target dir")
}

/// One entry of `targets/rust/variants.json` (written by the Rust targets' owner). A program may
/// have several entries, e.g. one per set of backends.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RustEntry {
    name: String,
    /// File name of the program in the cargo target directory.
    binary: String,
    scenarios: Vec<String>,
    /// Backends of these scenarios; ptrace when empty.
    #[serde(default)]
    backends: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    formats: Vec<String>,
}

/// The Rust variants of `targets/rust/variants.json`. The file is part of the catalogue: missing
/// or malformed, it is an error (the suite must not silently lose its Rust variants).
pub fn rust_variants() -> Result<Vec<Variant>, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust/variants.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let entries: Vec<RustEntry> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let bin_dir = rust_bin_dir().ok_or("cannot locate the target directory")?;
    entries
        .into_iter()
        .map(|e| {
            let backends = e
                .backends
                .iter()
                .map(|b| Backend::from_name(b).ok_or(format!("{}: unknown backend {b}", e.name)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Variant {
                properties: serde_json::json!({"name": e.name, "binary": e.binary}),
                executable: bin_dir.join(&e.binary),
                name: e.name,
                kind: WriterKind::Rust,
                args: e.args,
                env: Vec::new(),
                scenarios: e.scenarios,
                formats: e.formats,
                backends: if backends.is_empty() {
                    vec![Backend::Ptrace]
                } else {
                    backends
                },
                ebpf_excluded: Vec::new(),
                tls_block: None,
            })
        })
        .collect()
}

/// Every variant: the C ones, then the Rust ones. A malformed `variants.json` is a panic with
/// its path (a broken catalogue must fail loudly, not shrink the suite).
pub fn catalogue() -> Vec<Variant> {
    let mut all = c_variants();
    all.extend(rust_variants().unwrap_or_else(|e| panic!("Rust target catalogue: {e}")));
    all
}

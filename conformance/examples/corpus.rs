//! `cargo xtask corpus DIR [FILTER]`: exports test vectors for reader implementations in any
//! language. Per variant and scenario (`basic` on every variant; each other scenario but
//! `churn` and `many-threads` on the first variant of each decoding class offering it): a core of
//! the running writer (`gcore`, xz-compressed), `expect.json` (what the writer published, as a
//! core shows it), `plan.json` (our read plan, the `--verbose` form) and `vector.json` (variant
//! properties, files, pid, arch); the mapped files once under `sysroot/` at their absolute
//! paths (our writers' files without debug sections). Every vector is read back through the core
//! backend and must equal `expect` before it is written. The layout is in `corpus-README.md`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use context_reader::backend::core::{build_id, CoreFile};
use context_reader::snapshot::hex;
use context_reader::SnapshotOptions;
use context_targets::{catalogue, RunningTarget, Variant};
use serde_json::{json, Value};

const README: &str = include_str!("corpus-README.md");
const CHECKER: &str = include_str!("corpus_check.py");

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The vectors to export: `basic` of every variant; every other scenario once per decoding
/// class (its first variant offering it), but `churn` (no single expected state) and
/// `many-threads` (hundreds of threads add size, not coverage of a reader's arithmetic).
fn selection(variants: &[Variant]) -> Vec<(&Variant, String)> {
    let mut done: HashSet<(String, String)> = HashSet::new();
    let mut out = Vec::new();
    for v in variants {
        for s in &v.scenarios {
            if s == "churn" || s == "many-threads" {
                continue;
            }
            let once_per_class = s != "basic";
            if once_per_class && !done.insert((v.decoding_class(), s.clone())) {
                continue;
            }
            out.push((v, s.clone()));
        }
    }
    out
}

/// Copies `path` to `sysroot/path` once; our writers' files lose their debug sections (a reader
/// needs the dynamic and static symbol tables, relocations and headers, which `--strip-debug`
/// keeps, build id included).
fn add_file(sysroot: &Path, path: &str, ours: &Path) -> Result<Value, String> {
    let dest = sysroot.join(path.trim_start_matches('/'));
    if !dest.exists() {
        std::fs::create_dir_all(dest.parent().unwrap()).map_err(|e| e.to_string())?;
        if Path::new(path).starts_with(ours) {
            run(Command::new("strip")
                .arg("--strip-debug")
                .arg("-o")
                .arg(&dest)
                .arg(path))?;
        } else {
            std::fs::copy(path, &dest).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    let bytes = std::fs::read(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(json!({
        "path": path,
        "build_id": build_id(&bytes).map(|b| hex(&b)),
        "size": bytes.len(),
    }))
}

/// `expect` as a core shows it (the conformance suite's rule): backend `core`, and the empty
/// name for every thread but the main one.
fn expect_in_core(mut expect: Value, pid: i32) -> Value {
    expect["backend"] = json!("core");
    for t in expect["threads"].as_array_mut().into_iter().flatten() {
        if t["tid"] != pid {
            if let Some(n) = t.get_mut("name") {
                *n = json!("");
            }
        }
    }
    expect
}

fn export(dir: &Path, v: &Variant, scenario: &str, ours: &Path) -> Result<u64, String> {
    let vec_dir = dir.join("vectors").join(&v.name).join(scenario);
    std::fs::create_dir_all(&vec_dir).map_err(|e| e.to_string())?;
    let mut target = RunningTarget::spawn(v.command(scenario, false))?;
    let ready = target.wait_ready(Duration::from_secs(60))?;
    let pid = ready.pid;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    run(Command::new("gcore")
        .arg("-o")
        .arg(tmp.path().join("core"))
        .arg(pid.to_string()))?;
    let status = target.finish(Duration::from_secs(20))?;
    if !status.success() {
        return Err(format!("target exited with {status}"));
    }
    let core_path = tmp.path().join(format!("core.{pid}"));
    let expect = expect_in_core(ready.expect.clone(), pid);
    let (snapshot, plan) = context_reader::session::snapshot_core(
        &core_path,
        Path::new("/"),
        &SnapshotOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let observed = snapshot.to_json();
    let report = conformance::compare(&expect, &observed);
    if !report.ok() {
        return Err(format!(
            "the core does not read as expected:\n{}",
            report.render(20)
        ));
    }
    let core = CoreFile::open(&core_path).map_err(|e| e.to_string())?;
    let mut files = BTreeSet::new();
    for m in core.mappings().iter().filter(|m| m.is_file()) {
        files.insert(m.path.clone());
    }
    let sysroot = dir.join("sysroot");
    let files: Vec<Value> = files
        .iter()
        .map(|p| add_file(&sysroot, p, ours))
        .collect::<Result<_, _>>()?;
    run(Command::new("xz")
        .args(["-6", "-T1", "-c"])
        .arg(&core_path)
        .stdout(std::fs::File::create(vec_dir.join("core.xz")).map_err(|e| e.to_string())?))?;
    let write = |name: &str, v: &Value| {
        std::fs::write(
            vec_dir.join(name),
            serde_json::to_string_pretty(v).expect("json") + "\n",
        )
        .map_err(|e| e.to_string())
    };
    write("expect.json", &expect)?;
    write(
        "plan.json",
        &serde_json::to_value(&plan).expect("plans serialise"),
    )?;
    write(
        "vector.json",
        &json!({
            "variant": v.name,
            "scenario": scenario,
            "arch": std::env::consts::ARCH,
            "pid": pid,
            "executable": core.executable(),
            "core": "core.xz",
            "properties": v.properties,
            "files": files,
        }),
    )?;
    Ok(std::fs::metadata(vec_dir.join("core.xz")).map_or(0, |m| m.len()))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: corpus DIR [FILTER]  (FILTER: a substring of VARIANT/SCENARIO)");
        std::process::exit(1);
    };
    let filter = args.next();
    let variants = catalogue();
    // Our writers' files are under the cargo target directory.
    let ours = context_targets::rust_bin_dir()
        .and_then(|d| d.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    std::fs::create_dir_all(&dir).expect("corpus directory");
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for (v, scenario) in selection(&variants) {
        let name = format!("{}/{scenario}", v.name);
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        match export(&dir, v, &scenario, &ours) {
            Ok(size) => {
                sizes.insert(name.clone(), size);
                eprintln!("corpus: {name} ({size} bytes of compressed core)");
            }
            Err(e) => {
                eprintln!("corpus: {name}: FAILED: {e}");
                failures.push(name);
            }
        }
    }
    std::fs::write(dir.join("README.md"), README).expect("README");
    std::fs::write(dir.join("corpus_check.py"), CHECKER).expect("checker");
    eprintln!(
        "corpus: {} vectors in {:.0} s, {} failed{}",
        sizes.len(),
        started.elapsed().as_secs_f64(),
        failures.len(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(": {failures:?}")
        }
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

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

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The core without the bytes a reader finds in the sysroot: a read-only `PT_LOAD` segment
/// whose dumped bytes equal the file mapped there (gdb dumps such segments) keeps only the first
/// page of a mapping at file offset 0 (the ELF header and build id a reader checks files
/// against) and nothing else; a read-only anonymous segment of zeros keeps nothing (a read there
/// is then "not dumped"). Segment data is laid out anew; section headers are dropped (a core
/// reader uses the program headers).
fn strip_core(core_bytes: &[u8], core: &CoreFile, sysroot: &Path) -> Result<Vec<u8>, String> {
    const PF_W: u32 = 2;
    let phoff = le64(core_bytes, 0x20) as usize;
    let phnum = u16::from_le_bytes([core_bytes[0x38], core_bytes[0x39]]) as usize;
    let mut out = core_bytes[..phoff + 56 * phnum].to_vec();
    out[0x28..0x30].fill(0); // e_shoff
    out[0x3a..0x40].fill(0); // e_shentsize, e_shnum, e_shstrndx
    let mut data = Vec::new();
    let base = out.len();
    for i in 0..phnum {
        let ph = phoff + 56 * i;
        let p_type = u32::from_le_bytes(core_bytes[ph..ph + 4].try_into().unwrap());
        let flags = u32::from_le_bytes(core_bytes[ph + 4..ph + 8].try_into().unwrap());
        let (off, vaddr, filesz) = (
            le64(core_bytes, ph + 8) as usize,
            le64(core_bytes, ph + 16),
            le64(core_bytes, ph + 32) as usize,
        );
        let dumped = core_bytes
            .get(off..off + filesz)
            .ok_or("a segment past the end of the core")?;
        let mut keep = filesz;
        if p_type == 1 && flags & PF_W == 0 {
            let file = core
                .files
                .iter()
                .find(|f| f.start <= vaddr && vaddr + filesz as u64 <= f.end);
            match file {
                Some(f) => {
                    let path = sysroot.join(f.path.trim_start_matches('/'));
                    let at = (f.offset + vaddr - f.start) as usize;
                    // The first page of a file is kept whatever it holds (our writers' ELF
                    // headers differ from their stripped copies in the section header fields).
                    let skip = if at == 0 { filesz.min(4096) } else { 0 };
                    let same = std::fs::read(&path)
                        .ok()
                        .is_some_and(|b| b.get(at + skip..at + filesz) == Some(&dumped[skip..]));
                    if same {
                        keep = skip;
                    }
                }
                // Read-only anonymous memory that is all zeros (malloc's reserved arena space,
                // dumped by gdb as 64 MB of zeros): nothing a reader can find context in.
                None if dumped.iter().all(|b| *b == 0) => keep = 0,
                None => {}
            }
        }
        let new_off = (base + data.len()) as u64;
        out[ph + 8..ph + 16].copy_from_slice(&new_off.to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(keep as u64).to_le_bytes());
        data.extend_from_slice(&dumped[..keep]);
        while data.len() % 8 != 0 {
            data.push(0);
        }
    }
    out.extend_from_slice(&data);
    Ok(out)
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
    // The core without what the sysroot already holds, read back through the corpus's own
    // sysroot: it must still give `expect`.
    let small = tmp.path().join("core.small");
    // Mapped, not read: gdb writes the Rust writers' cores with 64 MB malloc arenas (400 MB).
    let bytes = std::fs::File::open(&core_path)
        .and_then(|f| context_reader::sys::map_file(&f))
        .map_err(|e| e.to_string())?;
    std::fs::write(&small, strip_core(&bytes, &core, &sysroot)?).map_err(|e| e.to_string())?;
    let (again, _) =
        context_reader::session::snapshot_core(&small, &sysroot, &SnapshotOptions::default())
            .map_err(|e| e.to_string())?;
    let report = conformance::compare(&expect, &again.to_json());
    if !report.ok() {
        return Err(format!(
            "the stripped core does not read as expected with the corpus's sysroot:\n{}",
            report.render(20)
        ));
    }
    run(Command::new("xz")
        .args(["-6", "-T1", "-c"])
        .arg(&small)
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

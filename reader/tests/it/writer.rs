//! Builds and runs the integration-test writer (tests/it/c): shared by the tests and the bench.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

const C_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/c");

#[derive(Clone, Copy, Debug)]
pub enum Libc {
    Glibc,
    Musl,
}

#[derive(Clone, Copy, Debug)]
pub enum Placement {
    Executable,
    TlsdescDso,
}

fn compiler(libc: Libc) -> cc::Tool {
    let target = if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    };
    let mut b = cc::Build::new();
    b.target(target)
        .host(target)
        .opt_level(1)
        .cargo_metadata(false)
        .cargo_warnings(false);
    if let Libc::Musl = libc {
        b.compiler("musl-gcc");
    }
    b.try_get_compiler()
        .expect("a C compiler (run `cargo xtask setup` for musl-gcc)")
}

fn run(mut cmd: Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the writer into a fresh directory and returns the executable's path.
pub fn build_writer(dir: &Path, libc: Libc, placement: Placement) -> PathBuf {
    let tool = compiler(libc);
    let exe = dir.join(format!("w-{libc:?}-{placement:?}").to_lowercase());
    let mut link = tool.to_command();
    link.args(["-g", "-pthread", "-o"])
        .arg(&exe)
        .arg(format!("{C_DIR}/writer.c"));
    match placement {
        Placement::Executable => {
            link.arg(format!("{C_DIR}/ctx.c"));
            for sym in [
                "custom_labels_current_set",
                "custom_labels_abi_version",
                "otel_thread_ctx_v1",
            ] {
                link.arg(format!("-Wl,--export-dynamic-symbol={sym}"));
            }
        }
        Placement::TlsdescDso => {
            let mut dso = tool.to_command();
            let gnu2 = if cfg!(target_arch = "x86_64") {
                "-mtls-dialect=gnu2"
            } else {
                "-mtls-dialect=desc"
            };
            dso.args(["-g", "-fPIC", "-shared", gnu2, "-o"])
                .arg(dir.join("libcustomlabels-it.so"))
                .arg(format!("{C_DIR}/ctx.c"));
            run(dso);
            link.arg(format!("-L{}", dir.display()))
                .arg("-lcustomlabels-it")
                .arg(format!("-Wl,-rpath,{}", dir.display()));
        }
    }
    run(link);
    exe
}

/// A running writer, killed on drop.
pub struct Writer {
    child: Child,
    pub tids: Vec<i32>,
}

impl Writer {
    pub fn start(exe: &Path) -> Writer {
        Self::start_with(exe, &[])
    }
    pub fn start_with(exe: &Path, args: &[&str]) -> Writer {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn writer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("READY line");
        let tids = line
            .strip_prefix("READY ")
            .expect("READY line")
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect();
        Writer { child, tids }
    }
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What writer.c documents that it publishes.
pub fn expected(pid: i32, tids: &[i32], name: &str) -> Value {
    let worker = |i: i32, tid: i32| {
        json!({
            "tid": tid, "name": name,
            "v1": {"labels": [{"key": "customer", "value": "acme"}, {"key": "worker", "value": format!("w{i}")}]},
            "v2": {
                "layout": "otep-4947",
                "trace_id": format!("{i:02x}").repeat(16),
                "span_id": format!("{:02x}", 0xa0 + i).repeat(8),
                "trace_flags": 1,
                "attributes": [
                    {"key": "http.route", "value": format!("/api/{i}")},
                    {"key": "user.id", "value": format!("u{i}")}
                ]
            },
            "errors": []
        })
    };
    let mut threads = vec![json!({"tid": pid, "name": name, "v1": null, "v2": null, "errors": []})];
    threads.extend(
        tids.iter()
            .enumerate()
            .map(|(i, t)| worker(i as i32 + 1, *t)),
    );
    threads.sort_by_key(|t| t["tid"].as_i64());
    json!({
        "pid": pid,
        "backend": "ptrace",
        "process_context": {
            "mapping": "/memfd:OTEL_CTX (deleted)",
            "version": 2,
            "resource": {"service.name": "it-writer"},
            "attributes": {
                "threadlocal.schema_version": "tlsdesc_v1_dev",
                "threadlocal.attribute_key_map": ["http.route", "user.id"]
            }
        },
        "threads": threads,
        "errors": []
    })
}

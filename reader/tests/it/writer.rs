//! Runs the integration-test writer (tests/it/c, built by build.rs): shared by the tests and the bench.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// Where `build.rs` put the writers (built for the target arch, so they run in the VM too).
const WRITERS: &str = concat!(env!("OUT_DIR"), "/it-writers");

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

/// The writer's executable; fails with the build error when `build.rs` could not build it.
pub fn build_writer(libc: Libc, placement: Placement) -> PathBuf {
    let name = format!("w-{libc:?}-{placement:?}").to_lowercase();
    let error = Path::new(WRITERS).join(format!("{name}.error"));
    if let Ok(e) = std::fs::read_to_string(&error) {
        panic!("build.rs could not build the test writer {name}:\n{e}");
    }
    Path::new(WRITERS).join(&name).join(&name)
}

/// The other-tracer helper (tests/it/c/tracer.c).
pub fn tracer_exe() -> PathBuf {
    let error = Path::new(WRITERS).join("tracer.error");
    if let Ok(e) = std::fs::read_to_string(&error) {
        panic!("build.rs could not build the tracer helper:\n{e}");
    }
    Path::new(WRITERS).join("tracer")
}

/// Another tracer holding one thread (running, or also stopped with `stop`); lets go on drop.
pub struct Tracer {
    child: Child,
    pub pid: i32,
}

impl Tracer {
    pub fn hold(tid: i32, stop: bool) -> Tracer {
        let mut cmd = Command::new(tracer_exe());
        cmd.arg(tid.to_string());
        if stop {
            cmd.arg("--stop");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn tracer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("HELD line");
        let pid = line
            .strip_prefix("HELD ")
            .unwrap_or_else(|| panic!("tracer could not hold {tid}: {line:?}"))
            .trim()
            .parse()
            .expect("tracer pid");
        Tracer { child, pid }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
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
/// The writer's main-thread name: the kernel's `comm`, the executable's file name cut to 15 bytes.
pub fn main_thread_name(exe: &std::path::Path) -> String {
    exe.file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect()
}

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

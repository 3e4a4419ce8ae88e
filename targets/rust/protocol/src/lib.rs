//! Target-protocol plumbing shared by the Rust conformance targets (conformance.md section 4):
//! argument parsing, named worker threads that report their expected context and park, the
//! `CONTEXT-READY` line, waiting for stdin EOF, and builders that turn what a writer published into
//! the snapshot JSON of conformance.md section 3 (dedup, sorting, hex for non-UTF-8).

pub mod expect;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::mpsc;

pub use expect::{
    any_json, bytes_json, hex, kv_object, process_context_expect, v1_expect, v2_expect, AnyValue,
};

/// Command-line options every target understands; anything else on the command line is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--scenario NAME` (or `--scenario=NAME`); `basic` when absent.
    pub scenario: String,
    /// `--busy`: threads spin on CPU instead of sleeping (for sampling backends).
    pub busy: bool,
    /// `--churn`: threads rewrite their context in a loop, all fields derived from one counter.
    pub churn: bool,
}

impl Options {
    /// Parses `std::env::args()`, ignoring unknown arguments.
    pub fn from_env() -> Options {
        Options::parse(std::env::args().skip(1))
    }

    /// Parses an argument list (without the program name), ignoring unknown arguments.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Options {
        let mut options = Options {
            scenario: "basic".to_owned(),
            busy: false,
            churn: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--busy" {
                options.busy = true;
            } else if arg == "--churn" {
                options.churn = true;
            } else if arg == "--scenario" {
                if let Some(name) = args.next() {
                    options.scenario = name;
                }
            } else if let Some(name) = arg.strip_prefix("--scenario=") {
                options.scenario = name.to_owned();
            }
        }
        // `--scenario churn` (the conformance matrix's name) is `basic` with `--churn`.
        if options.scenario == "churn" {
            options.scenario = "basic".to_owned();
            options.churn = true;
        }
        options
    }
}

/// The kernel thread id of the calling thread.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// Cuts a thread name to the 15 bytes the kernel keeps in `comm` (on a char boundary).
pub fn comm_name(name: &str) -> String {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// The main thread's name: the executable's file name cut to 15 bytes.
pub fn main_thread_name() -> String {
    let exe = std::env::current_exe().ok();
    let base = exe
        .as_ref()
        .and_then(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "target".to_owned());
    comm_name(&base)
}

/// Sets the calling thread's `comm` name (at most 15 bytes are kept).
fn set_current_thread_name(name: &str) {
    let mut bytes = comm_name(name).into_bytes();
    bytes.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from arg2; `bytes` is
    // NUL-terminated and outlives the call.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, bytes.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// Names under which `/proc/PID/maps` shows an OTEP 4719 context mapping (formats.md 3.3).
const CONTEXT_MAPPING_NAMES: [&str; 3] = [
    "[anon_shmem:OTEL_CTX]",
    "[anon:OTEL_CTX]",
    "/memfd:OTEL_CTX",
];

/// The `/proc/self/maps` name of this process's process-context mapping: the one containing
/// `address` when given, else the only mapping with a context name. Which name the kernel shows
/// (memfd path or prctl name) depends on its configuration, so a target asks the kernel rather
/// than guessing; the reader still has to find and decode the mapping on its own.
pub fn context_mapping_name(address: Option<usize>) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let mut found = Vec::new();
    for line in maps.lines() {
        let Some((start, end, name)) = parse_maps_line(line) else {
            continue;
        };
        let base = name.strip_suffix(" (deleted)").unwrap_or(name);
        if !CONTEXT_MAPPING_NAMES.contains(&base) {
            continue;
        }
        match address {
            Some(address) if !(start..end).contains(&address) => continue,
            _ => found.push(name.to_owned()),
        }
    }
    if found.len() == 1 {
        found.pop()
    } else {
        None
    }
}

/// Splits one `/proc/PID/maps` line into start, end and path name (possibly empty).
fn parse_maps_line(line: &str) -> Option<(usize, usize, &str)> {
    let mut rest = line;
    let mut fields = [""; 5];
    for field in fields.iter_mut() {
        rest = rest.trim_start();
        let end = rest.find(' ').unwrap_or(rest.len());
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let (start, end) = fields[0].split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    Some((start, end, rest.trim_start()))
}

/// What one thread reports once its context is published: its tid and name, and the rest of its
/// `expect` entry (`v1`/`v2`, or a `churn` form).
struct ThreadReport {
    tid: i32,
    name: String,
    fields: Value,
}

/// Burns CPU without making syscalls, so a sampling profiler sees the thread on CPU.
fn spin_a_while(iterations: u64) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..iterations {
        x = std::hint::black_box(x.rotate_left(5) ^ i);
    }
    std::hint::black_box(x);
}

/// Handle given to each worker thread: the thread publishes its context, then calls
/// [`Worker::ready`] or [`Worker::ready_then_churn`], which never return.
pub struct Worker {
    name: String,
    busy: bool,
    churn: bool,
    reports: mpsc::Sender<ThreadReport>,
}

impl Worker {
    /// Whether `--busy` was given.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Whether `--churn` was given.
    pub fn churn(&self) -> bool {
        self.churn
    }

    /// The thread's name as given to [`Run::spawn`] (at most 15 bytes).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn report(&self, fields: Value) {
        let report = ThreadReport {
            tid: gettid(),
            name: self.name.clone(),
            fields,
        };
        self.reports
            .send(report)
            .expect("main thread stopped listening for reports");
    }

    /// Reports what this thread published and parks it (or spins with `--busy`) until the process
    /// exits. The context must not change after this call.
    pub fn ready(self, v1: Value, v2: Value) -> ! {
        self.report(json!({"v1": v1, "v2": v2}));
        loop {
            if self.busy {
                spin_a_while(1 << 20);
            } else {
                std::thread::park();
            }
        }
    }

    /// `--churn`: calls `step(1)`, reports the thread by `form` (the runner's churn description,
    /// targets/README.md: `{"worker": w, "v1": bool, "v2": "in-place"|"swap"|false,
    /// "key_map": bool, "span_id_attribute": KEY?}`), then calls `step(n)` for n = 2, 3, ... forever. `step` rewrites the
    /// thread's context from the counter alone; the first step runs before the report so that no
    /// snapshot sees a pre-churn state.
    pub fn churn_forever<F: FnMut(u64)>(self, form: Value, mut step: F) -> ! {
        step(1);
        self.report(json!({ "churn": form }));
        let mut counter: u64 = 1;
        loop {
            counter = counter.wrapping_add(1).max(1);
            step(counter);
            if self.busy {
                // Stay on CPU, but mostly between steps: an in-place writer (libdd) is invalid
                // while it updates, and a sampler must catch it valid now and then.
                spin_a_while(1 << 14);
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// One run of a target: spawn workers, describe the main thread, then print the ready line.
pub struct Run {
    writer: String,
    options: Options,
    main_name: String,
    main_tid: i32,
    main_context: (Value, Value),
    worker_count: usize,
    reports_tx: mpsc::Sender<ThreadReport>,
    reports_rx: mpsc::Receiver<ThreadReport>,
}

impl Run {
    /// Starts a run for writer variant `writer`; names the main thread after the executable.
    pub fn new(writer: &str, options: &Options) -> Run {
        let main_name = main_thread_name();
        set_current_thread_name(&main_name);
        let (reports_tx, reports_rx) = mpsc::channel();
        Run {
            writer: writer.to_owned(),
            options: options.clone(),
            main_name,
            main_tid: gettid(),
            main_context: (Value::Null, Value::Null),
            worker_count: 0,
            reports_tx,
            reports_rx,
        }
    }

    /// The options of this run.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Records what the main thread published (`null` for nothing).
    pub fn main_thread_context(&mut self, v1: Value, v2: Value) {
        self.main_context = (v1, v2);
    }

    /// Spawns a worker named `name` (at most 15 bytes) that runs `body`.
    pub fn spawn<F>(&mut self, name: &str, body: F)
    where
        F: FnOnce(Worker) + Send + 'static,
    {
        assert!(
            name.len() <= 15,
            "thread name {name:?} is longer than 15 bytes"
        );
        let worker = Worker {
            name: name.to_owned(),
            busy: self.options.busy,
            churn: self.options.churn,
            reports: self.reports_tx.clone(),
        };
        std::thread::Builder::new()
            .name(name.to_owned())
            .stack_size(256 * 1024)
            .spawn(move || body(worker))
            .expect("spawning a worker thread");
        self.worker_count += 1;
    }

    /// Waits for every worker's report, prints the `CONTEXT-READY` line with `process_context` as
    /// the expected process context, then waits for stdin EOF and exits 0.
    pub fn ready_and_wait(self, process_context: Value) -> ! {
        let mut threads = vec![ThreadReport {
            tid: self.main_tid,
            name: self.main_name.clone(),
            fields: json!({"v1": self.main_context.0, "v2": self.main_context.1}),
        }];
        for _ in 0..self.worker_count {
            threads.push(
                self.reports_rx
                    .recv()
                    .expect("a worker thread died before reporting"),
            );
        }
        threads.sort_by_key(|thread| thread.tid);
        let pid = std::process::id();
        let threads: Vec<Value> = threads
            .into_iter()
            .map(|t| {
                let mut entry = json!({"tid": t.tid, "name": t.name, "errors": []});
                if let (Some(entry), Value::Object(fields)) = (entry.as_object_mut(), t.fields) {
                    entry.extend(fields);
                }
                entry
            })
            .collect();
        let document = json!({
            "protocol": 1,
            "pid": pid,
            "writer": self.writer,
            "expect": {
                "pid": pid,
                "process_context": process_context,
                "threads": threads,
                "errors": [],
            },
        });
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "CONTEXT-READY {document}").expect("writing the ready line");
        stdout.flush().expect("flushing the ready line");
        drop(stdout);
        wait_for_stdin_eof(self.options.busy);
        std::process::exit(0);
    }
}

/// Blocks until stdin reaches EOF (or fails). With `busy`, polls without blocking and spins.
fn wait_for_stdin_eof(busy: bool) {
    let mut stdin = std::io::stdin().lock();
    let mut buffer = [0u8; 4096];
    loop {
        if busy {
            let mut poll_fd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, zero timeout.
            let ready = unsafe { libc::poll(&mut poll_fd, 1, 0) };
            if ready == 0 {
                spin_a_while(1 << 18);
                continue;
            }
        }
        match stdin.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_default_to_basic_and_ignore_unknown_arguments() {
        let options = Options::parse(args(&["--frobnicate", "x", "--busy"]));
        assert_eq!(
            options,
            Options {
                scenario: "basic".into(),
                busy: true,
                churn: false
            }
        );
    }

    #[test]
    fn scenario_accepts_both_spellings() {
        assert_eq!(
            Options::parse(args(&["--scenario", "duplicates"])).scenario,
            "duplicates"
        );
        assert_eq!(
            Options::parse(args(&["--scenario=detached", "--churn"])).scenario,
            "detached"
        );
        assert!(Options::parse(args(&["--churn"])).churn);
        let churn = Options::parse(args(&["--scenario", "churn"]));
        assert_eq!((churn.scenario.as_str(), churn.churn), ("basic", true));
    }

    #[test]
    fn maps_lines_keep_names_with_spaces() {
        let line =
            "7f00-7f10 rw-p 00000000 00:01 1234                       /memfd:OTEL_CTX (deleted)";
        assert_eq!(
            parse_maps_line(line),
            Some((0x7f00, 0x7f10, "/memfd:OTEL_CTX (deleted)"))
        );
        assert_eq!(
            parse_maps_line("1000-2000 r--p 00000000 00:00 0 "),
            Some((0x1000, 0x2000, ""))
        );
    }

    #[test]
    fn comm_name_keeps_at_most_15_bytes_on_a_char_boundary() {
        assert_eq!(comm_name("custom-labels-crate-lld"), "custom-labels-c");
        assert_eq!(comm_name("short"), "short");
        // 14 ASCII bytes then a 2-byte char: cutting at 15 would split it.
        assert_eq!(comm_name("abcdefghijklmné"), "abcdefghijklmn");
    }
}

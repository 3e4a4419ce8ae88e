//! Root-only end-to-end tests: C targets publish known v1 sets and OTEP 4947 records; the kernel sampler must copy exactly the reader's ranges.

//!
//! Every wait is bounded: targets must print READY within `READY_LIMIT`, collection is bounded by
//! `COLLECT_LIMIT`, and each test runs under a [`Watchdog`] that, if the test makes no progress
//! within `TEST_LIMIT`, prints the phase it was in and exits the test process (so that a hang in
//! the aarch64 VM becomes a failure that says where it was).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use context_reader_ebpf::layout::CR_MAX_READ;
use context_reader_ebpf::{
    DtvLayout, ProcessParams, RecordLayout, Sample, Sampler, SamplerOptions, SharedSampler,
    SlotRule, Trigger, V1Layout, Watch,
};

/// C targets built by build.rs for the target architecture (see tests/c).
const TP_RELATIVE: &str = env!("CR_TEST_TARGET_TP_RELATIVE");
const LAYOUTS: &str = env!("CR_TEST_TARGET_LAYOUTS");
const DTV_MAIN: &str = env!("CR_TEST_TARGET_DTV_MAIN");
const DTV_MODULE: &str = env!("CR_TEST_TARGET_DTV_MODULE");
const BENCH_WRITER: &str = env!("CR_TEST_TARGET_BENCH_WRITER");
/// Upper bound for a target to print READY.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// Upper bound for a whole test (loading the program under emulation takes up to ~12 s).
const TEST_LIMIT: Duration = Duration::from_secs(240);
/// Per-thread task-clock period of the watches: a thread is sampled after 1 ms on CPU.
const THREAD_PERIOD: Duration = Duration::from_millis(1);
/// Upper bound for seeing every thread once; samples normally arrive within a few ms.
const COLLECT_LIMIT: Duration = Duration::from_secs(20);
/// Modest on purpose: under qemu emulation (the aarch64 leg) a run costs ~50-90 us, and a high
/// tick rate on a loaded host can keep a guest CPU in the timer interrupt.
const FREQUENCY_HZ: u64 = 199;

#[cfg(target_arch = "x86_64")]
const GLIBC_DTV_POINTER_OFFSET: i64 = 8;
#[cfg(target_arch = "aarch64")]
const GLIBC_DTV_POINTER_OFFSET: i64 = 0;

/// Same formula as `pattern_byte` in tests/c/common.h.
fn pattern(thread: u32, what: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (thread * 31 + what * 7 + i * 3 + 1) as u8)
        .collect()
}

/// Ends the test process with a message naming the phase a test was in if it does not finish
/// within its limit: a hang (in a wait, a syscall or the kernel) becomes a reported failure.
struct Watchdog {
    phase: Arc<Mutex<String>>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(test: &'static str) -> Watchdog {
        let phase = Arc::new(Mutex::new("starting".to_string()));
        let done = Arc::new(AtomicBool::new(false));
        let (p, d) = (Arc::clone(&phase), Arc::clone(&done));
        std::thread::spawn(move || {
            let deadline = Instant::now() + TEST_LIMIT;
            while Instant::now() < deadline {
                if d.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let at = p.lock().map(|s| s.clone()).unwrap_or_default();
            eprintln!("test {test}: not finished within {TEST_LIMIT:?}; it was at: {at}");
            std::process::exit(124);
        });
        Watchdog { phase, done }
    }

    fn phase(&self, what: impl Into<String>) {
        if let Ok(mut phase) = self.phase.lock() {
            *phase = what.into();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// A running target; dropping it closes stdin (the target then exits) and reaps or kills it.
struct Target {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Vec<String>,
}

impl Target {
    /// Starts `program` and waits (at most `READY_LIMIT`) for its READY line; the lines before
    /// it are kept in `lines`. A line starting with "READY " also counts (bench_writer).
    fn start(program: &Path, args: &[&str]) -> Target {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, receive) = mpsc::channel();
        // The reading thread ends at READY, or when the target closes stdout (exit or kill).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let ready = line == "READY" || line.starts_with("READY ");
                if send.send(line).is_err() || ready {
                    return;
                }
            }
        });
        let mut target = Target {
            child,
            stdin,
            lines: Vec::new(),
        };
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receive.recv_timeout(left) {
                Ok(line) if line == "READY" || line.starts_with("READY ") => return target,
                Ok(line) => target.lines.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "target {} printed no READY within {READY_LIMIT:?}; printed {:?}",
                    program.display(),
                    target.lines
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "target {} exited before READY; printed {:?}",
                    program.display(),
                    target.lines
                ),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every thread of the target, main thread included.
    fn tids(&self) -> Vec<u32> {
        let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("/proc/PID/task of a running target")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        tids
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `THREAD index tid tp rest...` line.
#[derive(Debug, Clone)]
struct ThreadLine {
    index: u32,
    tid: u32,
    tp: u64,
    rest: Vec<i64>,
}

fn thread_lines(target: &Target) -> Vec<ThreadLine> {
    let mut threads: Vec<ThreadLine> = target
        .lines
        .iter()
        .filter_map(|line| line.strip_prefix("THREAD "))
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            ThreadLine {
                index: fields[0].parse().unwrap(),
                tid: fields[1].parse().unwrap(),
                tp: u64::from_str_radix(fields[2].trim_start_matches("0x"), 16).unwrap(),
                rest: fields[3..].iter().map(|f| f.parse().unwrap()).collect(),
            }
        })
        .collect();
    threads.sort_by_key(|t| t.index);
    threads
}

/// Samples until every tid has at least one sample; returns the last sample of each tid.
fn sample_threads(watch: &mut Watch, pid: u32, tids: &[u32]) -> BTreeMap<u32, Sample> {
    let wanted: BTreeSet<u32> = tids.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let samples = watch
        .collect(COLLECT_LIMIT, |sample| {
            if sample.tgid == pid && wanted.contains(&sample.tid) {
                seen.insert(sample.tid);
            }
            seen.len() == wanted.len()
        })
        .expect("collect");
    let mut last = BTreeMap::new();
    for sample in samples.into_iter().filter(|s| s.tgid == pid) {
        last.insert(sample.tid, sample);
    }
    for tid in tids {
        assert!(
            last.contains_key(tid),
            "no sample of thread {tid} within {COLLECT_LIMIT:?}"
        );
    }
    last
}

fn read_bytes(sample: &Sample, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    assert!(
        sample.read(addr, &mut buf),
        "kernel did not copy {len} bytes at {addr:#x}"
    );
    buf
}

fn read_u64(sample: &Sample, addr: u64) -> u64 {
    u64::from_ne_bytes(read_bytes(sample, addr, 8).try_into().unwrap())
}

fn chunk_addresses(sample: &Sample) -> Vec<(u64, usize)> {
    sample
        .chunks
        .iter()
        .map(|(addr, bytes)| (*addr, bytes.len()))
        .collect()
}

/// The chunks the program makes of a valid OTEP 4947 record at `record` with `attrs` attribute
/// bytes copied: header and attrs in one chunk when they end in the record's 4 KiB page, else
/// the header (read to the page end, then cut) and the attrs on their own.
fn otep_chunks(record: u64, attrs: usize) -> Vec<(u64, usize)> {
    if record % 4096 + 28 + attrs as u64 <= 4096 {
        vec![(record, 28 + attrs)]
    } else {
        vec![(record, 28), (record + 28, attrs)]
    }
}

/// The chunk the program makes of two TP-relative slots (`(address, length)` each) when one read
/// covers both: the span from the lower start to the higher end, if it fits in one read.
fn slots_chunk(v1: (u64, usize), v2: (u64, usize)) -> Option<(u64, usize)> {
    let lo = v1.0.min(v2.0);
    let hi = (v1.0 + v1.1 as u64).max(v2.0 + v2.1 as u64);
    (hi - lo <= CR_MAX_READ).then_some((lo, (hi - lo) as usize))
}

/// The chunks the program makes of a v1 set's strings (each `(address, length)` one it copies:
/// non-NULL, non-empty, within the string bound), in label order: one chunk spanning them all
/// when that span fits in one read, else one chunk per string.
fn v1_string_chunks(strings: &[(u64, usize)]) -> Vec<(u64, usize)> {
    let lo = strings.iter().map(|s| s.0).min();
    let hi = strings.iter().map(|s| s.0 + s.1 as u64).max();
    match (lo, hi) {
        (Some(lo), Some(hi)) if hi - lo <= CR_MAX_READ => vec![(lo, (hi - lo) as usize)],
        _ => strings.to_vec(),
    }
}
/// Checks a valid OTEP record at `record` with `attrs_len` pattern bytes declared and copied.
fn check_otep_record(sample: &Sample, thread: u32, record: u64, declared: u16, copied: usize) {
    let header = read_bytes(sample, record, 28);
    assert_eq!(header[0..16], pattern(thread, 0, 16)[..], "trace_id");
    assert_eq!(header[16..24], pattern(thread, 1, 8)[..], "span_id");
    assert_eq!((header[24], header[25]), (1, 1), "valid, trace_flags");
    assert_eq!(
        u16::from_ne_bytes([header[26], header[27]]),
        declared,
        "attrs_data_size"
    );
    assert_eq!(
        read_bytes(sample, record + 28, copied),
        pattern(thread, 2, copied),
        "attrs"
    );
}

fn load_failed(error: context_reader_ebpf::EbpfError) -> ! {
    panic!(
        "loading the sampler failed (these tests need root, kernel BTF and perf events): {error}\n{}",
        error.verifier_log().unwrap_or("")
    )
}

/// A private sampler with per-CPU cpu-clock events (for tests of the program's own filter).
fn load_sampler() -> Sampler {
    Sampler::load(SamplerOptions {
        frequency_hz: FREQUENCY_HZ,
    })
    .unwrap_or_else(|error| load_failed(error))
}

/// The test process's shared sampler: loaded (and verified) once for all the tests using it.
fn shared_sampler() -> Arc<SharedSampler> {
    SharedSampler::global().unwrap_or_else(|error| load_failed(error))
}

/// Watches `target` with one task-clock event per thread.
fn watch_threads(target: &Target, params: &ProcessParams) -> Watch {
    shared_sampler()
        .watch(
            target.pid(),
            params,
            &Trigger::Threads {
                tids: target.tids(),
                period: THREAD_PERIOD,
                fallback_hz: FREQUENCY_HZ,
            },
        )
        .expect("watch")
}

#[test]
fn tp_relative_slots_copy_exactly_the_reader_ranges() {
    let exe = Path::new(TP_RELATIVE);
    let dog = Watchdog::start("tp_relative_slots_copy_exactly_the_reader_ranges");
    dog.phase("loading the shared sampler");
    let shared = shared_sampler();
    dog.phase("starting the target");
    let target = Target::start(exe, &[]);
    let threads = thread_lines(&target);
    assert_eq!(threads.len(), 4, "{:?}", target.lines);
    let v1_offset = threads[0].rest[0];
    let v2_offset = threads[0].rest[1];
    for thread in &threads {
        assert_eq!(
            thread.rest,
            vec![v1_offset, v2_offset],
            "local-exec offsets are per process"
        );
    }
    dog.phase("watching the target");
    let mut watch = watch_threads(
        &target,
        &ProcessParams {
            v1: Some(SlotRule::TpRelative { offset: v1_offset }),
            v2: Some(SlotRule::TpRelative { offset: v2_offset }),
            ..ProcessParams::default()
        },
    );
    let tids: Vec<u32> = threads.iter().map(|t| t.tid).collect();
    dog.phase("sampling every thread");
    let samples = sample_threads(&mut watch, target.pid(), &tids);
    dog.phase("checking the samples");

    for thread in &threads {
        let sample = &samples[&thread.tid];
        let i = thread.index;
        assert_eq!(
            sample.tp, thread.tp,
            "thread {i}: kernel TP equals the thread's own"
        );
        assert!(!sample.flags.tp_unreadable() && !sample.flags.tp_zero());
        let v1_slot = thread.tp.wrapping_add(v1_offset as u64);
        let v2_slot = thread.tp.wrapping_add(v2_offset as u64);
        let set = read_u64(sample, v1_slot);
        let record = read_u64(sample, v2_slot);
        // both slots in one chunk when one read covers them, else each on its own
        let slots = slots_chunk((v1_slot, 8), (v2_slot, 8));
        let mut expected_chunks = vec![slots.unwrap_or((v1_slot, 8))];
        let v2_slot_chunk: Vec<(u64, usize)> = match slots {
            Some(_) => vec![],
            None => vec![(v2_slot, 8)],
        };
        match i {
            0 | 1 => {
                assert!(
                    sample.flags.v1().is_empty(),
                    "v1 flags {:?}",
                    sample.flags.v1()
                );
                assert!(
                    sample.flags.v2().is_empty(),
                    "v2 flags {:?}",
                    sample.flags.v2()
                );
                let header = read_bytes(sample, set, 24);
                let word =
                    |k: usize| u64::from_ne_bytes(header[k * 8..k * 8 + 8].try_into().unwrap());
                let (storage, count) = (word(0), word(1));
                assert_eq!(count, 4);
                expected_chunks.push((set, 24));
                expected_chunks.push((storage, 4 * 32));
                let labels = read_bytes(sample, storage, 4 * 32);
                let mut strings = Vec::new();
                let field = |label: usize, k: usize| {
                    let at = label * 32 + k * 8;
                    u64::from_ne_bytes(labels[at..at + 8].try_into().unwrap())
                };
                for label in 0..4usize {
                    let (key_len, key_buf, value_len, value_buf) = (
                        field(label, 0),
                        field(label, 1),
                        field(label, 2),
                        field(label, 3),
                    );
                    if label == 2 {
                        assert_eq!(key_buf, 0, "label 2 has a NULL key");
                        continue;
                    }
                    let key = read_bytes(sample, key_buf, key_len as usize);
                    assert_eq!(key, format!("k{i}-{label}").into_bytes());
                    strings.push((key_buf, key_len as usize));
                    if label == 3 {
                        assert_eq!(value_len, 0, "label 3 has an empty value");
                        continue;
                    }
                    let value_len_expected = (label + 1) * 50;
                    assert_eq!(value_len as usize, value_len_expected);
                    assert_eq!(
                        read_bytes(sample, value_buf, value_len_expected),
                        pattern(i, 3 + label as u32, value_len_expected)
                    );
                    strings.push((value_buf, value_len_expected));
                }
                expected_chunks.extend(v1_string_chunks(&strings));
                check_otep_record(sample, i, record, 40, 40);
                expected_chunks.extend(v2_slot_chunk.iter().copied());
                expected_chunks.extend(otep_chunks(record, 40));
                expected_chunks.push((record + 24, 1));
            }
            2 => {
                assert!(
                    sample.flags.v1().too_large(),
                    "33 labels are over the bound"
                );
                assert!(
                    sample.flags.v2().too_large(),
                    "1500 attribute bytes are over the bound"
                );
                assert!(!sample.flags.v2().torn());
                let storage = read_u64(sample, set);
                assert_eq!(read_u64(sample, set + 8), 33, "count");
                expected_chunks.extend([(set, 24), (storage, 32 * 32)]);
                let labels = read_bytes(sample, storage, 32 * 32);
                let mut strings = Vec::new();
                for label in 0..32usize {
                    let word = |k: usize| {
                        u64::from_ne_bytes(labels[label * 32 + k * 8..][..8].try_into().unwrap())
                    };
                    let (key_len, key_buf, value_len, value_buf) =
                        (word(0), word(1), word(2), word(3));
                    assert_eq!(
                        read_bytes(sample, key_buf, key_len as usize),
                        format!("k{i}-{label}").into_bytes()
                    );
                    strings.push((key_buf, key_len as usize));
                    let value_len_expected = (label + 1) * 50;
                    assert_eq!(value_len as usize, value_len_expected);
                    if value_len_expected <= 256 {
                        assert_eq!(
                            read_bytes(sample, value_buf, value_len_expected),
                            pattern(i, 3 + label as u32, value_len_expected)
                        );
                        strings.push((value_buf, value_len_expected));
                    }
                }
                expected_chunks.extend(v1_string_chunks(&strings));
                check_otep_record(sample, i, record, 1500, 1024);
                expected_chunks.extend(v2_slot_chunk.iter().copied());
                expected_chunks.extend(otep_chunks(record, 1024));
                expected_chunks.push((record + 24, 1));
            }
            _ => {
                assert_eq!(set, 0, "thread 3 has no v1 set");
                assert!(sample.flags.v1().is_empty() && sample.flags.v2().is_empty());
                let header = read_bytes(sample, record, 28);
                assert_eq!(header[24], 0, "valid = 0");
                expected_chunks.extend(v2_slot_chunk.iter().copied());
                expected_chunks.push((record, 28));
            }
        }
        assert_eq!(
            chunk_addresses(sample),
            expected_chunks,
            "thread {i}: chunks in read order"
        );
    }

    drop(watch);
    let stats = shared.stats().unwrap();
    assert!(stats.samples >= 4, "{stats:?}");
    assert_eq!(stats.drops, 0, "{stats:?}");
    assert!(stats.run_stats_enabled && stats.run_count > 0, "{stats:?}");
    eprintln!(
        "sampler cost: {} runs, {} ns total, mean {:.0} ns per run",
        stats.run_count,
        stats.run_time_ns,
        stats.mean_run_ns().unwrap()
    );
}

#[test]
fn dtv_rule_walks_a_dlopened_general_dynamic_module() {
    let exe = Path::new(DTV_MAIN);
    let dog = Watchdog::start("dtv_rule_walks_a_dlopened_general_dynamic_module");
    dog.phase("loading the shared sampler");
    shared_sampler();
    dog.phase("starting the target");
    let target = Target::start(exe, &[DTV_MODULE]);
    let module_id: u64 = target
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("MODULE "))
        .expect("MODULE line")
        .parse()
        .unwrap();
    assert!(module_id >= 2, "a dlopened module is not module 1");
    let threads = thread_lines(&target);
    assert_eq!(threads.len(), 3, "{:?}", target.lines);
    let offset = threads[0].rest[0];
    assert_eq!(
        threads[1].rest[0], offset,
        "the slot offset in the block is per module"
    );
    dog.phase("watching the target");
    let mut watch = watch_threads(
        &target,
        &ProcessParams {
            v1: None,
            v2: Some(SlotRule::Dtv {
                dtv: DtvLayout {
                    pointer_offset: GLIBC_DTV_POINTER_OFFSET,
                    entry_size: 16,
                    glibc_counter: true,
                },
                module_id,
                offset: offset as u64,
            }),
            ..ProcessParams::default()
        },
    );
    let tids: Vec<u32> = threads.iter().map(|t| t.tid).collect();
    dog.phase("sampling every thread");
    let samples = sample_threads(&mut watch, target.pid(), &tids);
    dog.phase("checking the samples");

    for thread in &threads {
        let sample = &samples[&thread.tid];
        let i = thread.index;
        assert_eq!(sample.tp, thread.tp);
        assert!(sample.flags.v1().is_empty(), "no v1 rule, no v1 reads");
        let dtv_pointer_at = thread.tp.wrapping_add(GLIBC_DTV_POINTER_OFFSET as u64);
        let dtv = read_u64(sample, dtv_pointer_at);
        let length = read_u64(sample, dtv - 16);
        assert!(
            length >= module_id,
            "dtv[-1].counter {length} >= module id {module_id}"
        );
        let entry_at = dtv + module_id * 16;
        let block = read_u64(sample, entry_at);
        let mut expected = vec![(dtv_pointer_at, 8), (dtv - 16, 8), (entry_at, 8)];
        if i < 2 {
            assert!(
                sample.flags.v2().is_empty(),
                "thread {i}: {:?}",
                sample.flags.v2()
            );
            let slot = block + offset as u64;
            let record = read_u64(sample, slot);
            check_otep_record(sample, i, record, 24, 24);
            expected.push((slot, 8));
            expected.extend(otep_chunks(record, 24));
            expected.push((record + 24, 1));
        } else {
            assert!(
                block == 0 || block == u64::MAX,
                "untouched module TLS is unallocated: {block:#x}"
            );
            assert!(
                sample.flags.v2().tls_unallocated(),
                "{:?}",
                sample.flags.v2()
            );
        }
        assert_eq!(
            chunk_addresses(sample),
            expected,
            "thread {i}: chunks in read order"
        );
    }
}

#[test]
fn unwatched_processes_produce_no_samples() {
    let dog = Watchdog::start("unwatched_processes_produce_no_samples");
    let exe = Path::new(TP_RELATIVE);
    dog.phase("loading a private sampler with per-CPU events");
    let mut sampler = load_sampler();
    dog.phase("starting the target");
    let target = Target::start(exe, &[]);
    dog.phase("watching the target");
    sampler
        .watch(
            target.pid(),
            &ProcessParams {
                v2: Some(SlotRule::TpRelative { offset: -16 }),
                ..ProcessParams::default()
            },
        )
        .unwrap();
    dog.phase("waiting for a sample of the watched target");
    let first = sampler
        .collect(COLLECT_LIMIT, |s| s.tgid == target.pid())
        .unwrap();
    assert!(
        first.iter().any(|s| s.tgid == target.pid()),
        "watched target sampled"
    );
    dog.phase("collecting after unwatch");
    sampler.unwatch(target.pid()).unwrap();
    sampler.discard_pending();
    let after = sampler
        .collect(Duration::from_millis(300), |_| false)
        .unwrap();
    assert!(
        after.iter().all(|s| s.tgid != target.pid()),
        "{} samples after unwatch",
        after.len()
    );
}

#[test]
fn inline_v1_and_draft_v2_layouts() {
    let exe = Path::new(LAYOUTS);
    let dog = Watchdog::start("inline_v1_and_draft_v2_layouts");
    dog.phase("loading the shared sampler");
    shared_sampler();
    dog.phase("starting the target");
    let target = Target::start(exe, &[]);
    let threads = thread_lines(&target);
    assert_eq!(threads.len(), 2, "{:?}", target.lines);
    let (v0_offset, draft_offset) = (threads[0].rest[0], threads[0].rest[1]);
    dog.phase("watching the target");
    let mut watch = watch_threads(
        &target,
        &ProcessParams {
            v1: Some(SlotRule::TpRelative { offset: v0_offset }),
            v1_layout: V1Layout::Inline,
            v2: Some(SlotRule::TpRelative {
                offset: draft_offset,
            }),
            v2_layout: RecordLayout::Draft,
        },
    );
    let tids: Vec<u32> = threads.iter().map(|t| t.tid).collect();
    dog.phase("sampling every thread");
    let samples = sample_threads(&mut watch, target.pid(), &tids);
    dog.phase("checking the samples");
    for thread in &threads {
        let sample = &samples[&thread.tid];
        let i = thread.index;
        let v0_slot = thread.tp.wrapping_add(v0_offset as u64);
        let draft_slot = thread.tp.wrapping_add(draft_offset as u64);
        let storage = read_u64(sample, v0_slot);
        assert_eq!(read_u64(sample, v0_slot + 8), 2, "inline count");
        let slots = slots_chunk((v0_slot, 16), (draft_slot, 8));
        let mut expected = vec![slots.unwrap_or((v0_slot, 16)), (storage, 64)];
        let mut strings = Vec::new();
        let labels = read_bytes(sample, storage, 64);
        for label in 0..2usize {
            let word = |k: usize| {
                u64::from_ne_bytes(labels[label * 32 + k * 8..][..8].try_into().unwrap())
            };
            let (key_len, key_buf, value_len, value_buf) = (word(0), word(1), word(2), word(3));
            assert_eq!(
                read_bytes(sample, key_buf, key_len as usize),
                format!("k{i}-{label}").into_bytes()
            );
            assert_eq!(
                read_bytes(sample, value_buf, value_len as usize),
                pattern(i, 3 + label as u32, label + 1)
            );
            strings.extend([(key_buf, key_len as usize), (value_buf, label + 1)]);
        }
        expected.extend(v1_string_chunks(&strings));
        assert!(sample.flags.v1().is_empty(), "{:?}", sample.flags.v1());

        let record = read_u64(sample, draft_slot);
        if slots.is_none() {
            expected.push((draft_slot, 8));
        }
        expected.push((record, 34));
        let header = read_bytes(sample, record, 34);
        assert_eq!(header[0..16], pattern(i, 0, 16)[..]);
        assert_eq!(header[24..32], pattern(i, 9, 8)[..], "root_span_id");
        assert_eq!(header[32], 1, "valid");
        let entries = header[33] as u64;
        let mut at = record + 34;
        let mut total = 0;
        for e in 0..entries {
            let len = 3 + (10 * e) % 250;
            assert_eq!(read_bytes(sample, at, 2), vec![e as u8, len as u8]);
            expected.push((at, 2));
            total += len;
            if total > 1024 {
                break;
            }
            assert_eq!(
                read_bytes(sample, at + 2, len as usize),
                pattern(i, 10 + e as u32, len as usize)
            );
            expected.push((at + 2, len as usize));
            at += 2 + len;
        }
        expected.push((record + 32, 1));
        assert_eq!(
            sample.flags.v2().too_large(),
            i == 1,
            "{:?}",
            sample.flags.v2()
        );
        assert!(!sample.flags.v2().torn());
        assert_eq!(
            chunk_addresses(sample),
            expected,
            "thread {i}: chunks in read order"
        );
    }
}

/// Measures the program's cost per run: on ticks of unwatched tasks (a hash-map miss) and on
/// samples of watched threads (the tp_relative target: ~6 reads, ~700 bytes per sample).
#[test]
fn cost_per_sample() {
    let dog = Watchdog::start("cost_per_sample");
    dog.phase("loading a private sampler with per-CPU events");
    let load_started = std::time::Instant::now();
    let mut sampler = Sampler::load(SamplerOptions { frequency_hz: 499 }).expect("load");
    let load_time = load_started.elapsed();
    dog.phase("starting the target");
    let target = Target::start(Path::new(TP_RELATIVE), &[]);
    dog.phase("collecting with nothing watched");
    let threads = thread_lines(&target);
    let (v1_offset, v2_offset) = (threads[0].rest[0], threads[0].rest[1]);

    let unwatched = sampler.collect(Duration::from_secs(1), |_| false).unwrap();
    assert!(unwatched.is_empty(), "nothing is watched yet");
    let before = sampler.stats().unwrap();
    assert!(
        before.run_stats_enabled && before.run_count > 0,
        "{before:?}"
    );
    let miss_ns = before.mean_run_ns().unwrap();

    dog.phase("watching the target");
    sampler
        .watch(
            target.pid(),
            &ProcessParams {
                v1: Some(SlotRule::TpRelative { offset: v1_offset }),
                v2: Some(SlotRule::TpRelative { offset: v2_offset }),
                ..ProcessParams::default()
            },
        )
        .unwrap();
    dog.phase("collecting samples of the watched target");
    let samples = sampler.collect(Duration::from_secs(2), |_| false).unwrap();
    let after = sampler.stats().unwrap();
    let watched: u64 = samples.iter().filter(|s| s.tgid == target.pid()).count() as u64;
    let runs = after.run_count - before.run_count;
    let run_ns = (after.run_time_ns - before.run_time_ns) as f64;
    assert!(
        watched > 0 && runs >= watched,
        "runs {runs}, watched samples {watched}"
    );
    let misses = (runs - watched) as f64;
    let sample_ns = (run_ns - misses * miss_ns) / watched as f64;
    eprintln!(
        "load (verify + attach) {load_time:?}; miss {miss_ns:.0} ns/run over {} runs; \
         watched: {watched} samples of {runs} runs, {:.0} ns/run overall, ~{sample_ns:.0} ns per sample; drops {}",
        before.run_count,
        run_ns / runs as f64,
        after.drops
    );
    // Relative bound, so that it holds on any host speed (the aarch64 leg is emulated): a sample
    // is a bounded number of small reads, far from the cost of 50 hash-map misses.
    assert!(
        sample_ns < 50.0 * miss_ns,
        "a sample costs {sample_ns:.0} ns, {:.0} times a miss",
        sample_ns / miss_ns
    );
    assert_eq!(after.drops, 0);
}

fn tp_relative_params(target: &Target) -> ProcessParams {
    let threads = thread_lines(target);
    ProcessParams {
        v1: Some(SlotRule::TpRelative {
            offset: threads[0].rest[0],
        }),
        v2: Some(SlotRule::TpRelative {
            offset: threads[0].rest[1],
        }),
        ..ProcessParams::default()
    }
}

/// One program for the whole test process, two processes watched at once from two threads: each
/// watch sees only its own process's samples, and all of its threads.
#[test]
fn shared_sampler_is_loaded_once_and_serves_concurrent_watches() {
    let dog = Watchdog::start("shared_sampler_is_loaded_once_and_serves_concurrent_watches");
    dog.phase("loading the shared sampler");
    let first = shared_sampler();
    assert!(
        Arc::ptr_eq(&first, &shared_sampler()),
        "global() hands out one sampler"
    );
    dog.phase("starting two targets");
    let targets = [
        Target::start(Path::new(TP_RELATIVE), &[]),
        Target::start(Path::new(TP_RELATIVE), &[]),
    ];
    dog.phase("sampling both targets from two threads");
    std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|target| {
                scope.spawn(move || {
                    let mut watch = watch_threads(target, &tp_relative_params(target));
                    let tids: Vec<u32> = thread_lines(target).iter().map(|t| t.tid).collect();
                    let mut seen = BTreeSet::new();
                    let samples = watch
                        .collect(COLLECT_LIMIT, |s| {
                            seen.insert(s.tid);
                            tids.iter().all(|t| seen.contains(t))
                        })
                        .expect("collect");
                    (target.pid(), tids, samples)
                })
            })
            .collect();
        for handle in handles {
            let (pid, tids, samples) = handle.join().expect("watch thread");
            assert!(
                samples.iter().all(|s| s.tgid == pid),
                "a watch of {pid} got samples of another process"
            );
            let seen: BTreeSet<u32> = samples.iter().map(|s| s.tid).collect();
            for tid in tids {
                assert!(
                    seen.contains(&tid),
                    "thread {tid} of {pid} not sampled within {COLLECT_LIMIT:?}"
                );
            }
        }
    });
}

/// Per-thread events fire only for their own thread, and a new watch starts clean: the samples
/// an ended watch left in the ring buffer do not reach it.
#[test]
fn a_new_watch_gets_no_samples_of_an_ended_one() {
    let dog = Watchdog::start("a_new_watch_gets_no_samples_of_an_ended_one");
    dog.phase("loading the shared sampler");
    shared_sampler();
    dog.phase("starting the target");
    let target = Target::start(Path::new(TP_RELATIVE), &[]);
    let params = tp_relative_params(&target);
    let threads = thread_lines(&target);
    dog.phase("first watch: every thread, samples left uncollected");
    let everyone = watch_threads(&target, &params);
    std::thread::sleep(Duration::from_millis(200));
    drop(everyone);
    dog.phase("second watch: one thread");
    let only = threads[0].tid;
    let mut one = shared_sampler()
        .watch(
            target.pid(),
            &params,
            &Trigger::Threads {
                tids: vec![only],
                period: THREAD_PERIOD,
                fallback_hz: FREQUENCY_HZ,
            },
        )
        .expect("watch");
    assert_eq!(one.threads_attached(), 1);
    assert!(!one.cpu_fallback());
    let samples = one
        .collect(Duration::from_millis(300), |_| false)
        .expect("collect");
    assert!(!samples.is_empty(), "the busy thread {only} was sampled");
    let others: BTreeSet<u32> = samples
        .iter()
        .map(|s| s.tid)
        .filter(|&t| t != only)
        .collect();
    assert!(
        others.is_empty(),
        "samples of threads {others:?} reached a watch of thread {only} only"
    );
}

/// Coverage (issue 10.3): with one task-clock event per thread, every busy thread of a process
/// with more busy threads than CPUs is sampled (bounded by `COLLECT_LIMIT`, not timed).
#[test]
fn per_thread_events_sample_every_busy_thread() {
    let dog = Watchdog::start("per_thread_events_sample_every_busy_thread");
    dog.phase("loading the shared sampler");
    shared_sampler();
    dog.phase("starting 64 busy threads");
    let target = Target::start(Path::new(BENCH_WRITER), &["--threads", "64", "--busy"]);
    // The main thread blocks on stdin: never on CPU, never sampled.
    let workers: Vec<u32> = target
        .tids()
        .into_iter()
        .filter(|&t| t != target.pid())
        .collect();
    assert_eq!(workers.len(), 64);
    dog.phase("watching every worker");
    let mut watch = shared_sampler()
        .watch(
            target.pid(),
            &ProcessParams::default(),
            &Trigger::Threads {
                tids: workers.clone(),
                period: THREAD_PERIOD,
                fallback_hz: FREQUENCY_HZ,
            },
        )
        .expect("watch");
    assert_eq!(watch.threads_attached(), 64, "{watch:?}");
    dog.phase("sampling every worker");
    let samples = sample_threads(&mut watch, target.pid(), &workers);
    assert_eq!(samples.len(), 64);
    for sample in samples.values() {
        assert!(
            !sample.flags.tp_unreadable() && !sample.flags.tp_zero(),
            "{sample:?}"
        );
    }
}

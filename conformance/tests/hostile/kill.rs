//! The kill test: the `context-reader` binary, taking snapshots back to back of a 200-thread target
//! (`hostile --case kill-200`: each thread ticks a counter every millisecond), is SIGKILLed at a
//! random point; then every thread of the target must be out of any ptrace stop, untraced, and
//! ticking again. One long-lived target, one reader process per kill, so a kill costs a process
//! start and a few milliseconds of snapshots.
//!
//! `KILL_TEST_KILLS` sets the number of kills (default [`CI_KILLS`]); `KILL_TEST_SEED` the seed of
//! the random kill points (printed, so a failure can be replayed).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use context_targets::Backend;

use crate::proc;

/// Kills in CI (issue 11 asks for 10^3): measured 12.4-14.5 kills/s on the 2-core machine with
/// the usual load (debug reader, 22-40 ms per snapshot of the 201 threads) and 6.0 kills/s under a
/// load average near 1000 (the 10,000-kill run): 1000 kills take 70-170 s.
pub const CI_KILLS: u64 = 1000;

/// A thread that does not tick for this long after the reader died is stopped or wedged.
const PROGRESS_LIMIT: Duration = Duration::from_secs(10);

/// xorshift64*: the kill points only need to be spread, and reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn reader(bin: &PathBuf, pid: i32) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        &pid.to_string(),
        "--format",
        "json",
        "--interval",
        "1ms",
        "--count",
        "1000000000",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// Starts a reader and waits for its first snapshot line: from then on it takes snapshots back to
/// back (1 ms apart), so a kill point drawn after it falls inside a snapshot most of the time.
fn start_reader(
    bin: &PathBuf,
    pid: i32,
) -> Result<(std::process::Child, BufReader<ChildStdout>), String> {
    let mut child = reader(bin, pid)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    if out.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
        let status = child.wait().map_err(|e| e.to_string())?;
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!(
            "context-reader exited with {status} before its first snapshot: {err}"
        ));
    }
    Ok((child, out))
}

/// The time of one snapshot of the target by the binary (between its first and second lines),
/// the span over which kill points are drawn.
fn calibrate(bin: &PathBuf, pid: i32) -> Result<Duration, String> {
    let (mut child, mut out) = start_reader(bin, pid)?;
    let mut spans = Vec::new();
    let mut line = String::new();
    for _ in 0..5 {
        let started = Instant::now();
        line.clear();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        spans.push(started.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    spans.sort();
    Ok(spans[spans.len() / 2])
}

pub fn run() -> Result<String, String> {
    let bin = context_targets::reader_bin();
    if !bin.is_file() {
        return Err(format!(
            "reader binary {} missing: `cargo build -p context-reader` first, or set CONTEXT_READER_BIN",
            bin.display()
        ));
    }
    let kills = env_u64("KILL_TEST_KILLS").unwrap_or(CI_KILLS);
    let seed = env_u64("KILL_TEST_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    }) | 1;
    let mut rng = Rng(seed);
    let (target, ready) = crate::spawn_hostile("kill-200", Backend::Ptrace)?;
    let pid = ready.pid;
    let addr = ready.notes["counters"]
        .as_u64()
        .ok_or("kill-200: no counters address in notes")?;
    let count = ready.notes["counter_tids"].as_array().map_or(0, Vec::len);
    // Plan 0 is the main thread (parked on stdin); every other plan ticks.
    let tickers: Vec<usize> = (1..count).collect();
    if tickers.len() < 200 {
        return Err(format!(
            "kill-200 declared {} ticking threads",
            tickers.len()
        ));
    }
    let snapshot = calibrate(&bin, pid)?;
    let span_us = (snapshot.as_micros() as u64).max(1000);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut exited_early = 0u64;
    for k in 0..kills {
        if last_report.elapsed() > Duration::from_secs(60) {
            last_report = Instant::now();
            eprintln!(
                "kill/ptrace/kill-200: {k} of {kills} kills done, 0 threads left stopped, {:.1} kills/s",
                k as f64 / started.elapsed().as_secs_f64()
            );
        }
        let delay = Duration::from_micros(rng.below(span_us));
        let (mut child, out) = start_reader(&bin, pid).map_err(|e| format!("kill {k}: {e}"))?;
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().map_err(|e| e.to_string())?;
        drop(out);
        if status.code().is_some() {
            // It ended on its own before the kill: only legitimate if it succeeded.
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            if !status.success() {
                return Err(format!(
                    "kill {k} (seed {seed}): context-reader exited with {status} before it was killed: {err}"
                ));
            }
            exited_early += 1;
        }
        let stuck = proc::stuck_threads(pid, crate::STOP_GRACE);
        if !stuck.is_empty() {
            return Err(format!(
                "kill {k} (seed {seed}, {delay:?} after start): {} thread(s) left stopped or traced: {}",
                stuck.len(),
                stuck
                    .iter()
                    .take(5)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        let before = proc::read_counters(pid, addr, count)?;
        let stalled = proc::wait_progress(pid, addr, &before, &tickers, PROGRESS_LIMIT)?;
        if !stalled.is_empty() {
            return Err(format!(
                "kill {k} (seed {seed}, {delay:?} after start): {} thread(s) made no progress in {PROGRESS_LIMIT:?} (plans {:?})",
                stalled.len(),
                &stalled[..stalled.len().min(10)]
            ));
        }
    }
    let took = started.elapsed();
    let status = target.finish(crate::EXIT_TIMEOUT)?;
    if !status.success() {
        return Err(format!("the target exited with {status} after stdin EOF"));
    }
    Ok(format!(
        "{kills} kills of context-reader (seed {seed}, kill points 0..{:.1} ms into the second snapshot; a snapshot takes {:.1} ms), \
         0 threads left stopped or traced, all {} ticking again after each; {:.1} s, {:.1} kills/s{}",
        span_us as f64 / 1e3,
        snapshot.as_secs_f64() * 1e3,
        tickers.len(),
        took.as_secs_f64(),
        kills as f64 / took.as_secs_f64().max(1e-9),
        if exited_early > 0 {
            format!("; {exited_early} readers had exited before their kill")
        } else {
            String::new()
        }
    ))
}

/// The detector itself: a thread held in a ptrace stop (by `ThreadStop`, the reader's own guard)
/// must be reported with its state and tracer, and no longer once the guard is dropped.
pub fn detector() -> Result<String, String> {
    let (target, ready) = crate::spawn_hostile("kill-200", Backend::Ptrace)?;
    let tid = ready.notes["counter_tids"][1]
        .as_i64()
        .ok_or("no ticking thread")? as i32;
    let stop = context_reader::backend::ptrace::ThreadStop::seize(tid)
        .map_err(|e| format!("seize {tid}: {e:?}"))?;
    let seen = proc::stuck_threads_once(ready.pid);
    drop(stop);
    // TracerPid names the tracing thread: one of ours.
    let ours = |tracer: &str| std::path::Path::new(&format!("/proc/self/task/{tracer}")).exists();
    if seen.len() != 1
        || seen[0].tid != tid
        || !seen[0].state.starts_with('t')
        || !ours(&seen[0].tracer)
    {
        return Err(format!(
            "holding {tid} stopped, the detector saw {seen:?} (expected that thread, state t, traced by a thread of ours)"
        ));
    }
    let after = proc::stuck_threads(ready.pid, crate::STOP_GRACE);
    if !after.is_empty() {
        return Err(format!("after the guard was dropped: {after:?}"));
    }
    target.finish(crate::EXIT_TIMEOUT)?;
    Ok(format!("saw {} while it was held, nothing after", seen[0]))
}

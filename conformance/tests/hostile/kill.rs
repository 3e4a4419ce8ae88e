//! The kill test: the `context-reader` binary, taking snapshots back to back of a 200-thread target
//! (`hostile --case kill-200`: each thread ticks a counter every millisecond), is SIGKILLed at a
//! random point; then every thread of the target must be out of any ptrace stop, untraced, and
//! ticking again. One long-lived target, one reader process per kill, so a kill costs a process
//! start and a few milliseconds of snapshots.
//!
//! `KILL_TEST_KILLS` sets the number of kills (default [`CI_KILLS`]); `KILL_TEST_SEED` the seed of
//! the random kill points (printed, so a failure can be replayed).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use context_targets::Backend;

use crate::proc;

/// Kills in CI: about 30 s on the 2-core CI machine (see the report of the run for the rate).
pub const CI_KILLS: u64 = 400;

/// A thread that does not tick for this long after the reader died is stopped or wedged.
const PROGRESS_LIMIT: Duration = Duration::from_secs(10);

fn reader_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CONTEXT_READER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("context-reader"))
        .expect("target dir")
}

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
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

/// One `--once` read, timed: the span over which kill points are drawn (start-up included).
fn calibrate(bin: &PathBuf, pid: i32) -> Result<Duration, String> {
    let started = Instant::now();
    let out = Command::new(bin)
        .args([&pid.to_string(), "--once", "--format", "json"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "context-reader --once exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(started.elapsed())
}

pub fn run() -> Result<String, String> {
    let bin = reader_bin();
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
    let count = ready.notes["counter_tids"]
        .as_array()
        .map_or(0, Vec::len);
    // Plan 0 is the main thread (parked on stdin); every other plan ticks.
    let tickers: Vec<usize> = (1..count).collect();
    if tickers.len() < 200 {
        return Err(format!("kill-200 declared {} ticking threads", tickers.len()));
    }
    let once = calibrate(&bin, pid)?;
    // Start-up plus a few snapshots: most kill points fall inside a snapshot.
    let span_us = (once.as_micros() as u64).saturating_mul(3).max(1000);
    let started = Instant::now();
    let mut exited_early = 0u64;
    for k in 0..kills {
        let delay = Duration::from_micros(rng.below(span_us));
        let mut child = reader(&bin, pid)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().map_err(|e| e.to_string())?;
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
        "{kills} kills of context-reader (seed {seed}, kill points in 0..{:.1} ms; --once takes {:.1} ms), \
         0 threads left stopped or traced, all {} ticking again after each; {:.1} s, {:.1} kills/s{}",
        span_us as f64 / 1e3,
        once.as_secs_f64() * 1e3,
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

//! What the hostile suite observes of a target from the outside: ptrace stop states of its threads
//! (`/proc/PID/task/*/status`) and its progress counters (`/proc/PID/mem`).

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// A thread found in a state the reader must never leave behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    pub tid: i32,
    pub state: String,
    pub tracer: String,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "thread {}: State {:?}, TracerPid {}",
            self.tid, self.state, self.tracer
        )
    }
}

fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim())
}

/// Threads of `pid` that are in a ptrace stop (`State: t (tracing stop)`) or still traced
/// (`TracerPid` not 0), read once.
pub fn stuck_threads_once(pid: i32) -> Vec<Stuck> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut stuck = Vec::new();
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread that exited meanwhile has no status: nothing left to check.
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let state = field(&status, "State:").unwrap_or("").to_string();
        let tracer = field(&status, "TracerPid:").unwrap_or("0").to_string();
        if state.starts_with('t') || tracer != "0" {
            stuck.push(Stuck { tid, state, tracer });
        }
    }
    stuck.sort_by_key(|s| s.tid);
    stuck
}

/// Threads left stopped or traced after the reader finished. `TracerPid` is cleared by the
/// detach itself; the scheduler may take a moment to move a just-resumed thread out of `t`, so a
/// thread counts only if it is still stopped after `grace` (a correctness bound, not a timing
/// measurement: a thread left in a ptrace stop stays there forever).
pub fn stuck_threads(pid: i32, grace: Duration) -> Vec<Stuck> {
    let deadline = Instant::now() + grace;
    loop {
        let stuck = stuck_threads_once(pid);
        if stuck.is_empty() || Instant::now() >= deadline {
            return stuck;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `count` u64 counters at `addr` in the target (it publishes their address in `notes`).
pub fn read_counters(pid: i32, addr: u64, count: usize) -> Result<Vec<u64>, String> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .map_err(|e| format!("/proc/{pid}/mem: {e}"))?;
    let mut bytes = vec![0u8; count * 8];
    mem.read_exact_at(&mut bytes, addr)
        .map_err(|e| format!("reading {count} counters at {addr:#x} of {pid}: {e}"))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// Waits until every counter in `indices` moved past its value in `before`; returns the indices
/// that did not within `limit` (a thread that makes no progress for that long is stopped or
/// wedged, not slow: the counters tick every millisecond).
pub fn wait_progress(
    pid: i32,
    addr: u64,
    before: &[u64],
    indices: &[usize],
    limit: Duration,
) -> Result<Vec<usize>, String> {
    let deadline = Instant::now() + limit;
    loop {
        let now = read_counters(pid, addr, before.len())?;
        let stalled: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| now[i] <= before[i])
            .collect();
        if stalled.is_empty() || Instant::now() >= deadline {
            return Ok(stalled);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

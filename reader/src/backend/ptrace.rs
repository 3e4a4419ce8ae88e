//! The ptrace backend: each thread is seized, interrupted, read and resumed in turn, so it is
//! stopped only for its own reads. `ThreadStop` is the only thing in the crate that stops a thread.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::sys;
use crate::snapshot::{Bytes, ErrorKind, Format, ReadError, ThreadSnapshot};

/// Rounds of re-listing `/proc/PID/task` before threads created meanwhile are given up on.
const MAX_LISTING_ROUNDS: usize = 16;

#[derive(Debug)]
pub enum StopError {
    /// The thread is gone (ESRCH, or it exited while we waited).
    Exited,
    Permission(Errno),
    Other(&'static str, Errno),
}

/// A thread held in a ptrace stop. Created stopped; resumed (detached) when dropped, on every
/// path: return, `?`, panic unwinding.
#[derive(Debug)]
pub struct ThreadStop {
    tid: Pid,
    /// A signal that arrived instead of our interrupt; handed back to the thread on detach.
    pending: Option<Signal>,
    since: Instant,
}

impl ThreadStop {
    pub fn seize(tid: i32) -> Result<ThreadStop, StopError> {
        let tid = Pid::from_raw(tid);
        let since = Instant::now();
        match ptrace::seize(tid, ptrace::Options::empty()) {
            Ok(()) => {}
            Err(Errno::ESRCH) => return Err(StopError::Exited),
            Err(e @ (Errno::EPERM | Errno::EACCES)) => return Err(StopError::Permission(e)),
            Err(e) => return Err(StopError::Other("PTRACE_SEIZE", e)),
        }
        // From here on the guard owns the tracee: any early return detaches it.
        let mut stop = ThreadStop {
            tid,
            pending: None,
            since,
        };
        match ptrace::interrupt(tid) {
            Ok(()) => {}
            Err(Errno::ESRCH) => return Err(StopError::Exited),
            Err(e) => return Err(StopError::Other("PTRACE_INTERRUPT", e)),
        }
        loop {
            match waitpid(tid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::PtraceEvent(..)) => return Ok(stop),
                Ok(WaitStatus::Stopped(_, sig)) => {
                    // A signal-delivery stop came first: we are stopped all the same.
                    stop.pending = Some(sig);
                    return Ok(stop);
                }
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                    return Err(StopError::Exited)
                }
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD | Errno::ESRCH) => return Err(StopError::Exited),
                Err(e) => return Err(StopError::Other("waitpid", e)),
            }
        }
    }

    pub fn thread_pointer(&self) -> Result<u64, Errno> {
        sys::thread_pointer(self.tid)
    }

    pub fn stopped_for(&self) -> Duration {
        self.since.elapsed()
    }
}

impl Drop for ThreadStop {
    fn drop(&mut self) {
        // ESRCH here means the thread died while stopped: nothing left to resume.
        let _ = ptrace::detach(self.tid, self.pending.take());
    }
}

/// The threads of `pid` in tid order; empty if the process is gone.
pub fn list_threads(pid: i32) -> std::io::Result<Vec<i32>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    Ok(tids)
}

pub fn thread_name(pid: i32, tid: i32) -> Bytes {
    let mut name = std::fs::read(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    Bytes(name)
}

/// A deliberate failure for tests of the resume guarantee (never set in production).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Return an error while the Nth thread (0-based) is stopped.
    ErrorAt(usize),
    /// Panic while the Nth thread is stopped.
    PanicAt(usize),
}

#[derive(Debug, Clone, Default)]
pub struct StopStats {
    /// How long each thread was stopped, seize to detach.
    pub windows: Vec<Duration>,
}

#[derive(Debug)]
pub enum WalkError {
    Permission(Errno),
    Interrupted,
    Injected,
}

/// Stops each thread of `pid` in turn and calls `read(tid, tp, &mut thread)` while it is stopped.
/// Threads that appear meanwhile are read in further rounds; threads that exit are reported.
pub fn walk_threads(
    pid: i32,
    only: Option<&[i32]>,
    fault: Option<Fault>,
    stats: &mut StopStats,
    mut read: impl FnMut(u64, &mut ThreadSnapshot),
) -> Result<(Vec<ThreadSnapshot>, Vec<ReadError>), WalkError> {
    let mut seen = BTreeSet::new();
    let mut threads = Vec::new();
    let mut errors = Vec::new();
    let mut stopped_count = 0usize;
    for round in 0.. {
        let tids: Vec<i32> = list_threads(pid)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| only.is_none_or(|o| o.contains(t)) && !seen.contains(t))
            .collect();
        if tids.is_empty() {
            break;
        }
        if round == MAX_LISTING_ROUNDS {
            errors.push(ReadError::new(
                Format::Tls,
                ErrorKind::Unreadable,
                format!(
                    "threads kept appearing after {MAX_LISTING_ROUNDS} listings; {} not read",
                    tids.len()
                ),
            ));
            break;
        }
        for tid in tids {
            if sys::interrupted() {
                return Err(WalkError::Interrupted);
            }
            seen.insert(tid);
            let mut thread = ThreadSnapshot::new(tid, thread_name(pid, tid));
            match ThreadStop::seize(tid) {
                Ok(stop) => {
                    match fault {
                        Some(Fault::ErrorAt(n)) if n == stopped_count => {
                            return Err(WalkError::Injected)
                        }
                        Some(Fault::PanicAt(n)) if n == stopped_count => {
                            panic!("injected fault at thread {tid}")
                        }
                        _ => {}
                    }
                    stopped_count += 1;
                    match stop.thread_pointer() {
                        Ok(tp) => read(tp, &mut thread),
                        Err(Errno::ESRCH) => thread.errors.push(exited(tid)),
                        Err(e) => thread.errors.push(ReadError::new(
                            Format::Tls,
                            ErrorKind::Ptrace,
                            format!("reading the thread pointer of {tid}: {}", e.desc()),
                        )),
                    }
                    stats.windows.push(stop.stopped_for());
                    drop(stop);
                }
                Err(StopError::Exited) => {
                    // Gone between listing and seizing: report only if it was asked for.
                    if only.is_some() {
                        thread.errors.push(exited(tid));
                    } else {
                        continue;
                    }
                }
                Err(StopError::Permission(e)) => return Err(WalkError::Permission(e)),
                Err(StopError::Other(call, e)) => thread.errors.push(ReadError::new(
                    Format::Tls,
                    ErrorKind::Ptrace,
                    format!("{call} on thread {tid}: {}", e.desc()),
                )),
            }
            threads.push(thread);
        }
    }
    Ok((threads, errors))
}

fn exited(tid: i32) -> ReadError {
    ReadError::new(
        Format::Tls,
        ErrorKind::ThreadExited,
        format!("thread {tid} exited during the snapshot"),
    )
}

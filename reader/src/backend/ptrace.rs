//! The ptrace backend: a thread is only read while it is in a ptrace stop, and resumed right after
//! its own reads. Sleeping threads are seized, interrupted, read and resumed one at a time;
//! running ones (state `R`) are interrupted in batches and served in the order their stops arrive,
//! so a busy thread is not waited for while it waits for a CPU. `ThreadStop` (one thread) and
//! `BatchStop` (a batch) are the only things in the crate that stop a thread, and both resume
//! every thread they stopped when dropped.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::procfs::{list_threads, process_exited, read_stat, stat_path, thread_name, ThreadStat};
use crate::snapshot::{Bytes, ErrorKind, Format, ReadError, ThreadSnapshot};
use crate::sys;

/// Rounds of re-listing `/proc/PID/task` before threads created meanwhile are given up on.
const MAX_LISTING_ROUNDS: usize = 16;
/// Running threads interrupted together, at most. A busy thread stops only when the scheduler
/// next gives it a CPU, so a batch takes about one pass of the scheduler over the target's
/// runnable threads however small it is: batches of 64 made 1000 busy threads take minutes,
/// one batch for all of them a few seconds (docs/benchmarks.md). The bound only caps what one
/// guard holds.
pub const BATCH_SIZE: usize = 4096;
/// How long `ThreadStop` polls for the stop before it blocks in `waitpid`. On an idle CPU a
/// sleeping thread reaches its stop within tens of microseconds; polling spares the reader the
/// wake-up of a blocked `waitpid`, and each poll that still sees the thread running moves the
/// start of the measured stop window closer to the real one. Kept short because the reader runs
/// at SCHED_FIFO: when the interrupted thread is woken onto the reader's own CPU (the other CPUs
/// busy), it cannot run, and so cannot stop, until the reader blocks. A 500 us poll made 1000
/// idle threads on a loaded 2-core host take 0.75-1.2 s a snapshot (wait4 called 15 times a
/// thread); 50 us took 0.07-0.57 s under the same load.
const STOP_POLL: Duration = Duration::from_micros(50);

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
    /// The last moment the thread was seen not yet stopped: its stop began after this.
    since: Instant,
}

impl ThreadStop {
    pub fn seize(tid: i32) -> Result<ThreadStop, StopError> {
        let tid = Pid::from_raw(tid);
        let since = Instant::now();
        seize(tid)?;
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
        let poll_until = Instant::now() + STOP_POLL;
        loop {
            let polling = Instant::now() < poll_until;
            let flags = if polling {
                WaitPidFlag::__WALL | WaitPidFlag::WNOHANG
            } else {
                WaitPidFlag::__WALL
            };
            match waitpid(tid, Some(flags)) {
                Ok(WaitStatus::StillAlive) => {
                    // Not stopped yet: its stop begins after this moment.
                    stop.since = Instant::now();
                    std::hint::spin_loop();
                }
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

fn seize(tid: Pid) -> Result<(), StopError> {
    match ptrace::seize(tid, ptrace::Options::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::ESRCH) => Err(StopError::Exited),
        Err(e @ (Errno::EPERM | Errno::EACCES)) => Err(StopError::Permission(e)),
        Err(e) => Err(StopError::Other("PTRACE_SEIZE", e)),
    }
}

impl Drop for ThreadStop {
    fn drop(&mut self) {
        // ESRCH here means the thread died while stopped: nothing left to resume.
        let _ = ptrace::detach(self.tid, self.pending.take());
    }
}

/// Threads seized and interrupted together, each resumed as soon as it has been served; whatever
/// is still held when the guard is dropped (return, `?`, panic unwinding) is waited for and
/// resumed then.
#[derive(Debug, Default)]
pub struct BatchStop {
    members: Vec<Member>,
    /// Where the next poll of the members starts.
    cursor: usize,
}

/// What `waitid(P_ALL, WNOWAIT)` said.
enum Peek {
    /// An outstanding member of this batch has news.
    Member(usize),
    /// Nothing has news.
    Nothing,
    /// Someone else (a child of the reader, another session's tracee) has news, or the
    /// question failed.
    Foreign,
}

#[derive(Debug)]
struct Member {
    tid: Pid,
    state: MemberState,
    /// The last moment the thread was seen not yet stopped: its stop began after this.
    running_seen: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MemberState {
    /// Interrupted, its stop not yet collected.
    Interrupted,
    /// In a ptrace stop; the signal that arrived instead of our interrupt, if any.
    Stopped(Option<Signal>),
    /// Resumed, or gone.
    Released,
}

/// What `BatchStop::next_stop` found.
#[derive(Debug)]
pub enum BatchEvent {
    /// Member `index` (thread `tid`) is stopped.
    Stopped {
        index: usize,
        tid: i32,
    },
    /// The thread exited before it stopped.
    Exited(i32),
    Failed(i32, &'static str, Errno),
}

impl BatchStop {
    pub fn new() -> Self {
        Self::default()
    }

    /// Seizes and interrupts `tid`; from here on the guard owns it.
    pub fn add(&mut self, tid: i32) -> Result<(), StopError> {
        let pid = Pid::from_raw(tid);
        seize(pid)?;
        self.members.push(Member {
            tid: pid,
            state: MemberState::Interrupted,
            running_seen: Instant::now(),
        });
        match ptrace::interrupt(pid) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Seized but not interrupted: PTRACE_DETACH needs a stop, so interrupt failing
                // means the thread is gone (ESRCH) or we cannot stop it; either way nothing is
                // held, and a detach attempt is harmless.
                let _ = ptrace::detach(pid, None);
                self.members.last_mut().expect("just pushed").state = MemberState::Released;
                match e {
                    Errno::ESRCH => Err(StopError::Exited),
                    e => Err(StopError::Other("PTRACE_INTERRUPT", e)),
                }
            }
        }
    }

    /// Waits for the next member to stop and returns it; `None` once none is outstanding.
    ///
    /// A busy thread stops when it next gets a CPU, so stops arrive in the scheduler's order, not
    /// ours. The kernel is asked which tracee has news without consuming it (`waitid(P_ALL,
    /// WNOWAIT)`), so a stop is served as soon as it happens, whatever its place in the batch;
    /// only our own members are then consumed (by tid), so a child of the reader or another
    /// session's tracee is never reaped here. When the news belongs to someone else, the
    /// members are polled one by one from a rotating cursor instead.
    pub fn next_stop(&mut self) -> Option<BatchEvent> {
        let mut idle_passes = 0u32;
        loop {
            if !self
                .members
                .iter()
                .any(|m| m.state == MemberState::Interrupted)
            {
                return None;
            }
            match self.peek(WaitPidFlag::WNOHANG) {
                Peek::Member(index) => {
                    if let Some(event) = self.collect(index) {
                        return Some(event);
                    }
                }
                Peek::Nothing => {
                    // No tracee of ours has an unreported stop: every outstanding member is
                    // still running now. Block until one stops (or exits).
                    self.seen_all_running();
                    if let Peek::Member(index) = self.peek(WaitPidFlag::empty()) {
                        if let Some(event) = self.collect(index) {
                            return Some(event);
                        }
                    }
                    continue;
                }
                Peek::Foreign => {}
            }
            if let Some(event) = self.sweep() {
                return Some(event);
            }
            idle_passes += 1;
            std::thread::sleep(Duration::from_micros(if idle_passes < 64 {
                20
            } else {
                200
            }));
        }
    }

    /// Which tracee or child has an unreported state change, without consuming it.
    fn peek(&self, blocking: WaitPidFlag) -> Peek {
        let flags = WaitPidFlag::__WALL
            | WaitPidFlag::WEXITED
            | WaitPidFlag::WSTOPPED
            | WaitPidFlag::WNOWAIT
            | blocking;
        match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) => Peek::Nothing,
            Ok(status) => status
                .pid()
                .and_then(|pid| {
                    self.members
                        .iter()
                        .position(|m| m.tid == pid && m.state == MemberState::Interrupted)
                })
                .map_or(Peek::Foreign, Peek::Member),
            // EINTR (a signal), ECHILD (nothing to wait for), or a status nix cannot parse:
            // fall back to polling the members.
            Err(_) => Peek::Foreign,
        }
    }

    /// Every member still interrupted was seen running now: its stop, when it comes, begins
    /// after this moment.
    fn seen_all_running(&mut self) {
        let now = Instant::now();
        for m in &mut self.members {
            if m.state == MemberState::Interrupted {
                m.running_seen = now;
            }
        }
    }

    /// Polls every outstanding member once, starting after the last one polled.
    fn sweep(&mut self) -> Option<BatchEvent> {
        for _ in 0..self.members.len() {
            let index = self.cursor % self.members.len();
            self.cursor = index + 1;
            if self.members[index].state == MemberState::Interrupted {
                if let Some(event) = self.collect(index) {
                    return Some(event);
                }
            }
        }
        None
    }

    /// Consumes member `index`'s state change, if it has one.
    fn collect(&mut self, index: usize) -> Option<BatchEvent> {
        let m = &mut self.members[index];
        let tid = m.tid.as_raw();
        match waitpid(m.tid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {
                m.running_seen = Instant::now();
                None
            }
            Ok(WaitStatus::PtraceEvent(..)) => {
                m.state = MemberState::Stopped(None);
                Some(BatchEvent::Stopped { index, tid })
            }
            Ok(WaitStatus::Stopped(_, sig)) => {
                m.state = MemberState::Stopped(Some(sig));
                Some(BatchEvent::Stopped { index, tid })
            }
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
            | Err(Errno::ECHILD | Errno::ESRCH) => {
                m.state = MemberState::Released;
                Some(BatchEvent::Exited(tid))
            }
            Ok(_) => None,
            Err(e) => {
                // Cannot happen for a tracee of ours; give it up without leaving it held.
                let _ = ptrace::detach(m.tid, None);
                m.state = MemberState::Released;
                Some(BatchEvent::Failed(tid, "waitpid", e))
            }
        }
    }

    /// How long member `index` has been stopped at most (from the last time it was seen running).
    pub fn stopped_for(&self, index: usize) -> Duration {
        self.members[index].running_seen.elapsed()
    }

    /// Resumes member `index` (after its reads).
    pub fn release(&mut self, index: usize) {
        let m = &mut self.members[index];
        if let MemberState::Stopped(pending) = m.state {
            let _ = ptrace::detach(m.tid, pending);
        }
        m.state = MemberState::Released;
    }
}

impl Drop for BatchStop {
    fn drop(&mut self) {
        for m in &mut self.members {
            match m.state {
                MemberState::Stopped(pending) => {
                    let _ = ptrace::detach(m.tid, pending);
                }
                // Interrupted: its stop is coming (or it exits); collect it, then detach.
                MemberState::Interrupted => loop {
                    match waitpid(m.tid, Some(WaitPidFlag::__WALL)) {
                        Ok(WaitStatus::PtraceEvent(..)) => {
                            let _ = ptrace::detach(m.tid, None);
                            break;
                        }
                        Ok(WaitStatus::Stopped(_, sig)) => {
                            let _ = ptrace::detach(m.tid, Some(sig));
                            break;
                        }
                        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => break,
                        Ok(_) | Err(Errno::EINTR) => continue,
                        Err(_) => break,
                    }
                },
                MemberState::Released => {}
            }
            m.state = MemberState::Released;
        }
    }
}

/// What a session keeps per thread: its thread pointer (fixed for the thread's life), its name,
/// and an open `stat` file, re-read each snapshot (one `pread`) for the state, the name and the
/// start time: a tid reused by a new thread has another start time (and the old file fails with
/// ESRCH), so nothing cached outlives its thread.
#[derive(Debug)]
struct CachedThread {
    start_time: u64,
    name: Bytes,
    tp: Option<u64>,
    stat: Option<File>,
}

/// Per-thread facts of one process, kept by a `Session`.
#[derive(Debug)]
pub struct ThreadCache {
    threads: HashMap<i32, CachedThread>,
    /// Open `stat` files allowed (a share of `RLIMIT_NOFILE`); further threads reopen each time.
    fd_budget: usize,
    open_files: usize,
}

impl Default for ThreadCache {
    fn default() -> Self {
        ThreadCache {
            threads: HashMap::new(),
            fd_budget: (sys::open_file_limit() / 4) as usize,
            open_files: 0,
        }
    }
}

impl ThreadCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The thread's current state, refreshing the cached entry when the tid is new or reused;
    /// `None` when the thread is gone.
    fn probe(&mut self, pid: i32, tid: i32) -> Option<(ThreadStat, &CachedThread)> {
        let fresh = |c: &CachedThread| match &c.stat {
            Some(f) => read_stat(f),
            None => File::open(stat_path(pid, tid))
                .ok()
                .and_then(|f| read_stat(&f)),
        };
        let cached = self.threads.get(&tid).and_then(|c| {
            let stat = fresh(c)?;
            (stat.start_time == c.start_time).then_some(stat)
        });
        if let Some(stat) = cached {
            let c = self.threads.get_mut(&tid).expect("just read");
            if c.name.0 != stat.name() {
                c.name = Bytes(stat.name().to_vec()); // renamed since (pthread_setname_np)
            }
            return Some((stat, c));
        }
        self.forget(tid);
        let file = File::open(stat_path(pid, tid)).ok()?;
        let stat = read_stat(&file)?;
        let keep = self.open_files < self.fd_budget;
        self.open_files += usize::from(keep);
        let entry = CachedThread {
            start_time: stat.start_time,
            name: Bytes(stat.name().to_vec()),
            tp: None,
            stat: keep.then_some(file),
        };
        Some((stat, self.threads.entry(tid).or_insert(entry)))
    }

    fn forget(&mut self, tid: i32) {
        if let Some(c) = self.threads.remove(&tid) {
            self.open_files -= usize::from(c.stat.is_some());
        }
    }

    fn set_tp(&mut self, tid: i32, tp: u64) {
        if let Some(c) = self.threads.get_mut(&tid) {
            c.tp = Some(tp);
        }
    }

    fn tp(&self, tid: i32) -> Option<u64> {
        self.threads.get(&tid).and_then(|c| c.tp)
    }

    /// Forgets threads no longer listed.
    fn retain(&mut self, seen: &BTreeSet<i32>) {
        let gone: Vec<i32> = self
            .threads
            .keys()
            .filter(|t| !seen.contains(t))
            .copied()
            .collect();
        for tid in gone {
            self.forget(tid);
        }
    }
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
    /// How long each thread was stopped at most: seize to detach one at a time; for batched
    /// threads, from the last time the thread was seen running to detach.
    pub windows: Vec<Duration>,
    /// Threads read through the batch path (they were running when listed).
    pub batched: usize,
}

#[derive(Debug)]
pub enum WalkError {
    Permission(Errno),
    /// The process exited while its threads were being stopped.
    ProcessExited,
    Interrupted,
    Injected,
}

/// Why PTRACE_SEIZE said EPERM for one thread.
enum Refusal {
    /// The thread has exited (zombie, dead or no longer listed).
    Exited,
    /// Another tracer holds it.
    Traced { tracer: i32 },
    /// Nothing else explains it: permission.
    Permission(Errno),
}

fn status_field(status: &str, name: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
}

fn why_refused(pid: i32, tid: i32, e: Errno) -> Refusal {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")) else {
        return Refusal::Exited;
    };
    let state = status_field(&status, "State:").unwrap_or_default();
    if state.starts_with(['Z', 'X', 'x']) {
        return Refusal::Exited;
    }
    match status_field(&status, "TracerPid:").and_then(|t| t.parse().ok()) {
        Some(tracer) if tracer != 0 => Refusal::Traced { tracer },
        _ => Refusal::Permission(e),
    }
}

/// One snapshot's walk over the threads of a process.
struct Walk<'a, F> {
    pid: i32,
    only: Option<&'a [i32]>,
    fault: Option<Fault>,
    cache: &'a mut ThreadCache,
    stats: &'a mut StopStats,
    read: F,
    stopped: usize,
    seized_any: bool,
    threads: Vec<ThreadSnapshot>,
}

impl<F: FnMut(u64, &mut ThreadSnapshot)> Walk<'_, F> {
    fn new_thread(&self, tid: i32) -> ThreadSnapshot {
        let name = self
            .cache
            .threads
            .get(&tid)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| thread_name(self.pid, tid));
        ThreadSnapshot::new(tid, name)
    }

    /// A thread that is gone: reported only if it was asked for.
    fn vanished(&mut self, tid: i32) {
        if self.only.is_some() {
            let mut thread = self.new_thread(tid);
            thread.errors.push(exited(tid));
            self.threads.push(thread);
        }
    }

    fn failed(&mut self, tid: i32, detail: String) {
        let mut thread = self.new_thread(tid);
        thread
            .errors
            .push(ReadError::new(Format::Tls, ErrorKind::Ptrace, detail));
        self.threads.push(thread);
    }

    /// A thread that could not be stopped: its own entry, or the whole walk's error when it is
    /// really a permission problem.
    fn stop_failed(&mut self, tid: i32, e: StopError) -> Result<(), WalkError> {
        match e {
            StopError::Exited => self.vanished(tid),
            StopError::Permission(e) => {
                match why_refused(self.pid, tid, e) {
                    Refusal::Exited => self.vanished(tid),
                    Refusal::Traced { tracer } => {
                        let name = std::fs::read_to_string(format!("/proc/{tracer}/comm"))
                            .map(|n| format!(" ({})", n.trim_end()))
                            .unwrap_or_default();
                        self.failed(
                        tid,
                        format!("thread {tid} is traced by another tracer: TracerPid {tracer}{name}"),
                    );
                    }
                    Refusal::Permission(e) if self.seized_any => {
                        self.failed(tid, format!("PTRACE_SEIZE on thread {tid}: {}", e.desc()))
                    }
                    Refusal::Permission(_) if process_exited(self.pid) => {
                        return Err(WalkError::ProcessExited)
                    }
                    Refusal::Permission(e) => return Err(WalkError::Permission(e)),
                }
            }
            StopError::Other(call, e) => {
                self.failed(tid, format!("{call} on thread {tid}: {}", e.desc()))
            }
        }
        Ok(())
    }

    /// Reads one stopped thread.
    fn serve(&mut self, tid: i32) -> Result<(), WalkError> {
        match self.fault {
            Some(Fault::ErrorAt(n)) if n == self.stopped => return Err(WalkError::Injected),
            Some(Fault::PanicAt(n)) if n == self.stopped => {
                panic!("injected fault at thread {tid}")
            }
            _ => {}
        }
        self.stopped += 1;
        self.seized_any = true;
        let mut thread = self.new_thread(tid);
        let tp = match self.cache.tp(tid) {
            Some(tp) => Ok(tp),
            None => sys::thread_pointer(Pid::from_raw(tid)),
        };
        match tp {
            Ok(tp) => {
                self.cache.set_tp(tid, tp);
                (self.read)(tp, &mut thread);
            }
            Err(Errno::ESRCH) => thread.errors.push(exited(tid)),
            Err(e) => thread.errors.push(ReadError::new(
                Format::Tls,
                ErrorKind::Ptrace,
                format!("reading the thread pointer of {tid}: {}", e.desc()),
            )),
        }
        self.threads.push(thread);
        Ok(())
    }

    fn one(&mut self, tid: i32) -> Result<(), WalkError> {
        match ThreadStop::seize(tid) {
            Ok(stop) => {
                self.serve(tid)?;
                self.stats.windows.push(stop.stopped_for());
                drop(stop);
                Ok(())
            }
            Err(e) => self.stop_failed(tid, e),
        }
    }

    fn batch(&mut self, tids: &[i32]) -> Result<(), WalkError> {
        let mut batch = BatchStop::new();
        for &tid in tids {
            if let Err(e) = batch.add(tid) {
                self.stop_failed(tid, e)?;
            }
        }
        while let Some(event) = batch.next_stop() {
            match event {
                BatchEvent::Stopped { index, tid } => {
                    self.serve(tid)?;
                    self.stats.windows.push(batch.stopped_for(index));
                    self.stats.batched += 1;
                    batch.release(index);
                }
                BatchEvent::Exited(tid) => self.vanished(tid),
                BatchEvent::Failed(tid, call, e) => {
                    self.failed(tid, format!("{call} on thread {tid}: {}", e.desc()))
                }
            }
        }
        Ok(())
    }
}

/// Stops each thread of `pid` and calls `read(tp, &mut thread)` while it is stopped: sleeping
/// threads one at a time, running ones (state `R` when listed) in batches of `BATCH_SIZE`.
/// Threads that appear meanwhile are read in further rounds; threads that exit are reported
/// (`thread_exited`) when asked for by `only`, dropped otherwise.
pub fn walk_threads(
    pid: i32,
    only: Option<&[i32]>,
    fault: Option<Fault>,
    cache: &mut ThreadCache,
    stats: &mut StopStats,
    read: impl FnMut(u64, &mut ThreadSnapshot),
) -> Result<(Vec<ThreadSnapshot>, Vec<ReadError>), WalkError> {
    let mut seen = BTreeSet::new();
    let mut errors = Vec::new();
    let mut walk = Walk {
        pid,
        only,
        fault,
        cache,
        stats,
        read,
        stopped: 0,
        seized_any: false,
        threads: Vec::new(),
    };
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
        let mut running = Vec::new();
        for tid in tids {
            if sys::interrupted() {
                return Err(WalkError::Interrupted);
            }
            seen.insert(tid);
            match walk.cache.probe(pid, tid).map(|(stat, _)| stat) {
                None => walk.vanished(tid),
                Some(stat) if stat.is_exited() => walk.vanished(tid),
                Some(stat) if stat.state == b'R' => running.push(tid),
                Some(_) => walk.one(tid)?,
            }
        }
        for chunk in running.chunks(BATCH_SIZE) {
            if sys::interrupted() {
                return Err(WalkError::Interrupted);
            }
            walk.batch(chunk)?;
        }
    }
    if only.is_none() {
        walk.cache.retain(&seen);
    }
    Ok((walk.threads, errors))
}

fn exited(tid: i32) -> ReadError {
    ReadError::new(
        Format::Tls,
        ErrorKind::ThreadExited,
        format!("thread {tid} exited during the snapshot"),
    )
}

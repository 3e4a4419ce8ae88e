//! The few raw system interfaces of the reader: process memory, registers and the interrupt flag.
//! Every `unsafe` block of the crate is in this file, each with the invariant it relies on.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

use crate::memory::{Memory, MemoryError};

/// The memory of a live process, read with `process_vm_readv` (needs ptrace access).
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    pid: Pid,
}

impl ProcessMemory {
    pub fn new(pid: i32) -> Self {
        ProcessMemory {
            pid: Pid::from_raw(pid),
        }
    }
}

impl Memory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        // Whole or error: a read that stops short (pitfall 25) is one of fewer than all bytes.
        let len = buf.len();
        self.read_upto(addr, buf, len).map(|_| ())
    }

    fn read_upto(&self, addr: u64, buf: &mut [u8], min: usize) -> Result<usize, MemoryError> {
        let min = min.min(buf.len());
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len();
        let remote = [RemoteIoVec {
            base: addr as usize,
            len,
        }];
        let mut local = [std::io::IoSliceMut::new(buf)];
        match process_vm_readv(self.pid, &mut local, &remote) {
            Ok(n) if n >= min => Ok(n),
            Ok(n) => Err(MemoryError::new(
                addr,
                min,
                format!("short read of {n} bytes"),
            )),
            Err(e) => Err(MemoryError::new(addr, min, e.desc())),
        }
    }

    /// One `process_vm_readv` for all ranges (in chunks of `IOV_MAX`). The kernel stops at the
    /// first range it cannot read: the ranges it filled completely are done, the rest are read
    /// one by one so that each failure gets its own error.
    fn read_many(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), MemoryError>> {
        const IOV_MAX: usize = 1024;
        let mut results = Vec::with_capacity(reqs.len());
        for chunk in reqs.chunks_mut(IOV_MAX) {
            let remote: Vec<RemoteIoVec> = chunk
                .iter()
                .map(|(addr, buf)| RemoteIoVec {
                    base: *addr as usize,
                    len: buf.len(),
                })
                .collect();
            let total: usize = remote.iter().map(|r| r.len).sum();
            let done = {
                let mut local: Vec<std::io::IoSliceMut> = chunk
                    .iter_mut()
                    .map(|(_, buf)| std::io::IoSliceMut::new(buf))
                    .collect();
                if total == 0 {
                    0
                } else {
                    process_vm_readv(self.pid, &mut local, &remote).unwrap_or(0)
                }
            };
            let mut filled = 0usize;
            for (addr, buf) in chunk.iter_mut() {
                filled += buf.len();
                results.push(if filled <= done {
                    Ok(())
                } else {
                    self.read(*addr, buf)
                });
            }
        }
        results
    }
}

/// Reads the thread pointer of a ptrace-stopped thread.
#[cfg(target_arch = "x86_64")]
pub fn thread_pointer(tid: Pid) -> Result<u64, Errno> {
    nix::sys::ptrace::getregs(tid).map(|regs| regs.fs_base)
}

/// Reads the thread pointer (`TPIDR_EL0`) of a ptrace-stopped thread through `NT_ARM_TLS`.
#[cfg(target_arch = "aarch64")]
pub fn thread_pointer(tid: Pid) -> Result<u64, Errno> {
    const NT_ARM_TLS: libc::c_int = 0x401;
    let mut tp: u64 = 0;
    let mut iov = libc::iovec {
        iov_base: (&mut tp as *mut u64).cast(),
        iov_len: std::mem::size_of::<u64>(),
    };
    // SAFETY: PTRACE_GETREGSET writes at most `iov.iov_len` (8) bytes into `tp`, which lives for
    // the whole call; the kernel updates `iov_len` to the size it wrote.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            tid.as_raw(),
            NT_ARM_TLS as usize as *mut libc::c_void,
            &mut iov as *mut libc::iovec,
        )
    };
    if rc == -1 {
        return Err(Errno::last());
    }
    Ok(tp)
}

/// The soft `RLIMIT_NOFILE`: how many files the reader may have open.
pub fn open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into `limit`, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    }
}

/// A read-only map of a whole file, for ELF files too big to read into memory.
pub fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is only read as bytes. If another process truncates the file meanwhile,
    // touching a page past the new end raises SIGBUS; the reader maps executables and libraries
    // that a running process has mapped, which are not truncated in place (writing to a running
    // executable fails with ETXTBSY, and library updates replace the file by rename).
    unsafe { memmap2::Mmap::map(file) }
}

/// The reader thread's scheduling priority, raised for the length of a snapshot and restored on
/// drop, so that busy targets do not keep the reader off the CPU while it holds their threads.
#[derive(Debug)]
pub struct RaisedPriority {
    old: libc::c_int,
}

/// Sets the calling thread's nice value to `nice` if that is a raise; needs `CAP_SYS_NICE`
/// (or a permissive `RLIMIT_NICE`) for negative values.
pub fn raise_priority(nice: libc::c_int) -> Result<RaisedPriority, Errno> {
    Errno::clear();
    // SAFETY: getpriority only reads its integer arguments; -1 is also a valid result, so errno
    // (cleared above) tells failure apart.
    let old = unsafe { libc::getpriority(libc::PRIO_PROCESS as _, 0) };
    if old == -1 && Errno::last_raw() != 0 {
        return Err(Errno::last());
    }
    if old <= nice {
        return Ok(RaisedPriority { old });
    }
    // SAFETY: setpriority takes plain integers; `who` 0 with PRIO_PROCESS is the calling thread
    // on Linux, so other threads of the reader (e.g. parallel tests) are not affected.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, nice) } == -1 {
        return Err(Errno::last());
    }
    Ok(RaisedPriority { old })
}

impl Drop for RaisedPriority {
    fn drop(&mut self) {
        // SAFETY: as in `raise_priority`; lowering our own priority back is always allowed.
        unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, self.old) };
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag instead of killing the reader, so that a snapshot in
/// progress finishes its current thread and resumes it before the reader exits.
pub fn install_interrupt_handler() -> Result<(), Errno> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(())
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The calling thread raised to `SCHED_FIFO` priority 1 (the lowest real-time priority) until
/// the guard drops, which restores the policy and priority it had. Used for the span of a
/// snapshot by both backends: when the target's own busy threads saturate the CPUs, a fair share
/// of one CPU is a few per cent, and serving stopped threads, loading the program (the verifier
/// runs in the caller's syscall) or draining the ring buffer would take minutes instead of
/// milliseconds. The reader sleeps or blocks between polls, so it takes the CPU only for what it really does.
#[derive(Debug)]
pub struct RealtimeGuard {
    policy: i32,
    priority: i32,
}

/// See [`RealtimeGuard`]; fails with the errno (e.g. `EPERM` without `CAP_SYS_NICE`).
pub fn raise_to_realtime() -> Result<RealtimeGuard, Errno> {
    // SAFETY: pid 0 names the calling thread; sched_getscheduler reads nothing from us.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 {
        return Err(Errno::last());
    }
    let mut previous = libc::sched_param { sched_priority: 0 };
    // SAFETY: `previous` is a live, writable sched_param on our stack for the whole call.
    if unsafe { libc::sched_getparam(0, &mut previous) } != 0 {
        return Err(Errno::last());
    }
    let raised = libc::sched_param { sched_priority: 1 };
    // SAFETY: `raised` is a valid sched_param on our stack, read during the call only.
    // SCHED_RESET_ON_FORK: a child of this thread does not inherit the real-time policy.
    let rc = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &raised)
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok(RealtimeGuard {
        // the reset-on-fork bit is reported in the policy; it is not a policy of its own
        policy: policy & !libc::SCHED_RESET_ON_FORK,
        priority: previous.sched_priority,
    })
}

impl Drop for RealtimeGuard {
    fn drop(&mut self) {
        let param = libc::sched_param {
            sched_priority: self.priority,
        };
        // SAFETY: `param` is a valid sched_param on our stack, read during the call only.
        // Lowering one's own priority is always allowed; there is nothing to do if it fails.
        let _ = unsafe { libc::sched_setscheduler(0, self.policy, &param) };
    }
}

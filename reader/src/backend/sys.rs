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
        if buf.is_empty() {
            return Ok(());
        }
        let len = buf.len();
        let remote = [RemoteIoVec {
            base: addr as usize,
            len,
        }];
        let mut local = [std::io::IoSliceMut::new(buf)];
        match process_vm_readv(self.pid, &mut local, &remote) {
            Ok(n) if n == len => Ok(()),
            // The kernel stops at the first unmapped page (pitfall 25).
            Ok(n) => Err(MemoryError::new(
                addr,
                len,
                format!("short read of {n} bytes"),
            )),
            Err(e) => Err(MemoryError::new(addr, len, e.desc())),
        }
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

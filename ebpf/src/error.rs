//! Errors of loading and running the sampler, shaped so that the CLI can say what is missing.

use std::io;

/// What the CLI needs to tell the user why the eBPF backend is unavailable.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// A BPF or perf syscall was refused for lack of privilege.
    #[error(
        "{operation} was refused ({source}): the eBPF backend needs root, or CAP_BPF and \
         CAP_PERFMON (kernel >= 5.8; CAP_SYS_ADMIN before that)"
    )]
    PermissionDenied {
        operation: &'static str,
        #[source]
        source: io::Error,
    },
    /// The kernel exposes no BTF, so the CO-RE relocations cannot be resolved.
    #[error(
        "kernel BTF not found at {path} (the kernel needs CONFIG_DEBUG_INFO_BTF=y for the eBPF backend)"
    )]
    BtfMissing { path: &'static str },
    /// The kernel's BTF lacks a field the program reads (e.g. `task_struct.thread.fsbase`).
    #[error("CO-RE relocation against the kernel BTF failed: {detail}")]
    CoreRelocation { detail: String },
    /// The verifier refused the program; `log` is its output (show it with `--verbose`).
    #[error(
        "the kernel verifier rejected the BPF program ({source}); the verifier log has the reason"
    )]
    VerifierRejected {
        log: String,
        #[source]
        source: io::Error,
    },
    /// A syscall failed for a reason other than privilege.
    #[error("{call} failed: {source}")]
    Syscall {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    /// The embedded object lacks a map or program this loader expects (a build mismatch).
    #[error("the embedded BPF object has no {kind} named {name}")]
    ObjectMismatch {
        kind: &'static str,
        name: &'static str,
    },
    /// Any other aya loading failure (ELF parsing, map creation, relocation).
    #[error("loading the BPF object failed: {0}")]
    Load(#[source] aya::EbpfError),
    /// A map operation failed.
    #[error("BPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    /// A program operation (load, attach, info) failed in a way not listed above.
    #[error("BPF program: {0}")]
    Program(#[source] aya::programs::ProgramError),
    /// A slot rule cannot be executed by the kernel program.
    #[error("invalid {format} slot rule: {reason}")]
    InvalidRule {
        format: &'static str,
        reason: String,
    },
    /// A ring-buffer record did not decode (kernel and user-space layouts disagree).
    #[error("malformed sample record: {0}")]
    Record(#[from] crate::sample::RecordError),
}

const EPERM: i32 = 1;
const EACCES: i32 = 13;

fn is_privilege(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(EPERM))
}

impl EbpfError {
    /// Classifies an error of `aya::EbpfLoader::load` (map creation, BTF, relocations).
    pub(crate) fn from_loader(error: aya::EbpfError) -> EbpfError {
        match error {
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                if is_privilege(&io_error) || io_error.raw_os_error() == Some(EACCES) =>
            {
                EbpfError::PermissionDenied {
                    operation: "bpf(BPF_MAP_CREATE)",
                    source: io_error,
                }
            }
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) => {
                EbpfError::Syscall {
                    call: "bpf(BPF_MAP_CREATE)",
                    source: io_error,
                }
            }
            aya::EbpfError::BtfRelocationError(error) => EbpfError::CoreRelocation {
                detail: chain(&error),
            },
            other => EbpfError::Load(other),
        }
    }

    /// Classifies an error of loading or attaching the program.
    pub(crate) fn from_program(error: aya::programs::ProgramError) -> EbpfError {
        use aya::programs::ProgramError;
        match error {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                if is_privilege(&io_error) {
                    EbpfError::PermissionDenied {
                        operation: "bpf(BPF_PROG_LOAD)",
                        source: io_error,
                    }
                } else {
                    EbpfError::VerifierRejected {
                        log: verifier_log.to_string(),
                        source: io_error,
                    }
                }
            }
            ProgramError::SyscallError(aya::sys::SyscallError { call, io_error })
                if is_privilege(&io_error) || io_error.raw_os_error() == Some(EACCES) =>
            {
                EbpfError::PermissionDenied {
                    operation: call,
                    source: io_error,
                }
            }
            ProgramError::SyscallError(aya::sys::SyscallError { call, io_error }) => {
                EbpfError::Syscall {
                    call,
                    source: io_error,
                }
            }
            other => EbpfError::Program(other),
        }
    }

    /// Whether this is `ESRCH` from `perf_event_open`: the thread exited before its event was
    /// opened.
    pub fn is_no_such_thread(&self) -> bool {
        const ESRCH: i32 = 3;
        matches!(self, EbpfError::Syscall { source, .. } if source.raw_os_error() == Some(ESRCH))
    }

    /// The verifier log, when the verifier rejected the program.
    pub fn verifier_log(&self) -> Option<&str> {
        match self {
            EbpfError::VerifierRejected { log, .. } => Some(log),
            _ => None,
        }
    }
}

/// `error` and its sources, joined with ": ".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

//! The core-file backend: synthetic cores (built byte by byte here: notes of both arches,
//! segments dumped or not, truncated, another machine, missing notes, a sysroot with another
//! build) and cores of the running writer taken with `gcore`, read like the ptrace backend reads
//! the live process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

#[cfg(target_arch = "x86_64")]
use rstest::rstest;
use serde_json::{json, Value};

#[cfg(target_arch = "x86_64")]
use crate::writer::Writer;
use crate::writer::{build_writer, expected, main_thread_name, Libc, Placement};

use context_reader::backend::core::{CoreError, CoreFile, CoreMemory, NT_ARM_TLS};
use context_reader::memory::Memory;
#[cfg(target_arch = "x86_64")]
use context_reader::session::snapshot_core;
use context_reader::session::snapshot_of_core;
use context_reader::snapshot::ErrorKind;
use context_reader::SnapshotOptions;

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
/// The machine the test writers are built for, so synthetic cores can map them; and another.
const EM_NATIVE: u16 = if cfg!(target_arch = "aarch64") {
    EM_AARCH64
} else {
    EM_X86_64
};
const EM_FOREIGN: u16 = if EM_NATIVE == EM_X86_64 {
    EM_AARCH64
} else {
    EM_X86_64
};
const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
const NT_FILE: u32 = 0x4649_4c45;

/// A core file built from parts: notes in one `PT_NOTE`, then `PT_LOAD` segments whose dumped
/// bytes follow in the file.
#[derive(Debug, Clone)]
pub struct CoreBuilder {
    pub machine: u16,
    pub e_type: u16,
    pub notes: Vec<(&'static [u8], u32, Vec<u8>)>,
    /// `(vaddr, dumped bytes, memsz, p_flags)`.
    pub loads: Vec<(u64, Vec<u8>, u64, u32)>,
    pub with_note_segment: bool,
}

impl CoreBuilder {
    pub fn new(machine: u16) -> Self {
        CoreBuilder {
            machine,
            e_type: 4,
            notes: Vec::new(),
            loads: Vec::new(),
            with_note_segment: true,
        }
    }

    /// `NT_PRSTATUS` of thread `tid`; on x86-64 with `fs_base = tp`.
    pub fn thread(mut self, tid: i32, tp: u64) -> Self {
        let size = if self.machine == EM_X86_64 { 336 } else { 392 };
        let mut d = vec![0u8; size];
        d[32..36].copy_from_slice(&(tid as u32).to_le_bytes());
        if self.machine == EM_X86_64 {
            d[112 + 21 * 8..112 + 22 * 8].copy_from_slice(&tp.to_le_bytes());
        }
        self.notes.push((b"CORE", NT_PRSTATUS, d));
        self
    }

    /// `NT_ARM_TLS` (for the thread of the last `NT_PRSTATUS`).
    pub fn arm_tls(mut self, tp: u64) -> Self {
        self.notes
            .push((b"LINUX", NT_ARM_TLS, [tp.to_le_bytes(), [0; 8]].concat()));
        self
    }

    pub fn psinfo(mut self, pid: i32, name: &[u8]) -> Self {
        let mut d = vec![0u8; 136];
        d[24..28].copy_from_slice(&(pid as u32).to_le_bytes());
        d[40..40 + name.len().min(16)].copy_from_slice(&name[..name.len().min(16)]);
        self.notes.push((b"CORE", NT_PRPSINFO, d));
        self
    }

    pub fn entry(mut self, entry: u64) -> Self {
        let mut d = Vec::new();
        for (k, v) in [(9u64, entry), (0, 0)] {
            d.extend_from_slice(&k.to_le_bytes());
            d.extend_from_slice(&v.to_le_bytes());
        }
        self.notes.push((b"CORE", NT_AUXV, d));
        self
    }

    /// `NT_FILE` with `(start, end, byte offset, path)` entries (page size 4096).
    pub fn files(mut self, files: &[(u64, u64, u64, &str)]) -> Self {
        let mut d = Vec::new();
        d.extend_from_slice(&(files.len() as u64).to_le_bytes());
        d.extend_from_slice(&4096u64.to_le_bytes());
        for (s, e, o, _) in files {
            for v in [*s, *e, o / 4096] {
                d.extend_from_slice(&v.to_le_bytes());
            }
        }
        for (_, _, _, p) in files {
            d.extend_from_slice(p.as_bytes());
            d.push(0);
        }
        self.notes.push((b"CORE", NT_FILE, d));
        self
    }

    pub fn load(mut self, vaddr: u64, dumped: Vec<u8>, memsz: u64, flags: u32) -> Self {
        self.loads.push((vaddr, dumped, memsz, flags));
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut notes = Vec::new();
        for (name, ty, desc) in &self.notes {
            notes.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&ty.to_le_bytes());
            notes.extend_from_slice(name);
            notes.push(0);
            while notes.len() % 4 != 0 {
                notes.push(0);
            }
            notes.extend_from_slice(desc);
            while notes.len() % 4 != 0 {
                notes.push(0);
            }
        }
        let phnum = self.loads.len() + usize::from(self.with_note_segment);
        let mut offset = (64 + 56 * phnum) as u64;
        let mut h = b"\x7fELF\x02\x01\x01\x00".to_vec();
        h.resize(16, 0);
        h.extend_from_slice(&self.e_type.to_le_bytes());
        h.extend_from_slice(&self.machine.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes()); // entry
        h.extend_from_slice(&64u64.to_le_bytes()); // phoff
        h.extend_from_slice(&0u64.to_le_bytes()); // shoff
        h.extend_from_slice(&0u32.to_le_bytes()); // flags
        for v in [64u16, 56, phnum as u16, 64, 0, 0] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        let phdr = |h: &mut Vec<u8>,
                    ty: u32,
                    flags: u32,
                    off: u64,
                    vaddr: u64,
                    filesz: u64,
                    memsz: u64,
                    align: u64| {
            h.extend_from_slice(&ty.to_le_bytes());
            h.extend_from_slice(&flags.to_le_bytes());
            for v in [off, vaddr, 0, filesz, memsz, align] {
                h.extend_from_slice(&v.to_le_bytes());
            }
        };
        if self.with_note_segment {
            phdr(&mut h, 4, 0, offset, 0, notes.len() as u64, 0, 4);
            offset += notes.len() as u64;
        }
        for (vaddr, dumped, memsz, flags) in &self.loads {
            phdr(
                &mut h,
                1,
                *flags,
                offset,
                *vaddr,
                dumped.len() as u64,
                *memsz,
                4096,
            );
            offset += dumped.len() as u64;
        }
        if self.with_note_segment {
            h.extend_from_slice(&notes);
        }
        for (_, dumped, _, _) in &self.loads {
            h.extend_from_slice(dumped);
        }
        h
    }
}

fn parse(b: &CoreBuilder) -> Result<CoreFile, CoreError> {
    CoreFile::from_bytes(b.build())
}

fn basic(machine: u16) -> CoreBuilder {
    CoreBuilder::new(machine)
        .thread(100, 0x7f00_0000_0740)
        .psinfo(100, b"writer")
        .entry(0x40_1000)
        .files(&[
            (0x40_0000, 0x40_1000, 0, "/w/writer"),
            (0x40_1000, 0x40_2000, 0x1000, "/w/writer"),
        ])
        .thread(101, 0x7f00_0001_0740)
        .load(0x40_0000, vec![0xaa; 0x800], 0x1000, 4)
        .load(0x7f00_0000_0000, vec![0x11; 0x1000], 0x1000, 6)
        .load(0x7f00_0000_1000, vec![0x22; 0x1000], 0x1000, 6)
}

#[test]
fn x86_64_threads_and_fs_base_from_nt_prstatus() {
    let core = parse(&basic(EM_X86_64)).unwrap();
    assert_eq!(core.pid, 100);
    assert_eq!(core.name.as_deref(), Some(&b"writer"[..]));
    let threads: Vec<_> = core.threads.iter().map(|t| (t.tid, t.tp.clone())).collect();
    assert_eq!(
        threads,
        [(100, Ok(0x7f00_0000_0740)), (101, Ok(0x7f00_0001_0740))]
    );
    assert_eq!(core.executable(), Some("/w/writer"));
    let maps = core.mappings();
    let paths: Vec<_> = maps
        .iter()
        .map(|m| (m.start, m.offset, m.path.as_str(), m.is_file()))
        .collect();
    assert_eq!(
        paths,
        [
            (0x40_0000, 0, "/w/writer", true),
            (0x40_1000, 0x1000, "/w/writer", true),
            (0x7f00_0000_0000, 0, "", false),
            (0x7f00_0000_1000, 0, "", false),
        ]
    );
    assert_eq!(maps[0].perms, "r--p");
}

/// aarch64: the thread pointer is the `NT_ARM_TLS` note after each thread's `NT_PRSTATUS`; a
/// thread without one has an error, not a guessed pointer.
#[test]
fn aarch64_thread_pointer_from_nt_arm_tls() {
    let b = CoreBuilder::new(EM_AARCH64)
        .thread(200, 0)
        .arm_tls(0xffff_8000_1000)
        .psinfo(200, b"w")
        .files(&[])
        .thread(201, 0)
        .arm_tls(0xffff_8000_2000)
        .thread(202, 0);
    let core = parse(&b).unwrap();
    assert_eq!(core.arch, context_reader::abi::Arch::Aarch64);
    assert_eq!(core.threads[0].tp, Ok(0xffff_8000_1000));
    assert_eq!(core.threads[1].tp, Ok(0xffff_8000_2000));
    assert!(core.threads[2]
        .tp
        .as_ref()
        .unwrap_err()
        .contains("no NT_ARM_TLS"));
    // An NT_ARM_TLS before any thread is a bad note.
    let early = CoreBuilder::new(EM_AARCH64)
        .arm_tls(1)
        .thread(1, 0)
        .files(&[]);
    assert!(matches!(parse(&early), Err(CoreError::BadNote { .. })));
}

#[test]
fn memory_from_dumped_segments_and_errors_for_what_was_not_dumped() {
    let core = parse(&basic(EM_X86_64)).unwrap();
    let mem = CoreMemory::dumped(&core);
    assert_eq!(mem.read_u64(0x40_0010).unwrap(), 0xaaaa_aaaa_aaaa_aaaa);
    // Across two adjacent segments.
    let mut b = [0u8; 4];
    mem.read(0x7f00_0000_0ffe, &mut b).unwrap();
    assert_eq!(b, [0x11, 0x11, 0x22, 0x22]);
    let e = mem.read_u64(0x40_0900).unwrap_err();
    assert!(e.reason.contains("not dumped"), "{e}");
    let e = mem.read_u64(0x50_0000).unwrap_err();
    assert!(e.reason.contains("not mapped in the core"), "{e}");
    assert!(mem.read_u64(u64::MAX - 3).is_err());
}

#[test]
fn truncated_cores_are_errors_or_unreadable_memory_never_panics() {
    let full = basic(EM_X86_64).build();
    let sysroot = tempfile::tempdir().unwrap();
    for len in 0..full.len() {
        let Ok(core) = CoreFile::from_bytes(full[..len].to_vec()) else {
            continue;
        };
        // What parses reads the cut segments as errors that say so.
        let mem = CoreMemory::dumped(&core);
        if let Err(e) = mem.read_u64(0x7f00_0000_1ff8) {
            assert!(
                e.reason.contains("truncated") || e.reason.contains("not mapped"),
                "{e}"
            );
        }
        let (snapshot, _) = snapshot_of_core(&core, sysroot.path(), &SnapshotOptions::default());
        assert_eq!(snapshot.pid, core.pid);
    }
    // Cut inside the headers: a parse error.
    assert!(matches!(
        CoreFile::from_bytes(full[..40].to_vec()),
        Err(CoreError::Parse(_))
    ));
}

#[test]
fn other_machines_other_types_and_missing_notes_are_clear_errors() {
    let riscv = basic(243);
    assert!(matches!(parse(&riscv), Err(CoreError::Machine(243))));
    let mut exe = basic(EM_X86_64);
    exe.e_type = 3;
    assert!(matches!(parse(&exe), Err(CoreError::NotCore(3))));
    let mut no_notes = basic(EM_X86_64);
    no_notes.with_note_segment = false;
    let e = parse(&no_notes).err().unwrap();
    assert!(e.to_string().contains("PT_NOTE"), "{e}");
    let no_threads = CoreBuilder::new(EM_X86_64).psinfo(1, b"w").files(&[]);
    let e = parse(&no_threads).err().unwrap();
    assert!(e.to_string().contains("NT_PRSTATUS"), "{e}");
    let no_files = CoreBuilder::new(EM_X86_64).thread(1, 0);
    let e = parse(&no_files).err().unwrap();
    assert!(e.to_string().contains("NT_FILE"), "{e}");
    // NT_FILE announcing more entries than it holds.
    let mut short = CoreBuilder::new(EM_X86_64)
        .thread(1, 0)
        .files(&[(0, 0x1000, 0, "/a")]);
    short.notes.last_mut().unwrap().2[0] = 5;
    assert!(matches!(parse(&short), Err(CoreError::BadNote { .. })));
    let mut huge = short.clone();
    huge.notes.last_mut().unwrap().2[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse(&huge), Err(CoreError::TooMany { .. })));
}

/// A test writer's executable (gcc's build id), and a core mapping it with its first page.
fn writer_core(first_page: &[u8]) -> CoreBuilder {
    CoreBuilder::new(EM_NATIVE)
        .thread(300, 0x7f00_0000_0740)
        .psinfo(300, b"w")
        .entry(0x40_0000)
        .files(&[(0x40_0000, 0x40_1000, 0, "/w/exe")])
        .load(0x40_0000, first_page.to_vec(), 0x1000, 5)
}

fn tls_errors(s: &context_reader::Snapshot) -> Vec<(ErrorKind, String)> {
    s.errors
        .iter()
        .map(|e| (e.kind, e.detail.clone()))
        .collect()
}

#[test]
fn sysroot_files_are_checked_against_the_build_id_in_the_core() {
    let exe = build_writer(Libc::Glibc, Placement::Executable);
    let bytes = std::fs::read(&exe).unwrap();
    let id = context_reader::backend::core::build_id(&bytes).expect("gcc writes build ids");
    let sysroot = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sysroot.path().join("w")).unwrap();
    std::fs::write(sysroot.path().join("w/exe"), &bytes).unwrap();
    let page = &bytes[..4096];
    let opts = SnapshotOptions::default();
    // The same build: the module is used (the synthetic core has none of its data pages, which
    // discovery then reports as not in the core).
    let core = parse(&writer_core(page)).unwrap();
    let (s, plan) = snapshot_of_core(&core, sysroot.path(), &opts);
    assert_eq!(plan.pid, 300);
    let errors = tls_errors(&s);
    assert!(!errors.is_empty());
    for (kind, detail) in errors {
        assert!(
            matches!(kind, ErrorKind::Unreadable | ErrorKind::TlsUnresolved)
                && detail.starts_with("/w/exe: ")
                && detail.ends_with("not mapped in the core"),
            "{kind:?} {detail}"
        );
    }
    // Another build (the build id in the core's first page differs): an error, module skipped.
    let mut other = page.to_vec();
    let at = other.windows(id.len()).position(|w| w == id).unwrap();
    other[at] ^= 0xff;
    let core = parse(&writer_core(&other)).unwrap();
    let (s, _) = snapshot_of_core(&core, sysroot.path(), &opts);
    let errors = tls_errors(&s);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, ErrorKind::BuildIdMismatch);
    assert!(errors[0].1.contains("/w/exe"), "{errors:?}");
    // Missing from the sysroot while the core shows an ELF image there: an error.
    let empty = tempfile::tempdir().unwrap();
    let core = parse(&writer_core(page)).unwrap();
    let (s, _) = snapshot_of_core(&core, empty.path(), &opts);
    let errors = tls_errors(&s);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, ErrorKind::Unreadable);
    // Missing, and the core shows something else than ELF there (a data file): not a module.
    let core = parse(&writer_core(&[0u8; 4096])).unwrap();
    let (s, _) = snapshot_of_core(&core, empty.path(), &opts);
    assert_eq!(tls_errors(&s), []);
    // A sysroot file for another machine.
    let mut foreign = bytes.clone();
    foreign[18..20].copy_from_slice(&EM_FOREIGN.to_le_bytes());
    std::fs::write(sysroot.path().join("w/exe"), &foreign).unwrap();
    let core = parse(&writer_core(&[0u8; 4096])).unwrap();
    let (s, _) = snapshot_of_core(&core, sysroot.path(), &opts);
    let errors = tls_errors(&s);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, ErrorKind::BuildIdMismatch);
}

/// What the writer published, as a core shows it: backend `core`, and no names for the threads
/// but the main one (a core holds only the main thread's, in `NT_PRPSINFO`).
fn expected_in_core(pid: i32, tids: &[i32], name: &str) -> Value {
    let mut want = expected(pid, tids, name);
    want["backend"] = json!("core");
    for t in want["threads"].as_array_mut().unwrap() {
        if t["tid"] != json!(pid) {
            t["name"] = json!("");
        }
    }
    want
}

fn without_timestamp(mut got: Value) -> Value {
    let published = got["process_context"]
        .as_object_mut()
        .and_then(|pc| pc.remove("published_at_ns"));
    assert!(published.and_then(|v| v.as_u64()).is_some_and(|t| t > 0));
    got
}

/// `gcore` of the running writer, read with the sysroot `/`: the same snapshot as ptrace's.
/// x86-64 only: the aarch64 VM guest has no gdb (there the kernel-core test below reads real
/// `NT_ARM_TLS` notes).
#[cfg(target_arch = "x86_64")]
#[rstest]
#[case::glibc_executable(Libc::Glibc, Placement::Executable)]
#[case::glibc_tlsdesc_dso(Libc::Glibc, Placement::TlsdescDso)]
#[case::musl_executable(Libc::Musl, Placement::Executable)]
#[case::musl_tlsdesc_dso(Libc::Musl, Placement::TlsdescDso)]
fn gcore_of_the_writer_reads_like_the_live_process(
    #[case] libc: Libc,
    #[case] placement: Placement,
) {
    let exe = build_writer(libc, placement);
    let writer = Writer::start(&exe);
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("core");
    let out = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(writer.pid().to_string())
        .output()
        .expect("gcore (gdb) is installed by cargo xtask setup");
    assert!(
        out.status.success(),
        "gcore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let core = dir.path().join(format!("core.{}", writer.pid()));
    let (snapshot, _) =
        snapshot_core(&core, Path::new("/"), &SnapshotOptions::default()).expect("core");
    let got = without_timestamp(snapshot.to_json());
    let want = expected_in_core(writer.pid(), &writer.tids, &main_thread_name(&exe));
    assert_eq!(got, want, "\n got: {got:#}\nwant: {want:#}");
}

/// The kernel's own core of a writer killed by SIGABRT, read by the `context-reader core`
/// binary. The core lands in the writer's working directory (a temporary one) through the
/// default relative `core_pattern` (`core`, or `core.PID`): nothing system-wide is changed.
/// A machine whose pattern pipes to a handler or names an absolute directory fails with that
/// reason (CI's fresh Debian image has the default).
#[test]
fn kernel_core_of_a_crashed_writer() {
    use std::os::unix::process::ExitStatusExt;
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let pattern = pattern.trim();
    assert!(
        !pattern.starts_with('|') && !pattern.starts_with('/'),
        "kernel.core_pattern is {pattern:?}: this test needs a pattern relative to the crashing \
         process's working directory (the default `core`)"
    );
    let exe = build_writer(Libc::Glibc, Placement::TlsdescDso);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -c unlimited && exec "$0""#)
        .arg(&exe)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let tids: Vec<i32> = line
        .strip_prefix("READY ")
        .expect("READY line")
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    let pid = child.id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGABRT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGABRT));
    assert!(status.core_dumped(), "no core dumped (pattern {pattern:?})");
    let core = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
        .expect("the core in the working directory");
    let out = Command::new(env!("CARGO_BIN_EXE_context-reader"))
        .arg("core")
        .arg(&core)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = without_timestamp(serde_json::from_slice(&out.stdout).unwrap());
    let want = expected_in_core(pid, &tids, &main_thread_name(&exe));
    assert_eq!(got, want, "\n got: {got:#}\nwant: {want:#}");
}

/// What a core did not dump of a file mapping is read from the file, only when the file is the
/// build the core mapped; otherwise the read says the core lacks it.
#[test]
fn undumped_file_mappings_are_read_from_the_verified_file_only() {
    use context_reader::backend::core::CoreFiles;
    let exe = build_writer(Libc::Glibc, Placement::Executable);
    let bytes = std::fs::read(&exe).unwrap();
    let sysroot = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sysroot.path().join("w")).unwrap();
    std::fs::write(sysroot.path().join("w/exe"), &bytes).unwrap();
    let core_with = |first_page: &[u8]| {
        CoreBuilder::new(EM_NATIVE)
            .thread(300, 0)
            .files(&[
                (0x40_0000, 0x40_1000, 0, "/w/exe"),
                (0x40_1000, 0x40_2000, 0x1000, "/w/exe"),
            ])
            .load(0x40_0000, first_page.to_vec(), 0x1000, 4)
            .load(0x40_1000, Vec::new(), 0x1000, 5)
    };
    let core = parse(&core_with(&bytes[..4096])).unwrap();
    let files = CoreFiles::resolve(&core, sysroot.path());
    let mem = files.memory(&core);
    assert_eq!(mem.read_vec(0x40_1010, 16).unwrap(), bytes[0x1010..0x1020]);
    // Only the core: the same read is "not dumped".
    let e = CoreMemory::dumped(&core)
        .read_vec(0x40_1010, 16)
        .unwrap_err();
    assert!(e.reason.contains("not dumped"), "{e}");
    // Another build in the sysroot: not used.
    let id = context_reader::backend::core::build_id(&bytes).unwrap();
    let mut other = bytes[..4096].to_vec();
    let at = other.windows(id.len()).position(|w| w == id).unwrap();
    other[at] ^= 0xff;
    let core = parse(&core_with(&other)).unwrap();
    let files = CoreFiles::resolve(&core, sysroot.path());
    let e = files.memory(&core).read_vec(0x40_1010, 16).unwrap_err();
    assert!(e.reason.contains("not dumped"), "{e}");
}

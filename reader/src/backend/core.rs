//! Core files as a memory source: threads and thread pointers from the notes (`NT_PRSTATUS`
//! with `fs_base` on x86-64, `NT_ARM_TLS` on aarch64), mappings from `NT_FILE`, memory from the
//! `PT_LOAD` segments, module files from the `NT_FILE` paths under a sysroot, checked against
//! the build ids the core holds. Everything read from the core is bounded; a core that lacks
//! something gives an error, never a guess.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, LittleEndian};

use crate::abi::Arch;
use crate::discovery::maps::Mapping;
use crate::discovery::{FileBytes, ModuleFiles};
use crate::memory::{Memory, MemoryError};
use crate::snapshot::{ErrorKind, Format, ReadError};

const PAGE: u64 = 4096;
/// Threads (`NT_PRSTATUS` notes) accepted from one core.
pub const MAX_THREADS: usize = 1 << 16;
/// `NT_FILE` entries accepted from one core.
pub const MAX_FILES: u64 = 1 << 16;
/// `PT_LOAD` segments accepted from one core.
pub const MAX_SEGMENTS: usize = 1 << 20;
/// `NT_ARM_TLS`: the aarch64 thread pointer register set.
pub const NT_ARM_TLS: u32 = 0x401;
/// Offset of `pr_pid` in `struct elf_prstatus` (both arches).
const PRSTATUS_PID: usize = 32;
/// Offset of `pr_reg` in `struct elf_prstatus` (both arches).
const PRSTATUS_REGS: usize = 112;
/// Index of `fs_base` in the x86-64 `user_regs_struct`.
const X86_64_FS_BASE: usize = 21;
/// `struct elf_prpsinfo`: `pr_pid` at 24, `pr_fname[16]` at 40 (both arches).
const PRPSINFO_PID: usize = 24;
const PRPSINFO_FNAME: usize = 40;
const AT_ENTRY: u64 = 9;
/// What a mapping of the `NT_FILE` note has for an inode: the note records none, and
/// `Mapping::is_file` needs one that is not 0.
pub const NT_FILE_INODE: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a 64-bit little-endian ELF file: {0}")]
    Parse(String),
    #[error("not a core file (ELF type {0}, a core is ET_CORE = 4)")]
    NotCore(u16),
    #[error("a core of machine {0:#x}: only x86-64 (0x3e) and aarch64 (0xb7) cores are read")]
    Machine(u16),
    #[error("the core has no {0} note")]
    MissingNote(&'static str),
    #[error("bad {note} note: {detail}")]
    BadNote { note: &'static str, detail: String },
    #[error("more than {max} {what} in the core")]
    TooMany { what: &'static str, max: u64 },
}

/// The bytes of a core: mapped from a file, or owned (tests, fuzzing).
pub enum CoreBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for CoreBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            CoreBytes::Mapped(m) => m,
            CoreBytes::Owned(v) => v,
        }
    }
}

/// One `PT_LOAD` segment: `memsz` bytes at `vaddr`, of which the first `filesz` are in the core
/// at `offset` (the rest were not dumped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub flags: u32,
}

/// One entry of `NT_FILE`: `[start, end)` maps `path` from byte `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

/// One thread of the core: its tid and its thread pointer, or why the core has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreThread {
    pub tid: i32,
    pub tp: Result<u64, String>,
}

/// A parsed core file.
pub struct CoreFile {
    data: CoreBytes,
    pub arch: Arch,
    /// The dumped process (`NT_PRPSINFO`, else the first thread).
    pub pid: i32,
    /// The main thread's name (`pr_fname` of `NT_PRPSINFO`), if the core has it.
    pub name: Option<Vec<u8>>,
    pub threads: Vec<CoreThread>,
    pub files: Vec<FileMapping>,
    /// Sorted by `vaddr`.
    pub segments: Vec<Segment>,
    /// `AT_ENTRY` of `NT_AUXV`: the entry point, inside the main executable.
    pub entry: Option<u64>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn bad(note: &'static str, detail: impl Into<String>) -> CoreError {
    CoreError::BadNote {
        note,
        detail: detail.into(),
    }
}

impl CoreFile {
    /// Maps and parses the core at `path`.
    pub fn open(path: &Path) -> Result<CoreFile, CoreError> {
        let io = |source| CoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let map = crate::sys::map_file(&file).map_err(io)?;
        CoreFile::parse(CoreBytes::Mapped(map))
    }

    /// Parses a core held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<CoreFile, CoreError> {
        CoreFile::parse(CoreBytes::Owned(bytes))
    }

    fn parse(data: CoreBytes) -> Result<CoreFile, CoreError> {
        let bytes: &[u8] = &data;
        let header = elf::FileHeader64::<Endianness>::parse(bytes)
            .map_err(|e| CoreError::Parse(e.to_string()))?;
        let endian = header
            .endian()
            .map_err(|e| CoreError::Parse(e.to_string()))?;
        if endian != Endianness::Little {
            return Err(CoreError::Parse("big-endian".into()));
        }
        let e_type = header.e_type(endian);
        if e_type != elf::ET_CORE {
            return Err(CoreError::NotCore(e_type));
        }
        let arch = match header.e_machine(endian) {
            elf::EM_X86_64 => Arch::X86_64,
            elf::EM_AARCH64 => Arch::Aarch64,
            m => return Err(CoreError::Machine(m)),
        };
        let phdrs = header
            .program_headers(endian, bytes)
            .map_err(|e| CoreError::Parse(e.to_string()))?;
        let mut segments = Vec::new();
        let mut threads: Vec<CoreThread> = Vec::new();
        let mut prpsinfo: Option<(i32, Vec<u8>)> = None;
        let mut files = None;
        let mut entry = None;
        let mut saw_notes = false;
        for ph in phdrs {
            match ph.p_type(endian) {
                elf::PT_LOAD => {
                    if segments.len() >= MAX_SEGMENTS {
                        return Err(CoreError::TooMany {
                            what: "PT_LOAD segments",
                            max: MAX_SEGMENTS as u64,
                        });
                    }
                    segments.push(Segment {
                        vaddr: ph.p_vaddr(endian),
                        memsz: ph.p_memsz(endian),
                        offset: ph.p_offset(endian),
                        filesz: ph.p_filesz(endian).min(ph.p_memsz(endian)),
                        flags: ph.p_flags(endian),
                    });
                }
                elf::PT_NOTE => {
                    saw_notes = true;
                    let mut notes = ph
                        .notes(endian, bytes)
                        .map_err(|e| bad("PT_NOTE", e.to_string()))?
                        .ok_or_else(|| bad("PT_NOTE", "not a note segment"))?;
                    while let Some(note) =
                        notes.next().map_err(|e| bad("PT_NOTE", e.to_string()))?
                    {
                        let desc = note.desc();
                        match (note.name(), note.n_type(endian)) {
                            (b"CORE", elf::NT_PRSTATUS) => {
                                if threads.len() >= MAX_THREADS {
                                    return Err(CoreError::TooMany {
                                        what: "threads",
                                        max: MAX_THREADS as u64,
                                    });
                                }
                                threads.push(prstatus(arch, desc)?);
                            }
                            (b"CORE", elf::NT_PRPSINFO) => {
                                let pid = u32_at(desc, PRPSINFO_PID)
                                    .ok_or_else(|| bad("NT_PRPSINFO", "too short"))?;
                                let fname = desc
                                    .get(PRPSINFO_FNAME..PRPSINFO_FNAME + 16)
                                    .ok_or_else(|| bad("NT_PRPSINFO", "too short"))?;
                                // A Linux thread name is at most 15 bytes (`TASK_COMM_LEN` 16
                                // with its NUL); gdb fills all 16 bytes from the executable's
                                // name, the kernel writes `comm`.
                                let len = fname.iter().position(|b| *b == 0).unwrap_or(16).min(15);
                                prpsinfo = Some((pid as i32, fname[..len].to_vec()));
                            }
                            (b"CORE", elf::NT_AUXV) => {
                                entry = desc
                                    .chunks_exact(16)
                                    .find(|p| u64_at(p, 0) == Some(AT_ENTRY))
                                    .and_then(|p| u64_at(p, 8));
                            }
                            (b"CORE", elf::NT_FILE) => files = Some(nt_file(desc)?),
                            (b"LINUX", NT_ARM_TLS) if arch == Arch::Aarch64 => {
                                // Belongs to the thread whose NT_PRSTATUS came last.
                                let thread = threads
                                    .last_mut()
                                    .ok_or_else(|| bad("NT_ARM_TLS", "before any NT_PRSTATUS"))?;
                                thread.tp = u64_at(desc, 0).ok_or_else(|| {
                                    format!("NT_ARM_TLS of {} is too short", thread.tid)
                                });
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if !saw_notes {
            return Err(CoreError::MissingNote("PT_NOTE segment"));
        }
        let Some(first) = threads.first() else {
            return Err(CoreError::MissingNote("NT_PRSTATUS (threads)"));
        };
        let files = files.ok_or(CoreError::MissingNote("NT_FILE (mapped files)"))?;
        let (pid, name) = match prpsinfo {
            Some((pid, name)) => (pid, Some(name)),
            None => (first.tid, None),
        };
        segments.sort_by_key(|s| s.vaddr);
        Ok(CoreFile {
            data,
            arch,
            pid,
            name,
            threads,
            files,
            segments,
            entry,
        })
    }

    /// The process's mappings as discovery wants them: every `NT_FILE` entry (a file; its
    /// permissions from the segment there), then every segment no file covers (anonymous).
    pub fn mappings(&self) -> Vec<Mapping> {
        let perms = |s: Option<&Segment>| {
            let f = s.map_or(0, |s| s.flags);
            let bit = |b: u32, c: char| if f & b != 0 { c } else { '-' };
            format!(
                "{}{}{}p",
                bit(elf::PF_R, 'r'),
                bit(elf::PF_W, 'w'),
                bit(elf::PF_X, 'x')
            )
        };
        let mut maps: Vec<Mapping> = self
            .files
            .iter()
            .map(|f| Mapping {
                start: f.start,
                end: f.end,
                perms: perms(self.segment_at(f.start)),
                offset: f.offset,
                inode: NT_FILE_INODE,
                path: f.path.clone(),
            })
            .collect();
        // Files by start, with the furthest end so far: a segment [a, b) overlaps a file iff
        // some file starting before b ends after a (log time per segment, whatever the counts).
        let mut spans: Vec<(u64, u64)> = self.files.iter().map(|f| (f.start, f.end)).collect();
        spans.sort_unstable();
        let mut furthest = Vec::with_capacity(spans.len());
        let mut max_end = 0;
        for (_, end) in &spans {
            max_end = max_end.max(*end);
            furthest.push(max_end);
        }
        for s in &self.segments {
            let end = s.vaddr.saturating_add(s.memsz);
            let before = spans.partition_point(|(start, _)| *start < end);
            let covered = before > 0 && furthest[before - 1] > s.vaddr;
            if !covered {
                maps.push(Mapping {
                    start: s.vaddr,
                    end,
                    perms: perms(Some(s)),
                    offset: 0,
                    inode: 0,
                    path: String::new(),
                });
            }
        }
        maps.sort_by_key(|m| m.start);
        maps
    }

    /// The segment holding `addr`.
    pub fn segment_at(&self, addr: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.vaddr <= addr);
        let s = self.segments.get(i.checked_sub(1)?)?;
        (addr - s.vaddr < s.memsz).then_some(s)
    }

    /// The main executable: the file mapping holding the entry point.
    pub fn executable(&self) -> Option<&str> {
        let entry = self.entry?;
        self.files
            .iter()
            .find(|f| (f.start..f.end).contains(&entry))
            .map(|f| f.path.as_str())
    }
}

fn prstatus(arch: Arch, desc: &[u8]) -> Result<CoreThread, CoreError> {
    let tid = u32_at(desc, PRSTATUS_PID).ok_or_else(|| bad("NT_PRSTATUS", "too short"))? as i32;
    let tp = match arch {
        Arch::X86_64 => u64_at(desc, PRSTATUS_REGS + 8 * X86_64_FS_BASE)
            .ok_or_else(|| format!("NT_PRSTATUS of {tid} is too short for fs_base")),
        Arch::Aarch64 => Err(format!("the core has no NT_ARM_TLS note for thread {tid}")),
    };
    Ok(CoreThread { tid, tp })
}

/// `NT_FILE`: `count`, `page_size`, `count` × {start, end, page offset}, then `count`
/// NUL-terminated paths.
fn nt_file(desc: &[u8]) -> Result<Vec<FileMapping>, CoreError> {
    let short = || bad("NT_FILE", "shorter than its count says");
    let count = u64_at(desc, 0).ok_or_else(short)?;
    let page_size = u64_at(desc, 8).ok_or_else(short)?;
    if count > MAX_FILES {
        return Err(CoreError::TooMany {
            what: "NT_FILE entries",
            max: MAX_FILES,
        });
    }
    let count = count as usize; // bounded above
    let table_end = 16 + count * 24;
    if desc.len() < table_end {
        return Err(short());
    }
    let mut names = desc[table_end..].split(|b| *b == 0);
    let mut files = Vec::with_capacity(count);
    for i in 0..count {
        let at = 16 + i * 24;
        let (start, end, pages) = (
            u64_at(desc, at).ok_or_else(short)?,
            u64_at(desc, at + 8).ok_or_else(short)?,
            u64_at(desc, at + 16).ok_or_else(short)?,
        );
        let name = names.next().ok_or_else(short)?;
        if end < start {
            return Err(bad("NT_FILE", format!("entry {i} ends before it starts")));
        }
        let offset = pages.checked_mul(page_size).ok_or_else(|| {
            bad(
                "NT_FILE",
                format!("entry {i}: offset {pages} pages of {page_size} bytes"),
            )
        })?;
        files.push(FileMapping {
            start,
            end,
            offset,
            path: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(files)
}

/// The memory of a core: the dumped bytes of its `PT_LOAD` segments, then, for what was not
/// dumped, the verified files mapped there (the kernel leaves out file mappings it never wrote
/// to, whose bytes are the file's). Anything else is an error naming what the core lacks.
pub struct CoreMemory<'a> {
    core: &'a CoreFile,
    /// `(start, end, file offset, bytes)` of the file mappings whose files were verified.
    files: Vec<(u64, u64, u64, FileBytes)>,
}

impl<'a> CoreMemory<'a> {
    /// Only what the core holds.
    pub fn dumped(core: &'a CoreFile) -> Self {
        CoreMemory {
            core,
            files: Vec::new(),
        }
    }

    fn read_file(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
        let (start, _, offset, bytes) = self
            .files
            .iter()
            .find(|(s, e, _, _)| (*s..*e).contains(&addr))?;
        let at = usize::try_from(offset.checked_add(addr - start)?).ok()?;
        buf.copy_from_slice(bytes.get(at..at.checked_add(buf.len())?)?);
        Some(())
    }

    /// One piece of a read: as much of `buf` as the segment (or file) at `addr` holds.
    fn read_piece(&self, addr: u64, buf: &mut [u8]) -> Result<usize, MemoryError> {
        let len = buf.len();
        let err = |reason: String| MemoryError::new(addr, len, reason);
        let Some(seg) = self.core.segment_at(addr) else {
            return self
                .read_file(addr, buf)
                .map(|()| buf.len())
                .ok_or_else(|| err("not mapped in the core".into()));
        };
        let off = addr - seg.vaddr;
        let in_seg = usize::try_from(seg.memsz - off)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if off >= seg.filesz {
            return self
                .read_file(addr, &mut buf[..in_seg])
                .map(|()| in_seg)
                .ok_or_else(|| {
                    err(format!(
                        "not in the core: the segment at {:#x} was not dumped there",
                        seg.vaddr
                    ))
                });
        }
        let n = usize::try_from(seg.filesz - off)
            .unwrap_or(usize::MAX)
            .min(in_seg);
        let data: &[u8] = &self.core.data;
        let src = seg
            .offset
            .checked_add(off)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| data.get(s..s.checked_add(n)?))
            .ok_or_else(|| {
                err(format!(
                    "the core is truncated: the segment at {:#x} ends past the end of the file",
                    seg.vaddr
                ))
            })?;
        buf[..n].copy_from_slice(src);
        Ok(n)
    }
}

impl Memory for CoreMemory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        if addr.checked_add(buf.len() as u64).is_none() {
            return Err(MemoryError::new(addr, buf.len(), "past the last address"));
        }
        let mut done = 0;
        while done < buf.len() {
            let at = addr + done as u64;
            let n = self
                .read_piece(at, &mut buf[done..])
                .map_err(|e| MemoryError::new(addr, buf.len(), e.to_string()))?;
            done += n.max(1).min(buf.len() - done);
        }
        Ok(())
    }
}

/// The build id (`NT_GNU_BUILD_ID`) of an ELF image whose first bytes are `image`: a whole file,
/// or the first page of a mapping as the core holds it (notes from the program headers only).
pub fn build_id(image: &[u8]) -> Option<Vec<u8>> {
    let header = elf::FileHeader64::<LittleEndian>::parse(image).ok()?;
    let endian = LittleEndian;
    for ph in header.program_headers(endian, image).ok()? {
        let Ok(Some(mut notes)) = ph.notes(endian, image) else {
            continue;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"GNU" && note.n_type(endian) == elf::NT_GNU_BUILD_ID {
                return Some(note.desc().to_vec());
            }
        }
    }
    None
}

fn hex(b: &[u8]) -> String {
    crate::snapshot::hex(b)
}

/// The module files of a core: each `NT_FILE` path under `sysroot`, verified once. A file whose
/// build id differs from the one the core holds, whose machine is not the core's, or that is
/// missing while the core shows (or may show) an ELF image there, is an error entry.
pub struct CoreFiles {
    exe: Option<String>,
    by_path: BTreeMap<String, Result<Option<FileBytes>, ReadError>>,
}

fn file_error(kind: ErrorKind, detail: String) -> ReadError {
    ReadError::new(Format::Tls, kind, detail)
}

impl CoreFiles {
    pub fn resolve(core: &CoreFile, sysroot: &Path) -> CoreFiles {
        let dumped = CoreMemory::dumped(core);
        // Each file's first mapping at offset 0, whose first page (as the core holds it: the
        // kernel dumps the first page of ELF mappings) carries the ELF header and build id.
        let mut first_mapping: BTreeMap<&str, Option<&FileMapping>> = BTreeMap::new();
        for f in &core.files {
            let entry = first_mapping.entry(f.path.as_str()).or_default();
            if entry.is_none() && f.offset == 0 {
                *entry = Some(f);
            }
        }
        let mut by_path = BTreeMap::new();
        for m in core.mappings().iter().filter(|m| m.is_file()) {
            if by_path.contains_key(&m.path) {
                continue;
            }
            let first_page = first_mapping
                .get(m.path.as_str())
                .copied()
                .flatten()
                .and_then(|f| {
                    let len = (f.end - f.start).min(PAGE) as usize;
                    dumped.read_vec(f.start, len).ok()
                });
            let verdict = verify(core.arch, &m.path, sysroot, first_page.as_deref());
            by_path.insert(m.path.clone(), verdict);
        }
        CoreFiles {
            exe: core.executable().map(str::to_string),
            by_path,
        }
    }

    /// The core's memory, with the verified files behind what it did not dump.
    pub fn memory<'a>(&self, core: &'a CoreFile) -> CoreMemory<'a> {
        let files = core
            .files
            .iter()
            .filter_map(|f| {
                let bytes = self.by_path.get(&f.path)?.as_ref().ok()?.as_ref()?;
                Some((f.start, f.end, f.offset, Arc::clone(bytes)))
            })
            .collect();
        CoreMemory { core, files }
    }
}

fn verify(
    arch: Arch,
    path: &str,
    sysroot: &Path,
    first_page: Option<&[u8]>,
) -> Result<Option<FileBytes>, ReadError> {
    let under: PathBuf = sysroot.join(
        path.strip_suffix(" (deleted)")
            .unwrap_or(path)
            .trim_start_matches('/'),
    );
    let core_is_elf = first_page.map(|p| p.starts_with(b"\x7fELF"));
    // Regular files only (a name in the core must not make the reader open a FIFO or a device).
    let regular = |p: &Path| match std::fs::metadata(p) {
        Ok(m) if m.is_file() => std::fs::File::open(p),
        Ok(_) => Err(std::io::Error::other("not a regular file")),
        Err(e) => Err(e),
    };
    let bytes = match regular(&under).and_then(|f| crate::sys::map_file(&f)) {
        Ok(b) => Arc::new(b),
        // The core shows something else than an ELF image there: not a module.
        Err(_) if core_is_elf == Some(false) => return Ok(None),
        Err(e) => {
            return Err(file_error(
                ErrorKind::Unreadable,
                format!(
                    "{path}: mapped in the core but not readable as {}: {e}",
                    under.display()
                ),
            ))
        }
    };
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let machine = elf::FileHeader64::<LittleEndian>::parse(&bytes[..])
        .map(|h| h.e_machine(LittleEndian))
        .ok();
    let want = match arch {
        Arch::X86_64 => elf::EM_X86_64,
        Arch::Aarch64 => elf::EM_AARCH64,
    };
    if machine.is_some_and(|m| m != want) {
        return Err(file_error(
            ErrorKind::BuildIdMismatch,
            format!(
                "{path}: {} is for machine {:#x}, the core is {arch:?}",
                under.display(),
                machine.unwrap_or(0)
            ),
        ));
    }
    if let Some(in_core) = first_page.and_then(build_id) {
        match build_id(&bytes) {
            Some(file) if file == in_core => {}
            other => {
                return Err(file_error(
                    ErrorKind::BuildIdMismatch,
                    format!(
                        "{path}: the core's mapping has build id {}, {} has {}",
                        hex(&in_core),
                        under.display(),
                        other.map_or("none".to_string(), |b| hex(&b))
                    ),
                ))
            }
        }
    }
    Ok(Some(bytes))
}

impl ModuleFiles for CoreFiles {
    fn executable(&self) -> Option<String> {
        self.exe.clone()
    }

    fn open(&self, path: &str, _: &[&Mapping]) -> Result<Option<FileBytes>, ReadError> {
        self.by_path.get(path).cloned().unwrap_or(Ok(None))
    }
}

//! Discovery: from `/proc/PID/maps`, the mapped ELF files and a few reads of process memory
//! (GOT slots, TLSDESC descriptors, the v1 ABI word), build the `ReadPlan` for a process.

pub mod elf;
pub mod maps;
pub mod tls;

use std::collections::BTreeMap;

use self::elf::{ElfModule, SymbolInfo, TlsRelocKind};
use self::maps::Mapping;
use self::tls::{
    classify_descriptor_argument, dtv_layout, executable_block_offset, DescriptorArgument,
};
use crate::abi::{Arch, Libc};
use crate::decode::process_ctx::is_context_mapping_name;
use crate::decode::thread_ctx::RecordLayout;
use crate::memory::Memory;
use crate::plan::{
    ContextMapping, ReadPlan, Resolution, SlotPlan, SlotRule, V1Layout, V1Plan, V2Plan,
};
use crate::snapshot::{ErrorKind, Format, ReadError};

/// Module ids above this are treated as garbage (an unresolved lazy descriptor, say).
const MAX_MODULE_ID: u64 = 1 << 20;
/// DTV offsets above this are treated as garbage.
const MAX_DTV_OFFSET: u64 = 1 << 32;
const PAGE: u64 = 4096;

/// One mapped ELF file of the process.
#[derive(Debug, Clone)]
pub struct LoadedModule {
    pub path: String,
    pub bias: u64,
    pub is_main: bool,
    pub elf: ElfModule,
}

/// Where discovery gets the files behind the mappings: a live process (`ProcFiles`: its `/proc`
/// view) or a core file (`backend::core::CoreFiles`: the `NT_FILE` paths under a sysroot).
pub trait ModuleFiles {
    /// The path (as the mappings name it) of the main executable, if known.
    fn executable(&self) -> Option<String>;
    /// The bytes of the file mapped as `mappings` (all of one path). `Ok(None)`: skip it silently
    /// (cannot define a context symbol we could resolve); `Err`: an entry of the plan's `errors`
    /// (a file that may matter and is not there, or not the build that was mapped).
    fn open(&self, path: &str, mappings: &[&Mapping]) -> Result<Option<FileBytes>, ReadError>;
}

/// The mapped bytes of one file (shared: a core source keeps its files open for its memory).
pub type FileBytes = std::sync::Arc<memmap2::Mmap>;

/// The files of a live process, through its `/proc/PID` view.
pub struct ProcFiles {
    pub pid: i32,
}

impl ModuleFiles for ProcFiles {
    fn executable(&self) -> Option<String> {
        std::fs::read_link(format!("/proc/{}/exe", self.pid))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// Maps the file rather than reading it: discovery touches only headers, symbol tables,
    /// relocations and the dynamic section, so a 100+ MB executable costs the reader a few pages.
    fn open(&self, path: &str, mappings: &[&Mapping]) -> Result<Option<FileBytes>, ReadError> {
        let pid = self.pid;
        // Through the target's root, so containers work; map_files also covers deleted files.
        let via_root = format!(
            "/proc/{pid}/root{}",
            path.strip_suffix(" (deleted)").unwrap_or(path)
        );
        let file = std::fs::File::open(via_root).ok().or_else(|| {
            let m = mappings.first()?;
            std::fs::File::open(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end)).ok()
        });
        Ok(file
            .and_then(|f| crate::sys::map_file(&f).ok())
            .map(std::sync::Arc::new))
    }
}

/// Finds every mapped ELF file (executable first, then by address) and inspects it. Files that
/// cannot be read or parsed are skipped (they cannot define context symbols we could resolve),
/// unless `files` says their absence matters: then they are in the returned errors.
pub fn load_modules(
    files: &dyn ModuleFiles,
    maps: &[Mapping],
) -> (Vec<LoadedModule>, Vec<ReadError>) {
    let exe = files.executable();
    let mut by_path: BTreeMap<&str, Vec<&Mapping>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for m in maps.iter().filter(|m| m.is_file()) {
        let entry = by_path.entry(m.path.as_str()).or_default();
        if entry.is_empty() {
            order.push(m.path.as_str());
        }
        entry.push(m);
    }
    let mut modules = Vec::new();
    let mut errors = Vec::new();
    for path in order {
        let mappings = &by_path[path];
        let data = match files.open(path, mappings) {
            Ok(Some(data)) => data,
            Ok(None) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let Ok(elf) = elf::inspect(&data) else {
            continue;
        };
        let Some(bias) = load_bias(&elf, mappings) else {
            continue;
        };
        let is_main = exe.as_deref() == Some(path);
        modules.push(LoadedModule {
            path: path.to_string(),
            bias,
            is_main,
            elf,
        });
    }
    modules.sort_by_key(|m| !m.is_main);
    (modules, errors)
}

/// bias = start of the mapping of the first `PT_LOAD` minus its page-aligned `p_vaddr`.
pub fn load_bias(elf: &ElfModule, mappings: &[&Mapping]) -> Option<u64> {
    let (vaddr, offset) = elf.first_load;
    let m = mappings.iter().find(|m| m.offset == offset & !(PAGE - 1))?;
    Some(m.start.wrapping_sub(vaddr & !(PAGE - 1)))
}

/// The executable's loader says it best; mapped libraries next (Debian's musl loader maps as
/// `/usr/lib/x86_64-linux-musl/libc.so`); static executables by their own symbols.
fn detect_libc(modules: &[LoadedModule]) -> Libc {
    let main = modules.iter().find(|m| m.is_main);
    if let Some(interp) = main.and_then(|m| m.elf.interp.as_deref()) {
        if interp.contains("musl") {
            return Libc::Musl;
        }
        if interp.contains("ld-linux") {
            return Libc::Glibc;
        }
    }
    for m in modules {
        let base = m.path.rsplit('/').next().unwrap_or("");
        if base.starts_with("ld-musl-")
            || base.starts_with("libc.musl")
            || m.path.contains("-linux-musl/")
        {
            return Libc::Musl;
        }
        if base.starts_with("libc.so.6") || base.starts_with("ld-linux") {
            return Libc::Glibc;
        }
    }
    main.and_then(|m| m.elf.static_libc).unwrap_or(Libc::Glibc)
}

fn tls_error(detail: String) -> ReadError {
    ReadError::new(Format::Tls, ErrorKind::TlsUnresolved, detail)
}

/// The address of the second word of a two-word object (TLSDESC descriptor, `tls_index`) at
/// `at`, an address computed from the target's files or memory: an error past u64::MAX.
fn second_word(at: u64) -> Result<u64, ReadError> {
    at.checked_add(8).ok_or_else(|| {
        tls_error(format!(
            "a two-word TLS object at {at:#x} would end past the last address"
        ))
    })
}

/// Builds the read plan of `pid` from its maps; `mem` is the process memory (read without
/// stopping anything: GOT slots and descriptors are written once by the loader).
pub fn discover(pid: i32, maps: &[Mapping], mem: &dyn Memory) -> ReadPlan {
    discover_with(&ProcFiles { pid }, pid, maps, mem)
}

/// [`discover`] with the files from `files` (a live process or a core file's sysroot); errors of
/// `files` come first in the plan's `errors`.
pub fn discover_with(
    files: &dyn ModuleFiles,
    pid: i32,
    maps: &[Mapping],
    mem: &dyn Memory,
) -> ReadPlan {
    let (modules, errors) = load_modules(files, maps);
    let mut plan = plan_from_modules(pid, &modules, maps, mem);
    plan.errors.splice(0..0, errors);
    plan
}

pub fn plan_from_modules(
    pid: i32,
    modules: &[LoadedModule],
    maps: &[Mapping],
    mem: &dyn Memory,
) -> ReadPlan {
    let arch = modules
        .iter()
        .find(|m| m.is_main)
        .map_or(Arch::host(), |m| m.elf.arch);
    let libc = detect_libc(modules);
    let mut plan = ReadPlan {
        pid,
        arch,
        libc,
        v1: Vec::new(),
        v2: Vec::new(),
        context_mappings: maps
            .iter()
            .filter(|m| is_context_mapping_name(&m.path))
            .map(|m| ContextMapping {
                start: m.start,
                end: m.end,
                name: m.path.clone(),
            })
            .collect(),
        errors: Vec::new(),
    };
    let resolver = Resolver {
        modules,
        maps,
        mem,
        arch,
        libc,
    };
    for module in modules {
        for sym in &module.elf.symbols {
            if let Some(what) = elf::unsupported_symbol(&sym.name) {
                plan.errors.push(ReadError::new(
                    Format::V2,
                    ErrorKind::Unsupported,
                    format!(
                        "{} defines {}, {what}; this reader does not decode it",
                        module.path, sym.name
                    ),
                ));
            }
        }
        if let Some(sym) = module.elf.symbol(elf::V1_SET) {
            match v1_layout(module, mem, elf::V1_SET) {
                Ok(layout) => match resolver.resolve(module, sym) {
                    Ok(slot) => plan.v1.push(V1Plan { slot, layout }),
                    Err(e) => plan.errors.push(e),
                },
                Err(e) => plan.errors.push(e),
            }
        } else if let Some(sym) = module.elf.symbol(elf::V0_INLINE) {
            match v1_layout(module, mem, elf::V0_INLINE) {
                Ok(layout) => match resolver.resolve(module, sym) {
                    Ok(slot) => plan.v1.push(V1Plan { slot, layout }),
                    Err(e) => plan.errors.push(e),
                },
                Err(e) => plan.errors.push(e),
            }
        }
        for (name, layout) in [
            (elf::OTEP_CTX, RecordLayout::Otep4947),
            (elf::DRAFT_CTX, RecordLayout::Draft),
        ] {
            if let Some(sym) = module.elf.symbol(name) {
                match resolver.resolve(module, sym) {
                    Ok(slot) => plan.v2.push(V2Plan { slot, layout }),
                    Err(e) => plan.errors.push(e),
                }
            }
        }
    }
    plan
}

/// Reads `custom_labels_abi_version` from process memory (not the file: pitfall list 1.10).
fn v1_layout(
    module: &LoadedModule,
    mem: &dyn Memory,
    tls_symbol: &str,
) -> Result<V1Layout, ReadError> {
    let unsupported = |d: String| ReadError::new(Format::V1, ErrorKind::Unsupported, d);
    let Some(abi) = module.elf.symbol(elf::V1_ABI_VERSION) else {
        // The v0 writer also had no version word; a v1 set without one is read as v1.
        return Ok(if tls_symbol == elf::V0_INLINE {
            V1Layout::Inline
        } else {
            V1Layout::Pointer
        });
    };
    if abi.size != 4 {
        return Err(unsupported(format!(
            "{}: custom_labels_abi_version has size {}, not 4",
            module.path, abi.size
        )));
    }
    let version = mem
        .read_u32(module.bias.wrapping_add(abi.value))
        .map_err(|e| {
            ReadError::new(
                Format::V1,
                ErrorKind::Unreadable,
                format!("{}: custom_labels_abi_version: {e}", module.path),
            )
        })?;
    match (version, tls_symbol) {
        (1, elf::V1_SET) => Ok(V1Layout::Pointer),
        (0, elf::V0_INLINE) => Ok(V1Layout::Inline),
        (v, s) => Err(unsupported(format!(
            "{}: custom_labels_abi_version is {v} with symbol {s}",
            module.path
        ))),
    }
}

struct Resolver<'a> {
    modules: &'a [LoadedModule],
    maps: &'a [Mapping],
    mem: &'a dyn Memory,
    arch: Arch,
    libc: Libc,
}

impl Resolver<'_> {
    fn resolve(&self, module: &LoadedModule, sym: &SymbolInfo) -> Result<SlotPlan, ReadError> {
        let plan = |rule, resolution| SlotPlan {
            module: module.path.clone(),
            symbol: sym.name.clone(),
            rule,
            resolution,
        };
        if !sym.is_tls {
            return Err(tls_error(format!(
                "{}: {} is not an STT_TLS symbol",
                module.path, sym.name
            )));
        }
        let read = |addr: u64| {
            self.mem.read_u64(addr).map_err(|e| {
                tls_error(format!(
                    "{}: {} relocation target: {e}",
                    module.path, sym.name
                ))
            })
        };
        // Relocations naming the symbol: the module's own first, then other modules' when no
        // other module defines the same name (else interposition decides and we cannot tell).
        let defined_elsewhere = self
            .modules
            .iter()
            .any(|m| m.path != module.path && m.elf.symbol(&sym.name).is_some());
        let mut named: Vec<(&LoadedModule, &elf::TlsReloc)> = module
            .elf
            .relocs_for(&sym.name)
            .map(|r| (module, r))
            .collect();
        if !defined_elsewhere {
            for other in self.modules.iter().filter(|m| m.path != module.path) {
                named.extend(other.elf.relocs_for(&sym.name).map(|r| (other, r)));
            }
        }
        for kind in [
            TlsRelocKind::TpOff,
            TlsRelocKind::TlsDesc,
            TlsRelocKind::DtpMod,
        ] {
            let Some((owner, reloc)) = named.iter().find(|(_, r)| r.kind == kind) else {
                continue;
            };
            // Load bias plus `r_offset` is modular on purpose (the bias of a non-PIE file is 0 and
            // a "negative" bias is a large u64); the second word of a descriptor or `tls_index`
            // is `at + 8`, checked: past u64::MAX there is nothing to read.
            let at = owner.bias.wrapping_add(reloc.offset);
            return match kind {
                TlsRelocKind::TpOff => Ok(plan(
                    SlotRule::TpRelative {
                        offset: read(at)? as i64,
                    },
                    Resolution::InitialExecGot,
                )),
                TlsRelocKind::TlsDesc => self
                    .descriptor(read(second_word(at)?)?, 0)
                    .map(|(rule, r)| plan(rule, r)),
                _ => {
                    let (module_id, offset) = (read(at)?, read(second_word(at)?)?);
                    self.dtv_rule(module_id, offset)
                        .map(|rule| plan(rule, Resolution::GeneralDynamic))
                }
            };
        }
        // Local-dynamic style: relocations with symbol index 0 in the defining module.
        let anonymous = |kind| {
            module
                .elf
                .tls_relocs
                .iter()
                .filter(move |r| r.symbol.is_none() && r.kind == kind)
        };
        if let Some(r) = anonymous(TlsRelocKind::TlsDesc).find(|r| r.addend as u64 == sym.value) {
            let word1 = read(second_word(module.bias.wrapping_add(r.offset))?)?;
            return self
                .descriptor(word1, 0)
                .map(|(rule, _)| plan(rule, Resolution::LocalDynamic));
        }
        if let Some(r) = anonymous(TlsRelocKind::TlsDesc).find(|r| r.addend == 0) {
            let word1 = read(second_word(module.bias.wrapping_add(r.offset))?)?;
            return self
                .descriptor(word1, sym.value)
                .map(|(rule, _)| plan(rule, Resolution::LocalDynamic));
        }
        if let Some(r) = anonymous(TlsRelocKind::DtpMod).next() {
            let module_id = read(module.bias.wrapping_add(r.offset))?;
            return self
                .dtv_rule(module_id, sym.value)
                .map(|rule| plan(rule, Resolution::LocalDynamic));
        }
        if module.is_main {
            let Some(seg) = module.elf.tls else {
                return Err(tls_error(format!(
                    "{}: defines {} but has no PT_TLS segment",
                    module.path, sym.name
                )));
            };
            // `st_value` is the offset inside the TLS image: checked, a crafted one is an error.
            let Some(offset) = executable_block_offset(self.arch, &seg).and_then(|block| {
                i64::try_from(sym.value)
                    .ok()
                    .and_then(|v| block.checked_add(v))
            }) else {
                return Err(tls_error(format!(
                    "{}: PT_TLS {{vaddr {:#x}, memsz {:#x}, align {:#x}}} and {} at {:#x} give no \
                     thread-pointer offset",
                    module.path, seg.vaddr, seg.memsz, seg.align, sym.name, sym.value
                )));
            };
            return Ok(plan(
                SlotRule::TpRelative { offset },
                Resolution::ExecutableStatic,
            ));
        }
        Err(tls_error(format!(
            "{}: defines {} but no dynamic relocation (TLSDESC, TPOFF64, DTPMOD64) reaches it",
            module.path, sym.name
        )))
    }

    /// A TLSDESC argument word plus `extra` (the symbol offset for module-base descriptors).
    fn descriptor(&self, word1: u64, extra: u64) -> Result<(SlotRule, Resolution), ReadError> {
        let is_mapped = self.maps.iter().any(|m| (m.start..m.end).contains(&word1));
        match classify_descriptor_argument(self.arch, word1, is_mapped) {
            DescriptorArgument::StaticOffset(o) => Ok((
                SlotRule::TpRelative {
                    offset: o.wrapping_add(extra as i64),
                },
                Resolution::TlsDescStatic,
            )),
            DescriptorArgument::Dynamic(p) => {
                let read = |a: u64| {
                    self.mem
                        .read_u64(a)
                        .map_err(|e| tls_error(format!("dynamic TLS descriptor at {p:#x}: {e}")))
                };
                let (module_id, offset) = (read(p)?, read(second_word(p)?)?);
                let rule = self.dtv_rule(module_id, offset.wrapping_add(extra))?;
                Ok((rule, Resolution::TlsDescDynamic))
            }
        }
    }

    fn dtv_rule(&self, module_id: u64, offset: u64) -> Result<SlotRule, ReadError> {
        if module_id == 0 || module_id > MAX_MODULE_ID || offset > MAX_DTV_OFFSET {
            return Err(tls_error(format!(
                "implausible TLS index {{module {module_id}, offset {offset:#x}}}: descriptor not yet resolved?"
            )));
        }
        Ok(SlotRule::Dtv {
            dtv: dtv_layout(self.arch, self.libc),
            module_id,
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(
        path: &str,
        is_main: bool,
        interp: Option<&str>,
        static_libc: Option<Libc>,
    ) -> LoadedModule {
        LoadedModule {
            path: path.into(),
            bias: 0,
            is_main,
            elf: ElfModule {
                arch: Arch::X86_64,
                is_dyn: true,
                interp: interp.map(str::to_string),
                has_dynsym: true,
                soname: None,
                pie_flag: false,
                tls: None,
                first_load: (0, 0),
                symbols: vec![],
                tls_relocs: vec![],
                static_libc,
            },
        }
    }

    use crate::abi::TlsSegment;
    use crate::discovery::elf::TlsReloc;
    use crate::memory::ImageMemory;

    fn tls_symbol(name: &str, value: u64) -> SymbolInfo {
        SymbolInfo {
            name: name.into(),
            value,
            size: 8,
            is_tls: true,
            in_dynsym: true,
            is_global: true,
        }
    }

    fn reloc(kind: TlsRelocKind, symbol: Option<&str>, offset: u64, addend: i64) -> TlsReloc {
        TlsReloc {
            kind,
            symbol: symbol.map(str::to_string),
            offset,
            addend,
        }
    }

    #[test]
    fn a_known_undecoded_symbol_is_an_unsupported_error_naming_module_and_symbol() {
        let mut m = module("/app/node_modules/dd_pprof.node", false, None, None);
        // The Node.js discovery struct: a plain 32-byte object, not a TLS slot.
        m.elf.symbols = vec![SymbolInfo {
            is_tls: false,
            size: 32,
            ..tls_symbol("otel_thread_ctx_nodejs_v1", 0x4000)
        }];
        let plan = plan_from_modules(1, &[m], &[], &ImageMemory::default());
        assert!(plan.v2.is_empty() && plan.v1.is_empty());
        assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
        let e = &plan.errors[0];
        assert_eq!((e.format, e.kind), (Format::V2, ErrorKind::Unsupported));
        assert!(
            e.detail.starts_with(
                "/app/node_modules/dd_pprof.node defines otel_thread_ctx_nodejs_v1, the Node.js \
                 thread context"
            ),
            "{}",
            e.detail
        );
        assert!(
            e.detail.ends_with("this reader does not decode it"),
            "{}",
            e.detail
        );
    }

    /// The plan of one module defining `otel_thread_ctx_v1` at `value`, with these relocations,
    /// bias and `PT_TLS`, over `mem`.
    fn plan_of(
        is_main: bool,
        bias: u64,
        value: u64,
        relocs: Vec<TlsReloc>,
        tls: Option<TlsSegment>,
        mem: &ImageMemory,
    ) -> ReadPlan {
        let mut m = module("/crafted", is_main, None, Some(Libc::Glibc));
        m.bias = bias;
        m.elf.symbols = vec![tls_symbol(elf::OTEP_CTX, value)];
        m.elf.tls_relocs = relocs;
        m.elf.tls = tls;
        plan_from_modules(1, &[m], &[], mem)
    }

    fn only_error(plan: ReadPlan) -> ReadError {
        assert_eq!(plan.v2, vec![], "no slot from crafted values");
        assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
        assert_eq!(plan.errors[0].kind, ErrorKind::TlsUnresolved);
        plan.errors[0].clone()
    }

    const PAST_END: &str = "would end past the last address";

    /// A descriptor whose second word would be past u64::MAX (`r_offset` near the top, or bias
    /// plus `r_offset` wrapping there): an error, not an overflow panic in debug builds.
    #[test]
    fn crafted_relocation_offsets_near_the_top_are_errors() {
        let mem = ImageMemory::new();
        for (bias, offset) in [
            (0, u64::MAX - 3),
            (0x1000, u64::MAX - 0x1000 - 3),
            (u64::MAX, u64::MAX),
        ] {
            let named = reloc(TlsRelocKind::TlsDesc, Some(elf::OTEP_CTX), offset, 0);
            let e = only_error(plan_of(false, bias, 0x10, vec![named], None, &mem));
            assert!(e.detail.contains(PAST_END), "{e:?}");
            // Local-dynamic TLSDESC (symbol index 0), both the addend form and the module-base form.
            for addend in [0x10, 0] {
                let anonymous = reloc(TlsRelocKind::TlsDesc, None, offset, addend);
                let e = only_error(plan_of(false, bias, 0x10, vec![anonymous], None, &mem));
                assert!(e.detail.contains(PAST_END), "{e:?}");
            }
        }
    }

    /// Bias plus `r_offset` is modular on purpose: a sum past u64::MAX lands low, where the GOT
    /// slot is read like any other.
    #[test]
    fn bias_plus_offset_wraps_on_purpose() {
        let mut mem = ImageMemory::new();
        mem.insert(0x2000, (-0x40i64).to_le_bytes().to_vec());
        let tpoff = reloc(
            TlsRelocKind::TpOff,
            Some(elf::OTEP_CTX),
            u64::MAX - 0xfff, // + bias 0x3000 = 2^64 + 0x2000
            0,
        );
        let plan = plan_of(false, 0x3000, 0, vec![tpoff], None, &mem);
        assert_eq!(plan.errors, vec![]);
        assert_eq!(plan.v2[0].slot.rule, SlotRule::TpRelative { offset: -0x40 });
    }

    /// A crafted `PT_TLS` or `st_value` of an executable: an error, not a truncated offset.
    #[test]
    fn crafted_executable_tls_values_are_errors() {
        let mem = ImageMemory::new();
        let seg = |memsz, align| TlsSegment {
            vaddr: 0x3dc0,
            memsz,
            filesz: 0,
            align,
        };
        for (tls, value) in [
            (seg(u64::MAX, 1), 0),
            (seg(0x4d, u64::MAX), 0),
            (seg(0x4d, 0x40), u64::MAX),
            (seg(0x4d, 0x40), 1 << 63),
        ] {
            let e = only_error(plan_of(true, 0, value, vec![], Some(tls), &mem));
            assert!(e.detail.contains("give no thread-pointer offset"), "{e:?}");
        }
        // The recorded case still resolves: TP - 128 + 0x40.
        let plan = plan_of(true, 0, 0x40, vec![], Some(seg(0x4d, 0x40)), &mem);
        assert_eq!(plan.v2[0].slot.rule, SlotRule::TpRelative { offset: -64 });
    }

    // rules: v1-other-version, v1-abi-version-value
    /// `custom_labels_abi_version` is read from memory at bias + `st_value`: 1 with the v1 symbol
    /// is the pointer layout; any other value, or a word that is not 4 bytes, means nothing of v1
    /// applies (an `unsupported` error, no slot), and an unreadable word is `unreadable`.
    #[test]
    fn v1_abi_version_other_than_one_is_unsupported() {
        let mut m = module("/w/libcustomlabels.so", false, None, None);
        m.bias = 0x10_0000;
        m.elf.symbols = vec![SymbolInfo {
            name: elf::V1_ABI_VERSION.into(),
            value: 0x2000,
            size: 4,
            is_tls: false,
            in_dynsym: true,
            is_global: true,
        }];
        for (word, want) in [
            (1u32, Some(V1Layout::Pointer)),
            (0, None),
            (2, None),
            (0x0100_0000, None), // 1 in the other byte order
            (u32::MAX, None),
        ] {
            let mut mem = ImageMemory::new();
            mem.insert(0x10_2000, word.to_le_bytes().to_vec());
            match (v1_layout(&m, &mem, elf::V1_SET), want) {
                (Ok(layout), Some(w)) => assert_eq!(layout, w),
                (Err(e), None) => assert_eq!(e.kind, ErrorKind::Unsupported, "{word}: {e:?}"),
                (r, w) => panic!("version word {word}: {r:?}, wanted {w:?}"),
            }
        }
        let e = v1_layout(&m, &ImageMemory::new(), elf::V1_SET).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreadable, "{e:?}");
        m.elf.symbols[0].size = 8;
        let mut mem = ImageMemory::new();
        mem.insert(0x10_2000, 1u64.to_le_bytes().to_vec());
        let e = v1_layout(&m, &mem, elf::V1_SET).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::Unsupported,
            "a version word of 8 bytes: {e:?}"
        );
    }

    #[test]
    fn libc_from_interpreter_then_mapped_libraries_then_static_symbols() {
        let musl_exe = module("/w", true, Some("/lib/ld-musl-x86_64.so.1"), None);
        assert_eq!(detect_libc(&[musl_exe]), Libc::Musl);
        // Debian maps its musl loader as .../x86_64-linux-musl/libc.so (seen on Debian 12)
        let plain = module("/w", true, None, None);
        let debian_musl = module("/usr/lib/x86_64-linux-musl/libc.so", false, None, None);
        assert_eq!(detect_libc(&[plain.clone(), debian_musl]), Libc::Musl);
        let glibc = module("/usr/lib/x86_64-linux-gnu/libc.so.6", false, None, None);
        assert_eq!(detect_libc(&[plain, glibc]), Libc::Glibc);
        let static_musl = module("/w", true, None, Some(Libc::Musl));
        assert_eq!(detect_libc(&[static_musl]), Libc::Musl);
    }
}

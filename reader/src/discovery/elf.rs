//! What discovery needs from one ELF file: its `PT_TLS` segment, the context symbols (from
//! `.dynsym`, with a `.symtab` fallback) and the TLS dynamic relocations of both `.rela.dyn` and
//! `.rela.plt` (pitfall 12). Pure: works on bytes, knows nothing about processes.

use object::elf;
use object::read::elf::{Dyn, ElfFile64, FileHeader, ProgramHeader};
use object::{
    Endianness, Object, ObjectSymbol, ObjectSymbolTable, RelocationFlags, RelocationTarget,
    SymbolKind,
};
use serde::Serialize;

use crate::abi::{Arch, Libc, TlsSegment};

pub const V1_SET: &str = "custom_labels_current_set";
pub const V1_ABI_VERSION: &str = "custom_labels_abi_version";
pub const V0_INLINE: &str = "custom_labels_thread_local_data";
pub const OTEP_CTX: &str = "otel_thread_ctx_v1";
pub const DRAFT_CTX: &str = "custom_labels_current_set_v2";
pub const CONTEXT_SYMBOLS: [&str; 5] = [V1_SET, V1_ABI_VERSION, V0_INLINE, OTEP_CTX, DRAFT_CTX];
/// Symbols of known thread-context schemes this reader does not decode, with what they are
/// (formats.md 2.2). A module defining one is reported as `unsupported`, never passed over.
pub const UNSUPPORTED_SYMBOLS: [(&str, &str); 1] = [(
    "otel_thread_ctx_nodejs_v1",
    "the Node.js thread context of DataDog's dd_pprof.node (schema nodejs_v1_dev): a discovery \
     struct for records inside V8, not a TLS pointer to a record",
)];

/// What a known but undecoded context symbol is, if `name` is one ([`UNSUPPORTED_SYMBOLS`]).
pub fn unsupported_symbol(name: &str) -> Option<&'static str> {
    UNSUPPORTED_SYMBOLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, what)| *what)
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not a 64-bit little-endian ELF file: {0}")]
    Parse(#[from] object::Error),
    #[error("unsupported machine {0:#x} (x86-64 and aarch64 only)")]
    Machine(u16),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolInfo {
    pub name: String,
    /// `st_value`: for `STT_TLS`, the offset inside the TLS image; otherwise a virtual address.
    pub value: u64,
    pub size: u64,
    pub is_tls: bool,
    pub in_dynsym: bool,
    pub is_global: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsRelocKind {
    /// `R_X86_64_DTPMOD64` / `R_AARCH64_TLS_DTPMOD64`: module id into the GOT.
    DtpMod,
    /// `R_X86_64_DTPOFF64` / `R_AARCH64_TLS_DTPREL64`: offset inside the module block.
    DtpOff,
    /// `R_X86_64_TPOFF64` / `R_AARCH64_TLS_TPREL64`: initial-exec TP offset.
    TpOff,
    /// `R_X86_64_TLSDESC` / `R_AARCH64_TLSDESC`: a two-word descriptor.
    TlsDesc,
}

impl TlsRelocKind {
    pub fn from_type(arch: Arch, r_type: u32) -> Option<Self> {
        match (arch, r_type) {
            (Arch::X86_64, elf::R_X86_64_DTPMOD64) | (Arch::Aarch64, elf::R_AARCH64_TLS_DTPMOD) => {
                Some(Self::DtpMod)
            }
            (Arch::X86_64, elf::R_X86_64_DTPOFF64) | (Arch::Aarch64, elf::R_AARCH64_TLS_DTPREL) => {
                Some(Self::DtpOff)
            }
            (Arch::X86_64, elf::R_X86_64_TPOFF64) | (Arch::Aarch64, elf::R_AARCH64_TLS_TPREL) => {
                Some(Self::TpOff)
            }
            (Arch::X86_64, elf::R_X86_64_TLSDESC) | (Arch::Aarch64, elf::R_AARCH64_TLSDESC) => {
                Some(Self::TlsDesc)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsReloc {
    pub kind: TlsRelocKind,
    /// `None` for symbol index 0 (local-dynamic, hidden or `-Bsymbolic` accesses).
    pub symbol: Option<String>,
    /// `r_offset`: virtual address of the GOT entry or descriptor.
    pub offset: u64,
    pub addend: i64,
}

/// Everything discovery and the ELF lint (`lint.rs`) use from one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfModule {
    pub arch: Arch,
    /// `ET_DYN` (PIE or shared object) rather than `ET_EXEC`.
    pub is_dyn: bool,
    /// `PT_INTERP`: the dynamic loader an executable asks for.
    pub interp: Option<String>,
    pub has_dynsym: bool,
    pub soname: Option<String>,
    /// `DF_1_PIE` in `DT_FLAGS_1`: an executable even without `PT_INTERP` (static-pie).
    pub pie_flag: bool,
    pub tls: Option<TlsSegment>,
    /// `(p_vaddr, p_offset)` of the first `PT_LOAD`, for the load bias.
    pub first_load: (u64, u64),
    /// The context symbols this module defines (one entry per name: `.dynsym` preferred),
    /// including the known but undecoded ones of [`UNSUPPORTED_SYMBOLS`].
    pub symbols: Vec<SymbolInfo>,
    pub tls_relocs: Vec<TlsReloc>,
    /// The libc a statically linked file carries, guessed from its symbols.
    pub static_libc: Option<Libc>,
}

impl ElfModule {
    pub fn symbol(&self, name: &str) -> Option<&SymbolInfo> {
        self.symbols.iter().find(|s| s.name == name)
    }

    pub fn relocs_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a TlsReloc> + 'a {
        self.tls_relocs
            .iter()
            .filter(move |r| r.symbol.as_deref() == Some(name))
    }
}

pub fn inspect(data: &[u8]) -> Result<ElfModule, ElfError> {
    let file = ElfFile64::<Endianness>::parse(data)?;
    let endian = file.endian();
    let header = file.elf_header();
    let arch = match header.e_machine(endian) {
        elf::EM_X86_64 => Arch::X86_64,
        elf::EM_AARCH64 => Arch::Aarch64,
        m => return Err(ElfError::Machine(m)),
    };
    let segments = segments(&file, data);
    let (symbols, static_libc) = context_symbols(&file);
    let (soname, pie_flag) = dynamic_entries(&file, data);
    Ok(ElfModule {
        arch,
        is_dyn: header.e_type(endian) == elf::ET_DYN,
        interp: segments.interp,
        has_dynsym: file.dynamic_symbol_table().is_some(),
        soname,
        pie_flag,
        tls: segments.tls,
        first_load: segments.first_load.unwrap_or((0, 0)),
        symbols,
        tls_relocs: tls_relocations(&file, arch),
        static_libc,
    })
}

/// What the program headers say: `PT_TLS`, the first `PT_LOAD`, `PT_INTERP`.
struct Segments {
    tls: Option<TlsSegment>,
    first_load: Option<(u64, u64)>,
    interp: Option<String>,
}

fn segments(file: &ElfFile64<Endianness>, data: &[u8]) -> Segments {
    let endian = file.endian();
    let mut found = Segments {
        tls: None,
        first_load: None,
        interp: None,
    };
    for ph in file.elf_program_headers() {
        match ph.p_type(endian) {
            elf::PT_TLS => {
                found.tls = Some(TlsSegment {
                    vaddr: ph.p_vaddr(endian),
                    memsz: ph.p_memsz(endian),
                    filesz: ph.p_filesz(endian),
                    align: ph.p_align(endian).max(1),
                })
            }
            elf::PT_LOAD if found.first_load.is_none() => {
                found.first_load = Some((ph.p_vaddr(endian), ph.p_offset(endian)))
            }
            elf::PT_INTERP => {
                let path = ph.data(endian, data).unwrap_or_default();
                let path = path.split(|b| *b == 0).next().unwrap_or_default();
                found.interp = Some(String::from_utf8_lossy(path).into_owned());
            }
            _ => {}
        }
    }
    found
}

/// The context symbols defined in `.dynsym`, then those only in `.symtab` (one entry per name),
/// and the libc a static file carries, guessed from `.symtab`.
fn context_symbols(file: &ElfFile64<Endianness>) -> (Vec<SymbolInfo>, Option<Libc>) {
    let mut symbols: Vec<SymbolInfo> = Vec::new();
    let dynsym = file.dynamic_symbol_table();
    let symtab = file.symbol_table();
    let tables = [(dynsym.as_ref(), true), (symtab.as_ref(), false)];
    let mut static_libc = None;
    for (table, in_dynsym) in tables {
        let Some(table) = table else { continue };
        for sym in table.symbols() {
            let Ok(name) = sym.name() else { continue };
            if !in_dynsym {
                static_libc = static_libc.or(match name {
                    "__libc_setup_tls" | "_dl_static_dtv" => Some(Libc::Glibc),
                    "__init_tp" | "__init_tls" | "__copy_tls" => Some(Libc::Musl),
                    _ => None,
                });
            }
            let wanted = CONTEXT_SYMBOLS.contains(&name) || unsupported_symbol(name).is_some();
            if !wanted || sym.is_undefined() {
                continue;
            }
            if symbols.iter().any(|s| s.name == name) {
                continue; // already seen in .dynsym
            }
            symbols.push(SymbolInfo {
                name: name.to_string(),
                value: sym.address(),
                size: sym.size(),
                is_tls: sym.kind() == SymbolKind::Tls,
                in_dynsym,
                is_global: sym.is_global(),
            });
        }
    }
    (symbols, static_libc)
}

/// The TLS relocations of the dynamic relocation sections (`.rela.dyn` and `.rela.plt`).
fn tls_relocations(file: &ElfFile64<Endianness>, arch: Arch) -> Vec<TlsReloc> {
    let dynsym = file.dynamic_symbol_table();
    let mut tls_relocs = Vec::new();
    let Some(relocs) = file.dynamic_relocations() else {
        return tls_relocs;
    };
    for (offset, reloc) in relocs {
        let RelocationFlags::Elf { r_type } = reloc.flags() else {
            continue;
        };
        let Some(kind) = TlsRelocKind::from_type(arch, r_type) else {
            continue;
        };
        let symbol = match reloc.target() {
            RelocationTarget::Symbol(idx) if idx.0 != 0 => dynsym
                .as_ref()
                .and_then(|t| t.symbol_by_index(idx).ok())
                .and_then(|s| s.name().ok().map(str::to_string)),
            _ => None,
        };
        tls_relocs.push(TlsReloc {
            kind,
            symbol,
            offset,
            addend: reloc.addend(),
        });
    }
    tls_relocs
}

/// `DT_SONAME` and whether `DT_FLAGS_1` has `DF_1_PIE`.
fn dynamic_entries(file: &ElfFile64<Endianness>, data: &[u8]) -> (Option<String>, bool) {
    let endian = file.endian();
    let dynamic = file
        .elf_section_table()
        .dynamic(endian, data)
        .ok()
        .flatten();
    let soname = dynamic.and_then(|(entries, strings_index)| {
        let strings = file
            .elf_section_table()
            .strings(endian, data, strings_index)
            .ok()?;
        entries
            .iter()
            .find(|d| d.d_tag(endian) as u32 == elf::DT_SONAME)
            .and_then(|d| d.string(endian, strings).ok())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    });
    let pie_flag = dynamic.is_some_and(|(entries, _)| {
        entries.iter().any(|d| {
            d.d_tag(endian) as u32 == elf::DT_FLAGS_1 && d.d_val(endian) as u32 & elf::DF_1_PIE != 0
        })
    });
    (soname, pie_flag)
}

//! The ELF lint behind `context-reader check FILE`: lints a writer binary or DSO against the
//! specs, from the file alone (conformance.md section 6). Not to be confused with the conformance
//! comparison of snapshots (`conformance::compare`).

use object::{Object, ObjectSection};
use serde::Serialize;

use crate::discovery::elf::{self, ElfModule, SymbolInfo, TlsRelocKind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolReport {
    pub name: String,
    pub in_dynsym: bool,
    pub is_tls: bool,
    pub is_global: bool,
    pub size: u64,
    /// Access models seen in this file's dynamic relocations, e.g. `tlsdesc`, `initial_exec`.
    pub access_models: Vec<String>,
    /// How a reader that only stops the thread (no code run in the target) finds the slot, or
    /// `None` when it cannot from this file.
    pub stopped_reader_resolution: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub code: &'static str,
    /// The spec rules it breaks: ids of conformance/rules.toml, from [`FINDING_RULES`].
    pub rules: &'static [&'static str],
    pub detail: String,
}

/// The spec rules (ids of conformance/rules.toml) each finding breaks, per context symbol (`""`:
/// any): the report cites them so that a writer author sees which sentence of which spec the file
/// fails. One finding per line: `cargo xtask coverage` reads this table and fails on an unknown id.
#[rustfmt::skip]
pub const FINDING_RULES: &[(&str, &str, &[&str])] = &[
    ("not-in-dynsym", elf::V1_ABI_VERSION, &["v1-abi-version-export"]),
    ("not-in-dynsym", elf::V1_SET, &["v1-current-set-export"]),
    ("not-in-dynsym", elf::OTEP_CTX, &["tc-dynsym-export"]),
    ("not-tls", elf::V1_SET, &["v1-exe-static-offset", "v1-dso-tlsdesc"]),
    ("not-tls", elf::OTEP_CTX, &["tc-dynsym-export"]),
    ("tls-size", elf::V1_SET, &["v1-labelset-layout"]),
    ("tls-size", elf::OTEP_CTX, &["tc-tls-pointer"]),
    ("unresolvable", elf::V1_SET, &["v1-dso-tlsdesc"]),
    ("unresolvable", elf::OTEP_CTX, &["tc-writers-tlsdesc"]),
    ("v1-abi-missing", "", &["v1-abi-version-export"]),
    ("v1-abi-size", "", &["v1-abi-version-value"]),
    ("v1-abi-version", "", &["v1-abi-version-value"]),
    ("v1-dso-name", "", &["v1-dso-filename"]),
    ("v1-dso-not-tlsdesc", "", &["v1-dso-tlsdesc"]),
    ("otep-local-dynamic", "", &["tc-no-local-dynamic"]),
];

/// The rules a finding about `symbol` cites (none for the legacy symbols no spec here covers).
pub fn rules_of(code: &str, symbol: &str) -> &'static [&'static str] {
    FINDING_RULES
        .iter()
        .find(|(c, s, _)| *c == code && (s.is_empty() || *s == symbol))
        .map_or(&[], |(_, _, rules)| rules)
}

/// A known context symbol this reader does not decode (`elf::UNSUPPORTED_SYMBOLS`): said, not a
/// violation of the writer's (the exit status does not change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsupported {
    /// Always `unsupported`, as the snapshot's error kind.
    pub kind: &'static str,
    pub name: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintReport {
    pub file: String,
    pub kind: &'static str,
    pub symbols: Vec<SymbolReport>,
    /// The value of `custom_labels_abi_version` in the file, when it has one.
    pub v1_abi_version: Option<u32>,
    /// Whether a DSO's name satisfies the v1 rule `libcustomlabels.*\.so$|customlabels\.node$`.
    pub v1_dso_name_ok: Option<bool>,
    pub violations: Vec<Violation>,
    /// Known context symbols the reader does not decode (absent from JSON when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<Unsupported>,
}

impl LintReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

fn file_kind(m: &ElfModule) -> &'static str {
    match (m.is_dyn, m.interp.is_some(), m.pie_flag) {
        (false, true, _) => "executable (non-PIE)",
        (false, false, _) => "static executable",
        (true, true, _) => "PIE executable",
        (true, false, true) => "static-pie executable",
        (true, false, false) => "shared object",
    }
}

fn is_executable(m: &ElfModule) -> bool {
    !m.is_dyn || m.interp.is_some() || m.pie_flag
}

/// The v1 DSO filename rule, anchored as the spec writes it.
pub fn v1_dso_name_ok(file_name: &str) -> bool {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    (base.starts_with("libcustomlabels") && base.ends_with(".so"))
        || base.ends_with("customlabels.node")
}

fn model_name(kind: TlsRelocKind, anonymous: bool) -> &'static str {
    match (kind, anonymous) {
        (TlsRelocKind::TlsDesc, false) => "tlsdesc",
        (TlsRelocKind::TlsDesc, true) => "local_dynamic_tlsdesc",
        (TlsRelocKind::TpOff, _) => "initial_exec",
        (TlsRelocKind::DtpMod, false) => "general_dynamic",
        (TlsRelocKind::DtpMod, true) => "local_dynamic",
        (TlsRelocKind::DtpOff, _) => "dtpoff",
    }
}

fn symbol_report(m: &ElfModule, sym: &SymbolInfo, executable: bool) -> SymbolReport {
    if !sym.is_tls {
        // The ABI version word is read from memory at load bias + st_value: nothing to resolve.
        return SymbolReport {
            name: sym.name.clone(),
            in_dynsym: sym.in_dynsym,
            is_tls: false,
            is_global: sym.is_global,
            size: sym.size,
            access_models: Vec::new(),
            stopped_reader_resolution: None,
        };
    }
    let mut models: Vec<String> = m
        .relocs_for(&sym.name)
        .map(|r| model_name(r.kind, false).to_string())
        .collect();
    let anonymous: Vec<String> = m
        .tls_relocs
        .iter()
        .filter(|r| {
            r.symbol.is_none() && matches!(r.kind, TlsRelocKind::TlsDesc | TlsRelocKind::DtpMod)
        })
        .map(|r| model_name(r.kind, true).to_string())
        .collect();
    let named_any = !models.is_empty();
    if !named_any {
        models.extend(anonymous.iter().cloned());
    }
    models.sort();
    models.dedup();
    if executable && !named_any {
        models.insert(0, "local_exec".into());
    }
    let resolution = if !sym.is_tls {
        None
    } else if m
        .relocs_for(&sym.name)
        .any(|r| r.kind == TlsRelocKind::TpOff)
    {
        Some("initial-exec GOT slot, read once per process".into())
    } else if m
        .relocs_for(&sym.name)
        .any(|r| r.kind == TlsRelocKind::TlsDesc)
    {
        Some("TLSDESC descriptor: static TP offset, or DTV walk when dynamic".into())
    } else if m
        .relocs_for(&sym.name)
        .any(|r| r.kind == TlsRelocKind::DtpMod)
    {
        Some("tls_index (module id, offset) + per-thread DTV walk".into())
    } else if executable && m.tls.is_some() {
        Some("static TP offset from PT_TLS".into())
    } else if !anonymous.is_empty() {
        Some("module id from a symbol-less relocation + st_value (local-dynamic)".into())
    } else {
        None
    };
    SymbolReport {
        name: sym.name.clone(),
        in_dynsym: sym.in_dynsym,
        is_tls: sym.is_tls,
        is_global: sym.is_global,
        size: sym.size,
        access_models: models,
        stopped_reader_resolution: resolution,
    }
}

/// The offset of a 4-byte word at `vaddr` inside a section at `start` of `size` bytes, if it lies
/// wholly inside. All three come from the file: checked arithmetic, no overflow.
fn word_offset_in_section(vaddr: u64, start: u64, size: u64) -> Option<usize> {
    start.checked_add(size)?; // a section past the last address is not a section
    let off = vaddr.checked_sub(start)?;
    let end = off.checked_add(4)?;
    (end <= size).then(|| usize::try_from(off).ok()).flatten()
}

fn read_u32_at_vaddr(data: &[u8], vaddr: u64) -> Option<u32> {
    let file = object::File::parse(data).ok()?;
    for section in file.sections() {
        if let Some(off) = word_offset_in_section(vaddr, section.address(), section.size()) {
            let bytes = section.data().ok()?;
            // .bss has no file bytes: the word is 0
            return Some(
                bytes
                    .get(off..off.saturating_add(4))
                    .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes"))),
            );
        }
    }
    None
}

pub fn lint_file(path: &str) -> Result<LintReport, String> {
    let data = std::fs::File::open(path)
        .and_then(|f| crate::sys::map_file(&f))
        .map_err(|e| format!("{path}: {e}"))?;
    let m = elf::inspect(&data).map_err(|e| format!("{path}: {e}"))?;
    Ok(lint_module(path, &data, &m))
}

pub fn lint_module(path: &str, data: &[u8], m: &ElfModule) -> LintReport {
    let executable = is_executable(m);
    let mut violations = Vec::new();
    let mut v = |code: &'static str, symbol: &str, detail: String| {
        violations.push(Violation {
            code,
            rules: rules_of(code, symbol),
            detail,
        })
    };
    let symbols: Vec<SymbolReport> = m
        .symbols
        .iter()
        .filter(|s| elf::unsupported_symbol(&s.name).is_none())
        .map(|s| symbol_report(m, s, executable))
        .collect();
    let unsupported: Vec<Unsupported> = m
        .symbols
        .iter()
        .filter_map(|s| {
            let what = elf::unsupported_symbol(&s.name)?;
            Some(Unsupported {
                kind: "unsupported",
                name: s.name.clone(),
                detail: format!("{what}; this reader does not decode it"),
            })
        })
        .collect();

    let v1_abi_version = m
        .symbol(elf::V1_ABI_VERSION)
        .and_then(|s| read_u32_at_vaddr(data, s.value));
    let has_v1 = m.symbol(elf::V1_SET).is_some();
    let v1_dso_name_ok = (has_v1 && !executable).then(|| v1_dso_name_ok(path));
    for s in &symbols {
        let tls_symbol = s.name != elf::V1_ABI_VERSION;
        if !s.in_dynsym {
            v(
                "not-in-dynsym",
                &s.name,
                format!("{} is only in .symtab: a reader of a stripped file cannot find it (export it with --dynamic-list or --export-dynamic-symbol)", s.name),
            );
        }
        if tls_symbol && !s.is_tls {
            v(
                "not-tls",
                &s.name,
                format!("{} is not an STT_TLS symbol", s.name),
            );
        }
        if tls_symbol && s.is_tls && s.size != 8 && s.name != elf::V0_INLINE {
            v(
                "tls-size",
                &s.name,
                format!(
                    "{} has size {}, the specs say 8 (one pointer)",
                    s.name, s.size
                ),
            );
        }
        if tls_symbol && s.is_tls && s.stopped_reader_resolution.is_none() {
            v(
                "unresolvable",
                &s.name,
                format!(
                    "{}: no dynamic relocation lets a reader find the slot of a DSO symbol",
                    s.name
                ),
            );
        }
    }
    if has_v1 {
        match (m.symbol(elf::V1_ABI_VERSION), v1_abi_version) {
            (None, _) => v(
                "v1-abi-missing",
                "",
                "custom_labels_abi_version is not defined".into(),
            ),
            (Some(s), _) if s.size != 4 => v(
                "v1-abi-size",
                "",
                format!("custom_labels_abi_version has size {}, not 4", s.size),
            ),
            (Some(_), Some(1)) => {}
            (Some(_), ver) => v(
                "v1-abi-version",
                "",
                format!("custom_labels_abi_version is {ver:?}, not 1"),
            ),
        }
        if !executable {
            if v1_dso_name_ok == Some(false) {
                v(
                    "v1-dso-name",
                    "",
                    format!(
                        "{path}: a v1 DSO must be named libcustomlabels*.so or customlabels.node"
                    ),
                );
            }
            if !m
                .relocs_for(elf::V1_SET)
                .any(|r| r.kind == TlsRelocKind::TlsDesc)
            {
                v(
                    "v1-dso-not-tlsdesc",
                "",
                    "custom_labels_current_set must be reached through a TLSDESC relocation naming it (-mtls-dialect=gnu2)".into(),
                );
            }
        }
    }
    if let Some(s) = symbols.iter().find(|s| s.name == elf::OTEP_CTX) {
        let named = m.relocs_for(elf::OTEP_CTX).next().is_some();
        if !executable
            && !named
            && s.access_models
                .iter()
                .any(|a| a.starts_with("local_dynamic"))
        {
            v(
                "otep-local-dynamic",
                "",
                "otel_thread_ctx_v1 is reachable only through local-dynamic relocations, which OTEP 4947 excludes".into(),
            );
        }
    }
    LintReport {
        file: path.to_string(),
        kind: file_kind(m),
        symbols,
        v1_abi_version,
        v1_dso_name_ok,
        violations,
        unsupported,
    }
}

pub fn report_text(r: &LintReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", r.file, r.kind);
    if r.symbols.is_empty() {
        out.push_str("  no context symbols\n");
    }
    for s in &r.symbols {
        let table = if s.in_dynsym {
            ".dynsym"
        } else {
            ".symtab only"
        };
        let binding = if s.is_global { "global" } else { "local" };
        if !s.is_tls {
            let _ = writeln!(
                out,
                "  {}: object {binding}, size {}, {table}",
                s.name, s.size
            );
            continue;
        }
        let access = if s.access_models.is_empty() {
            "none".to_string()
        } else {
            s.access_models.join(", ")
        };
        let _ = writeln!(
            out,
            "  {}: STT_TLS {binding}, size {}, {table}; access: {access}; stopped-thread reader: {}",
            s.name,
            s.size,
            s.stopped_reader_resolution.as_deref().unwrap_or("cannot resolve"),
        );
    }
    if let Some(v) = r.v1_abi_version {
        let _ = writeln!(out, "  custom_labels_abi_version = {v}");
    }
    if let Some(ok) = r.v1_dso_name_ok {
        let _ = writeln!(
            out,
            "  v1 DSO file name rule: {}",
            if ok { "ok" } else { "violated" }
        );
    }
    for u in &r.unsupported {
        let _ = writeln!(out, "  UNSUPPORTED {}: {}", u.name, u.detail);
    }
    for v in &r.violations {
        let _ = writeln!(
            out,
            "  VIOLATION {} [{}]: {}",
            v.code,
            v.rules.join(", "),
            v.detail
        );
    }
    if r.violations.is_empty() {
        out.push_str("  clean\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Arch;

    #[test]
    fn a_known_undecoded_symbol_is_reported_unsupported_not_as_a_violation() {
        let node = ElfModule {
            arch: Arch::X86_64,
            is_dyn: true,
            interp: None,
            has_dynsym: true,
            soname: Some("dd_pprof.node".into()),
            pie_flag: false,
            tls: None,
            first_load: (0, 0),
            symbols: vec![SymbolInfo {
                name: "otel_thread_ctx_nodejs_v1".into(),
                value: 0x4000,
                size: 32,
                is_tls: false,
                in_dynsym: true,
                is_global: true,
            }],
            tls_relocs: vec![],
            static_libc: None,
        };
        let r = lint_module("dd_pprof.node", &[], &node);
        assert!(r.symbols.is_empty(), "{:?}", r.symbols);
        assert!(r.is_clean(), "{:?}", r.violations);
        assert_eq!(r.unsupported.len(), 1);
        assert_eq!(
            (r.unsupported[0].kind, r.unsupported[0].name.as_str()),
            ("unsupported", "otel_thread_ctx_nodejs_v1")
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["unsupported"][0]["kind"], "unsupported");
        let text = report_text(&r);
        assert!(
            text.contains("  UNSUPPORTED otel_thread_ctx_nodejs_v1: the Node.js thread context"),
            "{text}"
        );
        // Without such a symbol the JSON has no `unsupported` key (existing reports unchanged).
        let plain = ElfModule {
            symbols: vec![],
            ..node
        };
        let json = serde_json::to_value(lint_module("x.so", &[], &plain)).unwrap();
        assert!(json.get("unsupported").is_none(), "{json}");
    }

    #[test]
    fn word_offsets_from_crafted_section_headers_do_not_overflow() {
        let max = u64::MAX;
        assert_eq!(word_offset_in_section(0x1010, 0x1000, 0x20), Some(0x10));
        assert_eq!(word_offset_in_section(0x101c, 0x1000, 0x20), Some(0x1c));
        assert_eq!(
            word_offset_in_section(0x101d, 0x1000, 0x20),
            None,
            "crosses the end"
        );
        assert_eq!(
            word_offset_in_section(0xfff, 0x1000, 0x20),
            None,
            "before the start"
        );
        // Values that overflowed `vaddr + 4` or `start + size` before.
        assert_eq!(word_offset_in_section(max - 1, 0, max), None);
        assert_eq!(word_offset_in_section(max - 4, max - 0x10, 0x10), Some(0xc));
        assert_eq!(word_offset_in_section(max - 3, max - 0x10, 0x10), None);
        assert_eq!(
            word_offset_in_section(max, max, max),
            None,
            "section past the end"
        );
        assert_eq!(word_offset_in_section(0x10, max, 0x100), None);
    }
}

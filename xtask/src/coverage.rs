//! `cargo xtask coverage [--check]`: which case checks which spec rule (issue 16).
//!
//! Reads the rule catalogue `conformance/rules.toml` and every declaration of the rules a case
//! checks, then writes `conformance/SPEC-COVERAGE.md`; `--check` fails instead when the committed
//! file differs, when a declaration names a rule id that does not exist, when a rule has neither a
//! case nor a `gap` (or has both), or when the counts in the catalogue's header are wrong.
//! Nothing is built or run: the conformance cases are derived from the same sources the runner
//! uses (`targets/src/{variants,scenarios,selection}.rs`, included below, and
//! `targets/rust/variants.json`).
//!
//! Declarations (conformance/README.md, "Spec coverage"):
//! * `SCENARIO_RULES` (targets/src/scenarios.rs): every case of the scenario, on every arch and
//!   backend the runner generates it for; `VARIANT_RULES` (targets/src/variants.rs): the placement
//!   cases of C variants with the given build traits;
//! * the hostile suite's `CASES` table (conformance/tests/hostile.rs), one case per line;
//! * a `// rules: ID, ID` comment line right above a test function (or its attributes) in
//!   reader/src, reader/tests/it and conformance/tests/lint.rs;
//! * `VIOLATION code [ID, ...]` lines of the pinned `check` reports (conformance/tests/snapshots/lint);
//! * ids cited by `check` (`FINDING_RULES`, reader/src/lint.rs) and by conformance diffs
//!   (`rules_for_path`, reader/src/certify/compare.rs) are checked to exist.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The C catalogue and the case selection, compiled from the files the targets' build script and
/// the conformance runner use.
#[allow(dead_code, clippy::all)]
mod catalogue {
    include!("../../targets/src/variants.rs");
    include!("../../targets/src/scenarios.rs");
    include!("../../targets/src/selection.rs");

    /// (name, decoding class, build traits, formats) of every C variant that exists for `triple`.
    pub(super) fn c_variants(triple: &str) -> Vec<(String, String, Vec<String>, Vec<String>)> {
        VARIANTS
            .iter()
            .filter_map(|n| Spec::parse(n).ok())
            .filter(|s| applies_on(s, triple))
            .map(|s| {
                let formats = s.formats().iter().map(|f| f.to_string()).collect();
                (
                    s.name.clone(),
                    s.decoding_class(triple),
                    s.traits(),
                    formats,
                )
            })
            .collect()
    }

    pub(super) fn variant_rules() -> &'static [(&'static str, &'static [&'static str])] {
        VARIANT_RULES
    }
}

const ARCHES: [(&str, &str); 2] = [
    ("x86_64", "x86_64-unknown-linux-gnu"),
    ("aarch64", "aarch64-unknown-linux-gnu"),
];
/// Columns of the report: the live backends, then the two kinds of static case.
const BACKENDS: [&str; 4] = ["ptrace", "ebpf", "decoder", "check"];

#[derive(Debug, Clone)]
struct Rule {
    id: String,
    doc: String,
    section: String,
    binds: String,
    kind: String,
    source: String,
    quote: String,
    gap: Option<String>,
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    arch: &'static str,
    backend: &'static str,
    rules: Vec<String>,
    /// Where it is declared, for error messages.
    origin: String,
}

/// A TOML basic string (`"..."` with `\\`, `\"`, `\n`, `\t`, `\uXXXX`) or literal string (`'...'`).
fn toml_string(raw: &str, at: &str) -> Result<String> {
    let raw = raw.trim();
    if let Some(body) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Ok(body.to_string());
    }
    let body = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .with_context(|| format!("{at}: expected a one-line string"))?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .with_context(|| format!("{at}: bad \\u escape"))?;
                out.push(c);
            }
            other => bail!("{at}: unsupported escape \\{other:?}"),
        }
    }
    Ok(out)
}

/// The catalogue: a strict subset of TOML (`[[rule]]` tables of one-line `key = "string"`).
fn parse_rules(text: &str) -> Result<Vec<Rule>> {
    let mut tables: Vec<BTreeMap<String, String>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("rules.toml:{}", n + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[[rule]]" {
            tables.push(BTreeMap::new());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .with_context(|| format!("{at}: expected `key = \"value\"`"))?;
        let table = tables
            .last_mut()
            .with_context(|| format!("{at}: a key before the first [[rule]]"))?;
        let key = key.trim().to_string();
        if table
            .insert(key.clone(), toml_string(value, &at)?)
            .is_some()
        {
            bail!("{at}: {key} given twice");
        }
    }
    let mut rules = Vec::new();
    let mut seen = BTreeSet::new();
    for mut t in tables {
        let mut take = |k: &str| {
            t.remove(k)
                .with_context(|| format!("rule {:?}: no `{k}`", t.get("id")))
        };
        let rule = Rule {
            id: take("id")?,
            doc: take("doc")?,
            section: take("section")?,
            binds: take("binds")?,
            kind: take("kind")?,
            source: take("source")?,
            quote: take("quote")?,
            gap: t.remove("gap"),
        };
        t.remove("note");
        if let Some(k) = t.keys().next() {
            bail!("rule {}: unknown key `{k}`", rule.id);
        }
        let prefix = match rule.doc.as_str() {
            "custom-labels-v1" => "v1-",
            "otep-4947" => "tc-",
            "otep-4719" => "pc-",
            d => bail!("rule {}: unknown doc {d}", rule.id),
        };
        if !rule.id.starts_with(prefix) || !is_rule_id(&rule.id) {
            bail!(
                "rule {}: the id must look like {prefix}lowercase-words",
                rule.id
            );
        }
        for (what, v, allowed) in [
            ("binds", &rule.binds, &["writer", "reader", "both"][..]),
            (
                "kind",
                &rule.kind,
                &["must", "must-not", "should", "should-not", "layout"][..],
            ),
            ("source", &rule.source, &["primary", "ours"][..]),
        ] {
            if !allowed.contains(&v.as_str()) {
                bail!("rule {}: {what} {v:?} is not one of {allowed:?}", rule.id);
            }
        }
        if !seen.insert(rule.id.clone()) {
            bail!("rule {}: id given twice", rule.id);
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn is_rule_id(s: &str) -> bool {
    let ok_prefix = ["v1-", "tc-", "pc-"].iter().any(|p| s.starts_with(p));
    ok_prefix
        && s.len() > 3
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The string literals of one line of Rust (no raw strings; escapes kept as written).
fn string_literals(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    if line.trim_start().starts_with("//") {
        return out;
    }
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    s.push(c);
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                }
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// The lines of the item starting at the line that contains `start`, up to its closing `end`.
fn item_lines<'a>(text: &'a str, start: &str, end: &str, file: &str) -> Result<Vec<&'a str>> {
    let mut lines = text.lines().skip_while(|l| !l.contains(start));
    let first = lines
        .next()
        .with_context(|| format!("{file}: `{start}` not found"))?;
    let mut out = vec![first];
    for l in lines {
        out.push(l);
        if l.trim_start().starts_with(end) {
            return Ok(out);
        }
    }
    bail!("{file}: `{start}` has no end `{end}`")
}

/// The conformance cases of `arch`, as conformance/tests/conformance.rs generates them without
/// `CONFORMANCE_FULL`, with the rules their scenario (and for placement scenarios, their C
/// variant's build) declares.
fn conformance_cases(root: &Path, arch: &'static str, triple: &str) -> Result<Vec<Case>> {
    struct V {
        name: String,
        class: String,
        scenarios: Vec<String>,
        backends: Vec<&'static str>,
        ebpf_excluded: Vec<String>,
        traits: Vec<String>,
        /// Formats published (`v1`, `v2`, `process_context`); empty: not declared.
        formats: Vec<String>,
    }
    let mut variants: Vec<V> = catalogue::c_variants(triple)
        .into_iter()
        .map(|(name, class, traits, formats)| V {
            name,
            class,
            scenarios: catalogue::SCENARIOS.iter().map(|s| s.to_string()).collect(),
            backends: vec!["ptrace", "ebpf"],
            ebpf_excluded: vec!["many-threads".to_string()],
            traits,
            formats,
        })
        .collect();
    let json_path = root.join("targets/rust/variants.json");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&json_path).with_context(|| format!("{}", json_path.display()))?,
    )
    .with_context(|| format!("{}", json_path.display()))?;
    for e in json.as_array().context("variants.json: not a list")? {
        let strings = |k: &str| -> Vec<String> {
            e[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let name = e["name"].as_str().context("variants.json: a name")?;
        let mut backends = Vec::new();
        for b in strings("backends") {
            backends.push(match b.as_str() {
                "ptrace" => "ptrace",
                "ebpf" => "ebpf",
                other => bail!("variants.json: {name}: unknown backend {other}"),
            });
        }
        if backends.is_empty() {
            backends.push("ptrace");
        }
        variants.push(V {
            name: name.to_string(),
            class: name.replace("-dso", ""),
            scenarios: strings("scenarios"),
            backends,
            ebpf_excluded: Vec::new(),
            traits: Vec::new(),
            formats: strings("formats"),
        });
    }
    let scenario_rules: BTreeMap<&str, &[&str]> =
        catalogue::SCENARIO_RULES.iter().copied().collect();
    let plain: Vec<(String, Vec<String>)> = variants
        .iter()
        .map(|v| (v.class.clone(), v.scenarios.clone()))
        .collect();
    let mut cases = Vec::new();
    for (i, scenario) in catalogue::select_cases(&plain, false) {
        let v = &variants[i];
        let Some(declared) = scenario_rules.get(scenario.as_str()) else {
            bail!("scenario {scenario} (variant {}) has no entry in SCENARIO_RULES (targets/src/scenarios.rs)", v.name);
        };
        let mut rules: Vec<String> = declared.iter().map(|s| s.to_string()).collect();
        if catalogue::is_placement_scenario(&scenario) {
            for (traits, ids) in catalogue::variant_rules() {
                if traits.split('+').all(|t| v.traits.iter().any(|w| w == t)) {
                    rules.extend(ids.iter().map(|s| s.to_string()));
                }
            }
        }
        // A writer exercises only the rules of the formats it publishes.
        rules.retain(|r| {
            let format = match &r[..3] {
                "v1-" => "v1",
                "tc-" => "v2",
                _ => "process_context",
            };
            v.formats.is_empty() || v.formats.iter().any(|f| f == format)
        });
        for backend in &v.backends {
            if *backend == "ebpf" && v.ebpf_excluded.contains(&scenario) {
                continue;
            }
            cases.push(Case {
                name: format!("{arch}/{backend}/{}/{scenario}", v.name),
                arch,
                backend,
                rules: rules.clone(),
                origin: "targets/src/scenarios.rs SCENARIO_RULES".into(),
            });
        }
    }
    Ok(cases)
}

/// The hostile suite (x86_64 only: the aarch64 leg runs the conformance binary alone).
fn hostile_cases(root: &Path) -> Result<Vec<Case>> {
    let file = "conformance/tests/hostile.rs";
    let text = std::fs::read_to_string(root.join(file)).context(file)?;
    let mut cases = Vec::new();
    for line in item_lines(&text, "const CASES:", "];", file)? {
        let line = line.trim();
        if !line.starts_with("(\"") {
            continue;
        }
        let strings = string_literals(line);
        let (name, rules) = strings.split_first().context("a case name")?;
        for (token, backend) in [("Backend::Ptrace", "ptrace"), ("Backend::Ebpf", "ebpf")] {
            if line.contains(token) {
                cases.push(Case {
                    name: format!("hostile/{backend}/{name}"),
                    arch: "x86_64",
                    backend,
                    rules: rules.to_vec(),
                    origin: format!("{file} CASES"),
                });
            }
        }
    }
    Ok(cases)
}

/// `// rules: ID, ID` markers above test functions.
fn marker_cases(root: &Path) -> Result<Vec<Case>> {
    let mut files: Vec<PathBuf> = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        Ok(())
    }
    walk(&root.join("reader/src"), &mut files)?;
    walk(&root.join("reader/tests/it"), &mut files)?;
    files.push(root.join("conformance/tests/lint.rs"));
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path).with_context(|| rel.clone())?;
        let lines: Vec<&str> = text.lines().collect();
        let (arches, backend): (&[&'static str], &'static str) = match rel.as_str() {
            "conformance/tests/lint.rs" => (&["x86_64"], "check"),
            "reader/tests/it/ptrace.rs" => (&["x86_64", "aarch64"], "ptrace"),
            "reader/tests/it/ebpf.rs" => (&["x86_64", "aarch64"], "ebpf"),
            _ => (&["x86_64", "aarch64"], "decoder"),
        };
        for (n, line) in lines.iter().enumerate() {
            let Some(list) = line.trim().strip_prefix("// rules:") else {
                continue;
            };
            let at = format!("{rel}:{}", n + 1);
            let rules: Vec<String> = list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if rules.is_empty() {
                bail!("{at}: `// rules:` names no rule");
            }
            // The attributes of the test follow (rstest cases can be long); a blank line ends it.
            let name = lines[n + 1..]
                .iter()
                .take_while(|l| !l.trim().is_empty())
                .find_map(|l| {
                    let l = l.trim_start();
                    let rest = l
                        .strip_prefix("fn ")
                        .or_else(|| l.strip_prefix("pub fn "))
                        .or_else(|| l.strip_prefix("async fn "))?;
                    Some(rest.split(['(', '<']).next()?.trim().to_string())
                })
                .with_context(|| format!("{at}: `// rules:` is not followed by a test function"))?;
            for arch in arches {
                cases.push(Case {
                    name: format!("{rel}::{name}"),
                    arch,
                    backend,
                    rules: rules.clone(),
                    origin: at.clone(),
                });
            }
        }
    }
    Ok(cases)
}

/// The findings pinned in the `check` snapshots (x86_64: the pins are per arch).
fn check_snapshot_cases(root: &Path) -> Result<Vec<Case>> {
    let dir = root.join("conformance/tests/snapshots/lint");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    for p in entries {
        let text = std::fs::read_to_string(&p)?;
        let mut rules = BTreeSet::new();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("VIOLATION ") else {
                continue;
            };
            let ids = rest
                .split_once('[')
                .and_then(|(_, r)| r.split_once(']'))
                .map(|(ids, _)| ids);
            for id in ids.into_iter().flat_map(|ids| ids.split(',')) {
                if !id.trim().is_empty() {
                    rules.insert(id.trim().to_string());
                }
            }
        }
        if !rules.is_empty() {
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            cases.push(Case {
                name: format!("check/{stem}"),
                arch: "x86_64",
                backend: "check",
                rules: rules.into_iter().collect(),
                origin: p.display().to_string(),
            });
        }
    }
    Ok(cases)
}

/// Rule ids cited outside cases: `check`'s findings (`FINDING_RULES`: the first literal of a line
/// is the finding's own code) and the conformance diffs (`rules_for_path`).
fn cited_ids(root: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let file = "reader/src/lint.rs";
    let text = std::fs::read_to_string(root.join(file)).context(file)?;
    for line in item_lines(&text, "pub const FINDING_RULES", "];", file)? {
        for s in string_literals(line).into_iter().skip(1) {
            if !s.is_empty() {
                out.push((s, file.to_string()));
            }
        }
    }
    let file = "reader/src/certify/compare.rs";
    let text = std::fs::read_to_string(root.join(file)).context(file)?;
    let body: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("pub fn rules_for_path"))
        .take_while(|l| *l != "}")
        .collect();
    if body.is_empty() {
        bail!("{file}: `pub fn rules_for_path` not found");
    }
    for line in body {
        for s in string_literals(line) {
            if is_rule_id(&s) {
                out.push((s, file.to_string()));
            }
        }
    }
    Ok(out)
}

/// `# count DOC: N normative, M layout` (primary rules) and `# count ours: N` lines of the header.
fn check_header_counts(text: &str, rules: &[Rule], problems: &mut Vec<String>) {
    let mut declared: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# count ") {
            if let Some((doc, counts)) = rest.split_once(':') {
                declared.insert(doc.trim().to_string(), counts.trim().to_string());
            }
        }
    }
    let mut actual: BTreeMap<String, String> = BTreeMap::new();
    for doc in ["custom-labels-v1", "otep-4947", "otep-4719"] {
        let primary = |layout: bool| {
            rules
                .iter()
                .filter(|r| r.doc == doc && r.source == "primary" && (r.kind == "layout") == layout)
                .count()
        };
        actual.insert(
            doc.to_string(),
            format!("{} normative, {} layout", primary(false), primary(true)),
        );
    }
    actual.insert(
        "ours".to_string(),
        rules
            .iter()
            .filter(|r| r.source == "ours")
            .count()
            .to_string(),
    );
    if declared != actual {
        problems.push(format!(
            "rules.toml header counts are {declared:?}, the catalogue has {actual:?}: update the `# count` lines"
        ));
    }
}

struct Coverage {
    /// Every case entry (a case on two arches is two entries).
    cases: Vec<Case>,
    rules: Vec<Rule>,
    /// Per rule id: the cases naming it.
    by_rule: BTreeMap<String, Vec<Case>>,
    case_count: usize,
}

fn collect(root: &Path, problems: &mut Vec<String>) -> Result<Coverage> {
    let text = std::fs::read_to_string(root.join("conformance/rules.toml"))
        .context("conformance/rules.toml")?;
    let rules = parse_rules(&text)?;
    check_header_counts(&text, &rules, problems);
    let ids: BTreeSet<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let mut cases = Vec::new();
    for (arch, triple) in ARCHES {
        cases.extend(conformance_cases(root, arch, triple)?);
    }
    // A declaration no case uses is stale (a renamed scenario or build trait).
    for (scenario, _) in catalogue::SCENARIO_RULES {
        if !cases
            .iter()
            .any(|c| c.name.ends_with(&format!("/{scenario}")))
        {
            problems.push(format!(
                "SCENARIO_RULES names scenario {scenario}, which no conformance case runs"
            ));
        }
    }
    for (traits, _) in catalogue::variant_rules() {
        let used = ARCHES.iter().any(|(_, triple)| {
            catalogue::c_variants(triple)
                .iter()
                .any(|(_, _, have, _)| traits.split('+').all(|t| have.iter().any(|w| w == t)))
        });
        if !used {
            problems.push(format!(
                "VARIANT_RULES names {traits}, which no C variant has (traits: Spec::traits)"
            ));
        }
    }
    cases.extend(hostile_cases(root)?);
    cases.extend(marker_cases(root)?);
    cases.extend(check_snapshot_cases(root)?);
    let mut by_rule: BTreeMap<String, Vec<Case>> = BTreeMap::new();
    let mut unknown = BTreeSet::new();
    for c in &cases {
        for r in &c.rules {
            if ids.contains(r.as_str()) {
                by_rule.entry(r.clone()).or_default().push(c.clone());
            } else {
                unknown.insert(format!("{} (declared in {})", r, c.origin));
            }
        }
    }
    for (id, file) in cited_ids(root)? {
        if !ids.contains(id.as_str()) {
            unknown.insert(format!("{id} (cited in {file})"));
        }
    }
    for u in unknown {
        problems.push(format!("unknown rule id {u}"));
    }
    for r in &rules {
        match (by_rule.contains_key(&r.id), &r.gap) {
            (false, None) => problems.push(format!(
                "rule {} has no case and no `gap` saying why (rules.toml)",
                r.id
            )),
            (true, Some(_)) if r.source == "primary" && !r.gap_is_superseded() => problems.push(
                format!("rule {} has cases now: remove its `gap` (rules.toml)", r.id),
            ),
            _ => {}
        }
    }
    Ok(Coverage {
        case_count: cases.len(),
        cases,
        rules,
        by_rule,
    })
}

impl Rule {
    /// A `gap` that says the rule is superseded may stay although cases name the rule.
    fn gap_is_superseded(&self) -> bool {
        self.gap
            .as_deref()
            .is_some_and(|g| g.starts_with("Superseded"))
    }

    fn reader_must(&self) -> bool {
        matches!(self.binds.as_str(), "reader" | "both")
            && matches!(self.kind.as_str(), "must" | "must-not")
    }
}

fn cell(cases: &[Case], arch: &str, backend: &str) -> String {
    let n = cases
        .iter()
        .filter(|c| c.arch == arch && c.backend == backend)
        .count();
    if n == 0 {
        "·".to_string()
    } else {
        n.to_string()
    }
}

fn on_backend(cases: &[Case], backend: &str) -> bool {
    cases.iter().any(|c| c.backend == backend)
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render(cov: &Coverage) -> String {
    let mut out = String::new();
    let empty: Vec<Case> = Vec::new();
    let cases_of = |id: &str| cov.by_rule.get(id).unwrap_or(&empty);
    out.push_str("# Spec coverage\n\n");
    out.push_str(
        "Generated by `cargo xtask coverage` from `conformance/rules.toml` and the rules each case \
         declares (conformance/README.md, \"Spec coverage\"); `cargo xtask coverage --check` (a step \
         of `cargo xtask test`) fails when this file is stale. Do not edit by hand.\n\n",
    );
    let _ = writeln!(
        out,
        "Cases: conformance cases as the runner selects them by default (placement scenarios on \
         every variant, decoding scenarios on one variant per decoding class), hostile cases, \
         `// rules:` tests ({} case entries in all). Columns count cases per arch and backend: \
         `ptrace` and `ebpf` read a live writer; `decoder` is a byte-fixture or unit test of the \
         code both backends run (reader tests run on both arches); `check` is the static lint.\n",
        cov.case_count
    );
    out.push_str("## Summary\n\n");
    out.push_str("| document | normative statements | covered | layout facts | covered | ours | covered | reader MUSTs | on both live backends |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for doc in ["custom-labels-v1", "otep-4947", "otep-4719"] {
        let of = |f: &dyn Fn(&Rule) -> bool| -> (usize, usize) {
            let sel: Vec<&Rule> = cov.rules.iter().filter(|r| r.doc == doc && f(r)).collect();
            let covered = sel
                .iter()
                .filter(|r| cov.by_rule.contains_key(&r.id))
                .count();
            (sel.len(), covered)
        };
        let (n, nc) = of(&|r| r.source == "primary" && r.kind != "layout");
        let (l, lc) = of(&|r| r.source == "primary" && r.kind == "layout");
        let (o, oc) = of(&|r| r.source == "ours");
        let musts: Vec<&Rule> = cov
            .rules
            .iter()
            .filter(|r| r.doc == doc && r.reader_must())
            .collect();
        let both = musts
            .iter()
            .filter(|r| {
                on_backend(cases_of(&r.id), "ptrace") && on_backend(cases_of(&r.id), "ebpf")
            })
            .count();
        let _ = writeln!(
            out,
            "| {doc} | {n} | {nc} | {l} | {lc} | {o} | {oc} | {} | {both} |",
            musts.len()
        );
    }
    out.push_str("\nReader MUSTs are rules of kind `must`/`must-not` binding the reader (or both sides), primary or ours.\n\n");
    out.push_str("## Reader MUSTs not covered on both live backends\n\n");
    let mut any = false;
    for r in cov.rules.iter().filter(|r| r.reader_must()) {
        let cs = cases_of(&r.id);
        if on_backend(cs, "ptrace") && on_backend(cs, "ebpf") {
            continue;
        }
        any = true;
        let kinds: Vec<&str> = BACKENDS
            .iter()
            .copied()
            .filter(|b| on_backend(cs, b))
            .collect();
        let _ = writeln!(
            out,
            "* `{}`: {}",
            r.id,
            if kinds.is_empty() {
                format!(
                    "no case ({})",
                    r.gap.as_deref().unwrap_or("no reason given")
                )
            } else {
                format!("only {}", kinds.join(", "))
            }
        );
    }
    if !any {
        out.push_str("None.\n");
    }
    out.push_str("\n## Rules with no case\n\n");
    for r in &cov.rules {
        if !cov.by_rule.contains_key(&r.id) {
            let _ = writeln!(
                out,
                "* `{}` ({}, {}, {}): {}",
                r.id,
                r.binds,
                r.kind,
                r.source,
                md_escape(r.gap.as_deref().unwrap_or("no reason given"))
            );
        }
    }
    for doc in ["custom-labels-v1", "otep-4947", "otep-4719"] {
        let _ = writeln!(out, "\n## {doc}\n");
        out.push_str("| rule | binds | kind | section | x86_64 ptrace | x86_64 ebpf | aarch64 ptrace | aarch64 ebpf | decoder | check | cases (first 3) |\n");
        out.push_str("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
        for r in cov.rules.iter().filter(|r| r.doc == doc) {
            let cs = cases_of(&r.id);
            let mut names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
            names.sort();
            names.dedup();
            let shown: Vec<String> = names.iter().take(3).map(|n| format!("`{n}`")).collect();
            let more = names.len().saturating_sub(3);
            let decoder = cs
                .iter()
                .filter(|c| c.backend == "decoder" && c.arch == "x86_64")
                .count();
            let check = cs.iter().filter(|c| c.backend == "check").count();
            let _ = writeln!(
                out,
                "| `{}`{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}{} |",
                r.id,
                if r.source == "ours" { " (ours)" } else { "" },
                r.binds,
                r.kind,
                md_escape(&r.section),
                cell(cs, "x86_64", "ptrace"),
                cell(cs, "x86_64", "ebpf"),
                cell(cs, "aarch64", "ptrace"),
                cell(cs, "aarch64", "ebpf"),
                if decoder == 0 {
                    "·".to_string()
                } else {
                    decoder.to_string()
                },
                if check == 0 {
                    "·".to_string()
                } else {
                    check.to_string()
                },
                if shown.is_empty() {
                    "—".to_string()
                } else {
                    shown.join(", ")
                },
                if more > 0 {
                    format!(" +{more} more")
                } else {
                    String::new()
                },
            );
        }
    }
    out.push_str("\n## Quotes\n\n");
    for r in &cov.rules {
        let _ = writeln!(
            out,
            "* `{}` ({}, {}): {}",
            r.id,
            r.doc,
            md_escape(&r.section),
            md_escape(&r.quote)
        );
    }
    out
}

/// `cargo xtask coverage [--check] [--cases]`; `--cases` prints every case it derived and the
/// rules it declares (e.g. to compare with `cargo test -p conformance --test conformance --
/// --list`).
pub fn run(root: &Path, check: bool, list_cases: bool) -> Result<()> {
    let mut problems = Vec::new();
    let cov = collect(root, &mut problems)?;
    if list_cases {
        for c in &cov.cases {
            println!("{}\t{}", c.name, c.rules.join(","));
        }
        return Ok(());
    }
    let text = render(&cov);
    let path = root.join("conformance/SPEC-COVERAGE.md");
    if check {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != text {
            problems.push(
                "conformance/SPEC-COVERAGE.md is stale: run `cargo xtask coverage` and commit it"
                    .into(),
            );
        }
    } else if problems.is_empty() {
        std::fs::write(&path, &text).with_context(|| path.display().to_string())?;
        eprintln!("xtask coverage: wrote {}", path.display());
    }
    if !problems.is_empty() {
        bail!("spec coverage:\n  {}", problems.join("\n  "));
    }
    if check {
        eprintln!("xtask coverage: up to date ({} rules)", cov.rules.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_subset_parses_strings_and_rejects_what_it_does_not_know() {
        let text = "# c\n[[rule]]\nid = \"tc-x\"\ndoc = \"otep-4947\"\nsection = \"S\"\nbinds = \"reader\"\nkind = \"must\"\nsource = \"primary\"\nquote = \"a \\\"q\\\" \\\\ b\"\n";
        let rules = parse_rules(text).unwrap();
        assert_eq!(rules[0].quote, "a \"q\" \\ b");
        assert!(
            parse_rules(&text.replace("tc-x", "v1-x")).is_err(),
            "prefix must match doc"
        );
        assert!(parse_rules(&format!("{text}extra = \"1\"\n")).is_err());
        assert!(parse_rules(&text.replace("must", "may")).is_err());
    }

    #[test]
    fn string_literals_of_a_table_line() {
        assert_eq!(
            string_literals(r#"    ("huge", &[Backend::Ptrace], &["v1-a", "tc-b\"c"]),"#),
            ["huge", "v1-a", "tc-b\\\"c"]
        );
    }
}

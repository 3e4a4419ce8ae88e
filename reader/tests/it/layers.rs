//! The layering of `reader/src`: every `crate::` path of a module names a lower layer, every
//! top-level module has a layer, and `lib.rs` and ARCHITECTURE.md list the layers in this order.

use std::path::{Path, PathBuf};

/// Lowest first (`main`, the binary, stands on all of them).
const LAYERS: &[&str] = &[
    "abi",
    "memory",
    "sys",
    "snapshot",
    "decode",
    "plan",
    "discovery",
    "read",
    "backend",
    "session",
    "render",
    "lint",
    "certify",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == module)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reader/src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`backend/ptrace.rs` -> `backend`).
fn top_module(file: &Path) -> String {
    let rel = file.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The first segment of every `crate::` path in `code` (comments left out), including each
/// item of a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or("");
                found.extend(group.split(',').map(ident).filter(|s| !s.is_empty()));
            } else {
                found.push(ident(rest));
            }
        }
    }
    found
}

#[test]
fn no_module_imports_from_its_own_or_a_higher_layer() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut upward = Vec::new();
    for file in &files {
        let module = top_module(file);
        if module == "lib" || module == "main" {
            continue;
        }
        let own = rank(&module).unwrap_or_else(|| panic!("module {module} has no layer in LAYERS"));
        let code = std::fs::read_to_string(file).expect("source");
        for dep in crate_paths(&code) {
            if dep == module {
                continue;
            }
            match rank(&dep) {
                Some(r) if r < own => {}
                _ => upward.push(format!("{} -> crate::{dep}", file.display())),
            }
        }
    }
    assert!(files.len() > 20, "read {} files", files.len());
    assert!(
        upward.is_empty(),
        "imports that are not downward:\n{}",
        upward.join("\n")
    );
}

#[test]
fn lib_rs_and_architecture_md_list_the_layers_in_order() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    // The numbered `//!` list: `//! 3. `sys`: ...` (two names on the last line).
    let listed: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .filter(|l| {
            l.split_once(". `")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
        .flat_map(|l| {
            let (names, _) = l.split_once(':').expect("`name`: text");
            names
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(listed, LAYERS, "lib.rs");

    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    let (_, after) = doc
        .split_once("Layers, lowest first, as `reader/src/lib.rs` lists them:")
        .expect("the layer line of ARCHITECTURE.md");
    let (line, _) = after
        .split_once(". A module")
        .expect("end of the layer line");
    let named: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
    let mut expected: Vec<&str> = LAYERS.to_vec();
    expected.push("main");
    assert_eq!(named, expected, "ARCHITECTURE.md");
}

#[test]
fn crate_paths_sees_groups_and_skips_comments() {
    let code =
        "use crate::a::B;\nuse crate::{c, d::E};\n// crate::f\nlet x = crate::g::h(); // crate::i";
    assert_eq!(crate_paths(code), ["a", "c", "d", "g"]);
}

//! The minimal emitters of the READY line in docs/certify.md (section 4), taken from the document
//! as it is, built where the language needs it, and certified with `context-reader certify` on
//! the live backends: the document's claim that they pass stays true.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

use crate::paths::Paths;
use crate::process::run;

/// The section of docs/certify.md that holds the emitters, and the one after it.
const SECTION: &str = "## 4. Minimal emitters";
const NEXT_SECTION: &str = "\n## 5.";

/// One emitter: the language tag of its code block, the file it is written to, and how it is
/// built (if at all) and run, relative to its directory.
struct Emitter {
    tag: &'static str,
    file: &'static str,
    build: Option<&'static [&'static str]>,
    run: &'static [&'static str],
}

/// Every language of the section, in its order. Go is built first: `go run` would run the
/// program as a child of its own, whose pid is not the one certify spawned.
const EMITTERS: &[Emitter] = &[
    Emitter {
        tag: "c",
        file: "ready.c",
        build: Some(&["cc", "-o", "ready", "ready.c"]),
        run: &["./ready"],
    },
    Emitter {
        tag: "python",
        file: "ready.py",
        build: None,
        run: &["python3", "ready.py"],
    },
    Emitter {
        tag: "js",
        file: "ready.js",
        build: None,
        run: &["node", "ready.js"],
    },
    Emitter {
        tag: "go",
        file: "ready.go",
        build: Some(&["go", "build", "-o", "ready", "ready.go"]),
        run: &["./ready"],
    },
    Emitter {
        tag: "java",
        file: "Ready.java",
        build: None,
        run: &["java", "Ready.java"],
    },
];

/// The fenced code blocks of the emitters section: (language tag, code).
fn code_blocks(doc: &str) -> Result<Vec<(String, String)>> {
    let start = doc
        .find(SECTION)
        .with_context(|| format!("docs/certify.md has no section {SECTION:?}"))?;
    let section = &doc[start..];
    let section = &section[..section.find(NEXT_SECTION).unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(tag) = line.strip_prefix("```").filter(|t| !t.is_empty()) else {
            continue;
        };
        let mut code = String::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            code += line;
            code.push('\n');
        }
        blocks.push((tag.to_string(), code));
    }
    Ok(blocks)
}

/// Certifies every emitter of docs/certify.md with the reader binary `reader` on `backends`
/// (`ptrace,ebpf` as [`Backend::live_backends`](crate::Backend::live_backends) gives them).
pub fn certify(paths: &Paths, reader: &Path, backends: &str) -> Result<()> {
    let doc_path = paths.workspace.join("docs/certify.md");
    let doc = std::fs::read_to_string(&doc_path)
        .with_context(|| format!("reading {}", doc_path.display()))?;
    let blocks = code_blocks(&doc)?;
    let tags: Vec<&str> = blocks.iter().map(|(t, _)| t.as_str()).collect();
    let known: Vec<&str> = EMITTERS.iter().map(|e| e.tag).collect();
    if tags != known {
        bail!("docs/certify.md section 4 has the code blocks {tags:?}; this check knows {known:?}");
    }
    let mut failed = Vec::new();
    for (emitter, (_, code)) in EMITTERS.iter().zip(&blocks) {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(emitter.file), code)?;
        let result = (|| -> Result<()> {
            if let Some(build) = emitter.build {
                run(Command::new(build[0])
                    .args(&build[1..])
                    .current_dir(dir.path()))?;
            }
            for backend in crate::tracers::backend_names(backends) {
                run(Command::new(reader)
                    .args(["certify", "--backend", backend, "--"])
                    .args(emitter.run)
                    .current_dir(dir.path()))?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("xtask emitters: the {} emitter: {e:#}", emitter.tag);
            failed.push(emitter.tag);
        }
    }
    if !failed.is_empty() {
        bail!(
            "emitters of docs/certify.md not certified: {}",
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocks_of_the_section_only_in_order() {
        let doc = "# t\n```sh\nnot this\n```\n## 4. Minimal emitters of x\n\nC:\n\n```c\nint main;\n```\n\
                   text\n```go\npackage main\n\nfunc main() {}\n```\n## 5. After\n```java\nno\n```\n";
        let blocks = code_blocks(doc).unwrap();
        assert_eq!(
            blocks,
            [
                ("c".to_string(), "int main;\n".to_string()),
                (
                    "go".to_string(),
                    "package main\n\nfunc main() {}\n".to_string()
                ),
            ]
        );
    }

    #[test]
    fn the_document_has_one_block_per_known_emitter() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/certify.md"))
                .unwrap();
        let tags: Vec<String> = code_blocks(&doc)
            .unwrap()
            .into_iter()
            .map(|b| b.0)
            .collect();
        let known: Vec<&str> = EMITTERS.iter().map(|e| e.tag).collect();
        assert_eq!(tags, known);
    }
}

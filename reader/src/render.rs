//! Text rendering of a snapshot. Every byte from the target is escaped: control bytes and
//! non-UTF-8 bytes become `\xNN`, so a label can never write terminal escapes.

use std::fmt::Write;

use crate::snapshot::{Attribute, Bytes, ReadError, Snapshot, ThreadContext, V1Labels};

/// Escapes text for a terminal: printable UTF-8 passes, everything else is `\xNN` or `\n`-style.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn quoted(b: &Bytes) -> String {
    format!("\"{}\"", escape(&b.0))
}

fn json_value(v: &serde_json::Value) -> String {
    // serde_json escapes control characters in strings.
    v.to_string()
}

fn errors_text(out: &mut String, indent: &str, errors: &[ReadError]) {
    for e in errors {
        let format = serde_json::to_value(e.format)
            .map(|v| v.as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let kind = serde_json::to_value(e.kind)
            .map(|v| v.as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{indent}error [{format}/{kind}] {}",
            escape(e.detail.as_bytes())
        );
    }
}

fn v1_text(out: &mut String, v1: &Option<V1Labels>) {
    match v1 {
        None => out.push_str("    v1: none\n"),
        Some(set) => {
            let abi = set
                .abi_version
                .map(|v| format!(" (abi v{v})"))
                .unwrap_or_default();
            let _ = writeln!(out, "    v1{abi}: {} label(s)", set.labels.len());
            for l in &set.labels {
                let _ = writeln!(out, "      {} = {}", quoted(&l.key), quoted(&l.value));
            }
        }
    }
}

fn v2_text(out: &mut String, v2: &Option<ThreadContext>) {
    let Some(ctx) = v2 else {
        out.push_str("    v2: none\n");
        return;
    };
    let layout = serde_json::to_value(ctx.layout)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let id = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let _ = write!(
        out,
        "    v2 ({layout}): trace {} span {}",
        id(&ctx.trace_id),
        id(&ctx.span_id)
    );
    if let Some(root) = &ctx.root_span_id {
        let _ = write!(out, " root {root}");
    }
    if let Some(flags) = ctx.trace_flags {
        let _ = write!(out, " flags {flags:02x}");
    }
    out.push('\n');
    for a in &ctx.attributes {
        match a {
            Attribute::Named { key, value } => {
                let _ = writeln!(out, "      {} = {}", quoted(key), quoted(value));
            }
            Attribute::Unnamed { key_index, value } => {
                let _ = writeln!(
                    out,
                    "      [key {key_index}, not in the key map] = {}",
                    quoted(value)
                );
            }
        }
    }
}

pub fn text(s: &Snapshot) -> String {
    let mut out = String::new();
    let backend = serde_json::to_value(s.backend)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "process {} ({backend}), {} thread(s)",
        s.pid,
        s.threads.len()
    );
    match &s.process_context {
        None => out.push_str("  process context: none\n"),
        Some(pc) => {
            let _ = writeln!(
                out,
                "  process context: {} (version {}, published at {} ns)",
                escape(pc.mapping.as_bytes()),
                pc.version,
                pc.published_at_ns
            );
            for (k, v) in &pc.resource {
                let _ = writeln!(
                    out,
                    "    resource {} = {}",
                    escape(k.as_bytes()),
                    json_value(v)
                );
            }
            for (k, v) in &pc.attributes {
                let _ = writeln!(
                    out,
                    "    attribute {} = {}",
                    escape(k.as_bytes()),
                    json_value(v)
                );
            }
        }
    }
    errors_text(&mut out, "  ", &s.errors);
    for t in &s.threads {
        let _ = writeln!(out, "  thread {} {}", t.tid, quoted(&t.name));
        v1_text(&mut out, &t.v1);
        v2_text(&mut out, &t.v2);
        for m in &t.other_modules {
            let _ = writeln!(out, "    also in {}:", escape(m.module.as_bytes()));
            v1_text(&mut out, &m.v1);
            v2_text(&mut out, &m.v2);
        }
        errors_text(&mut out, "    ", &t.errors);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_control_and_invalid_bytes() {
        assert_eq!(escape(b"ok \x1b[31mred\x07"), "ok \\x1b[31mred\\x07");
        assert_eq!(escape(b"a\xffb\n"), "a\\xffb\\n");
        assert_eq!(
            escape("caf\u{e9} \u{9b}".as_bytes()),
            "caf\u{e9} \\xc2\\x9b"
        );
    }
}

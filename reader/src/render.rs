//! Text rendering of a snapshot. Every byte from the target is escaped: control bytes and
//! non-UTF-8 bytes become `\xNN`, so a label can never write terminal escapes. Bidirectional
//! formatting characters are escaped too, so a label can never reorder what the user reads.

use std::fmt::Write;

use crate::snapshot::{Attribute, Bytes, ReadError, Snapshot, ThreadContext, V1Labels};

/// Unicode bidirectional formatting characters: embeddings and overrides (U+202A-U+202E),
/// isolates (U+2066-U+2069) and the implicit marks (U+200E, U+200F, U+061C). Printed raw they
/// reorder the text around them ("Trojan Source"), so they are escaped like control bytes.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Escapes text for a terminal: printable UTF-8 passes, everything else is `\xNN` or `\n`-style.
/// Control characters and bidirectional formatting characters become the `\xNN` of their UTF-8
/// bytes.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() || is_bidi_control(c) => {
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

/// A process-context value as JSON text. serde_json escapes only the C0 controls; the C1
/// controls (U+0080-U+009F, e.g. the one-character CSI U+009B) and the bidirectional formatting
/// characters it leaves raw become `\uXXXX` escapes here (the text stays valid JSON).
fn json_value(v: &serde_json::Value) -> String {
    let raw = v.to_string();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_control() || is_bidi_control(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
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
    use super::{escape, json_value};

    #[test]
    fn escapes_control_and_invalid_bytes() {
        assert_eq!(escape(b"ok \x1b[31mred\x07"), "ok \\x1b[31mred\\x07");
        assert_eq!(escape(b"a\xffb\n"), "a\\xffb\\n");
        assert_eq!(
            escape("caf\u{e9} \u{9b}".as_bytes()),
            "caf\u{e9} \\xc2\\x9b"
        );
    }

    #[test]
    fn json_values_escape_c1_and_bidirectional_characters() {
        let v = serde_json::json!({"k": "a\u{202e}b\u{9b}c\u{1b}", "n": [1, "\u{2067}"]});
        assert_eq!(
            json_value(&v),
            r#"{"k":"a\u202eb\u009bc\u001b","n":[1,"\u2067"]}"#
        );
        let back: serde_json::Value = serde_json::from_str(&json_value(&v)).unwrap();
        assert_eq!(back, v, "still JSON, same value");
    }

    #[test]
    fn escapes_bidirectional_formatting_characters() {
        // RLO then PDF around "abc": raw, a terminal shows "cba".
        assert_eq!(
            escape("x\u{202e}abc\u{202c}y".as_bytes()),
            "x\\xe2\\x80\\xaeabc\\xe2\\x80\\xacy"
        );
        let bidi = [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{061c}',
        ];
        for c in bidi {
            let mut buf = [0u8; 4];
            let utf8 = c.encode_utf8(&mut buf).as_bytes();
            let expected: String = utf8.iter().map(|b| format!("\\x{b:02x}")).collect();
            assert_eq!(escape(utf8), expected, "U+{:04X}", c as u32);
        }
        // Neighbours that are not bidi controls stay as they are.
        for c in [
            '\u{200d}', '\u{2010}', '\u{2065}', '\u{206a}', '\u{061b}', '\u{05d0}',
        ] {
            let s = c.to_string();
            assert_eq!(escape(s.as_bytes()), s, "U+{:04X}", c as u32);
        }
    }
}

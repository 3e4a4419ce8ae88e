//! The one `Snapshot` type every backend produces, with the stable JSON shape of
//! conformance.md section 3. Normalisation (sorting, dedup, null rules) happens in the
//! constructors here so that every backend and renderer sees the same canonical form.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// Bytes that serialise as a JSON string when they are UTF-8 and as `{"hex": "..."}` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Bytes(s.as_bytes().to_vec())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(text) => s.serialize_str(text),
            None => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("hex", &hex(&self.0))?;
                m.end()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Ptrace,
    Ebpf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    V1,
    V2,
    ProcessContext,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A pointer or range in the target could not be read.
    Unreadable,
    /// A record ended before the length it announced.
    Truncated,
    /// The record changed while it was being copied.
    Torn,
    /// A length or count is beyond the reader's bound.
    TooLarge,
    /// A pointer chain loops.
    Cycle,
    /// A header has the wrong signature, version or size.
    BadHeader,
    /// The payload could not be decoded.
    BadPayload,
    /// The thread exited while the snapshot was being taken.
    ThreadExited,
    /// The TLS slot of the thread could not be computed.
    TlsUnresolved,
    /// Kept trying, the writer never finished an update.
    Contended,
    /// The thread could not be stopped or its registers read.
    Ptrace,
    /// The thread was not on CPU during the eBPF collection window.
    NotSampled,
    /// A layout or ABI version the reader does not know.
    Unsupported,
    /// Several candidates are valid (e.g. two context mappings); the detail names the one
    /// reported and the one ignored.
    Ambiguous,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadError {
    pub format: Format,
    pub kind: ErrorKind,
    pub detail: String,
}

impl ReadError {
    pub fn new(format: Format, kind: ErrorKind, detail: impl Into<String>) -> Self {
        ReadError {
            format,
            kind,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    pub key: Bytes,
    pub value: Bytes,
}

/// A custom-labels set, deduplicated first-wins and sorted by key bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct V1Labels {
    /// Only shown for the legacy inline layout (ABI version 0); v1 is implied otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abi_version: Option<u32>,
    pub labels: Vec<Label>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ThreadContextLayout {
    #[serde(rename = "otep-4947")]
    Otep4947,
    #[serde(rename = "draft")]
    Draft,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Attribute {
    Named { key: Bytes, value: Bytes },
    Unnamed { key_index: u8, value: Bytes },
}

/// Serialised by hand: `root_span_id` is a field of every draft record (null when all-zero,
/// like the other ids) and absent for OTEP 4947; `trace_flags` only when present.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadContext {
    pub layout: ThreadContextLayout,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Only the draft layout carries a root span id (`None` there = all-zero).
    pub root_span_id: Option<String>,
    /// Only the OTEP 4947 layout carries trace flags.
    pub trace_flags: Option<u8>,
    pub attributes: Vec<Attribute>,
}

impl Serialize for ThreadContext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("layout", &self.layout)?;
        m.serialize_entry("trace_id", &self.trace_id)?;
        m.serialize_entry("span_id", &self.span_id)?;
        if self.layout == ThreadContextLayout::Draft || self.root_span_id.is_some() {
            m.serialize_entry("root_span_id", &self.root_span_id)?;
        }
        if let Some(flags) = self.trace_flags {
            m.serialize_entry("trace_flags", &flags)?;
        }
        m.serialize_entry("attributes", &self.attributes)?;
        m.end()
    }
}

/// Context found in a second (or later) module that also defines a context symbol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleContext {
    pub module: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v1: Option<V1Labels>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v2: Option<ThreadContext>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadSnapshot {
    pub tid: i32,
    pub name: Bytes,
    pub v1: Option<V1Labels>,
    pub v2: Option<ThreadContext>,
    /// Present only when more than one module defines a context symbol (pitfall 23).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_modules: Vec<ModuleContext>,
    pub errors: Vec<ReadError>,
}

impl ThreadSnapshot {
    pub fn new(tid: i32, name: Bytes) -> Self {
        ThreadSnapshot {
            tid,
            name,
            v1: None,
            v2: None,
            other_modules: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// A decoded OTEP 4719 process context. Attribute maps keep protobuf order with last-wins for
/// repeated keys; values are already in their JSON form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessContext {
    pub mapping: String,
    pub version: u32,
    pub published_at_ns: u64,
    pub resource: serde_json::Map<String, serde_json::Value>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub pid: i32,
    pub backend: BackendKind,
    pub process_context: Option<ProcessContext>,
    pub threads: Vec<ThreadSnapshot>,
    pub errors: Vec<ReadError>,
}

impl Snapshot {
    /// Puts threads in tid order, as the JSON contract requires.
    pub fn normalise(&mut self) {
        self.threads.sort_by_key(|t| t.tid);
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("snapshot types always serialise")
    }
}

/// Sorts labels by key bytes (both formats are sets).
pub fn sort_labels(labels: &mut [Label]) {
    labels.sort_by(|a, b| a.key.cmp(&b.key));
}

/// Named attributes by key bytes, then `key_index` entries by ascending index.
pub fn sort_attributes(attrs: &mut [Attribute]) {
    attrs.sort_by(|a, b| match (a, b) {
        (Attribute::Named { key: x, .. }, Attribute::Named { key: y, .. }) => x.cmp(y),
        (Attribute::Named { .. }, Attribute::Unnamed { .. }) => std::cmp::Ordering::Less,
        (Attribute::Unnamed { .. }, Attribute::Named { .. }) => std::cmp::Ordering::Greater,
        (Attribute::Unnamed { key_index: x, .. }, Attribute::Unnamed { key_index: y, .. }) => {
            x.cmp(y)
        }
    });
}

/// Lowercase hex of an id, `None` when all bytes are zero.
pub fn id_hex(bytes: &[u8]) -> Option<String> {
    bytes.iter().any(|b| *b != 0).then(|| hex(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_serialise_as_string_or_hex() {
        assert_eq!(
            serde_json::to_string(&Bytes::from("a\"b")).unwrap(),
            r#""a\"b""#
        );
        assert_eq!(
            serde_json::to_string(&Bytes(vec![0xff, 0x00])).unwrap(),
            r#"{"hex":"ff00"}"#
        );
    }

    #[test]
    fn ids_are_null_when_zero() {
        assert_eq!(id_hex(&[0; 8]), None);
        assert_eq!(id_hex(&[0, 0xab]).as_deref(), Some("00ab"));
    }
}

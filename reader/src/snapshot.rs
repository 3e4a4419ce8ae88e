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

/// How a snapshot reads the threads: the one backend enum of the workspace (the CLI's
/// `--backend`, the snapshot JSON's `backend`, the conformance cases). Its name everywhere is the
/// variant's name in lower case, so a new backend is one line here (and its arms where the
/// compiler asks for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "lower")]
pub enum Backend {
    Ptrace,
    Ebpf,
    /// Read from a core file (`context-reader core`).
    Core,
}

impl Backend {
    /// Every backend, in declaration order.
    pub fn all() -> &'static [Backend] {
        <Backend as clap::ValueEnum>::value_variants()
    }

    /// The backend of this name (`ptrace`, `ebpf`).
    pub fn from_name(name: &str) -> Option<Backend> {
        <Backend as clap::ValueEnum>::from_str(name, false).ok()
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no backend is skipped");
        f.write_str(value.get_name())
    }
}

impl Serialize for Backend {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
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
    /// A file under the sysroot is not the build the core file mapped (another build id or
    /// another machine).
    BuildIdMismatch,
    /// Stands for the errors of one format beyond `MAX_ERRORS_PER_FORMAT` in one list; the detail
    /// says how many.
    Omitted,
}

impl Format {
    /// The JSON name (`v1`, `v2`, `process_context`, `tls`).
    pub fn name(self) -> &'static str {
        match self {
            Format::V1 => "v1",
            Format::V2 => "v2",
            Format::ProcessContext => "process_context",
            Format::Tls => "tls",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadError {
    pub format: Format,
    pub kind: ErrorKind,
    pub detail: String,
    /// For an `omitted` entry, how many errors it stands for (the detail says it in words).
    #[serde(skip)]
    omitted: u64,
}

impl ReadError {
    pub fn new(format: Format, kind: ErrorKind, detail: impl Into<String>) -> Self {
        ReadError {
            format,
            kind,
            detail: detail.into(),
            omitted: 0,
        }
    }

    /// The entry that stands for `count` errors of `format` left out of a list.
    pub fn omitted(format: Format, count: u64) -> Self {
        ReadError {
            format,
            kind: ErrorKind::Omitted,
            detail: omitted_detail(format, count),
            omitted: count,
        }
    }

    /// How many errors this entry stands for when it is an `omitted` summary.
    pub fn omitted_count(&self) -> Option<u64> {
        (self.kind == ErrorKind::Omitted).then_some(self.omitted)
    }
}

/// The bound on every `errors` list (a thread's, and the snapshot's top-level one): at most this
/// many entries per format are listed, in the order they were found; every further error of that
/// format is counted in one `omitted` entry of the format ("N more v1 errors omitted ..."). With
/// four formats a list holds at most 4 x (8 + 1) = 36 entries, whatever the target publishes
/// (200 threads x 4,096 bad labels gave 819,200 entries before the bound, 1,800 after).
pub const MAX_ERRORS_PER_FORMAT: usize = 8;

fn omitted_detail(format: Format, count: u64) -> String {
    format!(
        "{count} more {} error(s) omitted: at most {MAX_ERRORS_PER_FORMAT} are listed per format",
        format.name()
    )
}

/// Appends `error` to `errors` within the `MAX_ERRORS_PER_FORMAT` bound: past the bound it only
/// adds to the count of the format's `omitted` entry (created on first need). An incoming
/// `omitted` entry adds its own count. Memory stays bounded however many errors are pushed.
pub fn push_bounded(errors: &mut Vec<ReadError>, error: ReadError) {
    let format = error.format;
    let incoming = error.omitted_count();
    let listed = errors
        .iter()
        .filter(|e| e.format == format && e.kind != ErrorKind::Omitted)
        .count();
    if incoming.is_none() && listed < MAX_ERRORS_PER_FORMAT {
        errors.push(error);
        return;
    }
    let more = incoming.unwrap_or(1);
    match errors
        .iter_mut()
        .find(|e| e.format == format && e.kind == ErrorKind::Omitted)
    {
        Some(summary) => {
            summary.omitted = summary.omitted.saturating_add(more);
            summary.detail = omitted_detail(format, summary.omitted);
        }
        None => errors.push(ReadError::omitted(format, more)),
    }
}

/// `push_bounded` for each error of `more`, in order.
pub fn extend_bounded(errors: &mut Vec<ReadError>, more: impl IntoIterator<Item = ReadError>) {
    for e in more {
        push_bounded(errors, e);
    }
}

/// Applies the `MAX_ERRORS_PER_FORMAT` bound to a list built without it (idempotent: a bounded
/// list is left as it is).
pub fn bound_errors(errors: &mut Vec<ReadError>) {
    let all = std::mem::take(errors);
    extend_bounded(errors, all);
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
    pub backend: Backend,
    pub process_context: Option<ProcessContext>,
    pub threads: Vec<ThreadSnapshot>,
    pub errors: Vec<ReadError>,
}

impl Snapshot {
    /// Puts threads in tid order, as the JSON contract requires, and bounds every `errors` list
    /// (`MAX_ERRORS_PER_FORMAT`).
    pub fn normalise(&mut self) {
        self.threads.sort_by_key(|t| t.tid);
        bound_errors(&mut self.errors);
        for t in &mut self.threads {
            bound_errors(&mut t.errors);
        }
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
    fn backend_names_are_the_cli_and_json_names() {
        let names: Vec<String> = Backend::all().iter().map(Backend::to_string).collect();
        assert_eq!(names, ["ptrace", "ebpf", "core"]);
        for b in Backend::all() {
            assert_eq!(Backend::from_name(&b.to_string()), Some(*b));
            assert_eq!(serde_json::to_string(b).unwrap(), format!("\"{b}\""));
        }
        assert_eq!(Backend::from_name("gdb"), None);
    }

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

    fn errs(format: Format, n: usize) -> Vec<ReadError> {
        (0..n)
            .map(|i| ReadError::new(format, ErrorKind::Unreadable, format!("#{i}")))
            .collect()
    }

    #[test]
    fn error_lists_keep_eight_per_format_and_count_the_rest() {
        let mut list = Vec::new();
        let v1 = errs(Format::V1, 20);
        let v2 = errs(Format::V2, 3);
        let tls = errs(Format::Tls, 10);
        // Interleaved, as several modules of one thread would give them.
        extend_bounded(&mut list, v1[..5].iter().cloned());
        extend_bounded(&mut list, tls.iter().cloned());
        extend_bounded(&mut list, v2.iter().cloned());
        extend_bounded(&mut list, v1[5..].iter().cloned());
        let mut expected = v1[..5].to_vec();
        expected.extend_from_slice(&tls[..8]);
        expected.push(ReadError::omitted(Format::Tls, 2));
        expected.extend_from_slice(&v2);
        expected.extend_from_slice(&v1[5..8]);
        expected.push(ReadError::omitted(Format::V1, 12));
        assert_eq!(list, expected);
        assert_eq!(
            serde_json::to_value(list.last().unwrap()).unwrap(),
            serde_json::json!({"format": "v1", "kind": "omitted",
                "detail": "12 more v1 error(s) omitted: at most 8 are listed per format"})
        );
    }

    #[test]
    fn bounding_is_idempotent_and_merges_summaries() {
        let mut a = Vec::new();
        extend_bounded(&mut a, errs(Format::V1, 4096));
        assert_eq!(a.len(), MAX_ERRORS_PER_FORMAT + 1);
        assert_eq!(a[8].omitted_count(), Some(4088));
        let again = {
            let mut l = a.clone();
            bound_errors(&mut l);
            l
        };
        assert_eq!(again, a, "a bounded list stays as it is");
        // A second module's bounded list appended to the first: one summary, counts added.
        let mut b = Vec::new();
        extend_bounded(&mut b, errs(Format::V1, 100));
        let mut merged = a.clone();
        merged.extend(b);
        bound_errors(&mut merged);
        assert_eq!(merged.len(), 9);
        assert_eq!(merged[..8], a[..8]);
        assert_eq!(merged[8], ReadError::omitted(Format::V1, 4088 + 100));
    }

    #[test]
    fn normalise_bounds_thread_and_process_errors() {
        let mut t = ThreadSnapshot::new(1, Bytes::from("t"));
        t.errors = errs(Format::V1, 4096);
        t.errors.extend(errs(Format::V2, 9));
        let mut s = Snapshot {
            pid: 1,
            backend: Backend::Ptrace,
            process_context: None,
            threads: vec![t],
            errors: errs(Format::ProcessContext, 30),
        };
        s.normalise();
        let summary = |l: &[ReadError], f| {
            l.iter()
                .find_map(|e| (e.format == f).then(|| e.omitted_count()).flatten())
        };
        assert_eq!(s.threads[0].errors.len(), 18);
        assert_eq!(summary(&s.threads[0].errors, Format::V1), Some(4088));
        assert_eq!(summary(&s.threads[0].errors, Format::V2), Some(1));
        assert_eq!(s.errors.len(), 9);
        assert_eq!(summary(&s.errors, Format::ProcessContext), Some(22));
    }

    #[test]
    fn ids_are_null_when_zero() {
        assert_eq!(id_hex(&[0; 8]), None);
        assert_eq!(id_hex(&[0, 0xab]).as_deref(), Some("00ab"));
    }
}

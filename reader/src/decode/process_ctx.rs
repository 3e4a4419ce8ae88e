//! OTEP 4719 process context: mapping-name rules, the 32-byte header, the seqlock read and the
//! protobuf payload (formats.md section 3).

use prost::Message;
use serde_json::{Map, Value};

use super::proto::{any_value, AnyValueMsg, KeyValueMsg, ProcessContextMsg, ResourceMsg};
use crate::memory::Memory;
use crate::snapshot::{hex, Bytes, ErrorKind, Format, ProcessContext, ReadError};

pub const SIGNATURE: &[u8; 8] = b"OTEL_CTX";
pub const HEADER_SIZE: usize = 32;
pub const SUPPORTED_VERSION: u32 = 2;
pub const TIMESTAMP_OFFSET: u64 = 16;
pub const DEFAULT_MAX_PAYLOAD: u32 = 1024 * 1024;
/// Seqlock attempts before giving up on a writer that keeps updating.
pub const READ_ATTEMPTS: u32 = 8;

pub const SCHEMA_VERSION_KEY: &str = "threadlocal.schema_version";
pub const KEY_MAP_KEY: &str = "threadlocal.attribute_key_map";
/// The `threadlocal.schema_version` values whose thread context this reader decodes: the OTEP
/// 4947 record (`tlsdesc_v1_dev`, announced to become `tls_v1`) and R1's integer `1` (the draft
/// layout). Anything else (`nodejs_v1_dev`, `go_pprof_labels_v1`, ...) is declared but not decoded.
pub const DECODED_SCHEMAS: [&str; 3] = ["tlsdesc_v1_dev", "tls_v1", "1"];
/// Longest part of a declared schema name quoted in an error detail.
const MAX_QUOTED_SCHEMA: usize = 64;
/// Key map entries beyond this are ignored: key indices are a u8.
pub const MAX_KEY_MAP_LEN: usize = 256;
const MAX_SAFE_JSON_INT: i64 = (1 << 53) - 1;

/// Whether a `/proc/PID/maps` path names a context mapping: one of the three names, optionally
/// followed by exactly " (deleted)" (formats.md 3.3; never a bare prefix such as OTEL_CTX_BACKUP).
pub fn is_context_mapping_name(name: &str) -> bool {
    let base = name.strip_suffix(" (deleted)").unwrap_or(name);
    matches!(
        base,
        "[anon_shmem:OTEL_CTX]" | "[anon:OTEL_CTX]" | "/memfd:OTEL_CTX"
    )
}

/// The header at offset 0 of a context mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessContextHeader {
    pub version: u32,
    pub payload_size: u32,
    pub published_at_ns: u64,
    pub payload: u64,
}

impl ProcessContextHeader {
    /// `None` when the bytes are not a context header at all (look-alike mapping).
    pub fn parse(bytes: &[u8; HEADER_SIZE]) -> Option<Self> {
        if &bytes[0..8] != SIGNATURE {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        Some(ProcessContextHeader {
            version: u32_at(8),
            payload_size: u32_at(12),
            published_at_ns: u64_at(16),
            payload: u64_at(24),
        })
    }
}

/// What the thread-context decoder needs from the process context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadKeyMap {
    pub schema_version: Option<String>,
    /// Position i names key index i; `None` where the writer left a gap or a non-string.
    pub keys: Vec<Option<Bytes>>,
}

impl ThreadKeyMap {
    /// An `unsupported` error naming the declared schema when the process context declares a
    /// thread context this reader does not decode ([`DECODED_SCHEMAS`]); `None` when it declares
    /// none or one that is decoded.
    pub fn unsupported_schema(&self) -> Option<ReadError> {
        let schema = self.schema_version.as_deref()?;
        if DECODED_SCHEMAS.contains(&schema) {
            return None;
        }
        let quoted = match schema.char_indices().nth(MAX_QUOTED_SCHEMA) {
            Some((cut, _)) => format!("{:?}... ({} bytes)", &schema[..cut], schema.len()),
            None => format!("{schema:?}"),
        };
        Some(ReadError::new(
            Format::V2,
            ErrorKind::Unsupported,
            format!(
                "the process context declares {SCHEMA_VERSION_KEY} {quoted}, a thread context \
                 this reader does not decode (it decodes {})",
                DECODED_SCHEMAS.join(", ")
            ),
        ))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessContextRead {
    pub context: ProcessContext,
    pub key_map: ThreadKeyMap,
}

/// The outcome of reading one candidate mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum MappingRead {
    Context(Box<ProcessContextRead>),
    /// Named like a context mapping but not one (signature or version): ignored, legal.
    NotAContext(String),
    /// Timestamp stayed 0: a publication in progress; legal, nothing to report yet.
    InProgress,
    Error(ReadError),
}

fn err(kind: ErrorKind, detail: String) -> ReadError {
    ReadError::new(Format::ProcessContext, kind, detail)
}

/// Reads the mapping at `start` with the seqlock protocol of formats.md 3.4.
pub fn read_mapping(mem: &dyn Memory, start: u64, mapping: &str, max_payload: u32) -> MappingRead {
    // `start` comes from the maps; wrapping (never reached there) gives an unreadable address.
    let timestamp_at = start.wrapping_add(TIMESTAMP_OFFSET);
    let mut saw_zero = false;
    for _ in 0..READ_ATTEMPTS {
        let t1 = match mem.read_u64(timestamp_at) {
            Ok(t) => t,
            Err(e) => {
                return MappingRead::Error(err(
                    ErrorKind::Unreadable,
                    format!("header of {mapping}: {e}"),
                ))
            }
        };
        let mut raw = [0u8; HEADER_SIZE];
        if let Err(e) = mem.read(start, &mut raw) {
            return MappingRead::Error(err(
                ErrorKind::Unreadable,
                format!("header of {mapping}: {e}"),
            ));
        }
        let Some(header) = ProcessContextHeader::parse(&raw) else {
            return MappingRead::NotAContext(format!(
                "{mapping} at {start:#x}: no OTEL_CTX signature"
            ));
        };
        if header.version != SUPPORTED_VERSION {
            return MappingRead::NotAContext(format!(
                "{mapping} at {start:#x}: version {}",
                header.version
            ));
        }
        if t1 == 0 {
            saw_zero = true;
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        if header.payload_size == 0 {
            return MappingRead::Error(err(
                ErrorKind::BadHeader,
                format!("{mapping}: payload_size is 0"),
            ));
        }
        if header.payload_size > max_payload {
            return MappingRead::Error(err(
                ErrorKind::TooLarge,
                format!(
                    "{mapping}: payload_size {} exceeds the limit of {max_payload} bytes",
                    header.payload_size
                ),
            ));
        }
        // Errors are deferred until the timestamp says the bytes belong to one publication.
        let payload = mem.read_vec(header.payload, header.payload_size as usize);
        match mem.read_u64(timestamp_at) {
            Ok(t2) if t2 == t1 => {}
            Ok(_) => continue,
            Err(e) => {
                return MappingRead::Error(err(
                    ErrorKind::Unreadable,
                    format!("header of {mapping}: {e}"),
                ))
            }
        }
        let payload = match payload {
            Ok(p) => p,
            Err(e) => {
                return MappingRead::Error(err(
                    ErrorKind::Unreadable,
                    format!("payload of {mapping}: {e}"),
                ))
            }
        };
        return match decode_payload(&payload) {
            Ok((resource, attributes)) => {
                let key_map = key_map(&attributes, &resource);
                MappingRead::Context(Box::new(ProcessContextRead {
                    context: ProcessContext {
                        mapping: mapping.to_string(),
                        version: header.version,
                        published_at_ns: header.published_at_ns,
                        resource: to_json_map(&resource),
                        attributes: to_json_map(&attributes),
                    },
                    key_map,
                }))
            }
            Err(detail) => MappingRead::Error(err(
                ErrorKind::BadPayload,
                format!("payload of {mapping}: {detail}"),
            )),
        };
    }
    if saw_zero {
        MappingRead::InProgress
    } else {
        MappingRead::Error(err(
            ErrorKind::Contended,
            format!("{mapping}: the timestamp changed during each of {READ_ATTEMPTS} reads"),
        ))
    }
}

/// Decodes a payload into (resource attributes, process-context attributes). Payloads of writers
/// before 2026-02-18 are a bare `Resource`; those are recognised and have no attributes.
///
/// A payload that decodes as neither is an error, never a guess: a `ProcessContext` that fails to
/// decode (nesting past prost's recursion limit, a length prefix past the end) still parses as a
/// `Resource` whose one key is the raw bytes of the inner `Resource`, and that is not accepted.
pub fn decode_payload(bytes: &[u8]) -> Result<(Vec<KeyValueMsg>, Vec<KeyValueMsg>), String> {
    if looks_like_bare_resource(bytes) {
        if let Ok(r) = ResourceMsg::decode(bytes) {
            return Ok((r.attributes, Vec::new()));
        }
    }
    // Try both (formats.md 3.5): a payload that only parses as a `Resource` is a bare Resource even
    // when a key is not printable (the heuristic above only settles payloads that parse as both),
    // as long as no key is itself a protobuf message (see `is_plausible_bare_key`).
    let msg = match ProcessContextMsg::decode(bytes) {
        Ok(msg) => msg,
        Err(e) => {
            return match ResourceMsg::decode(bytes) {
                Ok(r) if r.attributes.iter().all(is_plausible_bare_key) => {
                    Ok((r.attributes, Vec::new()))
                }
                _ => Err(e.to_string()),
            }
        }
    };
    Ok((
        msg.resource.map(|r| r.attributes).unwrap_or_default(),
        msg.attributes,
    ))
}

/// Whether `kv` can be a key of a bare `Resource` that failed to decode as a `ProcessContext`.
/// Read as a `Resource`, a `ProcessContext` gives one `KeyValue` whose key is the content of its
/// field 1, an encoded `Resource`: it starts with a field tag of `Resource` (`0x0a`, `0x10`,
/// `0x1a`), a control byte. No writer names an attribute starting with a control byte, so such a
/// key (or an empty one) means "a broken `ProcessContext`", not "a bare `Resource`".
fn is_plausible_bare_key(kv: &KeyValueMsg) -> bool {
    kv.key.first().is_some_and(|b| *b >= 0x20 && *b != 0x7f)
}

/// A bare `Resource` starts with field 1 holding a `KeyValue` whose key is a printable name; in a
/// `ProcessContext` field 1 holds a `Resource`, whose bytes start with a tag, not a name.
fn looks_like_bare_resource(bytes: &[u8]) -> bool {
    let Ok(r) = ResourceMsg::decode(bytes) else {
        return false;
    };
    let plausible =
        |kv: &KeyValueMsg| !kv.key.is_empty() && kv.key.iter().all(|b| *b >= 0x20 && *b != 0x7f);
    !r.attributes.is_empty() && r.attributes.iter().all(plausible)
}

fn find<'a>(attrs: &'a [KeyValueMsg], key: &str) -> Option<&'a AnyValueMsg> {
    attrs
        .iter()
        .rev()
        .find(|kv| kv.key == key.as_bytes())
        .and_then(|kv| kv.value.as_ref())
}

/// Key map and schema version from `attributes`, falling back to the `Resource` of older writers.
/// The key map is an array of strings (R2+) or a KvList keyed by decimal indices (R1).
pub fn key_map(attributes: &[KeyValueMsg], resource: &[KeyValueMsg]) -> ThreadKeyMap {
    let lookup = |key| find(attributes, key).or_else(|| find(resource, key));
    let schema_version = lookup(SCHEMA_VERSION_KEY).and_then(|v| match &v.value {
        Some(any_value::Value::StringValue(s)) => Some(String::from_utf8_lossy(s).into_owned()),
        Some(any_value::Value::IntValue(i)) => Some(i.to_string()),
        _ => None,
    });
    let keys = match lookup(KEY_MAP_KEY).and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::ArrayValue(a)) => a
            .values
            .iter()
            .take(MAX_KEY_MAP_LEN)
            .map(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(Bytes(s.clone())),
                _ => None,
            })
            .collect(),
        Some(any_value::Value::KvlistValue(l)) => {
            let mut keys = Vec::new();
            for kv in &l.values {
                let Some(index) = std::str::from_utf8(&kv.key)
                    .ok()
                    .and_then(|k| k.parse::<usize>().ok())
                else {
                    continue;
                };
                if index >= MAX_KEY_MAP_LEN {
                    continue;
                }
                if keys.len() <= index {
                    keys.resize(index + 1, None);
                }
                if let Some(any_value::Value::StringValue(s)) =
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
                {
                    keys[index] = Some(Bytes(s.clone()));
                }
            }
            keys
        }
        _ => Vec::new(),
    };
    ThreadKeyMap {
        schema_version,
        keys,
    }
}

/// KeyValues as a JSON object, keeping first-seen order and letting a repeated key's last value win.
pub fn to_json_map(attrs: &[KeyValueMsg]) -> Map<String, Value> {
    let mut map = Map::new();
    for kv in attrs {
        let key = match std::str::from_utf8(&kv.key) {
            Ok(k) => k.to_string(),
            Err(_) => format!("hex:{}", hex(&kv.key)),
        };
        map.insert(key, kv.value.as_ref().map_or(Value::Null, any_to_json));
    }
    map
}

pub fn any_to_json(v: &AnyValueMsg) -> Value {
    match &v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => bytes_to_json(s),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) if i.unsigned_abs() <= MAX_SAFE_JSON_INT as u64 => {
            Value::from(*i)
        }
        Some(any_value::Value::IntValue(i)) => Value::String(i.to_string()),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => Value::Object(to_json_map(&l.values)),
        Some(any_value::Value::BytesValue(b)) => serde_json::json!({ "hex": hex(b) }),
    }
}

fn bytes_to_json(b: &[u8]) -> Value {
    serde_json::to_value(Bytes(b.to_vec())).expect("Bytes always serialise")
}

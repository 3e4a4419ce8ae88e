//! Builders for the `expect` part of the ready line: they apply the normalisation rules of
//! conformance.md section 3 (v1 first-wins, v2 last-wins, sorting by key bytes, `{"hex": ..}` for
//! non-UTF-8, ids as lowercase hex or null, protobuf AnyValue to JSON) to what a writer published.

use serde_json::{json, Map, Value};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key or value: a JSON string when valid UTF-8, otherwise `{"hex": "..."}`.
pub fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({ "hex": hex(bytes) }),
    }
}

/// Expected `v1` object for a label set whose storage holds `entries` in array order. An entry
/// with key `None` (NULL `key.buf`) is skipped; a repeated key keeps its first value.
pub fn v1_expect(entries: &[(Option<&[u8]>, &[u8])]) -> Value {
    let mut kept: Vec<(&[u8], &[u8])> = Vec::new();
    for &(key, value) in entries {
        let Some(key) = key else { continue };
        if kept.iter().all(|&(seen, _)| seen != key) {
            kept.push((key, value));
        }
    }
    kept.sort_by(|a, b| a.0.cmp(b.0));
    let labels: Vec<Value> = kept
        .into_iter()
        .map(|(key, value)| json!({"key": bytes_json(key), "value": bytes_json(value)}))
        .collect();
    json!({ "labels": labels })
}

/// An id as lowercase hex, or null when all zero.
fn id_json(id: &[u8]) -> Value {
    if id.iter().all(|&b| b == 0) {
        Value::Null
    } else {
        Value::String(hex(id))
    }
}

/// Expected `v2` object (layout `otep-4947`) for a valid record with these ids, flags and
/// attribute entries in record order, resolved through `key_map`.
pub fn v2_expect(
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    trace_flags: u8,
    entries: &[(u8, &[u8])],
    key_map: &[&str],
) -> Value {
    // Last occurrence of each key index wins.
    let mut last: Vec<(u8, &[u8])> = Vec::new();
    for &(index, value) in entries {
        match last.iter_mut().find(|(seen, _)| *seen == index) {
            Some(slot) => slot.1 = value,
            None => last.push((index, value)),
        }
    }
    let mut named: Vec<(&str, &[u8])> = Vec::new();
    let mut unknown: Vec<(u8, &[u8])> = Vec::new();
    for (index, value) in last {
        match key_map.get(index as usize) {
            Some(key) => named.push((key, value)),
            None => unknown.push((index, value)),
        }
    }
    named.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    unknown.sort_by_key(|entry| entry.0);
    let mut attributes: Vec<Value> = named
        .into_iter()
        .map(|(key, value)| json!({"key": key, "value": bytes_json(value)}))
        .collect();
    attributes.extend(
        unknown
            .into_iter()
            .map(|(index, value)| json!({"key_index": index, "value": bytes_json(value)})),
    );
    json!({
        "layout": "otep-4947",
        "trace_id": id_json(trace_id),
        "span_id": id_json(span_id),
        "trace_flags": trace_flags,
        "attributes": attributes,
    })
}

/// The protobuf `AnyValue` variants a writer can publish in the process context.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue {
    /// `string_value`; bytes so that a deliberately non-UTF-8 string can be described.
    Str(Vec<u8>),
    Bool(bool),
    Int(i64),
    Double(f64),
    Array(Vec<AnyValue>),
    KvList(Vec<(String, AnyValue)>),
    Bytes(Vec<u8>),
    /// An AnyValue with no variant set.
    Empty,
}

impl AnyValue {
    /// A string value.
    pub fn str(text: &str) -> AnyValue {
        AnyValue::Str(text.as_bytes().to_vec())
    }
}

/// Largest integer magnitude that is a JSON number rather than a decimal string.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// JSON for one AnyValue per conformance.md section 3.
pub fn any_json(value: &AnyValue) -> Value {
    match value {
        AnyValue::Str(bytes) => bytes_json(bytes),
        AnyValue::Bool(b) => json!(b),
        AnyValue::Int(i) if i.unsigned_abs() <= MAX_SAFE_INTEGER as u64 => json!(i),
        AnyValue::Int(i) => Value::String(i.to_string()),
        AnyValue::Double(d) => json!(d),
        AnyValue::Array(items) => Value::Array(items.iter().map(any_json).collect()),
        AnyValue::KvList(pairs) => kv_object(pairs),
        AnyValue::Bytes(bytes) => json!({ "hex": hex(bytes) }),
        AnyValue::Empty => Value::Null,
    }
}

/// A list of KeyValues as a JSON object; a repeated key keeps its last value.
pub fn kv_object(pairs: &[(String, AnyValue)]) -> Value {
    let mut object = Map::new();
    for (key, value) in pairs {
        object.insert(key.clone(), any_json(value));
    }
    Value::Object(object)
}

/// Expected `process_context` for a published context (version 2) in mapping `mapping`;
/// `published_at_ns` is left out (a target cannot know what the reader will be compared on).
pub fn process_context_expect(
    mapping: &str,
    resource: &[(String, AnyValue)],
    attributes: &[(String, AnyValue)],
) -> Value {
    json!({
        "mapping": mapping,
        "version": 2,
        "resource": kv_object(resource),
        "attributes": kv_object(attributes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_skips_null_keys_keeps_first_duplicate_and_sorts_by_key_bytes() {
        let entries: &[(Option<&[u8]>, &[u8])] = &[
            (Some(b"zeta"), b"1"),
            (None, b"hidden"),
            (Some(b"alpha"), b"first"),
            (Some(b"alpha"), b"second"),
            (Some(b"\xff"), b"\x00\x01"),
        ];
        assert_eq!(
            v1_expect(entries),
            json!({"labels": [
                {"key": "alpha", "value": "first"},
                {"key": "zeta", "value": "1"},
                {"key": {"hex": "ff"}, "value": "\u{0}\u{1}"},
            ]})
        );
    }

    #[test]
    fn v1_bytes_that_are_not_utf8_become_hex() {
        let entries: &[(Option<&[u8]>, &[u8])] = &[(Some(b"k"), b"\xc3\x28")];
        assert_eq!(
            v1_expect(entries),
            json!({"labels": [{"key": "k", "value": {"hex": "c328"}}]})
        );
    }

    #[test]
    fn v2_last_wins_named_sorted_then_unknown_indices_by_index() {
        let key_map = ["route", "method"];
        let entries: &[(u8, &[u8])] = &[
            (9, b"x"),
            (0, b"/a"),
            (1, b"GET"),
            (0, b"/b"),
            (4, b"y"),
            (9, b"z"),
        ];
        let mut trace_id = [0u8; 16];
        trace_id[15] = 1;
        let value = v2_expect(&trace_id, &[0; 8], 1, entries, &key_map);
        assert_eq!(
            value,
            json!({
                "layout": "otep-4947",
                "trace_id": "00000000000000000000000000000001",
                "span_id": null,
                "trace_flags": 1,
                "attributes": [
                    {"key": "method", "value": "GET"},
                    {"key": "route", "value": "/b"},
                    {"key_index": 4, "value": "y"},
                    {"key_index": 9, "value": "z"},
                ],
            })
        );
    }

    #[test]
    fn any_values_map_to_json_per_section_3() {
        assert_eq!(any_json(&AnyValue::Int(1 << 53)), json!("9007199254740992"));
        assert_eq!(
            any_json(&AnyValue::Int((1 << 53) - 1)),
            json!(9007199254740991i64)
        );
        assert_eq!(
            any_json(&AnyValue::Int(-(1 << 53))),
            json!("-9007199254740992")
        );
        assert_eq!(
            any_json(&AnyValue::Bytes(vec![0, 0xab])),
            json!({"hex": "00ab"})
        );
        assert_eq!(any_json(&AnyValue::Empty), Value::Null);
        assert_eq!(any_json(&AnyValue::Str(vec![0xfe])), json!({"hex": "fe"}));
        let kv = AnyValue::KvList(vec![
            ("a".into(), AnyValue::Bool(true)),
            ("a".into(), AnyValue::Double(1.5)),
            (
                "b".into(),
                AnyValue::Array(vec![AnyValue::str("x"), AnyValue::Int(2)]),
            ),
        ]);
        assert_eq!(any_json(&kv), json!({"a": 1.5, "b": ["x", 2]}));
    }
}

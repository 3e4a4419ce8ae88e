//! Byte-fixture tests of the OTEP 4719 process-context decoder (formats.md 3.2-3.5, pitfalls 5-7
//! and 28) and of the AnyValue -> JSON mapping of conformance.md section 3.

use context_reader::abi::Arch;
use context_reader::abi::Libc;
use context_reader::decode::process_ctx::{
    any_to_json, decode_payload, is_context_mapping_name, key_map, read_mapping, to_json_map,
    MappingRead, DEFAULT_MAX_PAYLOAD,
};
use context_reader::decode::proto::{
    any_value, AnyValueMsg, KeyValueMsg, ProcessContextMsg, ResourceMsg,
};
use context_reader::decode::thread_ctx::{decode_record, RecordLayout};
use context_reader::decode::v1::{decode_v1_set, V1Limits};
use context_reader::memory::ImageMemory;
use context_reader::plan::{ContextMapping, ReadPlan};
use context_reader::read::read_process_context;
use context_reader::snapshot::{
    Backend, Bytes, ErrorKind, Format, ReadError, Snapshot, ThreadSnapshot, MAX_ERRORS_PER_FORMAT,
};
use proptest::prelude::*;
use prost::Message;
use rstest::rstest;
use serde_json::{json, Map, Value};

use crate::fixtures::{
    av, av_array, av_int, av_kvlist, av_str, bare_resource_payload, entries, key_map_array, kv,
    kv_str, pb_i64, pb_len, pb_varint, process_context_payload, varint, CountingMemory, CtxHeader,
    ImageBuilder, OtepRecord, Str, TimestampMemory, UNMAPPED,
};

const MEMFD: &str = "/memfd:OTEL_CTX (deleted)";
const TS: u64 = 81_234_567_890;

// ---- mapping names (formats.md 3.3, pitfall 7) ----

// rules: pc-locate-mapping, pc-ours-exact-names, pc-ours-anon-named
#[rstest]
#[case::anon_shmem("[anon_shmem:OTEL_CTX]", true)]
#[case::anon("[anon:OTEL_CTX]", true)]
#[case::memfd_deleted("/memfd:OTEL_CTX (deleted)", true)]
#[case::anon_shmem_deleted("[anon_shmem:OTEL_CTX] (deleted)", true)]
#[case::anon_deleted("[anon:OTEL_CTX] (deleted)", true)]
#[case::memfd_backup("/memfd:OTEL_CTX_BACKUP (deleted)", false)]
#[case::anon_backup("[anon:OTEL_CTX_BACKUP]", false)]
#[case::anon_shmem_backup("[anon_shmem:OTEL_CTX_BACKUP]", false)]
#[case::bare_backup("OTEL_CTX_BACKUP", false)]
#[case::bare_name("OTEL_CTX", false)]
#[case::prefix_of_name("[anon:OTEL_CT]", false)]
#[case::memfd_prefix("/memfd:OTEL_CT (deleted)", false)]
#[case::suffix_after_bracket("[anon:OTEL_CTX]x", false)]
#[case::deleted_twice("/memfd:OTEL_CTX (deleted) (deleted)", false)]
#[case::deleted_without_space("/memfd:OTEL_CTX(deleted)", false)]
#[case::other_suffix("/memfd:OTEL_CTX (gone)", false)]
#[case::trailing_space("[anon:OTEL_CTX] ", false)]
#[case::leading_space(" [anon:OTEL_CTX]", false)]
#[case::lowercase("[anon:otel_ctx]", false)]
#[case::file_path("/tmp/OTEL_CTX", false)]
#[case::memfd_other("/memfd:OTHER (deleted)", false)]
#[case::heap("[heap]", false)]
#[case::empty("", false)]
fn mapping_name_rules(#[case] name: &str, #[case] is_context: bool) {
    assert_eq!(is_context_mapping_name(name), is_context, "{name:?}");
}

// ---- header and seqlock (formats.md 3.2, 3.4) ----

fn simple_payload() -> Vec<u8> {
    process_context_payload(
        vec![
            kv_str("service.name", "checkout"),
            kv("process.pid", av_int(1234)),
        ],
        vec![
            kv_str("threadlocal.schema_version", "tlsdesc_v1_dev"),
            key_map_array(&["http.route", "user.id"]),
        ],
    )
}

fn image_with(header: &CtxHeader, payload: &[u8]) -> (ImageMemory, u64) {
    let mut img = ImageBuilder::new();
    let (start, _) = img.process_context(header, payload);
    (img.build(), start)
}

fn expect_context(r: MappingRead) -> Box<context_reader::decode::process_ctx::ProcessContextRead> {
    match r {
        MappingRead::Context(c) => c,
        other => panic!("expected a context, got {other:?}"),
    }
}

fn expect_error(r: MappingRead) -> context_reader::snapshot::ReadError {
    match r {
        MappingRead::Error(e) => {
            assert_eq!(e.format, Format::ProcessContext);
            e
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

// rules: pc-header-layout, pc-signature, pc-version, pc-decode-payload, pc-ours-processcontext
#[test]
fn well_formed_context() {
    let payload = simple_payload();
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    let c = expect_context(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD));
    assert_eq!(c.context.mapping, MEMFD);
    assert_eq!(c.context.version, 2);
    assert_eq!(c.context.published_at_ns, TS);
    assert_eq!(
        serde_json::to_value(&c.context).unwrap(),
        json!({
            "mapping": MEMFD,
            "version": 2,
            "published_at_ns": TS,
            "resource": {"service.name": "checkout", "process.pid": 1234},
            "attributes": {
                "threadlocal.schema_version": "tlsdesc_v1_dev",
                "threadlocal.attribute_key_map": ["http.route", "user.id"],
            },
        })
    );
    assert_eq!(
        c.key_map.keys,
        vec![
            Some(Bytes::from("http.route")),
            Some(Bytes::from("user.id"))
        ]
    );
    assert_eq!(c.key_map.schema_version.as_deref(), Some("tlsdesc_v1_dev"));
}

// rules: pc-payload-placement
#[test]
fn payload_right_after_the_header_is_fine() {
    let payload = simple_payload();
    let mut img = ImageBuilder::new();
    let start = 0x7000_0000;
    let mut h = CtxHeader::for_payload(&payload, TS);
    h.payload_addr = Some(start + 32);
    img.put(start, &h.bytes(0));
    img.put(start + 32, &payload);
    let mem = img.build();
    let c = expect_context(read_mapping(
        &mem,
        start,
        "[anon:OTEL_CTX]",
        DEFAULT_MAX_PAYLOAD,
    ));
    assert_eq!(c.context.mapping, "[anon:OTEL_CTX]");
    assert_eq!(c.context.resource["service.name"], json!("checkout"));
}

// rules: pc-validate-header
/// Look-alikes are not contexts: ignored silently (no error).
#[rstest]
#[case::wrong_signature(*b"OTEL_CTY", 2)]
#[case::lowercase_signature(*b"otel_ctx", 2)]
#[case::nul_terminated_prefix(*b"OTEL_CT\0", 2)]
#[case::zero_signature([0; 8], 2)]
#[case::version_1(*b"OTEL_CTX", 1)]
#[case::version_0(*b"OTEL_CTX", 0)]
#[case::version_3(*b"OTEL_CTX", 3)]
#[case::version_big_endian_2(*b"OTEL_CTX", 0x0200_0000)]
fn not_a_context(#[case] signature: [u8; 8], #[case] version: u32) {
    let payload = simple_payload();
    let mut h = CtxHeader::for_payload(&payload, TS);
    h.signature = signature;
    h.version = version;
    let (mem, start) = image_with(&h, &payload);
    let r = read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD);
    assert!(matches!(r, MappingRead::NotAContext(_)), "got {r:?}");
}

// rules: pc-validate-header
#[test]
fn version_1_in_progress_is_still_not_a_context() {
    let payload = simple_payload();
    let mut h = CtxHeader::for_payload(&payload, 0);
    h.version = 1;
    let (mem, start) = image_with(&h, &payload);
    assert!(matches!(
        read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD),
        MappingRead::NotAContext(_)
    ));
}

// rules: pc-ours-payload-size
#[test]
fn payload_size_zero_is_bad_header() {
    let payload = simple_payload();
    let mut h = CtxHeader::for_payload(&payload, TS);
    h.payload_size = Some(0);
    let (mem, start) = image_with(&h, &payload);
    assert_eq!(
        expect_error(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD)).kind,
        ErrorKind::BadHeader
    );
}

// rules: pc-ours-payload-size
#[rstest]
#[case::just_over_default(DEFAULT_MAX_PAYLOAD + 1, DEFAULT_MAX_PAYLOAD)]
#[case::u32_max(u32::MAX, DEFAULT_MAX_PAYLOAD)]
#[case::custom_limit(65, 64)]
fn payload_size_beyond_the_limit_is_too_large(#[case] size: u32, #[case] limit: u32) {
    let payload = simple_payload();
    let mut h = CtxHeader::for_payload(&payload, TS);
    h.payload_size = Some(size);
    let (mem, start) = image_with(&h, &payload);
    let mem = CountingMemory::new(mem);
    let e = expect_error(read_mapping(&mem, start, MEMFD, limit));
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert!(
        mem.largest_read.get() <= 32,
        "nothing beyond the header is read: {}",
        mem.largest_read.get()
    );
}

#[test]
fn payload_size_exactly_the_limit_is_read() {
    let payload = simple_payload();
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    let c = expect_context(read_mapping(&mem, start, MEMFD, payload.len() as u32));
    assert_eq!(c.context.resource["process.pid"], json!(1234));
}

// rules: pc-graceful
#[test]
fn unreadable_payload_is_unreadable() {
    let payload = simple_payload();
    let mut h = CtxHeader::for_payload(&payload, TS);
    h.payload_addr = Some(UNMAPPED);
    let (mem, start) = image_with(&h, &payload);
    assert_eq!(
        expect_error(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD)).kind,
        ErrorKind::Unreadable
    );
}

#[test]
fn payload_size_larger_than_the_mapped_payload_is_unreadable() {
    let payload = simple_payload();
    let mut h = CtxHeader::for_payload(&payload, TS);
    h.payload_size = Some(payload.len() as u32 + 1);
    let (mem, start) = image_with(&h, &payload);
    assert_eq!(
        expect_error(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD)).kind,
        ErrorKind::Unreadable
    );
}

#[test]
fn unreadable_or_short_header_is_unreadable() {
    let mem = ImageMemory::new();
    assert_eq!(
        expect_error(read_mapping(&mem, UNMAPPED, MEMFD, DEFAULT_MAX_PAYLOAD)).kind,
        ErrorKind::Unreadable
    );
    let payload = simple_payload();
    let mut img = ImageBuilder::new();
    let h = CtxHeader::for_payload(&payload, TS).bytes(0);
    let start = img.alloc(&h[..24]); // header cut before the payload pointer
    let mem = img.build();
    assert_eq!(
        expect_error(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD)).kind,
        ErrorKind::Unreadable
    );
}

// rules: pc-graceful, pc-decode-payload
#[test]
fn garbage_payload_is_bad_payload() {
    let payload = vec![0xff, 0xff, 0xff, 0xff];
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    assert_eq!(
        expect_error(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD)).kind,
        ErrorKind::BadPayload
    );
}

// rules: pc-timestamp-nonzero, pc-ours-bounded-retries
#[test]
fn timestamp_zero_forever_is_in_progress() {
    let payload = simple_payload();
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, 0), &payload);
    let r = read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD);
    assert_eq!(r, MappingRead::InProgress);
}

// rules: pc-timestamp-nonzero
#[test]
fn timestamp_zero_then_published_is_read() {
    let payload = simple_payload();
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, 0), &payload);
    let mem = TimestampMemory::zero_then(mem, start + 16, 2, TS);
    let c = expect_context(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD));
    assert_eq!(c.context.published_at_ns, TS);
}

// rules: pc-reread-header
/// The writer publishes `changes` times during the read; the reader retries until the timestamp
/// before and after the copy agree, and reports the stable publication.
#[rstest]
#[case(1)]
#[case(2)]
#[case(4)]
fn timestamp_changing_is_retried(#[case] changes: u64) {
    let payload = simple_payload();
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    let mem = TimestampMemory::changing(mem, start + 16, TS, changes);
    let c = expect_context(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD));
    assert_eq!(c.context.published_at_ns, TS + changes);
    assert!(
        mem.touches.get() >= 2,
        "the timestamp is read before and after the copy"
    );
}

// rules: pc-ours-bounded-retries
#[test]
fn timestamp_changing_forever_is_a_contended_error() {
    let payload = simple_payload();
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    let mem = TimestampMemory::changing(mem, start + 16, TS, u64::MAX / 2);
    let e = expect_error(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD));
    assert_eq!(e.kind, ErrorKind::Contended);
}

// rules: pc-reread-header, pc-ours-timestamp-last
#[test]
fn timestamp_is_re_read_after_the_payload_copy() {
    // Exactly one change between the first read and the post-copy read must be noticed:
    // touches 0 (t1) = TS, then TS+1 for ever. If the reader never re-read it would report TS.
    let payload = simple_payload();
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    let mem = TimestampMemory::changing(mem, start + 16, TS, 1);
    let c = expect_context(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD));
    assert_eq!(c.context.published_at_ns, TS + 1);
}

// ---- payload schema (formats.md 3.5) ----

/// The worked example of formats.md 3.5 (sig-profiling 7fd7125, bare Resource era):
/// `0a 25 0a 1b "deployment.environment.name" 12 06 0a 04 "prod"`.
fn worked_example() -> Vec<u8> {
    let mut b = vec![0x0a, 0x25, 0x0a, 0x1b];
    b.extend_from_slice(b"deployment.environment.name");
    b.extend_from_slice(&[0x12, 0x06, 0x0a, 0x04]);
    b.extend_from_slice(b"prod");
    assert_eq!(b.len(), 2 + 0x25);
    b
}

// rules: pc-payload-protobuf, pc-ours-processcontext
#[test]
fn worked_example_bare_resource() {
    let (resource, attributes) = decode_payload(&worked_example()).expect("decodes");
    assert_eq!(
        Value::Object(to_json_map(&resource)),
        json!({"deployment.environment.name": "prod"})
    );
    assert_eq!(attributes, vec![]);
}

// rules: pc-payload-protobuf, pc-decode-payload
#[test]
fn worked_example_through_the_mapping_reader() {
    let mut payload = worked_example();
    payload.extend(pb_len(
        1,
        &[
            pb_len(1, b"service.name"),
            pb_len(2, &pb_len(1, b"checkout")),
        ]
        .concat(),
    ));
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    let c = expect_context(read_mapping(
        &mem,
        start,
        "[anon:OTEL_CTX]",
        DEFAULT_MAX_PAYLOAD,
    ));
    assert_eq!(
        Value::Object(c.context.resource),
        json!({"deployment.environment.name": "prod", "service.name": "checkout"})
    );
    assert_eq!(c.context.attributes, Map::new());
}

// rules: pc-ours-processcontext, pc-payload-protobuf
/// The same attributes as a bare `Resource` (pre-2026-02-18) and wrapped in a `ProcessContext`
/// decode to the same resource; only the wrapped form can carry attributes.
#[rstest]
#[case::one_key(vec![kv_str("service.name", "checkout")])]
#[case::seven_standard_keys(vec![
    kv_str("deployment.environment.name", "prod"),
    kv_str("service.instance.id", "123e4567-e89b-12d3-a456-426614174000"),
    kv_str("service.name", "checkout"),
    kv_str("service.version", "1.2.3"),
    kv_str("telemetry.sdk.language", "cpp"),
    kv_str("telemetry.sdk.name", "sig-profiling"),
    kv_str("telemetry.sdk.version", "1.0.0"),
])]
#[case::non_string_values(vec![kv("process.pid", av_int(7)), kv("flag", av(any_value::Value::BoolValue(true)))])]
#[case::non_ascii_key(vec![kv_str("clé", "v"), kv_str("service.name", "s")])]
#[case::key_with_a_control_character(vec![kv_str("service.name", "s"), kv_str("odd\tkey", "v")])]
fn bare_resource_and_wrapped_resource_agree(#[case] resource: Vec<KeyValueMsg>) {
    let expected = Value::Object(to_json_map(&resource));
    let (r, a) =
        decode_payload(&bare_resource_payload(resource.clone())).expect("bare Resource decodes");
    assert_eq!(Value::Object(to_json_map(&r)), expected, "bare Resource");
    assert_eq!(a, vec![]);
    let (r, a) = decode_payload(&process_context_payload(resource, vec![kv_str("x", "y")]))
        .expect("ProcessContext decodes");
    assert_eq!(Value::Object(to_json_map(&r)), expected, "wrapped");
    assert_eq!(Value::Object(to_json_map(&a)), json!({"x": "y"}));
}

#[test]
fn process_context_wrapping_the_same_resource() {
    // ProcessContext{resource = 1 (the worked example's Resource bytes)} = 0a 27 <worked example>.
    let payload = pb_len(1, &worked_example());
    let (resource, attributes) = decode_payload(&payload).expect("decodes");
    assert_eq!(
        Value::Object(to_json_map(&resource)),
        json!({"deployment.environment.name": "prod"})
    );
    assert_eq!(attributes, vec![]);
}

// rules: pc-ours-processcontext, tc-reference-data-location
#[test]
fn process_context_with_attributes_only() {
    let payload = ProcessContextMsg {
        resource: None,
        attributes: vec![kv_str("a", "1")],
    }
    .encode_to_vec();
    let (resource, attributes) = decode_payload(&payload).unwrap();
    assert_eq!(resource, vec![]);
    assert_eq!(Value::Object(to_json_map(&attributes)), json!({"a": "1"}));
}

#[test]
fn process_context_with_empty_resource() {
    let (resource, attributes) = decode_payload(&[0x0a, 0x00]).unwrap();
    assert_eq!((resource, attributes), (vec![], vec![]));
}

// rules: pc-ours-protobuf-robust
#[test]
fn field_order_does_not_matter() {
    // attributes (2) before resource (1) on the wire.
    let resource = ResourceMsg {
        attributes: vec![kv_str("service.name", "s")],
        dropped_attributes_count: 0,
    };
    let attrs = kv_str("x", "y").encode_to_vec();
    let payload = [pb_len(2, &attrs), pb_len(1, &resource.encode_to_vec())].concat();
    let (r, a) = decode_payload(&payload).unwrap();
    assert_eq!(Value::Object(to_json_map(&r)), json!({"service.name": "s"}));
    assert_eq!(Value::Object(to_json_map(&a)), json!({"x": "y"}));
}

// rules: pc-ours-protobuf-robust
#[test]
fn unknown_fields_are_skipped_at_every_level() {
    // AnyValue with an unknown I64 field 12 and the profiling-only string_value_strindex (8).
    let any = [pb_i64(12, 7), pb_len(1, b"checkout"), pb_varint(8, 3)].concat();
    // KeyValue with key_strindex (3) and an unknown LEN field 9.
    let key_value = [
        pb_varint(3, 5),
        pb_len(1, b"service.name"),
        pb_len(9, b"junk"),
        pb_len(2, &any),
    ]
    .concat();
    // Resource with dropped_attributes_count (2), entity_refs (3) and an unknown field 15.
    let entity_ref = [
        pb_len(1, b"https://schema"),
        pb_len(2, b"service"),
        pb_len(3, b"service.name"),
    ]
    .concat();
    let resource = [
        pb_varint(2, 4),
        pb_len(3, &entity_ref),
        pb_len(1, &key_value),
        pb_varint(15, 1),
    ]
    .concat();
    // ProcessContext with unknown varint 15, unknown LEN 7 and an attribute.
    let attr = [pb_len(1, b"k"), pb_len(2, &pb_varint(3, 9))].concat();
    let payload = [
        pb_varint(15, 300),
        pb_len(1, &resource),
        pb_len(7, b"\x00\x01"),
        pb_len(2, &attr),
    ]
    .concat();
    let (r, a) = decode_payload(&payload).expect("unknown fields are skipped");
    assert_eq!(
        Value::Object(to_json_map(&r)),
        json!({"service.name": "checkout"})
    );
    assert_eq!(Value::Object(to_json_map(&a)), json!({"k": 9}));
}

// rules: pc-ours-protobuf-robust
#[test]
fn strindex_only_any_value_is_null() {
    let any = AnyValueMsg::decode(&pb_varint(8, 3)[..]).unwrap();
    assert_eq!(any_to_json(&any), Value::Null);
}

// rules: pc-ours-protobuf-robust, pc-resource-unique-keys
#[test]
fn repeated_keys_last_wins() {
    let payload = process_context_payload(
        vec![
            kv_str("service.name", "first"),
            kv_str("other", "o"),
            kv_str("service.name", "last"),
        ],
        vec![kv_str("a", "1"), kv("a", av_int(2))],
    );
    let (r, a) = decode_payload(&payload).unwrap();
    assert_eq!(
        Value::Object(to_json_map(&r)),
        json!({"service.name": "last", "other": "o"})
    );
    assert_eq!(Value::Object(to_json_map(&a)), json!({"a": 2}));
}

#[test]
fn repeated_oneof_member_last_wins() {
    // Protobuf: the last member of a oneof seen on the wire is the value.
    let any = [pb_len(1, b"text"), pb_varint(3, 5)].concat();
    assert_eq!(
        any_to_json(&AnyValueMsg::decode(&any[..]).unwrap()),
        json!(5)
    );
    let any = [pb_varint(3, 5), pb_len(1, b"text")].concat();
    assert_eq!(
        any_to_json(&AnyValueMsg::decode(&any[..]).unwrap()),
        json!("text")
    );
}

// ---- AnyValue -> JSON (conformance.md 3) ----

const MAX_SAFE: i64 = (1 << 53) - 1;

// rules: pc-ours-protobuf-robust
#[rstest]
#[case::string(av_str("checkout"), json!("checkout"))]
#[case::empty_string(av_str(""), json!(""))]
#[case::non_utf8_string(av(any_value::Value::StringValue(vec![0x63, 0xff])), json!({"hex": "63ff"}))]
#[case::bool_true(av(any_value::Value::BoolValue(true)), json!(true))]
#[case::bool_false(av(any_value::Value::BoolValue(false)), json!(false))]
#[case::int_zero(av_int(0), json!(0))]
#[case::int(av_int(1234), json!(1234))]
#[case::int_negative(av_int(-1), json!(-1))]
#[case::int_max_safe(av_int(MAX_SAFE), json!(9007199254740991i64))]
#[case::int_min_safe(av_int(-MAX_SAFE), json!(-9007199254740991i64))]
#[case::int_2_pow_53(av_int(MAX_SAFE + 1), json!("9007199254740992"))]
#[case::int_minus_2_pow_53(av_int(-MAX_SAFE - 1), json!("-9007199254740992"))]
#[case::int_max(av_int(i64::MAX), json!("9223372036854775807"))]
#[case::int_min(av_int(i64::MIN), json!("-9223372036854775808"))]
#[case::double(av(any_value::Value::DoubleValue(1.5)), json!(1.5))]
#[case::double_negative(av(any_value::Value::DoubleValue(-0.25)), json!(-0.25))]
#[case::double_zero(av(any_value::Value::DoubleValue(0.0)), json!(0.0))]
#[case::array(av_array(vec![av_int(1), av_str("a"), av(any_value::Value::BoolValue(true))]), json!([1, "a", true]))]
#[case::empty_array(av_array(vec![]), json!([]))]
#[case::array_with_empty_value(av_array(vec![AnyValueMsg { value: None }]), json!([null]))]
#[case::kvlist(av_kvlist(vec![kv_str("a", "x"), kv("b", av_int(2))]), json!({"a": "x", "b": 2}))]
#[case::empty_kvlist(av_kvlist(vec![]), json!({}))]
#[case::kvlist_repeated_key_last_wins(av_kvlist(vec![kv_str("a", "1"), kv_str("a", "2")]), json!({"a": "2"}))]
#[case::nested(
    av_kvlist(vec![kv("inner", av_kvlist(vec![kv("list", av_array(vec![av_array(vec![av_int(MAX_SAFE + 1)])]))]))]),
    json!({"inner": {"list": [["9007199254740992"]]}})
)]
#[case::bytes(av(any_value::Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])), json!({"hex": "deadbeef"}))]
#[case::utf8_bytes_are_still_hex(av(any_value::Value::BytesValue(b"ok".to_vec())), json!({"hex": "6f6b"}))]
#[case::empty_bytes(av(any_value::Value::BytesValue(vec![])), json!({"hex": ""}))]
#[case::empty_any_value(AnyValueMsg { value: None }, json!(null))]
fn any_value_to_json(#[case] value: AnyValueMsg, #[case] expected: Value) {
    assert_eq!(any_to_json(&value), expected);
    // The same through a payload, so the wire encoding is covered too.
    let payload = process_context_payload(vec![kv("v", value)], vec![]);
    let (r, _) = decode_payload(&payload).unwrap();
    assert_eq!(Value::Object(to_json_map(&r)), json!({ "v": expected }));
}

#[test]
fn key_value_without_value_is_null() {
    let payload = process_context_payload(
        vec![KeyValueMsg {
            key: b"k".to_vec(),
            value: None,
        }],
        vec![],
    );
    let (r, _) = decode_payload(&payload).unwrap();
    assert_eq!(Value::Object(to_json_map(&r)), json!({"k": null}));
}

#[test]
fn integers_on_the_wire_are_two_complement_varints() {
    // int64 -1 is ten bytes ff .. 01 on the wire (protobuf int64 encoding).
    let any = [vec![0x18], vec![0xff; 9], vec![0x01]].concat();
    assert_eq!(
        any_to_json(&AnyValueMsg::decode(&any[..]).unwrap()),
        json!(-1)
    );
}

// ---- key map (formats.md 2.5) ----

fn kvs_of(payload: &[u8]) -> (Vec<KeyValueMsg>, Vec<KeyValueMsg>) {
    decode_payload(payload).expect("payload decodes")
}

fn key_names(payload: &[u8]) -> Vec<Option<Bytes>> {
    let (r, a) = kvs_of(payload);
    key_map(&a, &r).keys
}

// rules: tc-reference-data-location, tc-key-map, tc-schema-version
#[rstest]
#[case::tlsdesc_v1_dev("tlsdesc_v1_dev")]
#[case::tls_v1("tls_v1")]
fn key_map_from_process_context_attributes(#[case] schema: &str) {
    let payload = process_context_payload(
        vec![kv_str("service.name", "s")],
        vec![
            kv_str("threadlocal.schema_version", schema),
            key_map_array(&["http.route", "user.id", "http.method"]),
        ],
    );
    let (r, a) = kvs_of(&payload);
    let m = key_map(&a, &r);
    assert_eq!(m.schema_version.as_deref(), Some(schema));
    assert_eq!(
        m.keys,
        vec![
            Some(Bytes::from("http.route")),
            Some(Bytes::from("user.id")),
            Some(Bytes::from("http.method"))
        ]
    );
}

#[test]
fn key_map_falls_back_to_resource_attributes_of_older_writers() {
    // R2: bare Resource with threadlocal.* among the resource attributes.
    let payload = bare_resource_payload(vec![
        kv_str("service.name", "s"),
        kv_str("threadlocal.schema_version", "tlsdesc_v1_dev"),
        kv("threadlocal.max_record_size", av_int(640)),
        key_map_array(&["a", "b"]),
    ]);
    let (r, a) = kvs_of(&payload);
    assert_eq!(
        a,
        vec![],
        "a bare Resource has no process-context attributes"
    );
    assert_eq!(
        key_map(&a, &r).keys,
        vec![Some(Bytes::from("a")), Some(Bytes::from("b"))]
    );
    // R3 era: wrapped, but keys still in the resource.
    let payload = process_context_payload(vec![key_map_array(&["c"])], vec![]);
    assert_eq!(key_names(&payload), vec![Some(Bytes::from("c"))]);
}

// rules: tc-reference-data-location
#[test]
fn key_map_in_attributes_wins_over_resource() {
    let payload =
        process_context_payload(vec![key_map_array(&["old"])], vec![key_map_array(&["new"])]);
    assert_eq!(key_names(&payload), vec![Some(Bytes::from("new"))]);
}

// rules: tc-key-map
#[test]
fn key_map_repeated_key_last_wins() {
    let payload = process_context_payload(
        vec![],
        vec![key_map_array(&["first"]), key_map_array(&["last"])],
    );
    assert_eq!(key_names(&payload), vec![Some(Bytes::from("last"))]);
}

#[test]
fn r1_kvlist_key_map_with_integer_schema_version() {
    let payload = bare_resource_payload(vec![
        kv_str("threadlocal.schema_type", "tlsdesc"),
        kv("threadlocal.schema_version", av_int(1)),
        kv("threadlocal.max_record_size", av_int(640)),
        kv(
            "threadlocal.attribute_key_map",
            av_kvlist(vec![kv_str("1", "user.id"), kv_str("0", "http.route")]),
        ),
    ]);
    let (r, a) = kvs_of(&payload);
    let m = key_map(&a, &r);
    assert_eq!(
        m.keys,
        vec![
            Some(Bytes::from("http.route")),
            Some(Bytes::from("user.id"))
        ]
    );
    assert!(
        m.schema_version.is_some(),
        "the integer schema version 1 is recognised"
    );
}

#[test]
fn key_map_ignores_non_decimal_kvlist_keys() {
    let payload = process_context_payload(
        vec![],
        vec![kv(
            "threadlocal.attribute_key_map",
            av_kvlist(vec![
                kv_str("x", "nope"),
                kv_str("0", "a"),
                kv_str("-1", "neg"),
            ]),
        )],
    );
    assert_eq!(key_names(&payload), vec![Some(Bytes::from("a"))]);
}

#[test]
fn key_map_absent_is_empty() {
    let payload = process_context_payload(vec![kv_str("service.name", "s")], vec![]);
    let (r, a) = kvs_of(&payload);
    let m = key_map(&a, &r);
    assert_eq!(m.keys, vec![]);
    assert_eq!(m.schema_version, None);
}

// rules: tc-keymap-max-256
#[test]
fn key_map_is_capped_at_256_entries() {
    let names: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let payload = process_context_payload(vec![], vec![key_map_array(&refs)]);
    let keys = key_names(&payload);
    assert_eq!(keys.len(), 256, "key indices are u8");
    assert_eq!(keys[255], Some(Bytes::from("k255")));
}

// rules: tc-unknown-index-ignored
/// An index the key map does not name (a gap in an R1 KvList map, a non-string array element)
/// has no name: a record entry with that index must appear as `{"key_index": N}`, not with an
/// invented empty key (conformance.md 3: "an index outside the key map appears as key_index").
#[rstest]
#[case::kvlist_gap(kv(
    "threadlocal.attribute_key_map",
    av_kvlist(vec![kv_str("0", "http.route"), kv_str("2", "http.method")])
))]
#[case::non_string_array_element(kv(
    "threadlocal.attribute_key_map",
    av_array(vec![av_str("http.route"), av_int(7), av_str("http.method")])
))]
fn unnamed_index_in_key_map_is_a_key_index_entry(#[case] map: KeyValueMsg) {
    let payload = process_context_payload(vec![], vec![map]);
    let keys = key_names(&payload);
    let mut img = ImageBuilder::new();
    let rec = img.otep_record(&OtepRecord::new(entries(&[
        (0, b"/r"),
        (1, b"who"),
        (2, b"GET"),
    ])));
    let mem = img.build();
    let d = decode_record(&mem, rec, RecordLayout::Otep4947, &keys);
    assert_eq!(
        serde_json::to_value(d.value.unwrap().attributes).unwrap(),
        json!([
            {"key": "http.method", "value": "GET"},
            {"key": "http.route", "value": "/r"},
            {"key_index": 1, "value": "who"},
        ])
    );
}

// ---- full snapshot ----

/// A full snapshot: process context read from a memfd mapping, its key map used to name a
/// thread's OTEP 4947 attributes, plus v1 labels. The pinned JSON was checked by hand against the
/// example and rules of conformance.md section 3.
#[test]
fn full_snapshot() {
    let payload = process_context_payload(
        vec![
            kv_str("service.name", "checkout"),
            kv("process.pid", av_int(1234)),
            kv("big", av_int(i64::MAX)),
            kv("ratio", av(any_value::Value::DoubleValue(0.5))),
            kv("blob", av(any_value::Value::BytesValue(vec![0, 1, 0xfe]))),
            kv("empty", AnyValueMsg { value: None }),
            kv(
                "nested",
                av_kvlist(vec![kv("on", av(any_value::Value::BoolValue(true)))]),
            ),
        ],
        vec![
            kv_str("threadlocal.schema_version", "tlsdesc_v1_dev"),
            key_map_array(&["http.route", "user.id"]),
        ],
    );
    let mut img = ImageBuilder::new();
    let (start, _) = img.process_context(&CtxHeader::for_payload(&payload, TS), &payload);
    let record = img.otep_record(&OtepRecord::new(entries(&[
        (0, b"/api/cart"),
        (9, b"nine"),
    ])));
    let set = img.label_set(&[(Str::text("customer"), Str::text("acme"))]);
    let mem = img.build();

    let c = expect_context(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD));
    let mut worker = ThreadSnapshot::new(1235, Bytes::from("worker-1"));
    let v2 = decode_record(&mem, record, RecordLayout::Otep4947, &c.key_map.keys);
    let v1 = decode_v1_set(&mem, set, &V1Limits::default());
    worker.v2 = v2.value;
    worker.v1 = v1.value;
    worker.errors = [v1.errors, v2.errors].concat();
    let main = ThreadSnapshot::new(1234, Bytes::from("checkout"));
    let mut snap = Snapshot {
        pid: 1234,
        backend: Backend::Ptrace,
        process_context: Some(c.context),
        threads: vec![worker, main],
        errors: vec![],
    };
    snap.normalise();
    let json = snap.to_json();
    assert_eq!(json["threads"][0]["tid"], json!(1234), "sorted by tid");
    // Sorted maps: the pin must not depend on serde_json's preserve_order feature.
    insta::with_settings!({ sort_maps => true }, { insta::assert_json_snapshot!("full_snapshot", json) });
}

// ---- robustness ----

/// A recursive strategy of AnyValues (every variant, finite doubles) and the JSON the rules of
/// conformance.md 3 give for it, computed independently of the decoder.
fn arb_any_value() -> impl Strategy<Value = (AnyValueMsg, Value)> {
    let leaf = prop_oneof![
        Just((AnyValueMsg { value: None }, Value::Null)),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(|s| {
            let j = match std::str::from_utf8(&s) {
                Ok(t) => json!(t),
                Err(_) => json!({"hex": s.iter().map(|b| format!("{b:02x}")).collect::<String>()}),
            };
            (av(any_value::Value::StringValue(s)), j)
        }),
        any::<bool>().prop_map(|b| (av(any_value::Value::BoolValue(b)), json!(b))),
        prop_oneof![any::<i64>(), -(1i64 << 54)..(1i64 << 54)].prop_map(|i| {
            let j = if (-((1i64 << 53) - 1)..=((1i64 << 53) - 1)).contains(&i) {
                json!(i)
            } else {
                json!(i.to_string())
            };
            (av_int(i), j)
        }),
        (-1e12f64..1e12).prop_map(|d| (av(any_value::Value::DoubleValue(d)), json!(d))),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| {
            let j = json!({"hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>()});
            (av(any_value::Value::BytesValue(b)), j)
        }),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let (vals, js): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                (av_array(vals), Value::Array(js))
            }),
            proptest::collection::vec(("[a-c]{0,2}", inner), 0..4).prop_map(|items| {
                let mut obj = Map::new();
                let mut kvs = Vec::new();
                for (k, (v, j)) in items {
                    obj.insert(k.clone(), j);
                    kvs.push(kv(&k, v));
                }
                (av_kvlist(kvs), Value::Object(obj))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Model check of AnyValue -> JSON through encode + decode.
    #[test]
    fn any_value_json_model((value, expected) in arb_any_value()) {
        let payload = process_context_payload(vec![kv("v", value)], vec![]);
        let (r, a) = decode_payload(&payload).unwrap();
        prop_assert_eq!(a, vec![]);
        prop_assert_eq!(Value::Object(to_json_map(&r)), json!({ "v": expected }));
    }

    /// Arbitrary payload bytes never panic the payload decoder.
    #[test]
    fn payload_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok((r, a)) = decode_payload(&bytes) {
            let _ = to_json_map(&r);
            let _ = to_json_map(&a);
            let _ = key_map(&a, &r);
        }
    }

    /// Seqlock model: a writer that is mid-update for the first `zero_reads` timestamp reads and
    /// republishes during the first `changes` ones. Whatever the reader returns, it never returns a
    /// context unless the timestamp before and after the copy agreed: then it is the stable
    /// publication `base + changes` with the right payload; otherwise in-progress (only if it saw
    /// 0) or a contended error.
    #[test]
    fn seqlock_model(changes in 0u64..24, zero_reads in 0u64..24) {
        let payload = simple_payload();
        let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
        let mem = TimestampMemory {
            inner: mem,
            ts_addr: start + 16,
            base: TS,
            changes,
            zero_reads,
            touches: std::cell::Cell::new(0),
        };
        match read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD) {
            MappingRead::Context(c) => {
                prop_assert_eq!(c.context.published_at_ns, TS + changes);
                prop_assert_eq!(&c.context.resource["service.name"], &json!("checkout"));
            }
            MappingRead::InProgress => prop_assert!(zero_reads > 0),
            MappingRead::Error(e) => prop_assert_eq!(e.kind, ErrorKind::Contended),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    /// Arbitrary headers (any version, size, timestamp, payload pointer) and payload bytes:
    /// `read_mapping` never panics, terminates quickly, never reads more than the header or
    /// `payload_size` (when within the limit) at once.
    #[test]
    fn read_mapping_is_robust(
        signature_ok in prop_oneof![4 => Just(true), 1 => Just(false)],
        version in prop_oneof![4 => Just(2u32), 1 => any::<u32>()],
        size in prop_oneof![2 => 0u32..64, 1 => Just(u32::MAX), 1 => Just(1u32 << 31), 1 => any::<u32>()],
        ts in prop_oneof![4 => 1u64.., 1 => Just(0u64)],
        ptr_kind in 0u8..4,
        any_ptr in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 1..64),
        limit in prop_oneof![Just(DEFAULT_MAX_PAYLOAD), 0u32..64],
    ) {
        let mut img = ImageBuilder::new();
        let payload_addr = img.alloc(&payload);
        let ptr = match ptr_kind { 0 | 1 => payload_addr, 2 => u64::MAX - 3, _ => any_ptr };
        let mut h = CtxHeader::for_payload(&payload, ts);
        if !signature_ok { h.signature = *b"OTEL_CTx"; }
        h.version = version;
        h.payload_size = Some(size);
        h.payload_addr = Some(ptr);
        let start = img.alloc(&h.bytes(0));
        let mem = CountingMemory::new(img.build());
        let r = read_mapping(&mem, start, MEMFD, limit);
        prop_assert!(mem.largest_read.get() as u64 <= 32u64.max(u64::from(limit.min(size))));
        match (&r, signature_ok && version == 2) {
            (MappingRead::NotAContext(_), false) => {}
            (_, false) => prop_assert!(false, "a look-alike must be NotAContext, got {:?}", r),
            (MappingRead::InProgress, true) => prop_assert_eq!(ts, 0),
            (MappingRead::Error(e), true) if size == 0 => prop_assert_eq!(e.kind, ErrorKind::BadHeader),
            (MappingRead::Error(e), true) if size > limit => prop_assert_eq!(e.kind, ErrorKind::TooLarge),
            (MappingRead::Context(c), true) => prop_assert_eq!(c.context.published_at_ns, ts),
            (MappingRead::Error(_), true) => {}
            (other, true) => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

// rules: pc-ours-bound-decoding
#[test]
fn deeply_nested_payload_does_not_overflow_the_stack() {
    // 10 000 nested ArrayValues inside one KeyValue; a decoder must cap nesting (pitfall 28).
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..10_000 {
        // AnyValue{array_value = ArrayValue{values = [inner]}}
        inner = pb_len(5, &pb_len(1, &inner));
    }
    let kv_bytes = [pb_len(1, b"deep"), pb_len(2, &inner)].concat();
    let payload = pb_len(2, &kv_bytes);
    let result = decode_payload(&payload);
    if let Ok((r, a)) = result {
        fn depth(v: &Value) -> usize {
            match v {
                Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        let j = Value::Object(to_json_map(&a));
        assert!(
            depth(&j) <= 1000,
            "nesting must be capped, got depth {}",
            depth(&j)
        );
        assert_eq!(r, vec![]);
    }
}

// ---- hostile payloads that must not come out as a context (issue 11, defect 1) ----

/// `AnyValue{array_value{values: [AnyValue{array_value{...}}]}}` nested `depth` times around an
/// empty AnyValue. Built back to front so that 100 000 levels stay linear in time.
fn nested_array_value(depth: usize) -> Vec<u8> {
    let mut reversed: Vec<u8> = Vec::new();
    for _ in 0..depth {
        for field in [1u32, 5] {
            // ArrayValue.values = 1, then AnyValue.array_value = 5, each a LEN field around it
            let mut prefix = varint(u64::from(field << 3 | 2));
            prefix.extend(varint(reversed.len() as u64));
            reversed.extend(prefix.iter().rev());
        }
    }
    reversed.reverse();
    reversed
}

/// `ProcessContext{resource: Resource{attributes: [kv_bytes]}}` with `kv_bytes` as given.
fn wrapped_key_value(kv_bytes: &[u8]) -> Vec<u8> {
    pb_len(1, &pb_len(1, kv_bytes))
}

fn deep_resource_value(depth: usize) -> Vec<u8> {
    wrapped_key_value(&[pb_len(1, b"deep"), pb_len(2, &nested_array_value(depth))].concat())
}

/// A key whose length prefix claims `claimed` bytes and is followed by only 3.
fn lying_key_length(claimed: u64) -> Vec<u8> {
    let mut kv = vec![0x0a];
    kv.extend(varint(claimed));
    kv.extend_from_slice(b"key");
    wrapped_key_value(&kv)
}

// rules: pc-ours-processcontext, pc-graceful
#[rstest]
#[case::any_value_nested_100_000_deep(deep_resource_value(100_000))]
#[case::any_value_nested_past_the_recursion_limit(deep_resource_value(200))]
#[case::key_length_prefix_2_pow_62(lying_key_length(1 << 62))]
#[case::key_length_prefix_one_past_the_end(lying_key_length(4))]
#[case::value_length_prefix_2_pow_62(wrapped_key_value(&[pb_len(1, b"k"), vec![0x12], varint(1 << 62), b"v".to_vec()].concat()))]
fn broken_process_context_is_bad_payload_not_a_resource(#[case] payload: Vec<u8>) {
    assert!(
        decode_payload(&payload).is_err(),
        "a ProcessContext that does not decode must not be re-read as a bare Resource"
    );
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    let e = expect_error(read_mapping(&mem, start, MEMFD, DEFAULT_MAX_PAYLOAD));
    assert_eq!(e.kind, ErrorKind::BadPayload, "{e:?}");
    assert!(
        e.detail.starts_with(&format!("payload of {MEMFD}: ")),
        "{e:?}"
    );
}

/// The fallback still takes a bare `Resource` that is not a valid `ProcessContext` and whose keys
/// are odd but start like a name: not UTF-8, or with a control byte after the first.
#[rstest]
#[case::latin1_key(vec![KeyValueMsg { key: b"cl\xe9".to_vec(), value: Some(av_str("v")) }])]
#[case::control_byte_inside(vec![kv_str("odd\x01key", "v"), kv_str("service.name", "s")])]
fn bare_resource_with_odd_keys_still_decodes(#[case] resource: Vec<KeyValueMsg>) {
    let payload = bare_resource_payload(resource.clone());
    assert!(ProcessContextMsg::decode(payload.as_slice()).is_err());
    let (r, a) = decode_payload(&payload).expect("a bare Resource decodes");
    assert_eq!(r, resource);
    assert_eq!(a, vec![]);
}

// ---- several context mappings (issue 11, defect 6) ----

/// One candidate mapping of a plan: what the writer put there.
#[derive(Clone, Copy, Debug)]
enum Candidate {
    /// A valid context whose `service.name` is the given string.
    Valid(&'static str),
    /// `OTEL_CTY`: a look-alike, legal and silent.
    BadSignature,
    /// Version 1: a look-alike, legal and silent.
    VersionOne,
    /// Timestamp 0: a publication in progress, legal and silent.
    InProgress,
    /// `payload_size` 0: a broken context, one `bad_header` error.
    Broken,
}

/// A plan whose candidate mappings are `candidates`, in that order, named `[anon:OTEL_CTX]` for
/// even positions and the memfd name for odd ones; returns the memory and each mapping's start.
fn plan_with_candidates(candidates: &[Candidate]) -> (ImageMemory, ReadPlan, Vec<(u64, String)>) {
    let mut img = ImageBuilder::new();
    let mut mappings = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let service = match c {
            Candidate::Valid(s) => s,
            _ => "decoy",
        };
        let payload = process_context_payload(vec![kv_str("service.name", service)], vec![]);
        let mut h = CtxHeader::for_payload(&payload, TS);
        match c {
            Candidate::Valid(_) => {}
            Candidate::BadSignature => h.signature = *b"OTEL_CTY",
            Candidate::VersionOne => h.version = 1,
            Candidate::InProgress => h.published_at_ns = 0,
            Candidate::Broken => h.payload_size = Some(0),
        }
        let (start, _) = img.process_context(&h, &payload);
        let name = if i % 2 == 0 { "[anon:OTEL_CTX]" } else { MEMFD };
        mappings.push((start, name.to_string()));
    }
    let plan = plan_of_context_mappings(&mappings);
    (img.build(), plan, mappings)
}

/// A plan with no thread slots and one 4 KiB context mapping per `(start, name)`.
fn plan_of_context_mappings(mappings: &[(u64, String)]) -> ReadPlan {
    ReadPlan {
        pid: 1,
        arch: Arch::host(),
        libc: Libc::Glibc,
        v1: vec![],
        v2: vec![],
        context_mappings: mappings
            .iter()
            .map(|(start, name)| ContextMapping {
                start: *start,
                end: start + 4096,
                name: name.clone(),
            })
            .collect(),
        errors: vec![],
    }
}

// rules: pc-singleton, pc-validate-header
#[rstest]
#[case::one_valid(&[Candidate::Valid("real")], 0, &[])]
#[case::decoys_then_valid(
    &[Candidate::BadSignature, Candidate::VersionOne, Candidate::InProgress, Candidate::Valid("real")],
    3,
    &[]
)]
#[case::valid_then_decoys(&[Candidate::Valid("real"), Candidate::BadSignature, Candidate::VersionOne], 0, &[])]
#[case::two_valid(&[Candidate::Valid("real"), Candidate::Valid("other")], 0, &[1])]
#[case::two_valid_around_decoys(
    &[Candidate::VersionOne, Candidate::Valid("real"), Candidate::BadSignature, Candidate::Valid("other")],
    1,
    &[3]
)]
#[case::three_valid(&[Candidate::Valid("real"), Candidate::Valid("b"), Candidate::Valid("c")], 0, &[1, 2])]
fn first_valid_mapping_wins_and_every_other_valid_one_is_named(
    #[case] candidates: &[Candidate],
    #[case] reported: usize,
    #[case] ignored: &[usize],
) {
    let (mem, plan, mappings) = plan_with_candidates(candidates);
    let mut errors = Vec::new();
    let (context, keys) = read_process_context(&mem, &plan, DEFAULT_MAX_PAYLOAD, &mut errors);
    let context = context.expect("a valid context is reported");
    assert_eq!(context.resource["service.name"], json!("real"));
    assert_eq!(context.mapping, mappings[reported].1);
    assert_eq!(keys.keys, vec![]);
    let expected: Vec<ReadError> = ignored
        .iter()
        .map(|&i| {
            let (start, name) = &mappings[i];
            let (first_start, first_name) = &mappings[reported];
            ReadError::new(
                Format::ProcessContext,
                ErrorKind::Ambiguous,
                format!(
                    "another valid context mapping, {name} at {start:#x}, is ignored: the one \
                     reported is {first_name} at {first_start:#x}"
                ),
            )
        })
        .collect();
    assert_eq!(errors, expected);
}

#[test]
fn ambiguous_error_serialises_as_snake_case() {
    let e = ReadError::new(Format::ProcessContext, ErrorKind::Ambiguous, "x");
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"format": "process_context", "kind": "ambiguous", "detail": "x"})
    );
}

/// Process-level errors are bounded like a thread's: 20 broken mappings then 20 more valid ones
/// give the first 8 entries (all `bad_header`) and one `omitted` entry counting the other 32.
#[test]
fn process_level_errors_are_bounded() {
    let mut candidates = vec![Candidate::Valid("real")];
    candidates.extend([Candidate::Broken; 20]);
    candidates.extend([Candidate::Valid("other"); 20]);
    let (mem, plan, _) = plan_with_candidates(&candidates);
    let mut errors = Vec::new();
    let (context, _) = read_process_context(&mem, &plan, DEFAULT_MAX_PAYLOAD, &mut errors);
    assert_eq!(
        context.expect("the first is reported").resource["service.name"],
        json!("real")
    );
    assert_eq!(errors.len(), MAX_ERRORS_PER_FORMAT + 1, "{errors:?}");
    assert!(errors[..MAX_ERRORS_PER_FORMAT]
        .iter()
        .all(|e| e.kind == ErrorKind::BadHeader));
    assert_eq!(
        errors[MAX_ERRORS_PER_FORMAT],
        ReadError::omitted(Format::ProcessContext, 40 - MAX_ERRORS_PER_FORMAT as u64)
    );
}

// ---- declared but not decoded (conformance.md section 3, `unsupported`) ----

/// The errors `read_process_context` adds for one context whose attributes are `attributes`.
fn errors_of_context(attributes: Vec<KeyValueMsg>) -> Vec<ReadError> {
    let payload = process_context_payload(vec![kv_str("service.name", "s")], attributes);
    let (mem, start) = image_with(&CtxHeader::for_payload(&payload, TS), &payload);
    let plan = plan_of_context_mappings(&[(start, MEMFD.to_string())]);
    let mut errors = Vec::new();
    let (context, _) = read_process_context(&mem, &plan, DEFAULT_MAX_PAYLOAD, &mut errors);
    assert!(context.is_some(), "the context itself is still reported");
    errors
}

#[rstest]
#[case::nodejs("nodejs_v1_dev")]
#[case::go_pprof("go_pprof_labels_v1")]
#[case::future("tls_v2")]
fn an_undecoded_schema_version_is_an_unsupported_error_that_names_it(#[case] schema: &str) {
    let errors = errors_of_context(vec![
        kv_str("threadlocal.schema_version", schema),
        key_map_array(&["a"]),
    ]);
    assert_eq!(
        errors,
        vec![ReadError::new(
            Format::V2,
            ErrorKind::Unsupported,
            format!(
                "the process context declares threadlocal.schema_version \"{schema}\", a thread \
                 context this reader does not decode (it decodes tlsdesc_v1_dev, tls_v1, 1)"
            ),
        )]
    );
    assert_eq!(
        serde_json::to_value(&errors[0]).unwrap()["kind"],
        json!("unsupported")
    );
}

#[rstest]
#[case::otep("tlsdesc_v1_dev")]
#[case::renamed("tls_v1")]
fn decoded_schema_versions_are_no_error(#[case] schema: &str) {
    let errors = errors_of_context(vec![kv_str("threadlocal.schema_version", schema)]);
    assert_eq!(errors, vec![]);
    // R1: an integer 1, and no schema at all, are fine too.
    assert_eq!(
        errors_of_context(vec![kv("threadlocal.schema_version", av_int(1))]),
        vec![]
    );
    assert_eq!(errors_of_context(vec![]), vec![]);
}

#[test]
fn a_huge_declared_schema_is_quoted_bounded() {
    let schema = "x".repeat(5000);
    let errors = errors_of_context(vec![kv_str("threadlocal.schema_version", &schema)]);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, ErrorKind::Unsupported);
    assert!(
        errors[0]
            .detail
            .contains(&format!("\"{}\"... (5000 bytes)", "x".repeat(64))),
        "{}",
        errors[0].detail
    );
    assert!(errors[0].detail.len() < 300);
}

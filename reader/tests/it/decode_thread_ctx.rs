//! Byte-fixture tests of the thread-context decoders (OTEP 4947 record, formats.md 2.3-2.4, and
//! the draft 34-byte layout) against the rules of conformance.md section 3.

use std::collections::BTreeMap;

use context_reader::decode::thread_ctx::{decode_record, RecordLayout};
use context_reader::decode::Decoded;
use context_reader::memory::ImageMemory;
use context_reader::snapshot::{
    Attribute, Backend, Bytes, ErrorKind, Format, Snapshot, ThreadContext, ThreadContextLayout,
    ThreadSnapshot,
};
use proptest::prelude::*;
use rstest::rstest;
use serde_json::{json, Value};

use crate::fixtures::{
    entries, entry, ByteFlipMemory, CountingMemory, DraftRecord, ImageBuilder, OtepRecord,
    UNMAPPED, W3C_SPAN_ID, W3C_SPAN_ID_HEX, W3C_TRACE_ID, W3C_TRACE_ID_HEX,
};

fn keys(names: &[&str]) -> Vec<Option<Bytes>> {
    names.iter().map(|n| Some(Bytes::from(*n))).collect()
}

fn default_keys() -> Vec<Option<Bytes>> {
    keys(&["http.route", "user.id", "http.method"])
}

fn decode_otep(rec: &OtepRecord, key_map: &[Option<Bytes>]) -> Decoded<ThreadContext> {
    let mut img = ImageBuilder::new();
    let addr = img.otep_record(rec);
    let mem = img.build();
    let d = decode_record(&mem, addr, RecordLayout::Otep4947, key_map);
    assert!(
        d.errors.iter().all(|e| e.format == Format::V2),
        "thread-context errors carry format v2: {:?}",
        d.errors
    );
    d
}

fn attrs_json(d: &Decoded<ThreadContext>) -> Value {
    serde_json::to_value(&d.value.as_ref().expect("a record").attributes).unwrap()
}

fn kinds(d: &Decoded<ThreadContext>) -> Vec<ErrorKind> {
    d.errors.iter().map(|e| e.kind).collect()
}

// rules: tc-record-packed, tc-entry-encoding, tc-two-reads
#[test]
fn basic_record_full_json() {
    let rec = OtepRecord::new(entries(&[(0, b"/api/cart"), (1, b"u-42")]));
    let d = decode_otep(&rec, &default_keys());
    assert_eq!(d.errors, vec![]);
    assert_eq!(
        serde_json::to_value(d.value.unwrap()).unwrap(),
        json!({
            "layout": "otep-4947",
            "trace_id": W3C_TRACE_ID_HEX,
            "span_id": W3C_SPAN_ID_HEX,
            "trace_flags": 1,
            "attributes": [
                {"key": "http.route", "value": "/api/cart"},
                {"key": "user.id", "value": "u-42"},
            ],
        })
    );
}

// rules: tc-last-occurrence-wins, tc-unknown-index-ignored, tc-entry-encoding, tc-utf8-strings
/// Entry parsing: last index wins, named by key map then `key_index` entries by index, bytes kept.
#[rstest]
#[case::no_attributes(vec![], json!([]))]
#[case::sorted_by_key_bytes_not_index(
    entries(&[(1, b"u"), (2, b"GET"), (0, b"/r")]),
    json!([{"key": "http.method", "value": "GET"}, {"key": "http.route", "value": "/r"}, {"key": "user.id", "value": "u"}])
)]
#[case::last_index_wins(
    entries(&[(0, b"first"), (1, b"u"), (0, b"second"), (0, b"third")]),
    json!([{"key": "http.route", "value": "third"}, {"key": "user.id", "value": "u"}])
)]
#[case::unknown_index_is_a_key_index_entry(
    entries(&[(7, b"seven"), (0, b"/r")]),
    json!([{"key": "http.route", "value": "/r"}, {"key_index": 7, "value": "seven"}])
)]
#[case::key_index_entries_follow_named_ones_by_ascending_index(
    entries(&[(255, b"z"), (9, b"y"), (1, b"u"), (3, b"x")]),
    json!([{"key": "user.id", "value": "u"}, {"key_index": 3, "value": "x"}, {"key_index": 9, "value": "y"}, {"key_index": 255, "value": "z"}])
)]
#[case::unknown_index_last_wins_too(
    entries(&[(7, b"a"), (7, b"b")]),
    json!([{"key_index": 7, "value": "b"}])
)]
#[case::empty_value(entries(&[(0, b"")]), json!([{"key": "http.route", "value": ""}]))]
#[case::non_utf8_value_is_hex(entries(&[(1, b"\xff\x00")]), json!([{"key": "user.id", "value": {"hex": "ff00"}}]))]
#[case::max_length_value(
    entry(0, &[b'x'; 255]),
    json!([{"key": "http.route", "value": "x".repeat(255)}])
)]
fn attribute_entries(#[case] attrs: Vec<u8>, #[case] expected: Value) {
    let d = decode_otep(&OtepRecord::new(attrs), &default_keys());
    assert_eq!(d.errors, vec![]);
    assert_eq!(attrs_json(&d), expected);
}

#[test]
fn key_map_names_that_are_not_utf8_are_hex() {
    let key_map = vec![Some(Bytes(b"k\xff".to_vec()))];
    let d = decode_otep(&OtepRecord::new(entry(0, b"v")), &key_map);
    assert_eq!(
        attrs_json(&d),
        json!([{"key": {"hex": "6bff"}, "value": "v"}])
    );
}

// rules: tc-defer-without-keys
#[test]
fn empty_key_map_gives_key_index_entries() {
    let d = decode_otep(&OtepRecord::new(entries(&[(1, b"b"), (0, b"a")])), &[]);
    assert_eq!(d.errors, vec![]);
    assert_eq!(
        attrs_json(&d),
        json!([{"key_index": 0, "value": "a"}, {"key_index": 1, "value": "b"}])
    );
}

// rules: tc-valid-one
/// `valid` must be exactly 1; anything else is "ignore the record": no context, no error.
#[rstest]
#[case(0)]
#[case(2)]
#[case(0x81)]
#[case(0xff)]
fn valid_other_than_one_is_no_context(#[case] valid: u8) {
    let mut rec = OtepRecord::new(entries(&[(0, b"x")]));
    rec.valid = valid;
    let d = decode_otep(&rec, &default_keys());
    assert_eq!(d.value, None);
    assert_eq!(d.errors, vec![]);
}

// rules: tc-header-then-attrs, tc-valid-one
#[test]
fn valid_zero_record_may_have_garbage_attrs_that_are_never_read() {
    // In-place update in progress: attrs_data_size may claim more than is mapped.
    let mut rec = OtepRecord::new(vec![]);
    rec.valid = 0;
    rec.attrs_data_size = Some(u16::MAX);
    let d = decode_otep(&rec, &default_keys());
    assert_eq!(d, Decoded::none());
}

// rules: tc-trace-flags
#[rstest]
#[case::all_zero(0)]
#[case::sampled(1)]
#[case::random_bit(2)]
#[case::sampled_and_random(3)]
#[case::all_bits(0xff)]
fn trace_flags_are_reported_as_is(#[case] flags: u8) {
    let mut rec = OtepRecord::new(vec![]);
    rec.trace_flags = flags;
    let d = decode_otep(&rec, &[]);
    assert_eq!(d.value.unwrap().trace_flags, Some(flags));
}

// rules: tc-zero-ids-none
#[test]
fn all_zero_ids_are_null() {
    let mut rec = OtepRecord::new(entries(&[(0, b"/health")]));
    rec.trace_id = [0; 16];
    rec.span_id = [0; 8];
    rec.trace_flags = 0;
    let d = decode_otep(&rec, &default_keys());
    assert_eq!(d.errors, vec![]);
    let j = serde_json::to_value(d.value.unwrap()).unwrap();
    assert_eq!(j["trace_id"], Value::Null);
    assert_eq!(j["span_id"], Value::Null);
    assert_eq!(j["trace_flags"], json!(0));
    assert_eq!(
        j["attributes"],
        json!([{"key": "http.route", "value": "/health"}])
    );
    assert!(
        j.as_object().unwrap().contains_key("trace_id"),
        "null ids are present as null, not omitted"
    );
}

// rules: tc-both-ids-set
#[test]
fn each_id_is_null_on_its_own() {
    let mut rec = OtepRecord::new(vec![]);
    rec.trace_id = [0; 16];
    let d = decode_otep(&rec, &[]);
    let v = d.value.unwrap();
    assert_eq!(
        (v.trace_id, v.span_id.as_deref()),
        (None, Some(W3C_SPAN_ID_HEX))
    );

    let mut rec = OtepRecord::new(vec![]);
    rec.span_id = [0; 8];
    rec.trace_id[15] = 0; // still non-zero elsewhere
    let v = decode_otep(&rec, &[]).value.unwrap();
    assert_eq!(v.span_id, None);
    assert_eq!(
        v.trace_id.as_deref(),
        Some("0af7651916cd43dd8448eb211c803100")
    );
}

#[test]
fn ids_with_a_single_nonzero_byte_are_lowercase_hex() {
    let mut rec = OtepRecord::new(vec![]);
    rec.trace_id = [0; 16];
    rec.trace_id[0] = 0xAB;
    rec.span_id = [0; 8];
    rec.span_id[7] = 0x0C;
    let v = decode_otep(&rec, &[]).value.unwrap();
    assert_eq!(
        v.trace_id.as_deref(),
        Some("ab000000000000000000000000000000")
    );
    assert_eq!(v.span_id.as_deref(), Some("000000000000000c"));
}

// rules: tc-stop-at-incomplete-entry
/// "MUST stop parsing if the remaining buffer cannot hold a complete entry": entries before are
/// reported, and a `truncated` error is added.
#[rstest]
#[case::value_cut_short([entry(0, b"ok"), vec![1, 10, b'a', b'b']].concat(), json!([{"key": "http.route", "value": "ok"}]))]
#[case::one_trailing_byte([entry(0, b"ok"), vec![1]].concat(), json!([{"key": "http.route", "value": "ok"}]))]
#[case::header_only_entry([entry(0, b"ok"), vec![1, 1]].concat(), json!([{"key": "http.route", "value": "ok"}]))]
#[case::first_entry_cut(vec![0, 5, b'a'], json!([]))]
#[case::later_duplicate_cut_does_not_override([entry(0, b"ok"), vec![0, 3, b'n']].concat(), json!([{"key": "http.route", "value": "ok"}]))]
fn truncated_entry(#[case] attrs: Vec<u8>, #[case] expected: Value) {
    let d = decode_otep(&OtepRecord::new(attrs), &default_keys());
    assert_eq!(attrs_json(&d), expected);
    assert_eq!(kinds(&d), vec![ErrorKind::Truncated]);
}

// rules: tc-stop-at-incomplete-entry
#[test]
fn attrs_data_size_cuts_inside_an_entry_is_truncated() {
    // Bytes beyond attrs_data_size exist but must not be used.
    let mut rec = OtepRecord::new(entries(&[(0, b"aa"), (1, b"bbbb")]));
    rec.attrs_data_size = Some(4 + 3);
    let d = decode_otep(&rec, &default_keys());
    assert_eq!(
        attrs_json(&d),
        json!([{"key": "http.route", "value": "aa"}])
    );
    assert_eq!(kinds(&d), vec![ErrorKind::Truncated]);
}

// rules: tc-header-then-attrs
#[test]
fn bytes_beyond_attrs_data_size_are_ignored() {
    // Append protocol: writer wrote the next entry but has not bumped attrs_data_size yet.
    let mut rec = OtepRecord::new(entries(&[(0, b"aa"), (1, b"bbbb"), (0, b"newer")]));
    rec.attrs_data_size = Some(4 + 6);
    let d = decode_otep(&rec, &default_keys());
    assert_eq!(d.errors, vec![]);
    assert_eq!(
        attrs_json(&d),
        json!([{"key": "http.route", "value": "aa"}, {"key": "user.id", "value": "bbbb"}])
    );
}

// rules: tc-record-640
#[test]
fn full_640_byte_record() {
    // libdatadog layout: 28-byte header + 612 bytes of attrs, of which some are used.
    let mut attrs = entries(&[(0, &[b'r'; 200]), (1, &[b'u'; 200]), (2, &[b'm'; 200])]);
    assert_eq!(attrs.len(), 606);
    attrs.resize(612, 0xAA); // scribbled tail beyond attrs_data_size
    let mut rec = OtepRecord::new(attrs);
    rec.attrs_data_size = Some(606);
    assert_eq!(rec.bytes().len(), 640);
    let d = decode_otep(&rec, &default_keys());
    assert_eq!(d.errors, vec![]);
    let a = d.value.unwrap().attributes;
    assert_eq!(a.len(), 3);
    assert_eq!(
        a[0],
        Attribute::Named {
            key: Bytes::from("http.method"),
            value: Bytes(vec![b'm'; 200])
        }
    );
}

// rules: tc-ours-bound-attrs
#[test]
fn attrs_data_size_u16_max_is_read_in_full() {
    // 257 entries of 255 bytes (65535 = 257 * 255) cover every index and wrap: index 0 twice.
    let mut attrs = Vec::new();
    for i in 0..257u32 {
        attrs.extend(entry((i % 256) as u8, &[b'a' + (i % 26) as u8; 253]));
    }
    assert_eq!(attrs.len(), 65535);
    let d = decode_otep(&OtepRecord::new(attrs), &default_keys());
    assert_eq!(d.errors, vec![]);
    let a = d.value.unwrap().attributes;
    assert_eq!(a.len(), 256, "one per distinct index");
    // index 0 appears at i = 0 and i = 256: the last (i = 256, letter 256 % 26 = 22 'w') wins.
    assert!(a.contains(&Attribute::Named {
        key: Bytes::from("http.route"),
        value: Bytes(vec![b'w'; 253])
    }));
}

// rules: tc-ours-short-read
#[test]
fn attrs_past_the_mapping_are_unreadable() {
    // attrs_data_size says 100 but only 10 bytes follow the header, then unmapped memory.
    let mut rec = OtepRecord::new(entries(&[(0, b"abcdefgh")]));
    rec.attrs_data_size = Some(100);
    let d = decode_otep(&rec, &default_keys());
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
}

// rules: tc-ours-short-read
#[test]
fn unreadable_header_is_an_unreadable_error() {
    let mem = ImageMemory::new();
    let d = decode_record(&mem, UNMAPPED, RecordLayout::Otep4947, &[]);
    assert_eq!(d.value, None);
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
    let mut img = ImageBuilder::new();
    let short = img.alloc(&[1u8; 27]); // one byte short of the header
    let mem = img.build();
    let d = decode_record(&mem, short, RecordLayout::Otep4947, &[]);
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
}

// rules: tc-ours-valid-recheck
/// The torn-read check: valid is 1 in the header copy, then 0 when re-read after the copy.
#[rstest]
#[case::cleared(0)]
#[case::garbage(7)]
fn valid_changing_while_copying_is_torn(#[case] new_valid: u8) {
    let mut img = ImageBuilder::new();
    let addr = img.otep_record(&OtepRecord::new(entries(&[(0, b"x")])));
    let mem = ByteFlipMemory::new(img.build(), addr + 24, new_valid, 2);
    let d = decode_record(&mem, addr, RecordLayout::Otep4947, &default_keys());
    assert_eq!(
        mem.covering_reads.get(),
        2,
        "valid is read in the header and once more after the copy"
    );
    assert_eq!(d.value, None, "a torn record is not reported");
    assert_eq!(kinds(&d), vec![ErrorKind::Torn]);
}

// rules: tc-ours-valid-recheck
#[test]
fn valid_unchanged_on_reread_is_not_torn() {
    let mut img = ImageBuilder::new();
    let addr = img.otep_record(&OtepRecord::new(entries(&[(0, b"x")])));
    let mem = ByteFlipMemory::new(img.build(), addr + 24, 1, 2);
    let d = decode_record(&mem, addr, RecordLayout::Otep4947, &default_keys());
    assert_eq!(d.errors, vec![]);
    assert_eq!(attrs_json(&d), json!([{"key": "http.route", "value": "x"}]));
}

// ---- draft layout ----

fn draft(valid: u8, count: u8, attrs: Vec<u8>) -> DraftRecord {
    DraftRecord {
        trace_id: W3C_TRACE_ID,
        span_id: W3C_SPAN_ID,
        root_span_id: [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
        valid,
        attrs_count: count,
        attrs,
    }
}

fn decode_draft(rec: &DraftRecord, key_map: &[Option<Bytes>]) -> Decoded<ThreadContext> {
    let mut img = ImageBuilder::new();
    let addr = img.draft_record(rec);
    let mem = img.build();
    let d = decode_record(&mem, addr, RecordLayout::Draft, key_map);
    assert!(
        d.errors.iter().all(|e| e.format == Format::V2),
        "{:?}",
        d.errors
    );
    d
}

// rules: tc-ours-draft-record
#[test]
fn draft_record_full_json() {
    let rec = draft(1, 2, entries(&[(1, b"u-1"), (0, b"/r")]));
    let d = decode_draft(&rec, &default_keys());
    assert_eq!(d.errors, vec![]);
    assert_eq!(
        serde_json::to_value(d.value.unwrap()).unwrap(),
        json!({
            "layout": "draft",
            "trace_id": W3C_TRACE_ID_HEX,
            "span_id": W3C_SPAN_ID_HEX,
            "root_span_id": "1122334455667788",
            "attributes": [{"key": "http.route", "value": "/r"}, {"key": "user.id", "value": "u-1"}],
        }),
        "draft has root_span_id and no trace_flags"
    );
}

// rules: tc-ours-draft-record
#[test]
fn draft_count_is_entries_not_bytes() {
    // Three entries follow but count says 2: the third is not part of the record.
    let rec = draft(1, 2, entries(&[(0, b"a"), (1, b"b"), (2, b"c")]));
    let d = decode_draft(&rec, &default_keys());
    assert_eq!(d.errors, vec![]);
    assert_eq!(
        attrs_json(&d),
        json!([{"key": "http.route", "value": "a"}, {"key": "user.id", "value": "b"}])
    );
}

// rules: tc-ours-draft-record
#[test]
fn draft_last_index_wins_and_unknown_index() {
    let rec = draft(1, 3, entries(&[(0, b"a"), (9, b"z"), (0, b"b")]));
    let d = decode_draft(&rec, &default_keys());
    assert_eq!(
        attrs_json(&d),
        json!([{"key": "http.route", "value": "b"}, {"key_index": 9, "value": "z"}])
    );
}

// rules: tc-ours-draft-record
#[rstest]
#[case(0)]
#[case(2)]
#[case(0xff)]
fn draft_valid_other_than_one_is_no_context(#[case] valid: u8) {
    let d = decode_draft(&draft(valid, 1, entry(0, b"a")), &default_keys());
    assert_eq!(d, Decoded::none());
}

#[test]
fn draft_valid_is_at_byte_32_not_24() {
    // A draft record whose byte 24 (first root-span byte) is 0 but byte 32 is 1 is valid.
    let mut rec = draft(1, 0, vec![]);
    rec.root_span_id = [0; 8];
    let d = decode_draft(&rec, &[]);
    assert_eq!(d.errors, vec![]);
    let v = d.value.expect("valid draft record");
    assert_eq!(v.layout, ThreadContextLayout::Draft);
    assert_eq!(v.trace_flags, None);
}

#[test]
fn draft_all_zero_root_span_is_null_but_present() {
    // conformance.md 3: the draft layout has root_span_id "which then appears as a field"; ids
    // that are all zero are null.
    let mut rec = draft(1, 0, vec![]);
    rec.root_span_id = [0; 8];
    let j = serde_json::to_value(decode_draft(&rec, &[]).value.unwrap()).unwrap();
    assert_eq!(j.get("root_span_id"), Some(&Value::Null), "got {j}");
}

#[test]
fn draft_count_beyond_mapped_entries_reports_entries_before_and_an_error() {
    let rec = draft(1, 3, entries(&[(0, b"a"), (1, b"b")]));
    let d = decode_draft(&rec, &default_keys());
    assert_eq!(
        attrs_json(&d),
        json!([{"key": "http.route", "value": "a"}, {"key": "user.id", "value": "b"}])
    );
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
}

// rules: tc-ours-draft-record, tc-ours-valid-recheck
#[test]
fn draft_torn() {
    let mut img = ImageBuilder::new();
    let addr = img.draft_record(&draft(1, 1, entry(0, b"a")));
    let mem = ByteFlipMemory::new(img.build(), addr + 32, 0, 2);
    let d = decode_record(&mem, addr, RecordLayout::Draft, &default_keys());
    assert_eq!(d.value, None);
    assert_eq!(kinds(&d), vec![ErrorKind::Torn]);
}

/// Full snapshot with OTEP 4947 and draft threads; pinned JSON checked by hand against
/// conformance.md section 3 (layout names, null ids, trace_flags only for otep-4947, root_span_id
/// only for draft, key_index entries after named ones, truncated error with format v2).
#[test]
fn snapshot_of_thread_context_threads() {
    let key_map = keys(&["http.route", "user.id"]);
    let mut img = ImageBuilder::new();
    let basic = img.otep_record(&OtepRecord::new(entries(&[
        (1, b"user-7"),
        (0, b"/api/cart"),
        (0, b"/api/cart/v2"),
    ])));
    let mut zero = OtepRecord::new(entries(&[(5, b"unknown"), (1, b"\xfe\xff")]));
    zero.trace_id = [0; 16];
    zero.span_id = [0; 8];
    zero.trace_flags = 0;
    let zero = img.otep_record(&zero);
    let cut = img.otep_record(&OtepRecord::new(
        [entry(0, b"/ok"), vec![1, 9, b'x']].concat(),
    ));
    let mut invalid = OtepRecord::new(vec![]);
    invalid.valid = 0;
    let invalid = img.otep_record(&invalid);
    let drafted = img.draft_record(&draft(1, 1, entry(1, b"draft-user")));
    let mem = img.build();

    let mut threads = Vec::new();
    for (tid, name, addr, layout) in [
        (2001, "main", Some(basic), RecordLayout::Otep4947),
        (2002, "zero-ids", Some(zero), RecordLayout::Otep4947),
        (2003, "truncated", Some(cut), RecordLayout::Otep4947),
        (2004, "invalid", Some(invalid), RecordLayout::Otep4947),
        (2005, "draft", Some(drafted), RecordLayout::Draft),
        (2006, "null-pointer", None, RecordLayout::Otep4947),
    ] {
        let mut th = ThreadSnapshot::new(tid, Bytes::from(name));
        if let Some(addr) = addr {
            let d = decode_record(&mem, addr, layout, &key_map);
            th.v2 = d.value;
            th.errors = d.errors;
        }
        threads.push(th);
    }
    threads.reverse();
    let mut snap = Snapshot {
        pid: 2001,
        backend: Backend::Ptrace,
        process_context: None,
        threads,
        errors: vec![],
    };
    snap.normalise();
    let mut json = snap.to_json();
    for th in json["threads"].as_array_mut().unwrap() {
        for e in th["errors"].as_array_mut().unwrap() {
            e["detail"] = json!("<detail>");
        }
    }
    // Sorted maps: the pin must not depend on serde_json's preserve_order feature.
    insta::with_settings!({ sort_maps => true }, { insta::assert_json_snapshot!("thread_context_threads", json) });
}

// ---- robustness ----

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary record bytes and arbitrary attrs_data_size: never panics, reads at most
    /// 28 + 65535 bytes at once, a bounded number of reads, and never reports a context for
    /// valid != 1.
    #[test]
    fn otep_decoder_is_robust(
        header in proptest::collection::vec(any::<u8>(), 28),
        valid in prop_oneof![4 => Just(1u8), 1 => any::<u8>()],
        size in prop_oneof![3 => 0u16..80, 1 => any::<u16>()],
        body in proptest::collection::vec(any::<u8>(), 0..96),
        n_keys in 0usize..6,
    ) {
        let mut rec = header;
        rec[24] = valid;
        rec[26..28].copy_from_slice(&size.to_le_bytes());
        rec.extend_from_slice(&body);
        let mut img = ImageBuilder::new();
        let addr = img.alloc(&rec);
        let mem = CountingMemory::new(img.build());
        let key_map: Vec<Option<Bytes>> = (0..n_keys).map(|i| Some(Bytes(format!("k{i}").into_bytes()))).collect();
        let d = decode_record(&mem, addr, RecordLayout::Otep4947, &key_map);
        prop_assert!(mem.largest_read.get() <= 65535 + 28);
        prop_assert!(mem.reads.get() <= 3);
        if valid != 1 {
            prop_assert_eq!(d.value.clone(), None);
            prop_assert_eq!(d.errors.clone(), vec![]);
        }
        if valid == 1 && (size as usize) > body.len() {
            prop_assert_eq!(d.value.clone(), None, "attrs beyond the mapping cannot be decoded");
            prop_assert!(!d.errors.is_empty());
        }
        if let Some(v) = &d.value {
            prop_assert!(v.attributes.len() <= 256);
            prop_assert!(d.errors.iter().all(|e| e.kind == ErrorKind::Truncated));
        }
    }

    /// Model check of entry parsing: arbitrary entries, an arbitrary cut by attrs_data_size, and
    /// an arbitrary key map. Expected = last-wins over the complete entries before the cut, named
    /// ones sorted by key bytes then key_index ones by index; `truncated` iff the cut falls inside
    /// an entry.
    #[test]
    fn otep_entries_model(
        list in proptest::collection::vec((0u8..8, proptest::collection::vec(any::<u8>(), 0..12)), 0..12),
        cut_seed in any::<prop::sample::Index>(),
        names in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4), 0..6),
    ) {
        let attrs: Vec<u8> = list.iter().flat_map(|(i, v)| entry(*i, v)).collect();
        let cut = cut_seed.index(attrs.len() + 1);
        let mut rec = OtepRecord::new(attrs.clone());
        rec.attrs_data_size = Some(cut as u16);
        let key_map: Vec<Option<Bytes>> = names.iter().map(|n| Some(Bytes(n.clone()))).collect();

        let mut last: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        let mut at = 0;
        let mut cut_inside = false;
        for (i, v) in &list {
            if at == cut { break; }
            if at + 2 + v.len() > cut { cut_inside = true; break; }
            last.insert(*i, v.clone());
            at += 2 + v.len();
        }
        let mut named: Vec<Attribute> = Vec::new();
        let mut unnamed: Vec<Attribute> = Vec::new();
        for (i, v) in last {
            match key_map.get(i as usize).and_then(Option::as_ref) {
                Some(k) => named.push(Attribute::Named { key: k.clone(), value: Bytes(v) }),
                None => unnamed.push(Attribute::Unnamed { key_index: i, value: Bytes(v) }),
            }
        }
        // Sort named by key bytes; a key map may repeat a name, then both stay (stable by index).
        named.sort_by(|a, b| match (a, b) {
            (Attribute::Named { key: x, .. }, Attribute::Named { key: y, .. }) => x.cmp(y),
            _ => unreachable!(),
        });
        let expected: Vec<Attribute> = named.into_iter().chain(unnamed).collect();

        let d = decode_otep(&rec, &key_map);
        prop_assert_eq!(&d.value.as_ref().unwrap().attributes, &expected);
        let expected_kinds = if cut_inside { vec![ErrorKind::Truncated] } else { vec![] };
        prop_assert_eq!(kinds(&d), expected_kinds);
    }

    /// Draft records with arbitrary counts and bytes: never panics, at most 2 + 2 * 255 reads of at
    /// most 255 bytes after the header, terminates quickly.
    #[test]
    fn draft_decoder_is_robust(
        header in proptest::collection::vec(any::<u8>(), 34),
        valid in prop_oneof![4 => Just(1u8), 1 => any::<u8>()],
        count in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut rec = header;
        rec[32] = valid;
        rec[33] = count;
        rec.extend_from_slice(&body);
        let mut img = ImageBuilder::new();
        let addr = img.alloc(&rec);
        let mem = CountingMemory::new(img.build());
        let d = decode_record(&mem, addr, RecordLayout::Draft, &[Some(Bytes::from("k"))]);
        prop_assert!(mem.largest_read.get() <= 255, "one entry value (at most 255 bytes) is the largest read");
        prop_assert!(mem.reads.get() <= 2 + 2 * 255);
        if valid != 1 {
            prop_assert_eq!(d, Decoded::none());
        }
    }
}

//! Byte-fixture tests of the custom-labels v1 / v0 decoder against formats.md 1.5-1.7 and
//! conformance.md section 3: expected values come from the spec, never from decoder output.

use context_reader::abi::Arch;
use context_reader::abi::Libc;
use context_reader::decode::v1::{decode_v0_inline, decode_v1_set, V1Limits};
use context_reader::decode::Decoded;
use context_reader::memory::ImageMemory;
use context_reader::plan::{ReadPlan, Resolution, SlotPlan, SlotRule, V1Layout, V1Plan};
use context_reader::read::read_thread;
use context_reader::snapshot::{
    Backend, Bytes, ErrorKind, Format, ReadError, Snapshot, ThreadSnapshot, V1Labels,
    MAX_ERRORS_PER_FORMAT,
};
use proptest::prelude::*;
use rstest::rstest;
use serde_json::json;

use crate::fixtures::{words, CountingMemory, ImageBuilder, Str, UNMAPPED};

type Pair = (Vec<u8>, Vec<u8>);

fn t(s: &str) -> Str {
    Str::text(s)
}

fn b(bytes: &[u8]) -> Str {
    Str::Bytes(bytes.to_vec())
}

fn pairs(list: &[(&[u8], &[u8])]) -> Vec<Pair> {
    list.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

fn labels_of(d: &Decoded<V1Labels>) -> Vec<Pair> {
    d.value
        .as_ref()
        .expect("a label set")
        .labels
        .iter()
        .map(|l| (l.key.0.clone(), l.value.0.clone()))
        .collect()
}

fn kinds(d: &Decoded<V1Labels>) -> Vec<ErrorKind> {
    d.errors.iter().map(|e| e.kind).collect()
}

fn decode(labels: &[(Str, Str)]) -> Decoded<V1Labels> {
    let mut img = ImageBuilder::new();
    let set = img.label_set(labels);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert!(
        d.errors.iter().all(|e| e.format == Format::V1),
        "v1 errors carry format v1: {:?}",
        d.errors
    );
    d
}

// rules: v1-null-key-ignored, v1-first-key-wins, v1-unordered, v1-labels-are-bytes, v1-null-buf-absent, v1-labelset-layout
/// Rules 3, 4, 5 and 6 of formats.md 1.6, the UTF-8 rule and the sort rule of conformance.md 3,
/// on well-formed sets (no errors expected).
#[rstest]
#[case::one_label(vec![(t("customer"), t("acme"))], pairs(&[(b"customer", b"acme")]))]
#[case::empty_set(vec![], vec![])]
#[case::null_key_skipped(
    vec![(Str::Null { len: 3 }, t("hidden")), (t("a"), t("1"))],
    pairs(&[(b"a", b"1")])
)]
#[case::null_key_with_garbage_lengths_and_value_skipped_without_reading(
    vec![(Str::Null { len: 1 << 63 }, Str::Raw { len: 1 << 62, buf: UNMAPPED }), (t("a"), t("1"))],
    pairs(&[(b"a", b"1")])
)]
#[case::first_duplicate_wins(
    vec![(t("k"), t("first")), (t("k"), t("second"))],
    pairs(&[(b"k", b"first")])
)]
#[case::first_duplicate_wins_over_three(
    vec![(t("k"), t("1")), (t("x"), t("y")), (t("k"), t("2")), (t("k"), t("3"))],
    pairs(&[(b"k", b"1"), (b"x", b"y")])
)]
#[case::careful_set_mid_update_old_value_wins(
    // careful_set pushed (k, new) at the end but has not hidden the old slot yet (1.7).
    vec![(t("k"), t("old")), (t("other"), t("o")), (t("k"), t("new"))],
    pairs(&[(b"k", b"old"), (b"other", b"o")])
)]
#[case::careful_set_old_slot_hidden_new_value_visible(
    vec![(Str::Null { len: 1 }, t("old")), (t("other"), t("o")), (t("k"), t("new"))],
    pairs(&[(b"k", b"new"), (b"other", b"o")])
)]
#[case::careful_delete_middle_duplicate_of_last(
    // delete element 0 (not last): slot 0 already holds a copy of the last label (state b).
    vec![(t("z"), t("last")), (t("m"), t("mid")), (t("z"), t("last"))],
    pairs(&[(b"m", b"mid"), (b"z", b"last")])
)]
#[case::hidden_entry_does_not_count_as_earlier_duplicate(
    vec![(Str::Null { len: 1 }, t("gone")), (t("k"), t("a")), (t("k"), t("b"))],
    pairs(&[(b"k", b"a")])
)]
#[case::keys_differing_only_in_length_are_distinct(
    vec![(b(b"k\0"), t("2")), (t("k"), t("1"))],
    pairs(&[(b"k", b"1"), (b"k\0", b"2")])
)]
#[case::sorted_by_key_bytes_not_insertion_or_locale(
    vec![(t("b"), t("2")), (b(b"\xff"), t("5")), (t("aa"), t("4")), (t("a"), t("1")), (t("B"), t("3"))],
    pairs(&[(b"B", b"3"), (b"a", b"1"), (b"aa", b"4"), (b"b", b"2"), (b"\xff", b"5")])
)]
#[case::arbitrary_bytes_kept_exactly(
    vec![(b(b"\xff\xfe"), b(b"\x00\x80")), (b(b"\x00"), b(b"\x1b[31m"))],
    pairs(&[(b"\x00", b"\x1b[31m"), (b"\xff\xfe", b"\x00\x80")])
)]
#[case::empty_value_with_non_null_buf_is_empty_string(
    vec![(t("k"), b(b""))],
    pairs(&[(b"k", b"")])
)]
#[case::empty_key_with_non_null_buf_is_a_real_key(
    vec![(b(b""), t("v")), (b(b""), t("later"))],
    pairs(&[(b"", b"v")])
)]
#[case::len_zero_needs_no_readable_memory(
    // formats.md contract: "len 0 -> no read": a non-NULL pointer into unmapped memory is fine.
    vec![(t("k"), Str::Raw { len: 0, buf: UNMAPPED }), (Str::Raw { len: 0, buf: UNMAPPED }, t("v"))],
    pairs(&[(b"", b"v"), (b"k", b"")])
)]
#[case::node_stringified_values(
    vec![(t("flag"), t("true")), (t("n"), t("42")), (t("u"), t("undefined")), (t("z"), t("null"))],
    pairs(&[(b"flag", b"true"), (b"n", b"42"), (b"u", b"undefined"), (b"z", b"null")])
)]
fn well_formed_sets(#[case] labels: Vec<(Str, Str)>, #[case] expected: Vec<Pair>) {
    let d = decode(&labels);
    assert_eq!(d.errors, vec![], "a well-formed set has no errors");
    let v = d
        .value
        .as_ref()
        .expect("a non-NULL set decodes to a label set");
    assert_eq!(v.abi_version, None, "abi_version is only shown for v0");
    assert_eq!(labels_of(&d), expected);
}

// rules: v1-ours-null-value, v1-value-not-null, v1-ours-short-read, v1-ours-bound-count
/// Defensive rules: bad entries become error entries, the rest of the set is still reported.
#[rstest]
#[case::null_value_with_a_key(
    vec![(t("a"), t("1")), (t("bad"), Str::Null { len: 0 }), (t("c"), t("3"))],
    pairs(&[(b"a", b"1"), (b"c", b"3")]),
    None
)]
#[case::null_value_with_a_key_and_length(
    vec![(t("bad"), Str::Null { len: 4 }), (t("c"), t("3"))],
    pairs(&[(b"c", b"3")]),
    None
)]
#[case::unreadable_key(
    vec![(Str::Raw { len: 4, buf: UNMAPPED }, t("v")), (t("ok"), t("1"))],
    pairs(&[(b"ok", b"1")]),
    Some(ErrorKind::Unreadable)
)]
#[case::unreadable_value(
    vec![(t("k"), Str::Raw { len: 4, buf: UNMAPPED }), (t("ok"), t("1"))],
    pairs(&[(b"ok", b"1")]),
    Some(ErrorKind::Unreadable)
)]
#[case::key_overruns_its_mapping(
    // len says 9 but only 8 bytes are mapped there, then the guard gap.
    vec![(Str::Raw { len: 9, buf: 0 }, t("v")), (t("ok"), t("1"))],
    pairs(&[(b"ok", b"1")]),
    Some(ErrorKind::Unreadable)
)]
#[case::key_pointer_at_end_of_address_space(
    vec![(Str::Raw { len: 16, buf: u64::MAX - 7 }, t("v")), (t("ok"), t("1"))],
    pairs(&[(b"ok", b"1")]),
    Some(ErrorKind::Unreadable)
)]
#[case::key_len_2_pow_63(
    vec![(Str::Raw { len: 1 << 63, buf: 0x1000 }, t("v")), (t("ok"), t("1"))],
    pairs(&[(b"ok", b"1")]),
    Some(ErrorKind::TooLarge)
)]
#[case::value_len_u64_max(
    vec![(t("k"), Str::Raw { len: u64::MAX, buf: 0x1000 }), (t("ok"), t("1"))],
    pairs(&[(b"ok", b"1")]),
    Some(ErrorKind::TooLarge)
)]
#[case::value_len_just_over_64k(
    vec![(t("k"), Str::Raw { len: 64 * 1024 + 1, buf: 0x1000 }), (t("ok"), t("1"))],
    pairs(&[(b"ok", b"1")]),
    Some(ErrorKind::TooLarge)
)]
fn defective_entries(
    #[case] mut labels: Vec<(Str, Str)>,
    #[case] expected: Vec<Pair>,
    #[case] kind: Option<ErrorKind>,
) {
    // `key_overruns_its_mapping`: point the key at an 8-byte allocation.
    let mut img = ImageBuilder::new();
    let eight = img.alloc(b"12345678");
    for (k, _) in labels.iter_mut() {
        if let Str::Raw { len: 9, buf } = k {
            *buf = eight;
        }
    }
    let set = img.label_set(&labels);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert_eq!(
        labels_of(&d),
        expected,
        "the other labels are still reported"
    );
    assert_eq!(d.errors.len(), 1, "exactly one error entry: {:?}", d.errors);
    assert_eq!(d.errors[0].format, Format::V1);
    if let Some(kind) = kind {
        assert_eq!(d.errors[0].kind, kind, "{:?}", d.errors[0]);
    }
}

#[test]
fn key_and_value_exactly_at_the_length_limit_are_read() {
    let limits = V1Limits {
        max_labels: 4096,
        max_string_len: 5,
    };
    let mut img = ImageBuilder::new();
    let set = img.label_set(&[
        (t("12345"), t("abcde")),
        (t("123456"), t("x")),
        (t("k"), t("abcdef")),
    ]);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &limits);
    assert_eq!(labels_of(&d), pairs(&[(b"12345", b"abcde")]));
    assert_eq!(kinds(&d), vec![ErrorKind::TooLarge, ErrorKind::TooLarge]);
}

// rules: v1-storage-count
#[test]
fn count_zero_with_null_storage_is_an_empty_set() {
    let mut img = ImageBuilder::new();
    let set = img.label_set_raw(0, 0, 0);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert_eq!(d.errors, vec![]);
    assert_eq!(labels_of(&d), vec![]);
    assert_eq!(
        serde_json::to_value(d.value.unwrap()).unwrap(),
        json!({"labels": []})
    );
}

// rules: v1-capacity-meaningless
#[test]
fn capacity_is_ignored() {
    // Rule 2: only count matters; capacity 0 or absurd must not change anything.
    for capacity in [0, 1, u64::MAX] {
        let mut img = ImageBuilder::new();
        let storage = img.label_storage(&[(t("a"), t("1")), (t("b"), t("2"))]);
        let set = img.label_set_raw(storage, 2, capacity);
        let mem = img.build();
        let d = decode_v1_set(&mem, set, &V1Limits::default());
        assert_eq!(d.errors, vec![], "capacity {capacity}");
        assert_eq!(
            labels_of(&d),
            pairs(&[(b"a", b"1"), (b"b", b"2")]),
            "capacity {capacity}"
        );
    }
}

// rules: v1-storage-count
#[test]
fn only_the_first_count_entries_are_looked_at() {
    let mut img = ImageBuilder::new();
    let storage = img.label_storage(&[(t("a"), t("1")), (t("b"), t("2")), (t("c"), t("3"))]);
    let set = img.label_set_raw(storage, 2, 3);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert_eq!(d.errors, vec![]);
    assert_eq!(labels_of(&d), pairs(&[(b"a", b"1"), (b"b", b"2")]));
}

// rules: v1-ours-bound-count
#[test]
fn count_beyond_the_limit_is_too_large_and_the_first_limit_entries_are_read() {
    // formats.md 1.10 step 4: read min(count, cap) x 32 bytes.
    let limits = V1Limits {
        max_labels: 2,
        max_string_len: 64 * 1024,
    };
    let mut img = ImageBuilder::new();
    let set = img.label_set(&[(t("c"), t("3")), (t("a"), t("1")), (t("b"), t("2"))]);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &limits);
    assert_eq!(kinds(&d), vec![ErrorKind::TooLarge]);
    assert_eq!(labels_of(&d), pairs(&[(b"a", b"1"), (b"c", b"3")]));
}

// rules: v1-ours-bound-count
#[rstest]
#[case::limit_plus_one(4097)]
#[case::two_pow_60(1 << 60)]
#[case::two_pow_63(1 << 63)]
#[case::u64_max(u64::MAX)]
fn huge_count_is_too_large_quickly_without_a_huge_read(#[case] count: u64) {
    let mut img = ImageBuilder::new();
    let storage = img.label_storage(&[(t("a"), t("1")), (t("b"), t("2"))]);
    let set = img.label_set_raw(storage, count, count);
    let mem = CountingMemory::new(img.build());
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert!(kinds(&d).contains(&ErrorKind::TooLarge), "{:?}", d.errors);
    assert!(
        mem.largest_read.get() <= 4096 * 32,
        "largest read {} exceeds the 4096-label bound",
        mem.largest_read.get()
    );
    assert!(mem.reads.get() <= 2 + 2 * 4096, "{} reads", mem.reads.get());
}

// rules: v1-ours-short-read
#[test]
fn unreadable_storage_is_an_unreadable_error() {
    let mut img = ImageBuilder::new();
    let set = img.label_set_raw(UNMAPPED, 3, 3);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
    assert_eq!(
        d.value.map(|v| v.labels).unwrap_or_default(),
        vec![],
        "no label invented"
    );
}

// rules: v1-ours-short-read, v1-storage-count
#[test]
fn storage_shorter_than_count_is_an_unreadable_error() {
    let mut img = ImageBuilder::new();
    let storage = img.label_storage(&[(t("a"), t("1"))]);
    let set = img.label_set_raw(storage, 2, 2);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
}

#[test]
fn null_storage_with_a_count_is_an_unreadable_error() {
    let mut img = ImageBuilder::new();
    let set = img.label_set_raw(0, 1, 1);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
}

// rules: v1-ours-short-read
#[test]
fn unreadable_set_header_is_an_unreadable_error() {
    let mem = ImageMemory::new();
    let d = decode_v1_set(&mem, UNMAPPED, &V1Limits::default());
    assert_eq!(d.value, None);
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
    assert_eq!(d.errors[0].format, Format::V1);
}

#[test]
fn set_header_cut_short_is_an_unreadable_error() {
    // Only 16 of the 24 header bytes are mapped.
    let mut img = ImageBuilder::new();
    let storage = img.label_storage(&[(t("a"), t("1"))]);
    let set = img.alloc(&crate::fixtures::words(&[storage, 1]));
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
}

#[test]
fn v0_inline_layout_reads_the_tls_object_itself() {
    let mut img = ImageBuilder::new();
    let slot = img.v0_inline(&[(t("b"), t("2")), (t("a"), t("1")), (t("a"), t("dup"))]);
    let mem = img.build();
    let d = decode_v0_inline(&mem, slot, &V1Limits::default());
    assert_eq!(d.errors, vec![]);
    assert_eq!(d.value.as_ref().unwrap().abi_version, Some(0));
    assert_eq!(labels_of(&d), pairs(&[(b"a", b"1"), (b"b", b"2")]));
    assert_eq!(
        serde_json::to_value(d.value.unwrap()).unwrap(),
        json!({"abi_version": 0, "labels": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]})
    );
}

#[test]
fn v0_inline_is_only_16_bytes() {
    // The v0 object is {storage, count}: nothing after byte 16 may be needed.
    let mut img = ImageBuilder::new();
    let storage = img.label_storage(&[(t("k"), t("v"))]);
    let slot = img.alloc(&crate::fixtures::words(&[storage, 1]));
    let mem = img.build();
    let d = decode_v0_inline(&mem, slot, &V1Limits::default());
    assert_eq!(d.errors, vec![]);
    assert_eq!(labels_of(&d), pairs(&[(b"k", b"v")]));
}

#[test]
fn v0_inline_empty_and_unreadable() {
    let mut img = ImageBuilder::new();
    let slot = img.alloc(&crate::fixtures::words(&[0, 0]));
    let mem = img.build();
    let d = decode_v0_inline(&mem, slot, &V1Limits::default());
    assert_eq!(d.errors, vec![]);
    assert_eq!(
        serde_json::to_value(d.value.unwrap()).unwrap(),
        json!({"abi_version": 0, "labels": []})
    );
    let d = decode_v0_inline(&mem, UNMAPPED, &V1Limits::default());
    assert_eq!(kinds(&d), vec![ErrorKind::Unreadable]);
}

#[test]
fn json_shape_of_labels_with_hex_and_empty_strings() {
    let d = decode(&[
        (t("customer"), t("acme")),
        (b(b"\xff\xfe"), b(b"\x00\x80")),
        (t("empty"), b(b"")),
        (t("bin"), b(b"ok\xc3")),
    ]);
    assert_eq!(d.errors, vec![]);
    assert_eq!(
        serde_json::to_value(d.value.unwrap()).unwrap(),
        json!({"labels": [
            {"key": "bin", "value": {"hex": "6f6bc3"}},
            {"key": "customer", "value": "acme"},
            {"key": "empty", "value": ""},
            {"key": {"hex": "fffe"}, "value": {"hex": "0080"}},
        ]})
    );
}

#[test]
fn errors_serialise_with_format_v1_and_snake_case_kind() {
    let mut img = ImageBuilder::new();
    let set = img.label_set(&[(
        t("k"),
        Str::Raw {
            len: 1 << 63,
            buf: 0x1000,
        },
    )]);
    let mem = img.build();
    let d = decode_v1_set(&mem, set, &V1Limits::default());
    let e = serde_json::to_value(&d.errors).unwrap();
    assert_eq!(e[0]["format"], "v1");
    assert_eq!(e[0]["kind"], "too_large");
    assert!(
        e[0]["detail"].as_str().is_some_and(|s| !s.is_empty()),
        "a detail is given"
    );
}

/// A full snapshot with v1 threads, serialised through the public `Snapshot` type. The pinned
/// JSON was checked by hand against conformance.md section 3 (v1 null / labels / abi_version 0,
/// hex for non-UTF-8, errors array with format and kind).
#[test]
fn snapshot_of_v1_threads() {
    let mut img = ImageBuilder::new();
    let set_a = img.label_set(&[
        (t("customer"), t("acme")),
        (Str::Null { len: 0 }, t("hidden")),
        (t("region"), t("eu-west-1")),
        (t("customer"), t("duplicate loses")),
    ]);
    let set_b = img.label_set(&[(b(b"bin\xff"), b(b"\x01\x02")), (t("empty"), b(b""))]);
    let set_c = img.label_set(&[]);
    let set_bad = img.label_set(&[
        (t("ok"), t("yes")),
        (
            t("broken"),
            Str::Raw {
                len: 3,
                buf: UNMAPPED,
            },
        ),
    ]);
    let slot_v0 = img.v0_inline(&[(t("legacy"), t("v0"))]);
    let mem = img.build();
    let limits = V1Limits::default();

    let mut threads = Vec::new();
    let mut add = |tid: i32, name: &str, d: Option<Decoded<V1Labels>>| {
        let mut th = ThreadSnapshot::new(tid, Bytes::from(name));
        if let Some(d) = d {
            th.v1 = d.value;
            th.errors = d.errors;
        }
        threads.push(th);
    };
    add(1003, "empty-set", Some(decode_v1_set(&mem, set_c, &limits)));
    add(1001, "main", Some(decode_v1_set(&mem, set_a, &limits)));
    add(1002, "binary", Some(decode_v1_set(&mem, set_b, &limits)));
    add(1004, "no-set", None);
    add(1005, "broken", Some(decode_v1_set(&mem, set_bad, &limits)));
    add(
        1006,
        "legacy-v0",
        Some(decode_v0_inline(&mem, slot_v0, &limits)),
    );
    let mut snap = Snapshot {
        pid: 1001,
        backend: Backend::Ptrace,
        process_context: None,
        threads,
        errors: vec![],
    };
    snap.normalise();
    let mut json = snap.to_json();
    // The detail text is free-form; pin everything else.
    for th in json["threads"].as_array_mut().unwrap() {
        for e in th["errors"].as_array_mut().unwrap() {
            e["detail"] = json!("<detail>");
        }
    }
    // Sorted maps: the pin must not depend on serde_json's preserve_order feature.
    insta::with_settings!({ sort_maps => true }, { insta::assert_json_snapshot!("v1_threads", json) });
}

// ---- robustness ----

fn arb_len() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..40,
        1 => Just(64 * 1024),
        1 => Just(64 * 1024 + 1),
        1 => Just(1u64 << 60),
        1 => Just(1u64 << 63),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

/// Pointers: NULL, into the data region (so some strings are readable), unmapped, near the end of
/// the address space, or anything.
fn arb_ptr(data: u64, data_len: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        6 => (0..data_len).prop_map(move |o| data + o),
        1 => Just(UNMAPPED),
        1 => (0u64..16).prop_map(|o| u64::MAX - o),
        1 => any::<u64>(),
    ]
}

const DATA: u64 = 0x20_0000;
const DATA_LEN: u64 = 256;
const STORAGE: u64 = 0x30_0000;
const SET: u64 = 0x40_0000;

prop_compose! {
    fn arb_entry()(klen in arb_len(), kbuf in arb_ptr(DATA, DATA_LEN), vlen in arb_len(), vbuf in arb_ptr(DATA, DATA_LEN)) -> [u64; 4] {
        [klen, kbuf, vlen, vbuf]
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary images, counts, lengths and pointers: the decoder never panics, never reads (or
    /// allocates for) more than its bounds, terminates after a bounded number of reads, and what
    /// it reports obeys the set rules (unique keys, sorted, at most min(count, limit) labels).
    #[test]
    fn v1_decoder_is_robust(
        data in proptest::collection::vec(any::<u8>(), DATA_LEN as usize),
        entries in proptest::collection::vec(arb_entry(), 0..12),
        count_choice in any::<prop::sample::Index>(),
        count_any in any::<u64>(),
        storage_ptr in prop_oneof![8 => Just(STORAGE), 1 => Just(0u64), 1 => Just(UNMAPPED), 1 => any::<u64>()],
        max_labels in prop_oneof![Just(4096u64), 0u64..8],
        max_string_len in prop_oneof![Just(64 * 1024u64), 0u64..16],
        v0 in any::<bool>(),
    ) {
        let n = entries.len() as u64;
        let count = match count_choice.index(6) {
            0..=2 => n,
            3 => 1 << 60,
            4 => count_any,
            _ => u64::MAX,
        };
        let mut mem = ImageMemory::new();
        mem.insert(DATA, data);
        mem.insert(STORAGE, entries.iter().flatten().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>());
        mem.insert(SET, crate::fixtures::words(&[storage_ptr, count, count]));
        let limits = V1Limits { max_labels, max_string_len };
        let mem = CountingMemory::new(mem);
        let d = if v0 { decode_v0_inline(&mem, SET, &limits) } else { decode_v1_set(&mem, SET, &limits) };

        let bound = (24u64).max(max_labels * 32).max(max_string_len);
        prop_assert!(mem.largest_read.get() as u64 <= bound, "read of {} bytes beyond bound {bound}", mem.largest_read.get());
        prop_assert!(mem.reads.get() <= 2 + 2 * max_labels.min(count), "{} reads", mem.reads.get());
        if count > max_labels {
            prop_assert!(d.errors.iter().any(|e| e.kind == ErrorKind::TooLarge), "count {count} > {max_labels}: {:?}", d.errors);
        }
        prop_assert!(d.errors.iter().all(|e| e.format == Format::V1));
        if let Some(v) = &d.value {
            prop_assert!(v.labels.len() as u64 <= count.min(max_labels));
            prop_assert!(v.labels.windows(2).all(|w| w[0].key < w[1].key), "sorted, unique keys");
            for l in &v.labels {
                prop_assert!(l.key.0.len() as u64 <= max_string_len && l.value.0.len() as u64 <= max_string_len);
            }
        }
    }

    /// Model check of rules 3 and 5 with arbitrary byte strings: first occurrence of each key wins,
    /// NULL keys are skipped, the result is sorted by key bytes.
    #[test]
    fn v1_first_wins_model(
        raw in proptest::collection::vec(
            (proptest::option::weighted(0.85, proptest::collection::vec(0u8..4, 0..3)),
             proptest::collection::vec(any::<u8>(), 0..6)),
            0..16),
    ) {
        let labels: Vec<(Str, Str)> = raw
            .iter()
            .map(|(k, v)| (k.clone().map_or(Str::Null { len: 7 }, Str::Bytes), Str::Bytes(v.clone())))
            .collect();
        let mut expected: Vec<Pair> = Vec::new();
        for (k, v) in &raw {
            if let Some(k) = k {
                if !expected.iter().any(|(ek, _)| ek == k) {
                    expected.push((k.clone(), v.clone()));
                }
            }
        }
        expected.sort();
        let d = decode(&labels);
        prop_assert_eq!(&d.errors, &vec![]);
        prop_assert_eq!(labels_of(&d), expected);
    }
}

// ---- error amplification (issue 11, defect 4) ----

/// `n` labels whose key is present and whose value pointer is NULL: one error each.
fn bad_label_set(img: &mut ImageBuilder, n: usize) -> u64 {
    let labels: Vec<(Str, Str)> = (0..n)
        .map(|i| (t(&format!("k{i}")), Str::Null { len: 1 }))
        .collect();
    img.label_set(&labels)
}

#[test]
fn errors_of_one_set_are_bounded_and_the_rest_counted() {
    let mut img = ImageBuilder::new();
    let set = bad_label_set(&mut img, 4096);
    let d = decode_v1_set(&img.build(), set, &V1Limits::default());
    assert_eq!(d.value.as_ref().map(|v| v.labels.len()), Some(0));
    assert_eq!(d.errors.len(), MAX_ERRORS_PER_FORMAT + 1);
    for (i, e) in d.errors[..MAX_ERRORS_PER_FORMAT].iter().enumerate() {
        assert_eq!(
            (e.format, e.kind, e.detail.as_str()),
            (
                Format::V1,
                ErrorKind::Unreadable,
                format!("label {i}: key present but value pointer is NULL").as_str()
            )
        );
    }
    assert_eq!(
        d.errors[MAX_ERRORS_PER_FORMAT],
        ReadError::omitted(Format::V1, 4096 - MAX_ERRORS_PER_FORMAT as u64)
    );
}

// rules: v1-ours-bound-count, tc-ours-several-modules
/// The case, 200 threads with 4,096 bad labels each, through `read_thread` with the set
/// defined by two modules: each thread lists 8 errors and one `omitted` entry counting the other
/// 2 x 4,096 - 8, so the snapshot holds 200 x 9 entries instead of 1,638,400.
#[test]
fn snapshot_of_200_threads_with_4096_bad_labels_each_is_bounded() {
    let mut img = ImageBuilder::new();
    let set = bad_label_set(&mut img, 4096);
    // TLS slots: TP-relative offsets 0 (first module) and 8 (second), one TP per thread.
    let mut tps = Vec::new();
    for _ in 0..200 {
        tps.push(img.alloc(&words(&[set, set])));
    }
    let mem = img.build();
    let slot = |module: &str, offset: i64| V1Plan {
        slot: SlotPlan {
            module: module.into(),
            symbol: "custom_labels_current_set".into(),
            rule: SlotRule::TpRelative { offset },
            resolution: Resolution::InitialExecGot,
        },
        layout: V1Layout::Pointer,
    };
    let plan = ReadPlan {
        pid: 1,
        arch: Arch::host(),
        libc: Libc::Glibc,
        v1: vec![slot("/a.so", 0), slot("/b.so", 8)],
        v2: vec![],
        context_mappings: vec![],
        errors: vec![],
    };
    let threads: Vec<ThreadSnapshot> = tps
        .iter()
        .enumerate()
        .map(|(i, tp)| {
            let mut th = ThreadSnapshot::new(i as i32 + 1, Bytes::from("w"));
            read_thread(
                &mem,
                *tp,
                &plan,
                &Default::default(),
                &V1Limits::default(),
                &mut th,
            );
            th
        })
        .collect();
    let mut snap = Snapshot {
        pid: 1,
        backend: Backend::Ptrace,
        process_context: None,
        threads,
        errors: vec![],
    };
    snap.normalise();
    for th in &snap.threads {
        assert_eq!(th.errors.len(), MAX_ERRORS_PER_FORMAT + 1, "tid {}", th.tid);
        assert_eq!(
            th.errors[MAX_ERRORS_PER_FORMAT],
            ReadError::omitted(Format::V1, 2 * 4096 - MAX_ERRORS_PER_FORMAT as u64)
        );
        assert_eq!(th.other_modules.len(), 1);
    }
    let total: usize = snap.threads.iter().map(|t| t.errors.len()).sum();
    assert_eq!(total, 200 * 9);
}

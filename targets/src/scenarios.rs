// The scenarios of our writers: one list, `include!`d by `build.rs` (the C catalogue) and by
// `lib.rs` (the runner's case selection). Plain consts only: a build script cannot import the crate.

/// Every scenario the C writer implements (the Rust writers list theirs in `rust/variants.json`).
pub const SCENARIOS: &[&str] = &[
    "basic",
    "many-threads",
    "empty-and-null",
    "duplicates",
    "binary-bytes",
    "large-record",
    "unknown-key-index",
    "in-progress",
    "detached",
    "churn",
];

/// Scenarios that exercise where the slot is and when it is read (TLS placement, DTV, threads
/// appearing and exiting, concurrent updates): they can fail differently on every variant, so they
/// run on every variant. Every other scenario (`empty-and-null`, `duplicates`, `binary-bytes`,
/// `large-record`, `unknown-key-index`, `in-progress`, `decoys`, `oversized`) exercises decoding of
/// bytes already found, which depends on the writer's build (`Variant::decoding_class`), not on
/// its TLS placement.
pub const PLACEMENT_SCENARIOS: &[&str] = &["basic", "detached", "churn", "many-threads"];

/// The spec rules (conformance/rules.toml) each scenario checks, for every writer that runs it
/// (C and Rust). `cargo xtask coverage` derives the cases (arch, backend, variant) from the
/// catalogue the way the conformance runner selects them and fails on an unknown id, or on a
/// scenario of the catalogue missing here.
pub const SCENARIO_RULES: &[(&str, &[&str])] = &[
    (
        "basic",
        &[
            "v1-platform",
            "v1-exposed-at-startup",
            "v1-abi-version-export",
            "v1-current-set-export",
            "tc-dynsym-export",
            "v1-labelset-layout",
            "v1-storage-count",
            "v1-unordered",
            "v1-read-while-suspended",
            "tc-tls-pointer",
            "tc-record-packed",
            "tc-entry-encoding",
            "tc-two-reads",
            "tc-header-then-attrs",
            "tc-dynsym-lookup",
            "tc-key-map",
            "tc-schema-version",
            "tc-reference-data-location",
            "tc-ours-schema-both",
            "tc-read-stopped",
            "pc-header-layout",
            "pc-signature",
            "pc-version",
            "pc-payload-placement",
            "pc-decode-payload",
            "pc-ours-processcontext",
            "pc-ours-timestamp-last",
        ],
    ),
    ("many-threads", &["tc-read-stopped", "v1-read-while-suspended", "v1-ours-null-pointer", "tc-null-pointer"]),
    (
        "empty-and-null",
        &[
            "v1-ours-null-pointer",
            "v1-null-key-ignored",
            "v1-null-buf-absent",
            "v1-storage-count",
            "v1-capacity-meaningless",
            "tc-null-pointer",
            "tc-zero-ids-none",
            "tc-both-ids-set",
            "tc-trace-flags",
        ],
    ),
    ("duplicates", &["v1-first-key-wins", "v1-null-key-ignored", "tc-last-occurrence-wins"]),
    ("binary-bytes", &["v1-labels-are-bytes", "tc-utf8-strings", "tc-trace-flags"]),
    ("large-record", &["tc-record-640", "tc-last-occurrence-wins", "v1-storage-count"]),
    ("unknown-key-index", &["tc-unknown-index-ignored", "tc-unknown-index-refresh", "tc-keymap-max-256"]),
    (
        "in-progress",
        &["tc-valid-one", "tc-defer-without-keys", "pc-timestamp-nonzero", "pc-ours-timestamp-last"],
    ),
    ("detached", &["tc-detach", "tc-null-pointer", "tc-valid-one", "v1-ours-null-pointer"]),
    ("churn", &["tc-read-stopped", "v1-read-while-suspended", "tc-ours-valid-recheck"]),
    ("decoys", &["pc-ours-exact-names", "pc-validate-header"]),
    ("oversized", &["v1-ours-bound-count", "tc-ours-bound-attrs"]),
];

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

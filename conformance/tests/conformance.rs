//! Conformance runner (being written).
fn main() {}

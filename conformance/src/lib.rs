//! The conformance suite's comparison is the reader's: `context_reader::certify::compare`
//! (JSON-path diffs, churn by form, [`ChurnSeries`]), re-exported so the suite's tests name it
//! `conformance::compare`. There is no second copy.
#![forbid(unsafe_code)]

pub use context_reader::certify::compare::*;

//! placeholder
pub fn main(_: &str) {}

//! The only `unsafe` of the crate: marks the `#[repr(C)]` layout mirrors as plain old data for aya maps.
#![allow(unsafe_code)]

use crate::layout::RawProcessParams;

// SAFETY: `RawProcessParams` is `#[repr(C)]`, `Copy`, made only of integer fields (u32/i64/u64)
// with no padding (its size, 80, is asserted in layout.rs to equal the sum of the fields), so every
// bit pattern is a valid value and it can be copied to and from the kernel as bytes.
unsafe impl aya::Pod for RawProcessParams {}

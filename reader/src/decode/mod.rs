//! Pure decoders: bytes read through a `Memory` become typed values. No syscalls, no discovery.

pub mod process_ctx;
pub mod proto;
pub mod thread_ctx;
pub mod v1;

use crate::snapshot::ReadError;

/// What a decoder recovered, plus every problem it met on the way. A decoder never stops at the
/// first bad entry when the rest can still be trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    pub value: Option<T>,
    pub errors: Vec<ReadError>,
}

impl<T> Decoded<T> {
    pub fn none() -> Self {
        Decoded {
            value: None,
            errors: Vec::new(),
        }
    }
    pub fn err(error: ReadError) -> Self {
        Decoded {
            value: None,
            errors: vec![error],
        }
    }
}

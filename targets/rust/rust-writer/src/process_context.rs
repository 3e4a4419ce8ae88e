//! OTEP 4719 process context (formats.md 3): hand-written prost messages for the
//! `ProcessContext` payload and a publisher that follows the reference writer: memfd `OTEL_CTX`
//! (anonymous fallback), one private mapping, `MADV_DONTFORK`, all header fields but the
//! timestamp, a full fence, then the CLOCK_BOOTTIME timestamp, then the prctl name (failure
//! ignored). Options produce the legal odd cases: in progress (timestamp 0) and decoys.

use rust_target_protocol::AnyValue;
use std::ffi::CStr;
use std::sync::atomic::{fence, Ordering};

/// Protobuf messages of `opentelemetry.proto.*` used by the payload (field numbers per
/// formats.md 3.5).
pub mod proto {
    /// `ProcessContext`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProcessContext {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub attributes: Vec<KeyValue>,
    }

    /// `Resource`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }

    /// `KeyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `AnyValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<any_value::Value>,
    }

    /// The `AnyValue.value` oneof.
    pub mod any_value {
        /// One variant. `string_value` is declared as bytes (same wire encoding) so that a
        /// deliberately non-UTF-8 string can be published.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(bytes = "vec", tag = "1")]
            StringValue(Vec<u8>),
            #[prost(bool, tag = "2")]
            BoolValue(bool),
            #[prost(int64, tag = "3")]
            IntValue(i64),
            #[prost(double, tag = "4")]
            DoubleValue(f64),
            #[prost(message, tag = "5")]
            ArrayValue(super::ArrayValue),
            #[prost(message, tag = "6")]
            KvlistValue(super::KeyValueList),
            #[prost(bytes = "vec", tag = "7")]
            BytesValue(Vec<u8>),
        }
    }

    /// `ArrayValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }

    /// `KeyValueList`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
}

fn proto_any(value: &AnyValue) -> proto::AnyValue {
    use proto::any_value::Value;
    let value = match value {
        AnyValue::Str(bytes) => Some(Value::StringValue(bytes.clone())),
        AnyValue::Bool(b) => Some(Value::BoolValue(*b)),
        AnyValue::Int(i) => Some(Value::IntValue(*i)),
        AnyValue::Double(d) => Some(Value::DoubleValue(*d)),
        AnyValue::Array(items) => Some(Value::ArrayValue(proto::ArrayValue {
            values: items.iter().map(proto_any).collect(),
        })),
        AnyValue::KvList(pairs) => Some(Value::KvlistValue(proto::KeyValueList {
            values: proto_kvs(pairs),
        })),
        AnyValue::Bytes(bytes) => Some(Value::BytesValue(bytes.clone())),
        AnyValue::Empty => None,
    };
    proto::AnyValue { value }
}

fn proto_kvs(pairs: &[(String, AnyValue)]) -> Vec<proto::KeyValue> {
    pairs
        .iter()
        .map(|(key, value)| proto::KeyValue {
            key: key.clone(),
            value: Some(proto_any(value)),
        })
        .collect()
}

/// The encoded `ProcessContext` payload for these resource attributes and attributes.
pub fn encode_payload(
    resource: &[(String, AnyValue)],
    attributes: &[(String, AnyValue)],
) -> Vec<u8> {
    use prost::Message;
    proto::ProcessContext {
        resource: Some(proto::Resource {
            attributes: proto_kvs(resource),
            dropped_attributes_count: 0,
        }),
        attributes: proto_kvs(attributes),
    }
    .encode_to_vec()
}

/// How to publish a mapping.
#[derive(Clone, Copy, Debug)]
pub struct Publication<'a> {
    /// memfd name (`OTEL_CTX`, or a look-alike such as `OTEL_CTX_BACKUP` for a decoy).
    pub name: &'a CStr,
    pub signature: [u8; 8],
    pub version: u32,
    /// Leave the timestamp at 0 ("being written").
    pub in_progress: bool,
}

impl Publication<'static> {
    /// A regular, complete publication.
    pub const REAL: Publication<'static> = Publication {
        name: c"OTEL_CTX",
        signature: *b"OTEL_CTX",
        version: 2,
        in_progress: false,
    };
}

/// Header layout (formats.md 3.2).
#[repr(C)]
struct Header {
    signature: [u8; 8],
    version: u32,
    payload_size: u32,
    monotonic_published_at_ns: u64,
    payload: u64,
}

const HEADER_SIZE: usize = std::mem::size_of::<Header>();
const _: () = assert!(HEADER_SIZE == 32);

fn boottime_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME)");
    (now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64).max(1)
}

/// Publishes `payload` as described by `how`; the mapping and payload live until the process
/// exits. Returns the mapping's address.
pub fn publish(payload: Vec<u8>, how: Publication<'_>) -> usize {
    let payload: &'static [u8] = Box::leak(payload.into_boxed_slice());
    // SAFETY (whole block): memfd_create/ftruncate/mmap/close/madvise/prctl get valid arguments
    // and their results are checked; the mapping is HEADER_SIZE bytes (a page) of private
    // writable memory that only this function writes, aligned to a page, so the header writes
    // are in bounds and aligned.
    unsafe {
        let mut fd = libc::memfd_create(
            how.name.as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_NOEXEC_SEAL,
        );
        if fd < 0 {
            fd = libc::memfd_create(
                how.name.as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            );
        }
        let address = if fd >= 0 {
            assert_eq!(
                libc::ftruncate(fd, HEADER_SIZE as libc::off_t),
                0,
                "ftruncate memfd"
            );
            let address = libc::mmap(
                std::ptr::null_mut(),
                HEADER_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                fd,
                0,
            );
            libc::close(fd);
            address
        } else {
            libc::mmap(
                std::ptr::null_mut(),
                HEADER_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            address,
            libc::MAP_FAILED,
            "mmap of the process-context header"
        );
        libc::madvise(address, HEADER_SIZE, libc::MADV_DONTFORK);
        let header = address.cast::<Header>();
        std::ptr::addr_of_mut!((*header).signature).write_volatile(how.signature);
        std::ptr::addr_of_mut!((*header).version).write_volatile(how.version);
        std::ptr::addr_of_mut!((*header).payload_size).write_volatile(payload.len() as u32);
        std::ptr::addr_of_mut!((*header).payload).write_volatile(payload.as_ptr() as u64);
        fence(Ordering::SeqCst);
        let timestamp = if how.in_progress { 0 } else { boottime_ns() };
        std::ptr::addr_of_mut!((*header).monotonic_published_at_ns).write_volatile(timestamp);
        const PR_SET_VMA: libc::c_int = 0x5356_4d41;
        const PR_SET_VMA_ANON_NAME: libc::c_ulong = 0;
        libc::prctl(
            PR_SET_VMA,
            PR_SET_VMA_ANON_NAME,
            address as libc::c_ulong,
            HEADER_SIZE as libc::c_ulong,
            how.name.as_ptr() as libc::c_ulong,
        );
        address as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_starts_with_the_resource_and_its_first_key_value() {
        let resource = vec![("service.name".to_owned(), AnyValue::str("svc"))];
        let payload = encode_payload(&resource, &[]);
        // ProcessContext.resource (0x0a, len 23) > Resource.attributes (0x0a, len 21) >
        // KeyValue.key (0x0a, len 12 "service.name"), KeyValue.value (0x12, len 5) >
        // AnyValue.string_value (0x0a, len 3 "svc").
        let mut expected = vec![0x0a, 23, 0x0a, 21, 0x0a, 12];
        expected.extend(b"service.name");
        expected.extend([0x12, 5, 0x0a, 3]);
        expected.extend(b"svc");
        assert_eq!(payload, expected);
    }

    #[test]
    fn array_values_use_field_5_and_empty_values_have_no_field() {
        let attributes = vec![
            ("k".to_owned(), AnyValue::Array(vec![AnyValue::str("a")])),
            ("e".to_owned(), AnyValue::Empty),
        ];
        let payload = encode_payload(&[], &attributes);
        // resource (empty) then attributes: field 2 of ProcessContext.
        let mut expected = vec![0x0a, 0];
        expected.extend([
            0x12, 12, 0x0a, 1, b'k', 0x12, 7, 0x2a, 5, 0x0a, 3, 0x0a, 1, b'a',
        ]);
        expected.extend([0x12, 5, 0x0a, 1, b'e', 0x12, 0]);
        assert_eq!(payload, expected);
    }
}

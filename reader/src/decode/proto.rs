//! Protobuf messages of the OTEP 4719 payload, written out with `prost` derives (no protoc).
//!
//! Strings are decoded as bytes: writers are not trusted to send UTF-8, and prost would reject
//! the whole message otherwise. The profiling-only `*_strindex` fields are left unknown (skipped).

/// `opentelemetry.proto.processcontext.v1development.ProcessContext`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessContextMsg {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<ResourceMsg>,
    /// Called `extra_attributes` by sig-profiling and libdatadog; same field number.
    #[prost(message, repeated, tag = "2")]
    pub attributes: Vec<KeyValueMsg>,
}

/// `opentelemetry.proto.resource.v1.Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMsg {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValueMsg>,
    #[prost(uint32, tag = "2")]
    pub dropped_attributes_count: u32,
}

/// `opentelemetry.proto.common.v1.KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueMsg {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValueMsg>,
}

/// `opentelemetry.proto.common.v1.AnyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValueMsg {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

pub mod any_value {
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
        ArrayValue(super::ArrayValueMsg),
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueListMsg),
        #[prost(bytes = "vec", tag = "7")]
        BytesValue(Vec<u8>),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValueMsg {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValueMsg>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueListMsg {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValueMsg>,
}

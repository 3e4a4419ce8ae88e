//! Conformance target around the published DataDog crates: `libdd-otel-thread-ctx` (=2.0.1, OTEP
//! 4947 records, one per thread) and the process-context writer of `libdd-library-config` (=5.0.1,
//! OTEP 4719, feature `otel-thread-ctx` for the key map). The expected snapshot is computed from the
//! inputs given to the crates, following their documented encoding (writers.md): key index 0 is
//! `datadog.local_root_span_id` as 16 lowercase hex chars, values are cut at 255 bytes, and the
//! first attribute that does not fit the 612-byte attribute area ends the record.

use libdd_library_config::otel_process_ctx;
use libdd_library_config::tracer_metadata::{ThreadLocalMetadata, TracerMetadata};
use libdd_otel_thread_ctx::linux::OwnedThreadContext;
use libdd_trace_protobuf::opentelemetry::proto::common::v1::any_value::Value as ProtoValue;
use rust_target_protocol::{
    context_mapping_name, hex, process_context_expect, v2_expect, AnyValue, Options, Run, Worker,
};
use serde_json::Value;

/// Size of the attribute area of a libdatadog record (640-byte record minus the 28-byte header).
const ATTRS_AREA: usize = 612;

/// Attribute keys after the implicit index 0 (`datadog.local_root_span_id`).
const ATTRIBUTE_KEYS: [&str; 5] = [
    "http.route",
    "http.method",
    "user.id",
    "churn.n",
    "churn.n3",
];

/// Key indices of the churn attributes in the published key map (index 0 is implicit).
const CHURN_N_INDEX: u8 = 4;
const CHURN_N3_INDEX: u8 = 5;

/// The key map the crate publishes: index 0 then [`ATTRIBUTE_KEYS`].
fn key_map() -> Vec<&'static str> {
    std::iter::once("datadog.local_root_span_id")
        .chain(ATTRIBUTE_KEYS)
        .collect()
}

/// Everything one thread passes to `OwnedThreadContext::new`.
#[derive(Clone)]
struct Span {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    trace_flags: u8,
    local_root_span_id: [u8; 8],
    attributes: Vec<(u8, String)>,
}

impl Span {
    /// Ids derived from `seed` (never all zero for seed > 0), three attributes.
    fn numbered(seed: u64, route: &str) -> Span {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(0x0af7_6519_16cd_43dd ^ seed).to_be_bytes());
        trace_id[8..].copy_from_slice(&seed.to_be_bytes());
        Span {
            trace_id,
            span_id: (0xb7ad_6b71_6920_3331 ^ seed).to_be_bytes(),
            trace_flags: 1,
            local_root_span_id: (0x1000_0000_0000_0000 | seed).to_be_bytes(),
            attributes: vec![
                (1, route.to_owned()),
                (2, "GET".to_owned()),
                (3, format!("user-{seed}")),
            ],
        }
    }

    /// The (key index, value bytes) entries the crate writes into the record, in order.
    fn encoded_entries(&self) -> Vec<(u8, Vec<u8>)> {
        let mut entries = vec![(0u8, hex(&self.local_root_span_id).into_bytes())];
        let mut used = 2 + 16;
        for (index, value) in &self.attributes {
            let bytes = &value.as_bytes()[..value.len().min(255)];
            if used + 2 + bytes.len() > ATTRS_AREA {
                break;
            }
            used += 2 + bytes.len();
            entries.push((*index, bytes.to_vec()));
        }
        entries
    }

    /// The `v2` object a reader must report for this span.
    fn expect(&self) -> Value {
        let entries = self.encoded_entries();
        let borrowed: Vec<(u8, &[u8])> = entries.iter().map(|(i, v)| (*i, v.as_slice())).collect();
        v2_expect(
            &self.trace_id,
            &self.span_id,
            self.trace_flags,
            &borrowed,
            &key_map(),
        )
    }

    /// Attaches this span to the calling thread with the crate's API.
    fn attach(&self) {
        let attributes: Vec<(u8, &str)> = self
            .attributes
            .iter()
            .map(|(i, v)| (*i, v.as_str()))
            .collect();
        let previous = OwnedThreadContext::new(
            self.trace_id,
            self.span_id,
            self.trace_flags,
            self.local_root_span_id,
            &attributes,
        )
        .attach();
        assert!(previous.is_none(), "a fresh thread had a context attached");
    }
}

/// `--churn` step of worker `w` (the runner's rule, targets/README.md), in place through the
/// crate's valid-flag protocol: trace id `{w:016x}{n:016x}`, span id `{n:016x}`, trace flags
/// `n & 1`, `churn.n` = n, `churn.n3` = 3n. The crate also writes key index 0
/// (`datadog.local_root_span_id`), here hex(n).
fn churn_step(worker: u64, n: u64) {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&worker.to_be_bytes());
    trace_id[8..].copy_from_slice(&n.to_be_bytes());
    let (count, triple) = (n.to_string(), n.wrapping_mul(3).to_string());
    let attributes = [
        (CHURN_N_INDEX, count.as_str()),
        (CHURN_N3_INDEX, triple.as_str()),
    ];
    OwnedThreadContext::update(
        trace_id,
        n.to_be_bytes(),
        (n & 1) as u8,
        n.to_be_bytes(),
        &attributes,
    );
}

/// `--churn`: four churning workers and an idle thread.
fn spawn_churn_workers(run: &mut Run) {
    for w in 1..=4u64 {
        run.spawn(&format!("churn-{w}"), move |worker| {
            let form = serde_json::json!({"worker": w, "v1": false, "v2": "in-place",
                "key_map": true, "span_id_attribute": "datadog.local_root_span_id"});
            worker.churn_forever(form, move |n| churn_step(w, n))
        });
    }
    run.spawn("idle", |worker| worker.ready(Value::Null, Value::Null));
}

/// Attaches `span`, reports it and parks.
fn attach_and_park(worker: Worker, span: Span) {
    span.attach();
    let expect = span.expect();
    worker.ready(Value::Null, expect)
}

fn spawn_span(run: &mut Run, name: &str, span: Span) {
    run.spawn(name, move |worker| attach_and_park(worker, span));
}

/// The tracer metadata published as the process context, and the `process_context` expected for it.
fn publish_process_context() -> Value {
    let keys: Vec<String> = ATTRIBUTE_KEYS.iter().map(|k| k.to_string()).collect();
    let metadata = TracerMetadata {
        runtime_id: Some("3f1c2a5e-7b8d-4e6f-9a0b-1c2d3e4f5a6b".to_owned()),
        tracer_language: "rust".to_owned(),
        tracer_version: "0.0.1-conformance".to_owned(),
        hostname: "conformance-host".to_owned(),
        service_name: Some("conformance-svc".to_owned()),
        service_env: Some("test".to_owned()),
        service_version: Some("1.2.3".to_owned()),
        process_tags: Some("entrypoint.name:libdd-crates".to_owned()),
        container_id: None,
        threadlocal_metadata: Some(ThreadLocalMetadata {
            attribute_keys: keys,
            schema_version: None,
            extra_attributes: vec![
                (
                    "threadlocal.example_int".to_owned(),
                    ProtoValue::IntValue(42),
                ),
                (
                    "threadlocal.example_bool".to_owned(),
                    ProtoValue::BoolValue(true),
                ),
            ],
        }),
        ..Default::default()
    };
    otel_process_ctx::publish(&metadata.to_otel_process_ctx())
        .expect("publishing the process context");

    // What to_otel_process_ctx() builds from these inputs (libdd-library-config 5.0.1).
    let s = |text: &str| AnyValue::str(text);
    let resource = vec![
        ("service.name".to_owned(), s("conformance-svc")),
        (
            "service.instance.id".to_owned(),
            s("3f1c2a5e-7b8d-4e6f-9a0b-1c2d3e4f5a6b"),
        ),
        ("service.version".to_owned(), s("1.2.3")),
        ("deployment.environment.name".to_owned(), s("test")),
        ("telemetry.sdk.language".to_owned(), s("rust")),
        ("telemetry.sdk.version".to_owned(), s("0.0.1-conformance")),
        ("telemetry.sdk.name".to_owned(), s("libdatadog")),
        ("host.name".to_owned(), s("conformance-host")),
    ];
    let attributes = vec![
        (
            "datadog.process_tags".to_owned(),
            s("entrypoint.name:libdd-crates"),
        ),
        ("threadlocal.schema_version".to_owned(), s("tlsdesc_v1_dev")),
        (
            "threadlocal.attribute_key_map".to_owned(),
            AnyValue::Array(key_map().into_iter().map(s).collect()),
        ),
        ("threadlocal.example_int".to_owned(), AnyValue::Int(42)),
        ("threadlocal.example_bool".to_owned(), AnyValue::Bool(true)),
    ];
    let mapping =
        context_mapping_name(None).expect("the published OTEL_CTX mapping is in /proc/self/maps");
    process_context_expect(&mapping, &resource, &attributes)
}

/// Runs the target; `variant` is the writer variant name printed in the ready line.
pub fn main(variant: &str) {
    let options = Options::from_env();
    let mut run = Run::new(variant, &options);
    let process_context = publish_process_context();
    let scenario = if options.churn {
        "churn"
    } else {
        options.scenario.as_str()
    };
    match scenario {
        "churn" => spawn_churn_workers(&mut run),
        "many-threads" => {
            for index in 0..200u64 {
                let name = format!("w-{index:03}");
                spawn_span(
                    &mut run,
                    &name,
                    Span::numbered(index + 1, &format!("/w/{index}")),
                );
            }
        }
        "empty-and-null" => {
            let zero = Span {
                trace_id: [0; 16],
                span_id: [0; 8],
                trace_flags: 0,
                local_root_span_id: [0; 8],
                attributes: vec![],
            };
            spawn_span(&mut run, "zero-ids", zero.clone());
            let empty_value = Span {
                attributes: vec![(1, String::new())],
                ..zero
            };
            spawn_span(&mut run, "empty-value", empty_value);
            run.spawn("never-attached", |worker| {
                worker.ready(Value::Null, Value::Null)
            });
        }
        "duplicates" => {
            let mut span = Span::numbered(7, "/first");
            span.attributes = vec![
                (1, "/first".into()),
                (2, "GET".into()),
                (1, "/second".into()),
                (0, "overrides-root".into()),
            ];
            spawn_span(&mut run, "dup-indices", span);
        }
        "large-record" => {
            // 300 bytes of 'é' are cut at 255 bytes (mid-character: the reader must show hex);
            // then 257 + 80 bytes fill the 612-byte area exactly; the last attribute is dropped.
            let mut span = Span::numbered(9, "");
            span.attributes = vec![
                (1, "é".repeat(150)),
                (2, "b".repeat(255)),
                (3, "c".repeat(78)),
                (1, "dropped: no room left".into()),
            ];
            assert_eq!(
                span.encoded_entries()
                    .iter()
                    .map(|(_, v)| 2 + v.len())
                    .sum::<usize>(),
                ATTRS_AREA
            );
            spawn_span(&mut run, "full-record", span);
        }
        "unknown-key-index" => {
            let mut span = Span::numbered(11, "/known");
            span.attributes = vec![
                (1, "/known".into()),
                (200, "idx-200".into()),
                (7, "idx-7".into()),
            ];
            spawn_span(&mut run, "unknown-index", span);
        }
        "detached" => {
            run.spawn("detached", |worker| {
                Span::numbered(13, "/gone").attach();
                let detached = OwnedThreadContext::detach();
                assert!(detached.is_some(), "detach returned no context");
                worker.ready(Value::Null, Value::Null)
            });
        }
        _ => {
            // basic
            let main_span = Span::numbered(1, "/main");
            main_span.attach();
            run.main_thread_context(Value::Null, main_span.expect());
            for index in 1..=3u64 {
                let name = format!("worker-{index}");
                spawn_span(&mut run, &name, Span::numbered(100 + index, "/api/cart"));
            }
            run.spawn("idle", |worker| worker.ready(Value::Null, Value::Null));
        }
    }
    run.ready_and_wait(process_context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_span_id_is_entry_zero_in_lowercase_hex() {
        let span = Span::numbered(0xab, "/r");
        let entries = span.encoded_entries();
        assert_eq!(entries[0], (0, b"10000000000000ab".to_vec()));
        assert_eq!(entries.len(), 4);
    }

    #[test]
    fn long_values_are_cut_and_overflow_ends_the_record() {
        // The crate's own unit test numbers: 255 + 255 bytes fit (532 bytes used), 100 more do not.
        let mut span = Span::numbered(1, "");
        span.attributes = vec![
            (1, "a".repeat(300)),
            (2, "b".repeat(255)),
            (3, "c".repeat(100)),
            (2, "x".into()),
        ];
        let entries = span.encoded_entries();
        assert_eq!(entries.iter().map(|(_, v)| 2 + v.len()).sum::<usize>(), 532);
        assert_eq!(entries[1].1.len(), 255);
        assert_eq!(
            entries.len(),
            3,
            "the entry after the first overflow is dropped too"
        );
    }
}

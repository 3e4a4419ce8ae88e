//! Our own pure-Rust writer (no C, no writer crates): publishes custom-labels v1 label sets,
//! OTEP 4947 `otel_thread_ctx_v1` records and an OTEP 4719 memfd process context with the
//! thread-context key map, per scenario, and speaks the target protocol (conformance.md 4).

pub mod process_context;
pub mod tls;
pub mod v1;
pub mod v2;

use process_context::{encode_payload, publish, Publication};
use rust_target_protocol::{
    context_mapping_name, process_context_expect, AnyValue, Options, Run, Worker,
};
use serde_json::Value;
use v1::{LabelSet, Labels};
use v2::{Record, RecordBuffer};

/// `threadlocal.attribute_key_map` of every scenario: index -> attribute name.
pub const KEY_MAP: [&str; 6] = [
    "http.route",
    "http.method",
    "user.id",
    "worker.index",
    "churn.n",
    "churn.n3",
];

/// Key indices of the churn attributes in [`KEY_MAP`].
const CHURN_N_INDEX: u8 = 4;
const CHURN_N3_INDEX: u8 = 5;

/// What one thread publishes.
#[derive(Clone, Debug, Default)]
pub struct ThreadPlan {
    pub v1: Option<Labels>,
    pub v2: Option<Record>,
    /// Store NULL into both slots after installing (a detached thread).
    pub detach: bool,
}

impl ThreadPlan {
    fn both(labels: Labels, record: Record) -> ThreadPlan {
        ThreadPlan {
            v1: Some(labels),
            v2: Some(record),
            detach: false,
        }
    }

    /// Installs the plan on the calling thread; the memory stays allocated for the process's life.
    fn install(&self) {
        if let Some(labels) = &self.v1 {
            let set: &'static LabelSet = Box::leak(Box::new(labels.build()));
            tls::swap_v1(set.as_ptr());
        }
        if let Some(record) = &self.v2 {
            let buffer: &'static mut RecordBuffer = Box::leak(Box::new(record.build()));
            tls::swap_v2(buffer.as_ptr());
        }
        if self.detach {
            tls::swap_v1(std::ptr::null_mut());
            tls::swap_v2(std::ptr::null_mut());
        }
    }

    /// Expected (`v1`, `v2`) for this thread.
    fn expect(&self) -> (Value, Value) {
        if self.detach {
            return (Value::Null, Value::Null);
        }
        let v1 = self.v1.as_ref().map_or(Value::Null, Labels::expect);
        let v2 = self
            .v2
            .as_ref()
            .map_or(Value::Null, |record| record.expect(&KEY_MAP));
        (v1, v2)
    }
}

/// The process context of a scenario.
#[derive(Clone, Debug)]
pub struct ProcessPlan {
    pub resource: Vec<(String, AnyValue)>,
    pub attributes: Vec<(String, AnyValue)>,
    /// Timestamp left at 0: a reader reports no process context.
    pub in_progress: bool,
    /// Also publish look-alike mappings a reader must ignore.
    pub decoys: bool,
}

/// Everything a scenario publishes.
#[derive(Clone, Debug, Default)]
pub struct Scenario {
    pub process: Option<ProcessPlan>,
    pub main: ThreadPlan,
    pub workers: Vec<(String, ThreadPlan)>,
}

fn kv(key: &str, value: AnyValue) -> (String, AnyValue) {
    (key.to_owned(), value)
}

/// The `threadlocal.*` attributes every scenario publishes.
fn threadlocal_attributes() -> Vec<(String, AnyValue)> {
    vec![
        kv(
            "threadlocal.schema_version",
            AnyValue::str("tlsdesc_v1_dev"),
        ),
        kv(
            "threadlocal.attribute_key_map",
            AnyValue::Array(KEY_MAP.iter().map(|k| AnyValue::str(k)).collect()),
        ),
    ]
}

fn process_plan(service: &str, extra_resource: Vec<(String, AnyValue)>) -> ProcessPlan {
    let mut resource = vec![
        kv("service.name", AnyValue::str(service)),
        kv("telemetry.sdk.language", AnyValue::str("rust")),
        kv(
            "telemetry.sdk.name",
            AnyValue::str("context-reader-rust-writer"),
        ),
        kv("process.pid", AnyValue::Int(std::process::id() as i64)),
    ];
    resource.extend(extra_resource);
    ProcessPlan {
        resource,
        attributes: threadlocal_attributes(),
        in_progress: false,
        decoys: false,
    }
}

/// A text of `len` bytes cycling through the alphabet from `start`.
fn letters(start: usize, len: usize) -> String {
    (0..len)
        .map(|j| (b'a' + ((start + j) % 26) as u8) as char)
        .collect()
}

fn bytes_entry(key: &[u8], value: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    (Some(key.to_vec()), value.to_vec())
}

/// Builds one scenario's plan.
pub type MakeScenario = fn() -> Scenario;

/// Every scenario of this writer but `churn` (which runs its own loop), by name.
pub const SCENARIOS: &[(&str, MakeScenario)] = &[
    ("basic", basic),
    ("many-threads", many_threads),
    ("empty-and-null", empty_and_null),
    ("duplicates", duplicates),
    ("binary-bytes", binary_bytes),
    ("large-record", large_record),
    ("oversized", oversized),
    ("unknown-key-index", unknown_key_index),
    ("detached", detached),
    ("in-progress", in_progress),
    ("decoys", decoys),
];

/// The scenario named `name` (unknown names mean `basic`).
pub fn scenario(name: &str) -> Scenario {
    SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(basic, |(_, make)| make())
}

/// A worker thread of a scenario: its name and what it publishes.
fn worker(name: &str, plan: ThreadPlan) -> (String, ThreadPlan) {
    (name.to_owned(), plan)
}

fn many_threads() -> Scenario {
    Scenario {
        process: Some(process_plan("many-threads", vec![])),
        main: ThreadPlan::default(),
        workers: (0..200u64)
            .map(|i| {
                let index = i.to_string();
                let plan = ThreadPlan::both(
                    Labels::pairs(&[("index", &index)]),
                    Record::numbered(i + 1, &[(3, &index)]),
                );
                worker(&format!("w-{i:03}"), plan)
            })
            .collect(),
    }
}

fn empty_and_null() -> Scenario {
    let extra = vec![
        kv("empty.string", AnyValue::str("")),
        kv("empty.value", AnyValue::Empty),
        kv("empty.array", AnyValue::Array(vec![])),
        kv("empty.kvlist", AnyValue::KvList(vec![])),
    ];
    let zero_record = Record {
        trace_id: [0; 16],
        span_id: [0; 8],
        valid: 1,
        trace_flags: 0,
        entries: vec![],
        allocation_size: None,
    };
    let empty_value = Record {
        entries: vec![(0, vec![])],
        ..zero_record.clone()
    };
    let hidden = Labels {
        entries: vec![
            (None, b"hidden".to_vec()),
            bytes_entry(b"", b""),
            bytes_entry(b"k", b""),
        ],
        spare_capacity: 0,
    };
    Scenario {
        process: Some(process_plan("empty-and-null", extra)),
        main: ThreadPlan::default(),
        workers: vec![
            worker(
                "empty-set",
                ThreadPlan::both(
                    Labels {
                        entries: vec![],
                        spare_capacity: 4,
                    },
                    zero_record,
                ),
            ),
            worker("null-key", ThreadPlan::both(hidden, empty_value)),
            worker("nothing", ThreadPlan::default()),
        ],
    }
}

fn duplicates() -> Scenario {
    let mut process = process_plan(
        "first-service-name",
        vec![kv("dup.key", AnyValue::str("a"))],
    );
    process
        .resource
        .push(kv("service.name", AnyValue::str("last-service-name")));
    process.resource.push(kv("dup.key", AnyValue::Int(2)));
    let labels = Labels {
        entries: vec![
            bytes_entry(b"k", b"first"),
            bytes_entry(b"other", b"x"),
            (None, b"hidden".to_vec()),
            bytes_entry(b"k", b"second"),
        ],
        spare_capacity: 0,
    };
    let record = Record::numbered(5, &[(0, "/first"), (1, "GET"), (0, "/last"), (1, "PUT")]);
    Scenario {
        process: Some(process),
        main: ThreadPlan::default(),
        workers: vec![worker("dups", ThreadPlan::both(labels, record))],
    }
}

fn binary_bytes() -> Scenario {
    let extra = vec![
        kv("bytes.value", AnyValue::Bytes(vec![0, 1, 0xfe, 0xff])),
        kv("nonutf8.string", AnyValue::Str(vec![0xff, 0xfe, b'x'])),
        kv("int.big", AnyValue::Int(1 << 53)),
        kv("int.max.safe", AnyValue::Int((1 << 53) - 1)),
        kv("int.negative", AnyValue::Int(-42)),
        kv("int.min", AnyValue::Int(i64::MIN)),
        kv("double", AnyValue::Double(2.5)),
        kv("bool", AnyValue::Bool(false)),
        kv(
            "nested",
            AnyValue::KvList(vec![kv(
                "a",
                AnyValue::Array(vec![
                    AnyValue::Int(1),
                    AnyValue::str("x"),
                    AnyValue::KvList(vec![kv("b", AnyValue::Bool(true))]),
                ]),
            )]),
        ),
    ];
    let labels = Labels {
        entries: vec![
            bytes_entry(b"\xff\xfe", b"\x00\x01\x02"),
            bytes_entry("utf8-é".as_bytes(), "ünïcode".as_bytes()),
            bytes_entry(b"escape", b"\x1b[31mred\x1b[0m\n"),
            bytes_entry(b"nul\x00key", b"\xc3\x28"),
        ],
        spare_capacity: 0,
    };
    let mut record = Record::numbered(6, &[]);
    record.entries = vec![
        (0, vec![0xff, 0x00, 0x1b]),
        (1, "é".as_bytes().to_vec()),
        (2, vec![0xc3]),
    ];
    Scenario {
        process: Some(process_plan("binary-bytes", extra)),
        main: ThreadPlan::default(),
        workers: vec![worker("binary", ThreadPlan::both(labels, record))],
    }
}

fn large_record() -> Scenario {
    // eBPF bounds: 32 labels, values of 255 bytes; a full 640-byte record (612 bytes of
    // attributes: 257 + 257 + 98).
    let labels = Labels {
        entries: (0..32)
            .map(|i| bytes_entry(format!("key-{i:02}").as_bytes(), letters(i, 255).as_bytes()))
            .collect(),
        spare_capacity: 0,
    };
    let mut record = Record::numbered(
        7,
        &[
            (0, &letters(0, 255)),
            (1, &letters(1, 255)),
            (2, &letters(2, 96)),
        ],
    );
    record.allocation_size = Some(640);
    assert_eq!(record.attrs_data_size(), 612);
    let extra = vec![kv("large.value", AnyValue::str(&letters(3, 20_000)))];
    Scenario {
        process: Some(process_plan("large-record", extra)),
        main: ThreadPlan::default(),
        workers: vec![worker("large", ThreadPlan::both(labels, record))],
    }
}

fn oversized() -> Scenario {
    // Beyond the eBPF bounds, within the ptrace ones: 4000 labels, one 60000-byte value,
    // a record with 5140 bytes of attributes.
    let mut entries: Vec<(Option<Vec<u8>>, Vec<u8>)> = (0..4000)
        .map(|i| bytes_entry(format!("k{i:04}").as_bytes(), i.to_string().as_bytes()))
        .collect();
    entries.push(bytes_entry(b"big", letters(5, 60_000).as_bytes()));
    let mut record = Record::numbered(8, &[]);
    record.entries = (0..20u8)
        .map(|i| (i % 4, letters(i as usize, 255).into_bytes()))
        .collect();
    Scenario {
        process: Some(process_plan("oversized", vec![])),
        main: ThreadPlan::default(),
        workers: vec![worker(
            "oversized",
            ThreadPlan::both(
                Labels {
                    entries,
                    spare_capacity: 0,
                },
                record,
            ),
        )],
    }
}

fn unknown_key_index() -> Scenario {
    let record = Record::numbered(
        9,
        &[
            (0, "/known"),
            (4, "idx-4"),
            (200, "idx-200"),
            (4, "idx-4-last"),
        ],
    );
    Scenario {
        process: Some(process_plan("unknown-key-index", vec![])),
        main: ThreadPlan::default(),
        workers: vec![worker(
            "unknown-index",
            ThreadPlan {
                v2: Some(record),
                ..Default::default()
            },
        )],
    }
}

fn detached() -> Scenario {
    let detached = ThreadPlan {
        detach: true,
        ..ThreadPlan::both(
            Labels::pairs(&[("gone", "soon")]),
            Record::numbered(10, &[(0, "/gone")]),
        )
    };
    let mut invalid = Record::numbered(11, &[(0, "/invalid")]);
    invalid.valid = 0;
    Scenario {
        process: Some(process_plan("detached", vec![])),
        main: ThreadPlan::default(),
        workers: vec![
            worker("detached", detached),
            worker(
                "valid-zero",
                ThreadPlan {
                    v2: Some(invalid),
                    ..Default::default()
                },
            ),
        ],
    }
}

fn in_progress() -> Scenario {
    // Process context being written (timestamp 0) and records with valid != 1: a reader
    // reports no process context and no v2; v1 is unaffected.
    let mut process = process_plan("in-progress", vec![]);
    process.in_progress = true;
    let mut zero = Record::numbered(12, &[(0, "/in-progress")]);
    zero.valid = 0;
    let mut two = Record::numbered(13, &[(0, "/valid-two")]);
    two.valid = 2;
    Scenario {
        process: Some(process),
        main: ThreadPlan::default(),
        workers: vec![
            worker(
                "valid-zero",
                ThreadPlan {
                    v1: Some(Labels::pairs(&[("state", "v1-fine")])),
                    v2: Some(zero),
                    detach: false,
                },
            ),
            worker(
                "valid-two",
                ThreadPlan {
                    v2: Some(two),
                    ..Default::default()
                },
            ),
        ],
    }
}

fn decoys() -> Scenario {
    let mut process = process_plan("decoys", vec![]);
    process.decoys = true;
    Scenario {
        process: Some(process),
        main: ThreadPlan::both(
            Labels::pairs(&[("thread.role", "main")]),
            Record::numbered(14, &[(0, "/real")]),
        ),
        workers: vec![],
    }
}

fn basic() -> Scenario {
    let mut workers = Vec::new();
    for n in 1..=3u64 {
        let name = format!("worker-{n}");
        let labels = Labels::pairs(&[
            ("customer", "acme"),
            ("request.id", &format!("req-{n}")),
            ("thread", &name),
        ]);
        let record = Record::numbered(
            100 + n,
            &[
                (0, "/api/cart"),
                (1, "POST"),
                (2, &format!("user-{n}")),
                (3, &n.to_string()),
            ],
        );
        workers.push((name, ThreadPlan::both(labels, record)));
    }
    workers.push((
        "v1-only".to_owned(),
        ThreadPlan {
            v1: Some(Labels::pairs(&[("only", "v1")])),
            ..Default::default()
        },
    ));
    workers.push((
        "v2-only".to_owned(),
        ThreadPlan {
            v2: Some(Record::numbered(200, &[(0, "/v2-only")])),
            ..Default::default()
        },
    ));
    workers.push(("idle".to_owned(), ThreadPlan::default()));
    Scenario {
        process: Some(process_plan(
            "rust-writer",
            vec![kv("service.version", AnyValue::str("0.1.0"))],
        )),
        main: ThreadPlan::both(
            Labels::pairs(&[("thread.role", "main")]),
            Record::numbered(1, &[(0, "/main"), (1, "GET")]),
        ),
        workers,
    }
}

/// Publishes the process context of `plan` (and its decoys); returns the expected
/// `process_context`.
fn publish_process(plan: &ProcessPlan) -> Value {
    if plan.decoys {
        let decoy_payload = encode_payload(
            &[kv("service.name", AnyValue::str("decoy"))],
            &threadlocal_attributes(),
        );
        let backup = Publication {
            name: c"OTEL_CTX_BACKUP",
            ..Publication::REAL
        };
        let wrong_signature = Publication {
            signature: *b"OTEL_CTY",
            ..Publication::REAL
        };
        let version_one = Publication {
            version: 1,
            ..Publication::REAL
        };
        for how in [backup, wrong_signature, version_one] {
            publish(decoy_payload.clone(), how);
        }
    }
    let how = Publication {
        in_progress: plan.in_progress,
        ..Publication::REAL
    };
    let address = publish(encode_payload(&plan.resource, &plan.attributes), how);
    if plan.in_progress {
        return Value::Null;
    }
    let mapping =
        context_mapping_name(Some(address)).expect("the OTEL_CTX mapping is in /proc/self/maps");
    process_context_expect(&mapping, &plan.resource, &plan.attributes)
}

/// `--churn` state of one worker `w` (the runner's rule, targets/README.md): from counter n, v1 is
/// a fresh set `churn.n = n`, `churn.n3 = 3n`, `churn.worker = w` swapped in with one pointer
/// store; v2 is trace id `{w:016x}{n:016x}`, span id `{n:016x}`, trace flags `n & 1`, attributes
/// `churn.n`, `churn.n3`, in a 640-byte record that odd workers rewrite in place (valid = 0,
/// fence, fields, fence, valid = 1) and even workers replace by a new record (pointer swap).
struct Churn {
    worker: u64,
    in_place: bool,
    labels: Option<LabelSet>,
    record: Option<Box<RecordBuffer>>,
}

impl Churn {
    fn new(worker: u64) -> Churn {
        Churn {
            worker,
            in_place: worker % 2 == 1,
            labels: None,
            record: None,
        }
    }

    /// The runner's description of this worker.
    fn form(&self) -> Value {
        let v2 = if self.in_place { "in-place" } else { "swap" };
        serde_json::json!({"worker": self.worker, "v1": true, "v2": v2, "key_map": true})
    }

    fn step(&mut self, n: u64) {
        let (count, triple) = (n.to_string(), n.wrapping_mul(3).to_string());
        let worker = self.worker.to_string();
        let set = Labels::pairs(&[
            ("churn.n", &count),
            ("churn.n3", &triple),
            ("churn.worker", &worker),
        ])
        .build();
        tls::swap_v1(set.as_ptr());
        // The previous set is no longer installed; a stopped-thread reader cannot hold it.
        self.labels = Some(set);
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&self.worker.to_be_bytes());
        trace_id[8..].copy_from_slice(&n.to_be_bytes());
        let record = Record {
            trace_id,
            span_id: n.to_be_bytes(),
            valid: 1,
            trace_flags: (n & 1) as u8,
            entries: vec![
                (CHURN_N_INDEX, count.into_bytes()),
                (CHURN_N3_INDEX, triple.into_bytes()),
            ],
            allocation_size: Some(640),
        };
        match &mut self.record {
            Some(buffer) if self.in_place => buffer.update_in_place(&record),
            _ => {
                let mut buffer = Box::new(record.build());
                tls::swap_v2(buffer.as_ptr());
                // Drops the record installed before, now unreachable from the slot.
                self.record = Some(buffer);
            }
        }
    }
}

fn run_worker(worker: Worker, plan: ThreadPlan) {
    plan.install();
    let (v1, v2) = plan.expect();
    worker.ready(v1, v2)
}

/// `--churn`: the basic main thread and process context, four churning workers and an idle one.
fn churn_scenario(run: &mut Run) -> Scenario {
    for w in 1..=4u64 {
        run.spawn(&format!("churn-{w}"), move |worker| {
            let mut churn = Churn::new(w);
            let form = churn.form();
            worker.churn_forever(form, move |n| churn.step(n))
        });
    }
    let basic = basic();
    Scenario {
        workers: vec![("idle".to_owned(), ThreadPlan::default())],
        ..basic
    }
}

/// Runs the target; `variant` is the writer variant name printed in the ready line.
pub fn main(variant: &str) {
    let options = Options::from_env();
    assert_eq!(tls::abi_version(), 1, "custom_labels_abi_version");
    let mut run = Run::new(variant, &options);
    let scenario = if options.churn {
        churn_scenario(&mut run)
    } else {
        scenario(&options.scenario)
    };
    let process_context = scenario
        .process
        .as_ref()
        .map_or(Value::Null, publish_process);
    scenario.main.install();
    let (v1, v2) = scenario.main.expect();
    run.main_thread_context(v1, v2);
    for (name, plan) in scenario.workers {
        run.spawn(&name, move |worker| run_worker(worker, plan));
    }
    run.ready_and_wait(process_context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_lists_exactly_the_scenarios_this_writer_has() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../variants.json");
        let entries: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for binary in ["rust-writer-lld", "rust-writer-bfd", "rust-writer-dso-lld"] {
            let mut listed: Vec<&str> = entries
                .iter()
                .filter(|e| e["binary"] == binary)
                .flat_map(|e| e["scenarios"].as_array().unwrap())
                .map(|s| s.as_str().unwrap())
                .collect();
            listed.sort_unstable();
            let mut ours: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
            ours.push("churn");
            ours.sort_unstable();
            assert_eq!(listed, ours, "{binary}");
        }
    }

    #[test]
    fn every_scenario_fits_the_formats() {
        for (name, make) in SCENARIOS {
            let scenario = make();
            let plans =
                std::iter::once(&scenario.main).chain(scenario.workers.iter().map(|(_, p)| p));
            for plan in plans {
                if let Some(record) = &plan.v2 {
                    assert!(record.entries.iter().all(|(_, v)| v.len() <= 255), "{name}");
                    assert!(record.attrs_data_size() <= u16::MAX as usize, "{name}");
                }
            }
            for (worker, _) in &scenario.workers {
                assert!(worker.len() <= 15, "{name}: thread name {worker}");
            }
        }
    }

    #[test]
    fn ebpf_scenarios_stay_within_the_ebpf_bounds() {
        // contract.md: v1 at most 32 labels of <= 256-byte keys/values, v2 at most 1024 attr bytes.
        // `oversized` is beyond them on purpose (ptrace only in variants.json).
        for (name, make) in SCENARIOS.iter().filter(|(n, _)| *n != "oversized") {
            let scenario = make();
            let plans =
                std::iter::once(&scenario.main).chain(scenario.workers.iter().map(|(_, p)| p));
            for plan in plans {
                if let Some(labels) = &plan.v1 {
                    assert!(labels.entries.len() <= 32, "{name}");
                    for (key, value) in &labels.entries {
                        assert!(
                            key.as_ref().map_or(0, Vec::len) <= 256 && value.len() <= 256,
                            "{name}"
                        );
                    }
                }
                if let Some(record) = &plan.v2 {
                    assert!(record.attrs_data_size() <= 1024, "{name}");
                }
            }
        }
    }

    #[test]
    fn detached_and_invalid_threads_expect_nothing() {
        let scenario = scenario("detached");
        for (_, plan) in &scenario.workers {
            assert_eq!(plan.expect(), (Value::Null, Value::Null));
        }
    }
}

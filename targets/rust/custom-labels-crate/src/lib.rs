//! Conformance target around the published `custom-labels` crate (=0.4.6, custom-labels v1):
//! each thread installs labels through the crate's public API, reports them and parks.
//! Speaks the target protocol of conformance.md section 4.

mod churn;

use custom_labels::{with_labels, Labelset};
use rust_target_protocol::{v1_expect, Options, Run, Worker};
use serde_json::Value;

/// Labels as (key, value) byte strings, in the order they are set.
type Labels = Vec<(Vec<u8>, Vec<u8>)>;

/// Expected `v1` for labels set one after another with the crate's `set` (which replaces the value
/// of an existing key, so the last value set for a key is what remains).
fn expect_after_sets(labels: &Labels) -> Value {
    let mut remaining: Vec<(&[u8], &[u8])> = Vec::new();
    for (key, value) in labels {
        match remaining
            .iter_mut()
            .find(|(seen, _)| *seen == key.as_slice())
        {
            Some(entry) => entry.1 = value,
            None => remaining.push((key, value)),
        }
    }
    let entries: Vec<(Option<&[u8]>, &[u8])> =
        remaining.iter().map(|&(k, v)| (Some(k), v)).collect();
    v1_expect(&entries)
}

/// Parks `worker` inside a label set holding `labels` (set in order through `Labelset::set`).
fn park_in_labelset(worker: Worker, labels: Labels) {
    let expect = expect_after_sets(&labels);
    let mut set = Labelset::new();
    for (key, value) in &labels {
        set.set(key, value);
    }
    set.enter(|| finish(worker, expect))
}

/// Parks `worker` inside nested `with_labels` scopes holding `labels`.
fn park_with_labels(worker: Worker, labels: Labels) {
    let expect = expect_after_sets(&labels);
    with_labels(labels.clone(), || finish(worker, expect))
}

/// Reports and parks.
fn finish(worker: Worker, v1: Value) {
    worker.ready(v1, Value::Null)
}

/// `--churn`: four churning workers (no v2 in this variant, no key map) and an idle thread.
fn spawn_churn_workers(run: &mut Run) {
    for w in 1..=4u64 {
        run.spawn(&format!("churn-{w}"), move |worker| {
            let form = serde_json::json!({"worker": w, "v1": true, "v2": false, "key_map": false});
            worker.churn_forever(form, move |n| churn::step(w, n))
        });
    }
    run.spawn("idle", |worker| worker.ready(Value::Null, Value::Null));
}

/// Prints the ready line (no process context) and waits for stdin EOF.
fn ready_and_wait(run: Run) {
    run.ready_and_wait(Value::Null)
}

fn kv(key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (key.as_bytes().to_vec(), value.as_bytes().to_vec())
}

fn spawn_labelset(run: &mut Run, name: &str, labels: Labels) {
    run.spawn(name, move |worker| park_in_labelset(worker, labels));
}

/// Runs the target; `variant` is the writer variant name printed in the ready line.
pub fn main(variant: &str) {
    let options = Options::from_env();
    let mut run = Run::new(variant, &options);
    let mut main_labels: Option<Labels> = None;
    let scenario = if options.churn {
        "churn"
    } else {
        options.scenario.as_str()
    };
    match scenario {
        "churn" => spawn_churn_workers(&mut run),
        "many-threads" => {
            for index in 0..200 {
                let name = format!("w-{index:03}");
                let labels = vec![kv("index", &index.to_string()), kv("thread", &name)];
                spawn_labelset(&mut run, &name, labels);
            }
        }
        "empty-and-null" => {
            spawn_labelset(&mut run, "empty-set", vec![]);
            spawn_labelset(&mut run, "empty-strings", vec![kv("", ""), kv("k", "")]);
            run.spawn("never-set", |worker| worker.ready(Value::Null, Value::Null));
        }
        "duplicates" => {
            // The crate replaces the value of an existing key: one entry, last value.
            spawn_labelset(
                &mut run,
                "set-twice",
                vec![kv("dup", "first"), kv("other", "x"), kv("dup", "second")],
            );
            run.spawn("nested-same", |worker| {
                let outer = vec![kv("dup", "outer")];
                with_labels(outer, || park_with_labels(worker, vec![kv("dup", "inner")]))
            });
        }
        "binary-bytes" => {
            let labels = vec![
                (b"\xff\xfe".to_vec(), b"\x00\x01\x02".to_vec()),
                (b"utf8-\xc3\xa9".to_vec(), "ünïcode".as_bytes().to_vec()),
                (b"escape".to_vec(), b"\x1b[31mred\x1b[0m\n".to_vec()),
                (b"nul\x00key".to_vec(), b"\xc3\x28".to_vec()),
            ];
            spawn_labelset(&mut run, "binary", labels);
        }
        "large-record" => {
            // Within the eBPF bounds: 32 labels, values of 255 bytes.
            let labels: Labels = (0..32)
                .map(|i| {
                    let value: String = (0..255)
                        .map(|j| (b'a' + ((i + j) % 26) as u8) as char)
                        .collect();
                    kv(&format!("key-{i:02}"), &value)
                })
                .collect();
            spawn_labelset(&mut run, "large", labels);
        }
        "detached" => {
            // Left a Labelset scope: the old (NULL) pointer is back.
            run.spawn("left-labelset", |worker| {
                let mut set = Labelset::new();
                set.set("gone", "soon");
                set.enter(|| ());
                worker.ready(Value::Null, Value::Null)
            });
            // Left a with_labels scope: the crate leaves an empty set installed, not NULL.
            run.spawn("left-with", |worker| {
                with_labels([("gone", "soon")], || ());
                worker.ready(v1_expect(&[]), Value::Null)
            });
        }
        _ => {
            // basic
            main_labels = Some(vec![kv("thread.role", "main")]);
            for index in 1..=3 {
                let name = format!("worker-{index}");
                let labels = vec![
                    kv("customer", "acme"),
                    kv("request.id", &format!("req-{index}")),
                    kv("thread", &name),
                ];
                if index == 2 {
                    run.spawn(&name, move |worker| park_with_labels(worker, labels));
                } else {
                    spawn_labelset(&mut run, &name, labels);
                }
            }
            run.spawn("idle", |worker| worker.ready(Value::Null, Value::Null));
        }
    }
    match main_labels {
        Some(labels) => {
            run.main_thread_context(expect_after_sets(&labels), Value::Null);
            with_labels(labels, || ready_and_wait(run))
        }
        None => run.ready_and_wait(Value::Null),
    }
}

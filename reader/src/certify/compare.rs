//! The one place that compares a reader's snapshot with a target's `expect` (conformance.md
//! sections 3-4): [`compare`] walks `expect` key by key and reports every difference with its JSON
//! path; churning threads (described by form, not by value) go through [`compare_churn_thread`],
//! and a series of snapshots of a churning target through [`ChurnSeries`].
#![forbid(unsafe_code)]

use serde_json::Value;

/// One difference between `expect` and the observed snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// JSON path, e.g. `$.threads[tid=1234].v1.labels[0].value`.
    pub path: String,
    pub expected: String,
    pub observed: String,
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules = rules_for_path(&self.path);
        let cite = if rules.is_empty() {
            String::new()
        } else {
            format!(" [{}]", rules.join(", "))
        };
        write!(
            f,
            "{}{cite}: expected {}, observed {}",
            self.path, self.expected, self.observed
        )
    }
}

/// The spec rules (ids of conformance/rules.toml) a difference at this JSON path of the snapshot
/// most likely breaks, cited with each diff so that a writer author sees which sentence of which
/// spec is at stake. Indices and selectors (`[3]`, `[tid=12]`) and a `snapshot N: ` prefix are
/// ignored; an unknown path cites nothing. `cargo xtask coverage --check` checks the ids exist.
#[rustfmt::skip]
pub fn rules_for_path(path: &str) -> &'static [&'static str] {
    let path = path.rsplit_once(": ").map_or(path, |(_, p)| p);
    let mut plain = String::with_capacity(path.len());
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let field = |prefix: &str| plain.find(prefix).map(|i| &plain[i + prefix.len()..]);
    if let Some(rest) = field(".process_context") {
        return match rest {
            "" | ".mapping" => &["pc-locate-mapping", "pc-validate-header", "pc-timestamp-nonzero"],
            r if r.starts_with(".resource") => &["pc-decode-payload", "pc-ours-processcontext"],
            r if r.starts_with(".attributes") => &["tc-reference-data-location", "pc-ours-processcontext"],
            _ => &["pc-header-layout"],
        };
    }
    if let Some(rest) = field(".v1") {
        return match rest {
            "" => &["v1-ours-null-pointer", "v1-labelset-layout", "v1-storage-count"],
            ".labels.value" => &["v1-first-key-wins", "v1-labels-are-bytes"],
            r if r.starts_with(".labels") => &["v1-storage-count", "v1-null-key-ignored", "v1-first-key-wins"],
            _ => &["v1-labelset-layout"],
        };
    }
    if let Some(rest) = field(".v2") {
        return match rest {
            "" => &["tc-null-pointer", "tc-valid-one", "tc-detach"],
            ".trace_id" | ".span_id" => &["tc-record-packed", "tc-zero-ids-none"],
            ".trace_flags" => &["tc-trace-flags"],
            ".attributes.value" => &["tc-last-occurrence-wins", "tc-utf8-strings"],
            ".attributes.key" | ".attributes.key_index" => &["tc-key-map", "tc-unknown-index-ignored"],
            r if r.starts_with(".attributes") => &["tc-entry-encoding", "tc-stop-at-incomplete-entry", "tc-last-occurrence-wins"],
            _ => &["tc-record-packed"],
        };
    }
    &[]
}

/// Sections named by name in [`Report::render`]'s summary, per list (right, wrong).
pub const MAX_LISTED_SECTIONS: usize = 12;

/// What a comparison covered: leaves compared and the differences found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub compared: usize,
    pub diffs: Vec<Diff>,
    /// Per section (`process_context`, `thread <tid> v1`, ...): whether it matched.
    pub sections: Vec<(String, bool)>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.diffs.is_empty()
    }

    /// Human summary: what was right and what was wrong (at most [`MAX_LISTED_SECTIONS`] names
    /// each; the rest counted), then every difference.
    pub fn render(&self, max_diffs: usize) -> String {
        let mut out = String::new();
        let list = |ok: bool| {
            let names: Vec<&str> = self
                .sections
                .iter()
                .filter(|(_, o)| *o == ok)
                .map(|(s, _)| s.as_str())
                .collect();
            match names.len() {
                0 => "nothing".to_string(),
                n if n > MAX_LISTED_SECTIONS => format!(
                    "{} and {} more",
                    names[..MAX_LISTED_SECTIONS].join(", "),
                    n - MAX_LISTED_SECTIONS
                ),
                _ => names.join(", "),
            }
        };
        out.push_str(&format!(
            "{} values compared, {} differ; right: {}; wrong: {}\n",
            self.compared,
            self.diffs.len(),
            list(true),
            list(false),
        ));
        for d in self.diffs.iter().take(max_diffs) {
            out.push_str(&format!("  {d}\n"));
        }
        if self.diffs.len() > max_diffs {
            out.push_str(&format!(
                "  ... and {} more\n",
                self.diffs.len() - max_diffs
            ));
        }
        out
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        format!(
            "{}...({} bytes)",
            &s[..s
                .char_indices()
                .take_while(|(i, _)| *i < 200)
                .last()
                .map_or(0, |(i, c)| i + c.len_utf8())],
            s.len()
        )
    } else {
        s
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ if a.is_f64() || b.is_f64() => a.as_f64() == b.as_f64(),
        _ => false,
    }
}

/// Compares `expect` with `observed` (conformance.md section 4): objects key by key, a key absent
/// from `expect` is not compared, everything else exactly, arrays by length and element. The
/// `threads` array is matched by `tid` (and its order checked) so a missing thread reads as one
/// difference; a thread whose expectation has a `churn` key is checked by form with
/// [`compare_churn_thread`] instead of by value.
pub fn compare(expect: &Value, observed: &Value) -> Report {
    let mut report = Report::default();
    compare_value(expect, observed, "$", &mut report);
    report
}

/// Whether `expect` describes churning threads (by form), which takes a series of snapshots.
pub fn has_churn(expect: &Value) -> bool {
    expect["threads"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t.get("churn").is_some()))
}

/// The verdict over a series of snapshots of a churning target: each snapshot is compared with
/// `expect` (churning threads by form), every churning thread's counters must never go back, and a
/// thread whose form has a v2 record must show a consistent one in at least one snapshot.
pub struct ChurnSeries<'a> {
    expect: &'a Value,
    /// (tid, form, last v1 and v2 counters, v2 seen) of each churning thread.
    churners: Vec<(i64, &'a Value, (u64, u64), bool)>,
    rounds: usize,
    report: Report,
}

impl<'a> ChurnSeries<'a> {
    pub fn new(expect: &'a Value) -> Self {
        let churners = expect["threads"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["tid"].as_i64()?, t.get("churn")?, (0, 0), false)))
            .collect();
        ChurnSeries {
            expect,
            churners,
            rounds: 0,
            report: Report::default(),
        }
    }

    /// Adds one snapshot; returns whether the series is still without differences.
    pub fn observe(&mut self, observed: &Value) -> bool {
        let round = self.rounds;
        self.rounds += 1;
        let r = compare(self.expect, observed);
        self.report.compared += r.compared;
        self.report.sections = r.sections;
        self.report.diffs.extend(r.diffs.into_iter().map(|mut d| {
            d.path = format!("snapshot {round}: {}", d.path);
            d
        }));
        for (tid, form, last, v2_seen) in &mut self.churners {
            let Some(thread) = observed["threads"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["tid"] == *tid)
            else {
                continue; // a missing thread is a difference of `compare`
            };
            let mut scratch = Report::default();
            let (v1n, v2n) = compare_churn_thread(form, thread, "", &mut scratch);
            for (seen, prev, what) in [(v1n, &mut last.0, "v1"), (v2n, &mut last.1, "v2")] {
                if let Some(n) = seen {
                    if n < *prev {
                        self.report.diffs.push(Diff {
                            path: format!("snapshot {round}: $.threads[tid={tid}].{what} counter"),
                            expected: format!(">= {prev}"),
                            observed: n.to_string(),
                        });
                    }
                    *prev = n;
                }
            }
            *v2_seen |= v2n.is_some();
        }
        self.report.ok()
    }

    /// The verdict after the last snapshot.
    pub fn finish(mut self) -> Report {
        for (tid, form, _, v2_seen) in &self.churners {
            let has_v2 = form["v2"] != Value::Bool(false);
            if self.report.ok() && has_v2 && !v2_seen {
                self.report.diffs.push(Diff {
                    path: format!("$.threads[tid={tid}].v2"),
                    expected: "a consistent record in at least one snapshot".to_string(),
                    observed: "null in every snapshot".to_string(),
                });
            }
        }
        self.report
    }
}

fn push(report: &mut Report, path: &str, expected: String, observed: String) {
    report.diffs.push(Diff {
        path: path.to_string(),
        expected,
        observed,
    });
}

fn compare_value(expect: &Value, observed: &Value, path: &str, report: &mut Report) {
    match (expect, observed) {
        (Value::Object(e), Value::Object(o)) => {
            for (key, ev) in e {
                let child = format!("{path}.{key}");
                let before = report.diffs.len();
                match o.get(key) {
                    None => {
                        report.compared += 1;
                        push(report, &child, short(ev), "(absent)".to_string());
                    }
                    Some(ov) if path == "$" && key == "threads" => {
                        compare_threads(ev, ov, &child, report)
                    }
                    Some(ov) => compare_value(ev, ov, &child, report),
                }
                if path == "$" && key != "threads" {
                    report
                        .sections
                        .push((key.clone(), report.diffs.len() == before));
                }
            }
        }
        (Value::Array(e), Value::Array(o)) => {
            if e.len() != o.len() {
                report.compared += 1;
                push(
                    report,
                    &format!("{path}.length"),
                    e.len().to_string(),
                    o.len().to_string(),
                );
            }
            for (i, (ev, ov)) in e.iter().zip(o).enumerate() {
                compare_value(ev, ov, &format!("{path}[{i}]"), report);
            }
            // Name the elements one side has beyond the other (an unexpected error entry says why).
            for (i, ev) in e.iter().enumerate().skip(o.len()) {
                push(
                    report,
                    &format!("{path}[{i}]"),
                    short(ev),
                    "(absent)".to_string(),
                );
            }
            for (i, ov) in o.iter().enumerate().skip(e.len()) {
                push(
                    report,
                    &format!("{path}[{i}]"),
                    "(absent)".to_string(),
                    short(ov),
                );
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            report.compared += 1;
            if !numbers_equal(a, b) {
                push(report, path, a.to_string(), b.to_string());
            }
        }
        _ => {
            report.compared += 1;
            if expect != observed {
                push(report, path, short(expect), short(observed));
            }
        }
    }
}

fn compare_threads(expect: &Value, observed: &Value, path: &str, report: &mut Report) {
    let (Some(e), Some(o)) = (expect.as_array(), observed.as_array()) else {
        return compare_value(expect, observed, path, report);
    };
    let tid = |t: &Value| t.get("tid").and_then(Value::as_i64);
    let observed_tids: Vec<Option<i64>> = o.iter().map(tid).collect();
    report.compared += 1;
    if !observed_tids.windows(2).all(|w| w[0] < w[1]) {
        push(
            report,
            &format!("{path}(order)"),
            "sorted by tid".to_string(),
            format!("{observed_tids:?}"),
        );
    }
    for et in e {
        let Some(t) = tid(et) else {
            push(report, path, "threads with a tid".to_string(), short(et));
            continue;
        };
        let child = format!("{path}[tid={t}]");
        let before = report.diffs.len();
        match o.iter().find(|ot| tid(ot) == Some(t)) {
            None => {
                report.compared += 1;
                push(
                    report,
                    &child,
                    "present".to_string(),
                    "(absent)".to_string(),
                );
            }
            Some(ot) if et.get("churn").is_some() => {
                let mut by_value = et.clone();
                if let Some(m) = by_value.as_object_mut() {
                    m.remove("churn");
                }
                compare_value(&by_value, ot, &child, report);
                compare_churn_thread(&et["churn"], ot, &child, report);
            }
            Some(ot) => compare_value(et, ot, &child, report),
        }
        report
            .sections
            .push((format!("thread {t}"), report.diffs.len() == before));
    }
    for ot in o {
        if let Some(t) = tid(ot) {
            if !e.iter().any(|et| tid(et) == Some(t)) {
                report.compared += 1;
                push(
                    report,
                    &format!("{path}[tid={t}]"),
                    "(absent)".to_string(),
                    short(ot),
                );
            }
        }
    }
}

/// Counters a churning thread showed in one snapshot: `(v1 n, v2 n)`; `None` where the format was
/// not observed (v2 may be legally null while an in-place update is in progress).
pub type ChurnCounters = (Option<u64>, Option<u64>);

fn label_map(labels: &Value) -> Option<Vec<(String, String)>> {
    labels
        .as_array()?
        .iter()
        .map(|l| {
            Some((
                l["key"].as_str()?.to_string(),
                l["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Checks that a churning thread's records are internally consistent (the rule is fixed by our C
/// writer, see targets/README.md): v1 labels are exactly `churn.n = n`, `churn.n3 = 3n`,
/// `churn.worker = w`; v2 is `null` (only for in-place writers, caught behind valid=0) or has
/// trace id `{w:016x}{n:016x}`, span id `{n:016x}`, trace flags `n & 1`, attributes exactly
/// `churn.n = n`, `churn.n3 = 3n` (as key indices 3 and 4 when the form says `"key_map": false`,
/// i.e. no process context publishes the key map), plus the attribute `span_id_attribute` equal to
/// the span id when the form names one. `"v2": false` means the writer has no thread context: v2
/// must be `null`. Returns the counters seen so callers can check monotonicity.
pub fn compare_churn_thread(
    form: &Value,
    observed: &Value,
    path: &str,
    report: &mut Report,
) -> ChurnCounters {
    let worker = form["worker"].as_u64().unwrap_or(0);
    let mut counters: ChurnCounters = (None, None);
    report.compared += 2;
    let mut bad = |what: &str, expected: String, got: &Value| {
        report.diffs.push(Diff {
            path: format!("{path}.{what}"),
            expected,
            observed: short(got),
        });
    };
    // v1
    let v1 = &observed["v1"];
    if form["v1"] == Value::Bool(true) {
        let labels = label_map(&v1["labels"]).unwrap_or_default();
        let get = |k: &str| {
            labels
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let n = get("churn.n").and_then(|s| s.parse::<u64>().ok());
        let consistent = labels.len() == 3
            && n.is_some()
            && get("churn.n3") == n.map(|n| (3 * n).to_string())
            && get("churn.worker") == Some(worker.to_string());
        if consistent {
            counters.0 = n;
        } else {
            bad(
                "v1",
                format!("churn.n=n, churn.n3=3n, churn.worker={worker}"),
                v1,
            );
        }
    } else if !v1.is_null() {
        bad("v1", "null (no v1 in this variant)".to_string(), v1);
    }
    // v2
    let v2 = &observed["v2"];
    if form["v2"] == Value::Bool(false) {
        if !v2.is_null() {
            bad("v2", "null (no v2 in this variant)".to_string(), v2);
        }
    } else if v2.is_null() {
        if form["v2"] != Value::String("in-place".to_string()) {
            bad(
                "v2",
                "a record (pointer-swapping writer is never caught half way)".to_string(),
                v2,
            );
        }
    } else {
        // Without a published key map the attributes come as key indices 3 and 4.
        let attrs = if form["key_map"] == Value::Bool(false) {
            v2["attributes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            let name = match e["key_index"].as_u64()? {
                                3 => "churn.n",
                                4 => "churn.n3",
                                _ => "?",
                            };
                            Some((name.to_string(), e["value"].as_str()?.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            label_map(&v2["attributes"]).unwrap_or_default()
        };
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let n = get("churn.n").and_then(|s| s.parse::<u64>().ok());
        let span_id_attribute = form["span_id_attribute"].as_str();
        let consistent = n.is_some_and(|n| {
            attrs.len() == 2 + usize::from(span_id_attribute.is_some())
                && span_id_attribute.is_none_or(|k| get(k) == Some(format!("{n:016x}")))
                && get("churn.n3") == Some((3 * n).to_string())
                && v2["trace_id"] == Value::String(format!("{worker:016x}{n:016x}"))
                && v2["span_id"] == Value::String(format!("{n:016x}"))
                && v2["trace_flags"] == (n & 1)
                && v2["layout"] == "otep-4947"
        });
        if consistent {
            counters.1 = n;
        } else {
            bad(
                "v2",
                format!(
                    "trace_id {worker:016x}<n>, span_id <n>, flags n&1, churn.n=n, churn.n3=3n"
                ),
                v2,
            );
        }
    }
    counters
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_documents_match_and_absent_expect_keys_are_not_compared() {
        let expect = json!({"pid": 1, "process_context": {"version": 2, "resource": {"a": 1.5}},
                            "threads": [{"tid": 5, "v1": null}], "errors": []});
        let observed = json!({"pid": 1, "backend": "ptrace",
                              "process_context": {"version": 2, "published_at_ns": 9, "resource": {"a": 1.5}},
                              "threads": [{"tid": 5, "v1": null, "other": 1}], "errors": []});
        let r = compare(&expect, &observed);
        assert!(r.ok(), "{}", r.render(10));
        assert_eq!(r.compared, 6);
    }

    #[test]
    fn differences_carry_json_paths() {
        let expect = json!({"threads": [{"tid": 5, "v1": {"labels": [{"key": "k", "value": "a"}]}},
                                        {"tid": 6, "v2": null}],
                            "errors": []});
        let observed = json!({"threads": [{"tid": 5, "v1": {"labels": [{"key": "k", "value": "b"}, {"key": "z", "value": "c"}]}},
                                          {"tid": 7, "v2": null}],
                              "errors": [{"kind": "x"}]});
        let r = compare(&expect, &observed);
        let paths: Vec<&str> = r.diffs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                // serde_json maps iterate in key order: errors before threads
                "$.errors.length",
                "$.errors[0]",
                "$.threads[tid=5].v1.labels.length",
                "$.threads[tid=5].v1.labels[0].value",
                "$.threads[tid=5].v1.labels[1]",
                "$.threads[tid=6]",
                "$.threads[tid=7]",
            ]
        );
        assert_eq!(r.diffs[1].expected, "(absent)");
        assert_eq!(r.diffs[1].observed, r#"{"kind":"x"}"#);
        assert_eq!(r.diffs[3].expected, "\"a\"");
        assert_eq!(r.diffs[3].observed, "\"b\"");
    }

    #[test]
    fn the_summary_names_a_bounded_number_of_sections() {
        let threads: Vec<Value> = (1..=30).map(|t| json!({"tid": t})).collect();
        let expect = json!({"pid": 1, "threads": threads});
        let mut observed = expect.clone();
        observed["pid"] = json!(2);
        let r = compare(&expect, &observed);
        let summary = r.render(5);
        let first = summary.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            // pid, the threads' order, and 30 tids.
            "32 values compared, 1 differ; right: thread 1, thread 2, thread 3, thread 4, \
             thread 5, thread 6, thread 7, thread 8, thread 9, thread 10, thread 11, thread 12 \
             and 18 more; wrong: pid"
        );
        assert_eq!(
            summary.lines().nth(1),
            Some("  $.pid: expected 1, observed 2")
        );
    }

    #[test]
    fn numbers_compare_by_value_and_types_must_agree() {
        assert!(compare(&json!({"n": 2}), &json!({"n": 2})).ok());
        assert!(!compare(&json!({"n": 2}), &json!({"n": 2.5})).ok());
        assert!(!compare(&json!({"n": "2"}), &json!({"n": 2})).ok());
        assert!(!compare(&json!({"n": null}), &json!({"n": 0})).ok());
        assert!(compare(&json!({"n": -42}), &json!({"n": -42})).ok());
    }

    #[test]
    fn unsorted_threads_are_a_difference() {
        let r = compare(
            &json!({"threads": [{"tid": 1}, {"tid": 2}]}),
            &json!({"threads": [{"tid": 2}, {"tid": 1}]}),
        );
        assert_eq!(r.diffs.len(), 1);
        assert_eq!(r.diffs[0].path, "$.threads(order)");
    }

    fn churn_thread(w: u64, n: u64, n3: u64, v2: Value) -> Value {
        json!({"tid": 9, "v1": {"labels": [
            {"key": "churn.n", "value": n.to_string()},
            {"key": "churn.n3", "value": n3.to_string()},
            {"key": "churn.worker", "value": w.to_string()}]}, "v2": v2, "errors": []})
    }

    #[test]
    fn churn_form_accepts_consistent_records_and_rejects_mixed_ones() {
        let form = json!({"worker": 2, "v1": true, "v2": "swap"});
        let good_v2 = json!({"layout": "otep-4947", "trace_id": "00000000000000020000000000000007",
            "span_id": "0000000000000007", "trace_flags": 1,
            "attributes": [{"key": "churn.n", "value": "7"}, {"key": "churn.n3", "value": "21"}]});
        let mut r = Report::default();
        let counters =
            compare_churn_thread(&form, &churn_thread(2, 5, 15, good_v2.clone()), "$", &mut r);
        assert!(r.ok(), "{}", r.render(5));
        assert_eq!(counters, (Some(5), Some(7)));

        let mut mixed_v2 = good_v2.clone();
        mixed_v2["span_id"] = json!("0000000000000006");
        let mut r = Report::default();
        compare_churn_thread(&form, &churn_thread(2, 5, 16, mixed_v2), "$", &mut r);
        let paths: Vec<&str> = r.diffs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, vec!["$.v1", "$.v2"]);

        // A swapping writer is never caught half way: null v2 is wrong; in-place may be null.
        let mut r = Report::default();
        compare_churn_thread(&form, &churn_thread(2, 5, 15, Value::Null), "$", &mut r);
        assert_eq!(r.diffs.len(), 1);
        let mut r = Report::default();
        compare_churn_thread(
            &json!({"worker": 2, "v1": true, "v2": "in-place"}),
            &churn_thread(2, 5, 15, Value::Null),
            "$",
            &mut r,
        );
        assert!(r.ok());
    }

    #[test]
    fn churn_series_rejects_counters_going_back_and_a_v2_never_seen() {
        let expect =
            json!({"threads": [{"tid": 9, "churn": {"worker": 2, "v1": true, "v2": "in-place"}}]});
        let snapshot = |n: u64| json!({"threads": [churn_thread(2, n, 3 * n, Value::Null)]});
        let mut series = ChurnSeries::new(&expect);
        assert!(series.observe(&snapshot(5)));
        assert!(series.observe(&snapshot(6)));
        let r = series.finish();
        let paths: Vec<&str> = r.diffs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, vec!["$.threads[tid=9].v2"], "in-place v2 never seen");

        let mut series = ChurnSeries::new(&expect);
        assert!(series.observe(&snapshot(6)));
        assert!(!series.observe(&snapshot(5)));
        let r = series.finish();
        assert_eq!(r.diffs.len(), 1);
        assert_eq!(r.diffs[0].path, "snapshot 1: $.threads[tid=9].v1 counter");
        assert_eq!(
            (r.diffs[0].expected.as_str(), r.diffs[0].observed.as_str()),
            (">= 6", "5")
        );
    }

    #[test]
    fn churn_form_without_v2_requires_null_v2() {
        let form = json!({"worker": 1, "v1": true, "v2": false});
        let mut r = Report::default();
        let counters =
            compare_churn_thread(&form, &churn_thread(1, 4, 12, Value::Null), "$", &mut r);
        assert!(r.ok(), "{}", r.render(5));
        assert_eq!(counters, (Some(4), None));
        let record = json!({"layout": "otep-4947", "trace_id": null, "span_id": null,
            "trace_flags": 0, "attributes": []});
        let mut r = Report::default();
        compare_churn_thread(&form, &churn_thread(1, 4, 12, record), "$", &mut r);
        let paths: Vec<&str> = r.diffs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, vec!["$.v2"]);
    }

    #[test]
    fn churn_span_id_attribute_must_carry_the_span_id() {
        let form = json!({"worker": 1, "v1": false, "v2": "in-place",
            "span_id_attribute": "datadog.local_root_span_id"});
        let v2 = |root: &str| {
            json!({"layout": "otep-4947", "trace_id": "00000000000000010000000000000009",
                "span_id": "0000000000000009", "trace_flags": 1,
                "attributes": [{"key": "churn.n", "value": "9"}, {"key": "churn.n3", "value": "27"},
                               {"key": "datadog.local_root_span_id", "value": root}]})
        };
        let thread = |v2: Value| json!({"tid": 3, "v1": null, "v2": v2});
        let mut r = Report::default();
        let counters = compare_churn_thread(&form, &thread(v2("0000000000000009")), "$", &mut r);
        assert!(r.ok(), "{}", r.render(5));
        assert_eq!(counters, (None, Some(9)));
        let mut r = Report::default();
        compare_churn_thread(&form, &thread(v2("0000000000000008")), "$", &mut r);
        assert_eq!(r.diffs.len(), 1, "{}", r.render(5));
        // Without the form naming it, the extra attribute makes the record inconsistent.
        let mut r = Report::default();
        compare_churn_thread(
            &json!({"worker": 1, "v1": false, "v2": "in-place"}),
            &thread(v2("0000000000000009")),
            "$",
            &mut r,
        );
        assert_eq!(r.diffs.len(), 1, "{}", r.render(5));
    }

    #[test]
    fn diff_paths_cite_the_rules_of_their_field() {
        assert_eq!(
            rules_for_path("$.threads[tid=12].v2.span_id"),
            ["tc-record-packed", "tc-zero-ids-none"]
        );
        assert_eq!(
            rules_for_path("snapshot 2: $.threads[tid=9].v1.labels[0].value"),
            ["v1-first-key-wins", "v1-labels-are-bytes"]
        );
        assert_eq!(
            rules_for_path("$.threads[tid=9].v1.labels.length"),
            [
                "v1-storage-count",
                "v1-null-key-ignored",
                "v1-first-key-wins"
            ]
        );
        assert_eq!(
            rules_for_path("$.process_context.resource.service.name"),
            ["pc-decode-payload", "pc-ours-processcontext"]
        );
        assert_eq!(
            rules_for_path("$.threads[tid=3].v2"),
            ["tc-null-pointer", "tc-valid-one", "tc-detach"]
        );
        assert!(rules_for_path("$.threads[tid=3].name").is_empty());
        assert!(rules_for_path("$.threads(order)").is_empty());
    }

    #[test]
    fn a_diff_prints_the_rules_it_cites() {
        let d = Diff {
            path: "$.threads[tid=5].v2.trace_flags".into(),
            expected: "1".into(),
            observed: "0".into(),
        };
        assert_eq!(
            d.to_string(),
            "$.threads[tid=5].v2.trace_flags [tc-trace-flags]: expected 1, observed 0"
        );
        let plain = Diff {
            path: "$.threads[tid=5].name".into(),
            expected: "\"a\"".into(),
            observed: "\"b\"".into(),
        };
        assert_eq!(
            plain.to_string(),
            "$.threads[tid=5].name: expected \"a\", observed \"b\""
        );
    }
}

//! Certification reports (`--report DIR`, schema in docs/certify.md): `report.json` (one
//! [`TrialRecord`] per trial: writer command, arch, kernel, backend, case, verdict, diffs), JUnit
//! XML (`junit.xml`, by `quick-junit`, one test suite per arch and backend) for CI systems, and
//! `summary.md`, a Markdown table per arch and backend (writers by scenario) for a job summary.
//! Failed trials also leave their `expect` and last snapshot in `failures/NAME.json`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compare::Diff;
use super::trial::{TrialOutcome, Verdict};

/// The version of the `report.json` schema (docs/certify.md).
pub const SCHEMA_VERSION: u32 = 1;

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifyReport {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// `context-reader <version>`.
    pub tool: String,
    /// Every trial, in the order they were run (or named, for the suite).
    pub trials: Vec<TrialRecord>,
}

/// One trial of `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialRecord {
    /// `ARCH/BACKEND/WRITER/SCENARIO`, unique within a report.
    pub name: String,
    /// The writer: its `CONTEXT-READY` name (certify) or catalogue variant (suite).
    pub writer: String,
    /// The command line as run (program, then arguments).
    pub command: Vec<String>,
    /// `x86_64`, `aarch64`.
    pub arch: String,
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// `ptrace` or `ebpf`.
    pub backend: String,
    /// The scenario (`--scenario`), or `default` when the writer picks what it publishes.
    pub case: String,
    pub verdict: Verdict,
    /// Wall time of the trial, milliseconds.
    pub duration_ms: u64,
    /// The error (verdict `error`), or the comparison's summary.
    pub detail: String,
    /// Every difference between `expect` and the snapshot (verdict `fail`).
    pub diffs: Vec<DiffRecord>,
}

/// One JSON-path difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffRecord {
    /// e.g. `$.threads[tid=1234].v1.labels[0].value`.
    pub path: String,
    /// JSON text of the declared value (or a description, e.g. `(absent)`).
    pub expected: String,
    /// JSON text of what the reader reported.
    pub observed: String,
}

impl From<&Diff> for DiffRecord {
    fn from(d: &Diff) -> Self {
        DiffRecord {
            path: d.path.clone(),
            expected: d.expected.clone(),
            observed: d.observed.clone(),
        }
    }
}

/// The host's kernel release, or `unknown`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// What identifies a trial in a report, besides its outcome.
#[derive(Debug, Clone)]
pub struct TrialId {
    pub writer: String,
    pub command: Vec<String>,
    pub backend: String,
    pub case: String,
}

impl TrialRecord {
    /// A record of `outcome` on this host (arch and kernel of the running system).
    pub fn new(id: TrialId, outcome: &TrialOutcome) -> Self {
        let arch = std::env::consts::ARCH.to_string();
        TrialRecord {
            name: format!("{arch}/{}/{}/{}", id.backend, id.writer, id.case),
            writer: id.writer,
            command: id.command,
            arch,
            kernel: kernel_release(),
            backend: id.backend,
            case: id.case,
            verdict: outcome.verdict,
            duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
            detail: outcome.detail.clone(),
            diffs: outcome.report.diffs.iter().map(DiffRecord::from).collect(),
        }
    }
}

impl CertifyReport {
    pub fn new(trials: Vec<TrialRecord>) -> Self {
        CertifyReport {
            schema: SCHEMA_VERSION,
            tool: format!("context-reader {}", env!("CARGO_PKG_VERSION")),
            trials,
        }
    }

    pub fn passed(&self) -> bool {
        self.trials.iter().all(|t| t.verdict == Verdict::Pass)
    }

    /// JUnit XML: one `<testsuite>` per arch and backend, one `<testcase>` per trial (class name
    /// the writer, name the case); `fail` is a `<failure>` whose text lists the diffs, `error` an
    /// `<error>` with its reason.
    pub fn junit(&self) -> String {
        let mut suites: BTreeMap<(String, String), Vec<&TrialRecord>> = BTreeMap::new();
        for t in &self.trials {
            suites
                .entry((t.arch.clone(), t.backend.clone()))
                .or_default()
                .push(t);
        }
        let mut report = quick_junit::Report::new("context-reader certify");
        for ((arch, backend), trials) in suites {
            let mut suite = quick_junit::TestSuite::new(format!("{arch}/{backend}"));
            suite.add_property(quick_junit::Property::new("arch", arch.as_str()));
            suite.add_property(quick_junit::Property::new("backend", backend.as_str()));
            if let Some(t) = trials.first() {
                suite.add_property(quick_junit::Property::new("kernel", t.kernel.as_str()));
            }
            for t in trials {
                let status = match t.verdict {
                    Verdict::Pass => quick_junit::TestCaseStatus::success(),
                    Verdict::Fail | Verdict::Error => {
                        let kind = if t.verdict == Verdict::Fail {
                            quick_junit::NonSuccessKind::Failure
                        } else {
                            quick_junit::NonSuccessKind::Error
                        };
                        let mut s = quick_junit::TestCaseStatus::non_success(kind);
                        let first = t.detail.lines().next().unwrap_or_default();
                        s.set_message(first);
                        s.set_type(t.verdict.name());
                        let mut text = t.detail.clone();
                        if !t.diffs.is_empty() {
                            text = t
                                .diffs
                                .iter()
                                .map(|d| {
                                    format!(
                                        "{}: expected {}, observed {}",
                                        d.path, d.expected, d.observed
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join("\n");
                        }
                        s.set_description(text);
                        s
                    }
                };
                let mut case = quick_junit::TestCase::new(t.name.as_str(), status);
                case.set_classname(t.writer.as_str());
                case.set_time(std::time::Duration::from_millis(t.duration_ms));
                case.add_property(quick_junit::Property::new("command", t.command.join(" ")));
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report
            .to_string()
            .unwrap_or_else(|e| format!("<!-- JUnit serialisation failed: {e} -->\n"))
    }

    /// `summary.md`: per arch and backend, a table of writers (rows) by scenario (columns); a cell
    /// is `pass`, `FAIL` or `ERROR` (empty: not run), then the failed trials with their first
    /// differences.
    pub fn summary_markdown(&self) -> String {
        let mut out = String::from("# context-reader certification\n\n");
        let passed = self
            .trials
            .iter()
            .filter(|t| t.verdict == Verdict::Pass)
            .count();
        out.push_str(&format!(
            "{passed} of {} trials passed ({}).\n",
            self.trials.len(),
            self.tool
        ));
        let mut groups: BTreeMap<(String, String), Vec<&TrialRecord>> = BTreeMap::new();
        for t in &self.trials {
            groups
                .entry((t.arch.clone(), t.backend.clone()))
                .or_default()
                .push(t);
        }
        for ((arch, backend), trials) in &groups {
            let kernel = trials.first().map_or("", |t| t.kernel.as_str());
            out.push_str(&format!("\n## {arch} / {backend} (kernel {kernel})\n\n"));
            let mut scenarios: Vec<&str> = Vec::new();
            let mut writers: Vec<&str> = Vec::new();
            for t in trials {
                if !scenarios.contains(&t.case.as_str()) {
                    scenarios.push(&t.case);
                }
                if !writers.contains(&t.writer.as_str()) {
                    writers.push(&t.writer);
                }
            }
            let cells: BTreeMap<(&str, &str), Verdict> = trials
                .iter()
                .map(|t| ((t.writer.as_str(), t.case.as_str()), t.verdict))
                .collect();
            out.push_str(&format!("| writer | {} |\n", scenarios.join(" | ")));
            out.push_str(&format!("|---|{}\n", "---|".repeat(scenarios.len())));
            for w in &writers {
                let row: Vec<&str> = scenarios
                    .iter()
                    .map(|s| match cells.get(&(*w, *s)) {
                        Some(Verdict::Pass) => "pass",
                        Some(Verdict::Fail) => "**FAIL**",
                        Some(Verdict::Error) => "**ERROR**",
                        None => "",
                    })
                    .collect();
                out.push_str(&format!("| {} | {} |\n", md_escape(w), row.join(" | ")));
            }
        }
        let bad: Vec<&TrialRecord> = self
            .trials
            .iter()
            .filter(|t| t.verdict != Verdict::Pass)
            .collect();
        if !bad.is_empty() {
            out.push_str("\n## Not passed\n\n");
            for t in bad {
                let why = match t.diffs.first() {
                    Some(d) => format!(
                        "{} difference(s), first `{}`: expected `{}`, observed `{}`",
                        t.diffs.len(),
                        d.path,
                        d.expected,
                        d.observed
                    ),
                    None => t.detail.lines().next().unwrap_or_default().to_string(),
                };
                out.push_str(&format!(
                    "* `{}` ({}): {}\n",
                    t.name,
                    t.verdict.name(),
                    md_escape(&why)
                ));
            }
        }
        out
    }

    /// Writes `report.json`, `junit.xml` and `summary.md` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        std::fs::write(dir.join("report.json"), json + "\n")?;
        std::fs::write(dir.join("junit.xml"), self.junit())?;
        std::fs::write(dir.join("summary.md"), self.summary_markdown())?;
        Ok(())
    }
}

/// Leaves a failed trial's `expect` and last snapshot in `DIR/failures/<name with / as __>.json`.
pub fn write_failure(dir: &Path, name: &str, expect: &Value, observed: &Value) -> io::Result<()> {
    let dir = dir.join("failures");
    std::fs::create_dir_all(&dir)?;
    let doc = serde_json::json!({"expect": expect, "observed": observed});
    std::fs::write(
        dir.join(format!("{}.json", name.replace('/', "__"))),
        serde_json::to_string_pretty(&doc).map_err(io::Error::other)?,
    )
}

/// Keeps a table cell one cell: `|` and line breaks are escaped.
fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(writer: &str, backend: &str, case: &str, verdict: Verdict) -> TrialRecord {
        let diffs = if verdict == Verdict::Fail {
            vec![DiffRecord {
                path: "$.threads[tid=7].v1".to_string(),
                expected: "null".to_string(),
                observed: "{\"labels\":[]}".to_string(),
            }]
        } else {
            Vec::new()
        };
        TrialRecord {
            name: format!("x86_64/{backend}/{writer}/{case}"),
            writer: writer.to_string(),
            command: vec![
                format!("./{writer}"),
                "--scenario".to_string(),
                case.to_string(),
            ],
            arch: "x86_64".to_string(),
            kernel: "6.1.0".to_string(),
            backend: backend.to_string(),
            case: case.to_string(),
            verdict,
            duration_ms: 12,
            detail: match verdict {
                Verdict::Error => "no CONTEXT-READY within 2s (killed)".to_string(),
                _ => "3 values compared".to_string(),
            },
            diffs,
        }
    }

    fn sample() -> CertifyReport {
        CertifyReport::new(vec![
            record("w-a", "ptrace", "basic", Verdict::Pass),
            record("w-a", "ptrace", "churn", Verdict::Fail),
            record("w|b", "ptrace", "basic", Verdict::Error),
            record("w-a", "ebpf", "basic", Verdict::Pass),
        ])
    }

    #[test]
    fn report_json_round_trips_and_rejects_unknown_fields() {
        let report = sample();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["trials"][1]["verdict"], "fail");
        assert_eq!(json["trials"][1]["diffs"][0]["path"], "$.threads[tid=7].v1");
        let back: CertifyReport = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, report);
        let mut extra = json;
        extra["trials"][0]["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<CertifyReport>(extra).is_err());
    }

    #[test]
    fn junit_has_a_suite_per_backend_and_failures_and_errors_apart() {
        let xml = sample().junit();
        let junit = quick_junit::Report::deserialize_from_str(&xml).expect("parses");
        assert_eq!((junit.tests, junit.failures, junit.errors), (4, 1, 1));
        let suites: Vec<(&str, usize)> = junit
            .test_suites
            .iter()
            .map(|s| (s.name.as_str(), s.tests))
            .collect();
        assert_eq!(suites, [("x86_64/ebpf", 1), ("x86_64/ptrace", 3)]);
        assert!(xml.contains("$.threads[tid=7].v1: expected null"), "{xml}");
        assert!(xml.contains("no CONTEXT-READY within 2s (killed)"), "{xml}");
    }

    #[test]
    fn summary_is_a_table_of_writers_by_scenario_per_backend() {
        let md = sample().summary_markdown();
        assert!(md.contains("2 of 4 trials passed"), "{md}");
        assert!(
            md.contains(
                "## x86_64 / ptrace (kernel 6.1.0)\n\n| writer | basic | churn |\n|---|---|---|\n\
                 | w-a | pass | **FAIL** |\n| w\\|b | **ERROR** |  |\n"
            ),
            "{md}"
        );
        assert!(md.contains("| w-a | pass |\n"), "{md}");
        assert!(
            md.contains(
                "* `x86_64/ptrace/w-a/churn` (fail): 1 difference(s), first `$.threads[tid=7].v1`"
            ),
            "{md}"
        );
    }
}

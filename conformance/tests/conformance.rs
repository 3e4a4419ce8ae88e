//! The conformance suite: one libtest-mimic trial per `ARCH/BACKEND/VARIANT/SCENARIO`, generated
//! from the targets catalogue (data, not code). Each trial spawns the target behind a kill-on-drop
//! guard, waits for `CONTEXT-READY`, takes a snapshot (reader library; the `basic` case of every
//! variant runs the `context-reader` binary end to end), compares it with `expect` through
//! `conformance::compare`, closes stdin and requires exit 0.
//!
//! Environment: `CONFORMANCE_BACKENDS=ptrace,ebpf,core` (default `ptrace`) picks the backends
//! (`core`: a core of the target read by `context-reader core`, see `core_selected` and the
//! runner's `CoreSource`);
//! `CONFORMANCE_EBPF_SCENARIOS=all|basic,churn,...` the eBPF scenarios (default all);
//! `CONFORMANCE_REPORT=DIR` writes the run's reports (`report.json`, `junit.xml`, `summary.md`,
//! docs/certify.md) into DIR; `CONTEXT_READER_BIN` overrides the reader binary
//! (default `<dir of this test binary>/../context-reader`). External writers are certified by
//! `context-reader certify` (`cargo xtask conformance --external`), not here.
//!
//! Which cases exist (rule in conformance/README.md): placement scenarios
//! (`context_targets::PLACEMENT_SCENARIOS`) on every variant; decoding scenarios on the first
//! variant of each decoding class (`Variant::decoding_class`), unless `CONFORMANCE_FULL=1`
//! (`cargo xtask conformance --full`) asks for every scenario on every variant.

mod runner;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use context_reader::certify::report::{write_failure, CertifyReport, TrialId, TrialRecord};
use context_reader::certify::trial::Verdict;
use context_targets::{
    catalogue, is_placement_scenario, select_cases, selected_backends, Backend, Variant,
};
use libtest_mimic::{Arguments, Failed, Trial};
use runner::{run_case_outcome, Case, ReaderMode};

/// Scenarios the eBPF backend runs: all by default (each test process verifies the BPF program
/// once and shares it between cases, so a case no longer pays a load: that used to be 4-12 s of
/// emulated verification per case on aarch64); `CONFORMANCE_EBPF_SCENARIOS=basic,churn,...`
/// narrows it.
fn ebpf_scenario_selected(scenario: &str) -> bool {
    let list = std::env::var("CONFORMANCE_EBPF_SCENARIOS").unwrap_or_else(|_| "all".to_string());
    list == "all" || list.split(',').any(|s| s.trim() == scenario)
}

/// The core column. With the kernel's dump (the aarch64 guest; tens of ms a case), every case
/// the ptrace column has. With `gcore` (x86-64; about 0.2-0.8 s a case, 3 s for
/// `many-threads`): `basic` on every variant, since the thread pointers and the slot memory come
/// from the core for every placement; each decoding scenario where the ptrace column has it (one
/// variant per decoding class already); `detached` and `many-threads` on the first variant of
/// each decoding class; with `CONFORMANCE_FULL`, every case. `churn` never
/// (`Variant::backends_for`).
fn core_selected(
    variant: &Variant,
    scenario: &str,
    first_of_class: &BTreeMap<String, String>,
) -> bool {
    full_matrix()
        || runner::core_source() == runner::CoreSource::KernelDump
        || scenario == "basic"
        || !is_placement_scenario(scenario)
        || first_of_class.get(&variant.decoding_class()) == Some(&variant.name)
}

fn full_matrix() -> bool {
    std::env::var("CONFORMANCE_FULL").is_ok_and(|v| v == "1" || v == "true")
}

/// The (variant, scenario) pairs to run (`context_targets::select_cases`, shared with
/// `cargo xtask coverage`).
fn selected_cases(variants: &[Arc<Variant>], full: bool) -> Vec<(Arc<Variant>, String)> {
    let plain: Vec<(String, Vec<String>)> = variants
        .iter()
        .map(|v| (v.decoding_class(), v.scenarios.clone()))
        .collect();
    select_cases(&plain, full)
        .into_iter()
        .map(|(i, scenario)| (Arc::clone(&variants[i]), scenario))
        .collect()
}

/// Where `CONFORMANCE_REPORT` wants the reports, and the records of the trials run so far.
struct Reports {
    dir: Option<std::path::PathBuf>,
    records: Mutex<Vec<TrialRecord>>,
}

fn trial(name: String, case: Case, reports: &Arc<Reports>) -> Trial {
    let kind = format!("{:?}", case.reader).to_lowercase();
    let reports = Arc::clone(reports);
    Trial::test(name.clone(), move || {
        let outcome = run_case_outcome(&name, &case);
        if let Some(dir) = &reports.dir {
            let mut command = vec![case.variant.executable.display().to_string()];
            command.extend(case.variant.args.iter().cloned());
            command.extend(["--scenario".to_string(), case.scenario.clone()]);
            if case.backend == Backend::Ebpf {
                command.push("--busy".to_string());
            }
            let record = TrialRecord::new(
                TrialId {
                    writer: case.variant.name.clone(),
                    command,
                    backend: case.backend.to_string(),
                    case: case.scenario.clone(),
                },
                &outcome,
            );
            if outcome.verdict == Verdict::Fail {
                let _ = write_failure(dir, &record.name, &outcome.expect, &outcome.observed);
            }
            if let Ok(mut records) = reports.records.lock() {
                records.push(record);
            }
        }
        runner::into_result(&name, outcome).map_err(Failed::from)
    })
    .with_kind(kind)
}

fn catalogue_trials(arch: &str, reports: &Arc<Reports>) -> Vec<Trial> {
    let mut trials = Vec::new();
    let wanted = selected_backends();
    let variants: Vec<Arc<Variant>> = catalogue().into_iter().map(Arc::new).collect();
    // Decoding classes whose eBPF end-to-end case was already generated.
    let mut ebpf_end_to_end: HashSet<String> = HashSet::new();
    // The first variant of each decoding class (core column rule, `core_selected`).
    let mut first_of_class: BTreeMap<String, String> = BTreeMap::new();
    for v in &variants {
        first_of_class
            .entry(v.decoding_class())
            .or_insert_with(|| v.name.clone());
    }
    for (variant, scenario) in selected_cases(&variants, full_matrix()) {
        // One case of every variant (basic, else its first scenario) runs the binary end to end;
        // with eBPF only on the first variant of each decoding class, because the binary loads
        // (and the kernel verifies) the program anew in its own process, while library cases
        // share one loaded program: the reading code behind both is the same.
        let end_to_end = variant
            .scenarios
            .iter()
            .find(|s| *s == "basic")
            .or(variant.scenarios.first());
        for backend in variant
            .backends_for(&scenario)
            .into_iter()
            .filter(|b| wanted.contains(b))
            .filter(|b| *b != Backend::Ebpf || ebpf_scenario_selected(&scenario))
            .filter(|b| *b != Backend::Core || core_selected(&variant, &scenario, &first_of_class))
        {
            let binary = Some(&scenario) == end_to_end
                && (backend != Backend::Ebpf || ebpf_end_to_end.insert(variant.decoding_class()));
            let reader = if binary {
                ReaderMode::Binary
            } else {
                ReaderMode::Library
            };
            let name = format!("{arch}/{}/{}/{scenario}", backend, variant.name);
            let case = Case {
                backend,
                variant: Arc::clone(&variant),
                scenario: scenario.clone(),
                reader,
            };
            trials.push(trial(name, case, reports));
        }
    }
    trials
}

fn main() {
    let args = Arguments::from_args();
    let arch = std::env::consts::ARCH;
    let reports = Arc::new(Reports {
        dir: std::env::var_os("CONFORMANCE_REPORT")
            .filter(|d| !d.is_empty())
            .map(Into::into),
        records: Mutex::new(Vec::new()),
    });
    let trials = catalogue_trials(arch, &reports);
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(dir) = &reports.dir {
        let mut records = reports
            .records
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        match CertifyReport::new(records).write(dir) {
            Ok(()) => eprintln!("conformance reports: {}", dir.display()),
            Err(e) => {
                eprintln!("CONFORMANCE_REPORT: cannot write {}: {e}", dir.display());
                std::process::exit(101);
            }
        }
    }
    conclusion.exit();
}

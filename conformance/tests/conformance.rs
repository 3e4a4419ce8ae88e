//! The conformance suite: one libtest-mimic trial per `ARCH/BACKEND/VARIANT/SCENARIO`, generated
//! from the targets catalogue (data, not code). Each trial spawns the target behind a kill-on-drop
//! guard, waits for `CONTEXT-READY`, takes a snapshot (reader library; the `basic` case of every
//! variant runs the `context-reader` binary end to end), compares it with `expect` through
//! `conformance::compare`, closes stdin and requires exit 0.
//!
//! Environment: `CONFORMANCE_BACKENDS=ptrace,ebpf,core` (default `ptrace`) picks the backends
//! (`core`: a `gcore` of the running target read by `context-reader core`, see `core_selected`);
//! `CONFORMANCE_EBPF_SCENARIOS=all|basic,churn,...` the eBPF scenarios (default all);
//! `CONFORMANCE_EXTERNAL='CMD ARGS'` replaces the catalogue by one external target (trials
//! `ARCH/BACKEND/external/<file names of the command's words>`), run in `CONFORMANCE_EXTERNAL_DIR`
//! if set (xtask sets the caller's directory); `CONTEXT_READER_BIN` overrides the reader binary
//! (default `<dir of this test binary>/../context-reader`).
//!
//! Which cases exist (rule in conformance/README.md): placement scenarios
//! (`context_targets::PLACEMENT_SCENARIOS`) on every variant; decoding scenarios on the first
//! variant of each decoding class (`Variant::decoding_class`), unless `CONFORMANCE_FULL=1`
//! (`cargo xtask conformance --full`) asks for every scenario on every variant.

mod runner;

use std::sync::Arc;

use std::collections::{BTreeMap, HashSet};

use context_targets::{catalogue, is_placement_scenario, Backend, Variant};
use libtest_mimic::{Arguments, Failed, Trial};
use runner::{run_case, Case, ReaderMode};

/// Scenarios the eBPF backend runs: all by default (each test process verifies the BPF program
/// once and shares it between cases, so a case no longer pays a load: that used to be 4-12 s of
/// emulated verification per case on aarch64); `CONFORMANCE_EBPF_SCENARIOS=basic,churn,...`
/// narrows it.
fn ebpf_scenario_selected(scenario: &str) -> bool {
    let list = std::env::var("CONFORMANCE_EBPF_SCENARIOS").unwrap_or_else(|_| "all".to_string());
    list == "all" || list.split(',').any(|s| s.trim() == scenario)
}

/// The core column (a `gcore` of the target, about 0.8 s a case on x86-64, 3 s for
/// `many-threads`): `basic` on every variant, since the thread pointers and the slot memory come
/// from the core for every placement; each decoding scenario where the ptrace column has it (one
/// variant per decoding class already); `detached` and `many-threads` on the first variant of
/// each decoding class. `churn` never (`Variant::backends_for`). With `CONFORMANCE_FULL`, every
/// case the ptrace column has.
fn core_selected(
    variant: &Variant,
    scenario: &str,
    first_of_class: &BTreeMap<String, String>,
) -> bool {
    full_matrix()
        || scenario == "basic"
        || !is_placement_scenario(scenario)
        || first_of_class.get(&variant.decoding_class()) == Some(&variant.name)
}

fn full_matrix() -> bool {
    std::env::var("CONFORMANCE_FULL").is_ok_and(|v| v == "1" || v == "true")
}

/// The (variant, scenario) pairs to run, in catalogue order: every pair with `full`; else the
/// placement scenarios on every variant and each decoding scenario on one variant of each decoding
/// class. Within a class the decoding scenarios go round the class's variants (the first to the
/// first variant offering it, the next to the next, ...), so they also run on varied placements.
fn selected_cases(variants: &[Arc<Variant>], full: bool) -> Vec<(Arc<Variant>, String)> {
    let mut chosen: HashSet<(usize, String)> = HashSet::new();
    if !full {
        let mut classes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, v) in variants.iter().enumerate() {
            classes.entry(v.decoding_class()).or_default().push(i);
        }
        for members in classes.values() {
            let mut scenarios: Vec<&String> = Vec::new();
            for &i in members {
                for s in &variants[i].scenarios {
                    if !is_placement_scenario(s) && !scenarios.contains(&s) {
                        scenarios.push(s);
                    }
                }
            }
            for (turn, scenario) in scenarios.into_iter().enumerate() {
                let offering: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&i| variants[i].scenarios.contains(scenario))
                    .collect();
                chosen.insert((offering[turn % offering.len()], scenario.clone()));
            }
        }
    }
    let mut cases = Vec::new();
    for (i, variant) in variants.iter().enumerate() {
        for scenario in &variant.scenarios {
            if full || is_placement_scenario(scenario) || chosen.contains(&(i, scenario.clone())) {
                cases.push((Arc::clone(variant), scenario.clone()));
            }
        }
    }
    cases
}

fn trial(name: String, case: Case) -> Trial {
    let kind = format!("{:?}", case.reader).to_lowercase();
    Trial::test(name.clone(), move || match run_case(&name, &case) {
        Ok(Some(summary)) => {
            println!("{name}: {summary}");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(Failed::from(e)),
    })
    .with_kind(kind)
}

fn catalogue_trials(arch: &str) -> Vec<Trial> {
    let mut trials = Vec::new();
    let wanted = Backend::selected();
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
            let name = format!("{arch}/{}/{}/{scenario}", backend.name(), variant.name);
            let case = Case {
                backend,
                variant: Arc::clone(&variant),
                scenario: scenario.clone(),
                reader,
                external: None,
            };
            trials.push(trial(name, case));
        }
    }
    trials
}

fn external_trials(arch: &str, line: &str) -> Vec<Trial> {
    // `python3 examples/w.py --x` is named `python3+w.py`: file names of the non-option words.
    let writer = line
        .split_whitespace()
        .filter(|w| !w.starts_with('-'))
        .filter_map(|w| std::path::Path::new(w).file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("+");
    Backend::selected()
        .into_iter()
        .map(|backend| {
            let name = format!("{arch}/{}/external/{writer}", backend.name());
            trial(name, Case::external(line, backend))
        })
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    let arch = std::env::consts::ARCH;
    let trials = match std::env::var("CONFORMANCE_EXTERNAL") {
        Ok(line) if !line.trim().is_empty() => external_trials(arch, &line),
        _ => catalogue_trials(arch),
    };
    libtest_mimic::run(&args, trials).exit();
}

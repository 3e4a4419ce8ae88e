// Which conformance cases run: one pure function over plain data, `include!`d by `lib.rs` (the
// conformance runner) and by xtask (`cargo xtask coverage`, which must know the cases without
// building the targets). Uses `PLACEMENT_SCENARIOS` from scenarios.rs, included beside it.

/// Whether `scenario` needs every variant ([`PLACEMENT_SCENARIOS`]).
pub fn is_placement_scenario(scenario: &str) -> bool {
    PLACEMENT_SCENARIOS.contains(&scenario)
}

/// The (variant index, scenario) pairs to run, in catalogue order, given each variant's decoding
/// class and scenarios: every pair with `full`; else the placement scenarios on every variant and
/// each decoding scenario on one variant of each decoding class. Within a class the decoding
/// scenarios go round the class's variants (the first to the first variant offering it, the next
/// to the next, ...), so they also run on varied placements.
pub fn select_cases(variants: &[(String, Vec<String>)], full: bool) -> Vec<(usize, String)> {
    let mut chosen: std::collections::HashSet<(usize, String)> = Default::default();
    if !full {
        let mut classes: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
        for (i, (class, _)) in variants.iter().enumerate() {
            classes.entry(class.as_str()).or_default().push(i);
        }
        for members in classes.values() {
            let mut scenarios: Vec<&String> = Vec::new();
            for &i in members {
                for s in &variants[i].1 {
                    if !is_placement_scenario(s) && !scenarios.contains(&s) {
                        scenarios.push(s);
                    }
                }
            }
            for (turn, scenario) in scenarios.into_iter().enumerate() {
                let offering: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&i| variants[i].1.contains(scenario))
                    .collect();
                chosen.insert((offering[turn % offering.len()], scenario.clone()));
            }
        }
    }
    let mut cases = Vec::new();
    for (i, (_, scenarios)) in variants.iter().enumerate() {
        for scenario in scenarios {
            if full || is_placement_scenario(scenario) || chosen.contains(&(i, scenario.clone())) {
                cases.push((i, scenario.clone()));
            }
        }
    }
    cases
}

//! The churn soak: many snapshots, through one session, of the C writer's `churn` scenario (two
//! workers updating their records in place behind `valid = 0`, two swapping between records, all
//! values derived from one counter), judged as one series by `conformance::ChurnSeries`: every
//! record consistent (no torn record), counters never going back, no error entry.
//!
//! `CHURN_SOAK_SNAPSHOTS` sets the ptrace count (default [`CI_SNAPSHOTS_PTRACE`]),
//! `CHURN_SOAK_EBPF_SNAPSHOTS` the eBPF count (default [`CI_SNAPSHOTS_EBPF`]; each eBPF snapshot
//! loads the sampler and waits for every thread to be sampled).

use std::time::{Duration, Instant};

use conformance::ChurnSeries;
use context_reader::Session;
use context_targets::{catalogue, Backend, RunningTarget};

/// Snapshots in CI: ptrace took 12 to 83 snapshots/s on the 2-core machine (busy writers: each
/// stop waits for the thread to be scheduled, so the rate follows the machine's load), eBPF about
/// 1/s (the sampler is loaded for each snapshot).
pub const CI_SNAPSHOTS_PTRACE: u64 = 300;
pub const CI_SNAPSHOTS_EBPF: u64 = 8;

/// The writer: glibc PIE, local-exec (the churn scenario runs on every variant in the
/// conformance suite; the soak needs one).
const VARIANT: &str = "c-glibc-pie-exe-le";

fn count(backend: Backend) -> u64 {
    let (var, default) = match backend {
        Backend::Ptrace | Backend::Core => ("CHURN_SOAK_SNAPSHOTS", CI_SNAPSHOTS_PTRACE),
        Backend::Ebpf => ("CHURN_SOAK_EBPF_SNAPSHOTS", CI_SNAPSHOTS_EBPF),
    };
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

pub fn run(backend: Backend) -> Result<String, String> {
    let variant = catalogue()
        .into_iter()
        .find(|v| v.name == VARIANT)
        .ok_or(format!("{VARIANT} not in the catalogue"))?;
    let mut target = RunningTarget::spawn(variant.command("churn", backend == Backend::Ebpf))?;
    let ready = target.wait_ready(Duration::from_secs(60))?;
    let mut session =
        Session::new(ready.pid, crate::options(backend)).map_err(|e| format!("reader: {e}"))?;
    let mut series = ChurnSeries::new(&ready.expect);
    let wanted = count(backend);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut taken = 0u64;
    let mut v2_records = 0u64;
    let mut failure = None;
    while taken < wanted {
        let (snapshot, _) = match session.snapshot() {
            Ok(s) => s,
            Err(e) => {
                failure = Some(format!("snapshot {taken}: reader: {e}"));
                break;
            }
        };
        let observed = snapshot.to_json();
        v2_records += snapshot.threads.iter().filter(|t| t.v2.is_some()).count() as u64;
        taken += 1;
        if !series.observe(&observed) {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(60) {
            last_report = Instant::now();
            eprintln!(
                "soak/{}/churn: {taken} of {wanted} snapshots, 0 torn or inconsistent, {:.0}/s",
                backend,
                taken as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let took = started.elapsed();
    let report = series.finish();
    let stuck = crate::proc::stuck_threads(ready.pid, crate::STOP_GRACE);
    if let Some(f) = failure {
        return Err(f);
    }
    if !report.ok() {
        return Err(format!("after {taken} snapshots: {}", report.render(20)));
    }
    if !stuck.is_empty() {
        return Err(format!("{} thread(s) left stopped or traced", stuck.len()));
    }
    let status = target.finish(Duration::from_secs(20))?;
    if !status.success() {
        return Err(format!("the writer exited with {status} after stdin EOF"));
    }
    Ok(format!(
        "{taken} snapshots, 0 torn or inconsistent records ({v2_records} v2 records checked), \
         {:.1} s, {:.0} snapshots/s",
        took.as_secs_f64(),
        taken as f64 / took.as_secs_f64().max(1e-9)
    ))
}

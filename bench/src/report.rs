//! docs/benchmarks.md, the SVG plots and the summary printed on stdout.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::measure::{Point, ReaderRun, Results, Throughput};
use crate::plot::{line_chart, Series};
use crate::point::{TARGET_ATTRIBUTES, TARGET_LABELS};
use crate::stats::{human_us, quantile, Spread};
use crate::target::Rate;

fn mode(busy: bool) -> &'static str {
    if busy {
        "busy"
    } else {
        "idle"
    }
}

/// "12.3 ms" or "≈ 4.1 s" (extrapolated) or "n/a".
fn snapshot_cell(run: &ReaderRun, threads: usize) -> String {
    match run.median_us(threads) {
        Some((us, false)) => human_us(us),
        Some((us, true)) => format!("≈ {} (extrapolated)", human_us(us)),
        None => "n/a".into(),
    }
}

/// Median threads fully read per snapshot (of the workers).
fn read_cell(run: &ReaderRun, threads: usize) -> String {
    let counts: Vec<f64> = run
        .full
        .snapshots
        .iter()
        .map(|s| s.complete as f64)
        .collect();
    match quantile(&counts, 0.5) {
        Some(c) => format!("{c:.0}/{threads}"),
        None => match &run.subset {
            Some((k, sub)) => format!(
                "{}/{k} of a subset",
                sub.snapshots.first().map_or(0, |s| s.complete)
            ),
            None => "none".into(),
        },
    }
}

fn run_note(run: &ReaderRun) -> String {
    let mut notes = Vec::new();
    if let Some(e) = &run.full.error {
        notes.push(format!("error: {e}"));
    }
    if run.full.interrupted {
        notes.push(format!(
            "{} snapshot(s) within the budget",
            run.full.snapshots.len()
        ));
    }
    if let Some((_, sub)) = &run.subset {
        if sub.snapshots.is_empty() {
            notes.push("the subset did not finish within the budget either".into());
        }
        if let Some(e) = &sub.error {
            notes.push(format!("subset error: {e}"));
        }
    }
    notes.join("; ")
}

fn gdb_median(point: &Point) -> Option<f64> {
    let done: Vec<f64> = point
        .gdb
        .iter()
        .filter(|r| !r.timed_out)
        .map(|r| r.wall_us)
        .collect();
    quantile(&done, 0.5)
}

fn gdb_cell(point: &Point) -> String {
    match gdb_median(point) {
        Some(us) => human_us(us),
        None if point.gdb.iter().any(|r| r.timed_out) => format!(
            "> {} (timed out)",
            human_us(point.gdb.iter().map(|r| r.wall_us).fold(0.0, f64::max))
        ),
        None => "n/a".into(),
    }
}

fn gdb_read_cell(point: &Point) -> String {
    let read: Vec<f64> = point.gdb.iter().map(|r| r.read as f64).collect();
    quantile(&read, 0.5).map_or("n/a".into(), |r| format!("{r:.0}/{}", point.threads))
}

/// One line per point for the progress output.
pub fn point_line(p: &Point) -> String {
    let (windows, _) = p.ptrace.windows();
    let stops = Spread::of(&windows).map_or("no stops".into(), |s| {
        format!("stop p50 {} p99 {}", human_us(s.p50), human_us(s.p99))
    });
    format!(
        "ptrace {} ({stops}), ebpf {} (read {}), gdb {}",
        snapshot_cell(&p.ptrace, p.threads),
        snapshot_cell(&p.ebpf, p.threads),
        read_cell(&p.ebpf, p.threads),
        gdb_cell(p)
    )
}

fn pct(rate: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.1}%", rate / base * 100.0)
    } else {
        "n/a".into()
    }
}

/// Mean of the baselines right before and after reader window `i`.
fn baseline(t: &Throughput, i: usize) -> Rate {
    match (t.baselines.get(i), t.baselines.get(i + 1)) {
        (Some(a), Some(b)) => Rate::mean(*a, *b),
        (Some(a), None) => *a,
        _ => Rate::default(),
    }
}

fn baseline_range(t: &Throughput) -> (f64, f64) {
    t.baselines.iter().fold((f64::MAX, 0.0f64), |(lo, hi), b| {
        (lo.min(b.per_second), hi.max(b.per_second))
    })
}

pub fn throughput_line(t: &Throughput) -> String {
    let (lo, hi) = baseline_range(t);
    let mut s = format!("no reader {:.0}-{:.0} M/s", lo / 1e6, hi / 1e6);
    for (i, m) in t.modes.iter().enumerate() {
        let _ = write!(
            s,
            ", {} {} {}",
            m.backend,
            interval_name(m.interval),
            pct(m.rate.per_second, baseline(t, i).per_second)
        );
    }
    s
}

fn interval_name(i: Option<std::time::Duration>) -> String {
    match i {
        Some(d) => format!("{:.0} Hz", 1.0 / d.as_secs_f64()),
        None => "flat out".into(),
    }
}

fn find(results: &Results, threads: usize, busy: bool) -> Option<&Point> {
    results
        .points
        .iter()
        .find(|p| p.threads == threads && p.busy == busy)
}

struct Goal {
    goal: String,
    measured: String,
    met: Option<bool>,
    /// What bounds the figure: the mechanism, written next to a goal that is not met.
    limit: &'static str,
}

const LIMIT_IDLE_SNAPSHOT: &str = "Sleeping threads are stopped one at a time: seize, interrupt, \
     wait for the thread to be woken and reach its stop, the thread pointer (first snapshot only), \
     four levels of reads, detach. That is about ten system calls and a cross-CPU wake-up of the \
     target thread per thread, so the snapshot is about the thread count times the stop window \
     below; threads are seized and detached anew in every snapshot.";
const LIMIT_IDLE_WINDOW: &str = "The window runs from the last moment the thread was seen \
     running to its detach and holds the reads (four process_vm_readv levels, the thread pointer \
     on a first snapshot) and PTRACE_DETACH, each a system call of a few microseconds in this VM; \
     its p99 also holds the moments the reader lost its CPU to other work on this shared host.";
const LIMIT_BUSY_WINDOW: &str = "All running threads are interrupted at once and served in \
     the order they stop. When the scheduler runs many interrupted threads back to back, they stop \
     in a burst and the last of it waits while the reader serves the others. The figure is also an \
     upper bound: a batched thread's window starts at the last moment it was seen running, which \
     can be well before its stop.";
const LIMIT_BUSY_SNAPSHOT: &str = "A busy thread stops only when the scheduler next gives it a \
     CPU. With 1000 spinning threads on 2 CPUs, the threads already served spin again, so the \
     snapshot lasts about one scheduling pass over all of them, whatever the reader does (it runs \
     at SCHED_FIFO, so it is never the one waiting). Holding served threads until all have \
     stopped would shorten the snapshot, and make every stop window as long as the snapshot.";
const LIMIT_EBPF_COST: &str = "Each sample copies the thread's context with one \
     bpf_probe_read_user per dependency level (slot, label set, label array, one span of label \
     strings, the OTEP 4947 record) and sends it through the ring buffer; the figure is the \
     kernel's own run-time accounting of the program, which on this VM is dominated by those \
     copies, each a fault-tolerant user-memory access.";
const LIMIT_EBPF_COVERAGE: &str = "A thread is sampled only after it has run for one sampling \
     period on a CPU; within the window some of 1000 threads sharing 2 CPUs do not get that much \
     CPU time.";

/// Kernel run time, program runs and samples (emitted + dropped) of the eBPF snapshots of the
/// busy or the idle points.
fn ebpf_cost(results: &Results, busy: bool) -> (u64, u64, u64) {
    let (mut time, mut runs, mut samples) = (0, 0, 0);
    for p in results.points.iter().filter(|p| p.busy == busy) {
        for e in p.ebpf.full.snapshots.iter().filter_map(|s| s.ebpf.as_ref()) {
            if e.stats_enabled {
                time += e.run_time_ns;
                runs += e.run_count;
                samples += e.samples + e.drops;
            }
        }
    }
    (time, runs, samples)
}

/// Program run time per watched sample in ns: the busy points' run time, less their unwatched
/// ticks priced at the idle points' mean run (idle threads are never sampled, so every idle run
/// is an unwatched tick), over their samples. Also the upper bound (nothing subtracted) and the
/// price of an unwatched tick.
pub struct SampleCost {
    pub estimate_ns: f64,
    pub upper_bound_ns: f64,
    pub unwatched_ns: Option<f64>,
    pub samples: u64,
    pub runs: u64,
}

fn sample_cost(results: &Results) -> Option<SampleCost> {
    let (time, runs, samples) = ebpf_cost(results, true);
    if samples == 0 || runs == 0 {
        return None;
    }
    let (idle_time, idle_runs, _) = ebpf_cost(results, false);
    let unwatched_ns = (idle_runs > 0).then(|| idle_time as f64 / idle_runs as f64);
    let unwatched_total = unwatched_ns.unwrap_or(0.0) * runs.saturating_sub(samples) as f64;
    let upper_bound_ns = time as f64 / samples as f64;
    Some(SampleCost {
        estimate_ns: ((time as f64 - unwatched_total) / samples as f64).max(0.0),
        upper_bound_ns,
        unwatched_ns,
        samples,
        runs,
    })
}

fn goals(results: &Results) -> Vec<Goal> {
    let big = results
        .config
        .thread_counts
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    let of_big = if big == 1000 {
        String::new()
    } else {
        format!(" (largest measured: {big} threads)")
    };
    let mut goals = Vec::new();
    let idle_big = find(results, big, false);
    let busy_big = find(results, big, true);
    let idle_median = idle_big.and_then(|p| p.ptrace.median_us(big));
    goals.push(Goal {
        limit: LIMIT_IDLE_SNAPSHOT,
        goal: "1000 idle threads: ptrace snapshot at most 15 ms".into(),
        measured: idle_median.map_or("n/a".into(), |(us, x)| {
            format!(
                "{}{}{of_big}",
                human_us(us),
                if x { " (extrapolated)" } else { " (median)" }
            )
        }),
        met: idle_median.map(|(us, _)| us <= 15_000.0),
    });
    let idle_windows: Vec<f64> = results
        .points
        .iter()
        .filter(|p| !p.busy)
        .flat_map(|p| p.ptrace.windows().0)
        .collect();
    let idle_spread = Spread::of(&idle_windows);
    goals.push(Goal {
        limit: LIMIT_IDLE_WINDOW,
        goal: "idle stop window: p50 at most 10 us, p99 at most 100 us".into(),
        measured: idle_spread.map_or("n/a".into(), |s| {
            format!(
                "p50 {}, p99 {} (all {} idle stops)",
                human_us(s.p50),
                human_us(s.p99),
                s.count
            )
        }),
        met: idle_spread.map(|s| s.p50 <= 10.0 && s.p99 <= 100.0),
    });
    let busy_windows = busy_big.map(|p| p.ptrace.windows());
    let busy_spread = busy_windows.as_ref().and_then(|(w, _)| Spread::of(w));
    goals.push(Goal {
        limit: LIMIT_BUSY_WINDOW,
        goal: "1000 busy threads: stop window p99 at most 1 ms".into(),
        measured: busy_spread.map_or_else(
            || match busy_big {
                Some(p) => format!(
                    "n/a: not one thread was read within the budget ({})",
                    run_note(&p.ptrace)
                ),
                None => "n/a".into(),
            },
            |s| {
                let subset = busy_windows.as_ref().is_some_and(|(_, sub)| *sub);
                format!(
                    "p99 {} over {} stops{}{of_big}",
                    human_us(s.p99),
                    s.count,
                    if subset {
                        " (of a subset: no full snapshot fit the budget)"
                    } else {
                        ""
                    }
                )
            },
        ),
        met: busy_spread.map(|s| s.p99 <= 1000.0),
    });
    let busy_median = busy_big.and_then(|p| p.ptrace.median_us(big));
    let ratio = idle_median
        .zip(busy_median)
        .map(|((i, _), (b, x))| (b / i, x));
    // No snapshot of the busy point within the budget: the budget is a lower bound.
    let busy_at_least = busy_big
        .filter(|p| busy_median.is_none() && p.ptrace.full.interrupted)
        .map(|_| results.config.ptrace_budget.as_secs_f64() * 1e6);
    let bound = idle_median.zip(busy_at_least).map(|((i, _), b)| b / i);
    goals.push(Goal {
        limit: LIMIT_BUSY_SNAPSHOT,
        goal: "1000 busy threads: snapshot within 3x of the idle one".into(),
        measured: ratio.map_or_else(
            || match bound {
                Some(r) => format!(
                    "more than {r:.0}x: no snapshot within the {} s budget vs {} idle{of_big}",
                    results.config.ptrace_budget.as_secs(),
                    human_us(idle_median.map_or(0.0, |i| i.0))
                ),
                None => "n/a".into(),
            },
            |(r, x)| {
                format!(
                    "{r:.1}x ({} busy vs {} idle{}){of_big}",
                    human_us(busy_median.map_or(0.0, |b| b.0)),
                    human_us(idle_median.map_or(0.0, |i| i.0)),
                    if x { ", busy extrapolated" } else { "" }
                )
            },
        ),
        met: ratio.map(|(r, _)| r <= 3.0).or(bound.map(|r| r <= 3.0)),
    });
    let cost = sample_cost(results);
    goals.push(Goal {
        limit: LIMIT_EBPF_COST,
        goal: format!(
            "eBPF: at most 1 us of program run time per sample ({TARGET_LABELS} v1 labels, 640-byte OTEP 4947 record)"
        ),
        measured: cost.as_ref().map_or(
            "n/a (no samples, or BPF run-time statistics unavailable)".into(),
            |c| {
                format!(
                    "{:.2} us per sample (busy points: {} samples of {} program runs; the other runs \
                     priced at the idle points' {}; without that correction {:.2} us)",
                    c.estimate_ns / 1e3,
                    c.samples,
                    c.runs,
                    c.unwatched_ns
                        .map_or("n/a".into(), |n| format!("{:.2} us per unwatched tick", n / 1e3)),
                    c.upper_bound_ns / 1e3
                )
            },
        ),
        met: cost.as_ref().map(|c| c.estimate_ns <= 1000.0),
    });
    let coverage: Vec<f64> = busy_big
        .map(|p| {
            p.ebpf
                .full
                .snapshots
                .iter()
                .map(|s| s.complete as f64 / big as f64)
                .collect()
        })
        .unwrap_or_default();
    let cov = quantile(&coverage, 0.5);
    // The busy point ran but no eBPF snapshot finished: nothing was read.
    let none_read = busy_big.filter(|p| cov.is_none() && p.ebpf.full.snapshots.is_empty());
    goals.push(Goal {
        limit: LIMIT_EBPF_COVERAGE,
        goal: "eBPF --once: at least 95% of 1000 busy threads read in the default window".into(),
        measured: cov.map_or_else(
            || match none_read {
                Some(p) => format!("0%: no eBPF snapshot finished ({})", run_note(&p.ebpf)),
                None => "n/a".into(),
            },
            |c| {
                format!(
                    "{:.1}% (median of {} snapshots){of_big}",
                    c * 100.0,
                    coverage.len()
                )
            },
        ),
        met: cov.map(|c| c >= 0.95).or(none_read.map(|_| false)),
    });
    goals
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    }
}

fn plots(results: &Results, out: &Path) -> Result<()> {
    let series = |name: String, f: &dyn Fn(&Point) -> Option<f64>, busy: bool| Series {
        name,
        points: results
            .points
            .iter()
            .filter(|p| p.busy == busy)
            .filter_map(|p| Some((p.threads as f64, f(p)?)))
            .collect(),
    };
    let mut snap = Vec::new();
    for busy in [false, true] {
        let ms = |v: f64| v / 1e3;
        snap.push(series(
            format!("ptrace, {}", mode(busy)),
            &|p| p.ptrace.median_us(p.threads).map(|(v, _)| ms(v)),
            busy,
        ));
        snap.push(series(
            format!("eBPF, {}", mode(busy)),
            &|p| p.ebpf.median_us(p.threads).map(|(v, _)| ms(v)),
            busy,
        ));
        snap.push(series(
            format!("gdb, {}", mode(busy)),
            &|p| gdb_median(p).map(ms),
            busy,
        ));
    }
    line_chart(
        &out.join("bench-snapshot.svg"),
        "Snapshot time (median; ptrace extrapolated where no full snapshot fit the budget)",
        "ms per snapshot",
        true,
        &snap,
    )?;
    let mut stops = Vec::new();
    for busy in [false, true] {
        for (q, name) in [(0.5, "p50"), (0.99, "p99"), (1.0, "max")] {
            stops.push(series(
                format!("{name}, {}", mode(busy)),
                &|p| quantile(&p.ptrace.windows().0, q),
                busy,
            ));
        }
    }
    line_chart(
        &out.join("bench-stop-windows.svg"),
        "ptrace stop window per thread",
        "us stopped",
        true,
        &stops,
    )?;
    let mut tput = Vec::new();
    if let Some(first) = results.throughput.first() {
        for (i, m) in first.modes.iter().enumerate() {
            tput.push(Series {
                name: format!("{} {}", m.backend, interval_name(m.interval)),
                points: results
                    .throughput
                    .iter()
                    .filter_map(|t| {
                        let base = baseline(t, i).per_second;
                        let rate = t.modes.get(i)?.rate.per_second;
                        (base > 0.0).then(|| (t.threads as f64, rate / base * 100.0))
                    })
                    .collect(),
            });
        }
    }
    line_chart(
        &out.join("bench-throughput.svg"),
        "Target throughput while being read (% of no reader)",
        "% of the throughput without a reader",
        false,
        &tput,
    )?;
    Ok(())
}

pub fn markdown(results: &Results) -> String {
    let m = &results.machine;
    let cfg = &results.config;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by `cargo xtask bench{}` on {} from commit {}; the run took {:.0} min {:.0} s. \
         Every figure below is from that one run: run the command again to refresh this page and \
         the plots next to it.\n",
        if cfg.quick { " --quick" } else { "" },
        m.date,
        m.commit,
        (results.runtime.as_secs() / 60) as f64,
        (results.runtime.as_secs() % 60) as f64
    );
    let _ = writeln!(w, "## Machine\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| CPUs (`nproc`) | {} |", m.nproc);
    let _ = writeln!(w, "| CPU model | {} |", m.cpu);
    let _ = writeln!(w, "| kernel | {} |", m.kernel);
    let _ = writeln!(
        w,
        "| load average (1, 5, 15 min) at start | {} |",
        m.load_start
    );
    let _ = writeln!(w, "| load average at end | {} |", m.load_end);
    let _ = writeln!(
        w,
        "\nThe load average includes the benchmark's own busy targets. When it was already high at \
         the start, other work shared the machine and the absolute times are noisy: compare the \
         ratios within this page rather than single figures.\n"
    );
    let _ = writeln!(w, "## Goals (issue 10)\n");
    let _ = writeln!(
        w,
        "| goal | measured | | what limits it |\n|---|---|---|---|"
    );
    for g in goals(results) {
        let limit = if g.met == Some(true) { "" } else { g.limit };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {limit} |",
            g.goal,
            g.measured,
            met(g.met)
        );
    }
    let _ = writeln!(w, "\n## What is measured\n");
    let _ = writeln!(
        w,
        "* **Target** (`bench/c/target.c`): N worker threads, each publishing custom-labels v1 \
         with {TARGET_LABELS} labels and a 640-byte OTEP 4947 record ({TARGET_ATTRIBUTES} \
         attributes), plus an OTEP 4719 process context with the attribute key map. *Idle* workers \
         sleep in a futex; *busy* ones spin, each incrementing its own counter. \"read\" counts the \
         workers whose {TARGET_LABELS} labels and {TARGET_ATTRIBUTES} attributes were all read."
    );
    let _ = writeln!(
        w,
        "* **ptrace**: `Session::snapshot` of the reader library in a loop, after the read plan \
         was discovered once (discovery is listed apart). Per point at most {}/{} snapshots \
         (idle/busy; fewer at 1000 threads) within a {} s budget. When not even one full snapshot \
         fits the budget, one snapshot of {} evenly spread workers (`SnapshotOptions::threads`) \
         gives the stop windows, and the full time is extrapolated from it (marked ≈).",
        cfg.ptrace_count(2, false),
        cfg.ptrace_count(2, true),
        cfg.ptrace_budget.as_secs(),
        cfg.subset
    );
    let _ = writeln!(
        w,
        "* **eBPF**: `Session::snapshot` with the eBPF backend and its defaults (a task-clock \
         event per thread firing every 1 ms of that thread's CPU time, a window of at most 2 s \
         that ends once every thread was sampled). The program is loaded once per measuring \
         process and shared by its snapshots; each snapshot attaches and detaches its events. \
         Idle threads are never on CPU, so they are never sampled and an idle snapshot always \
         lasts the whole window."
    );
    let _ = writeln!(
        w,
        "* **gdb**: `{}` (wall time, gdb's start-up and symbol loading included; \"read\" = \
         threads for which it printed a non-null slot). A run is killed after {} s.",
        crate::target::gdb_command(0)
            .get_args()
            .map(|a| {
                let a = a.to_string_lossy();
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    a.into_owned()
                }
            })
            .fold("gdb".to_string(), |acc, a| format!("{acc} {a}"))
            .replace("-p 0", "-p PID"),
        cfg.gdb_timeout.as_secs()
    );
    let _ = writeln!(
        w,
        "* **Throughput**: the sum of the busy workers' counters per second, over {} s windows: \
         without a reader, then with each backend taking a snapshot every second (1 Hz) and back \
         to back (flat out), each reader window between two reader-less ones.\n",
        cfg.throughput_window.as_secs()
    );

    let _ = writeln!(
        w,
        "## Snapshot time\n\n![snapshot time](bench-snapshot.svg)\n"
    );
    let _ = writeln!(
        w,
        "| threads | target | ptrace | ptrace read | eBPF | eBPF read | gdb | gdb read | gdb / ptrace | notes |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|");
    for p in &results.points {
        let ratio = gdb_median(p)
            .zip(p.ptrace.median_us(p.threads))
            .map_or("n/a".into(), |(g, (t, _))| format!("{:.1}x", g / t));
        let mut notes = Vec::new();
        for (name, run) in [("ptrace", &p.ptrace), ("eBPF", &p.ebpf)] {
            let n = run_note(run);
            if !n.is_empty() {
                notes.push(format!("{name}: {n}"));
            }
        }
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.threads,
            mode(p.busy),
            snapshot_cell(&p.ptrace, p.threads),
            read_cell(&p.ptrace, p.threads),
            snapshot_cell(&p.ebpf, p.threads),
            read_cell(&p.ebpf, p.threads),
            gdb_cell(p),
            gdb_read_cell(p),
            ratio,
            notes.join("; ")
        );
    }
    let discovery: Vec<f64> = results
        .points
        .iter()
        .map(|p| p.ptrace.full.discovery_us)
        .collect();
    if let Some(d) = quantile(&discovery, 0.5) {
        let _ = writeln!(
            w,
            "\nPlan discovery (maps and ELF, once per session, not in the times above): median {}.",
            human_us(d)
        );
    }
    let _ = writeln!(
        w,
        "\n### Busy vs idle (median snapshot time, busy / idle)\n"
    );
    let _ = writeln!(w, "| threads | ptrace | eBPF | gdb |\n|---|---|---|---|");
    for &n in &cfg.thread_counts {
        let (Some(i), Some(b)) = (find(results, n, false), find(results, n, true)) else {
            continue;
        };
        let r = |x: Option<f64>, y: Option<f64>| {
            x.zip(y)
                .map_or("n/a".into(), |(b, i)| format!("{:.1}x", b / i))
        };
        let _ = writeln!(
            w,
            "| {n} | {} | {} | {} |",
            r(
                b.ptrace.median_us(n).map(|v| v.0),
                i.ptrace.median_us(n).map(|v| v.0)
            ),
            r(
                b.ebpf.median_us(n).map(|v| v.0),
                i.ebpf.median_us(n).map(|v| v.0)
            ),
            r(gdb_median(b), gdb_median(i))
        );
    }

    let _ = writeln!(
        w,
        "\n## ptrace stop windows\n\n![stop windows](bench-stop-windows.svg)\n"
    );
    let _ = writeln!(
        w,
        "| threads | target | stops | p50 | p99 | max |\n|---|---|---|---|---|---|"
    );
    for p in &results.points {
        let (windows, subset) = p.ptrace.windows();
        match Spread::of(&windows) {
            Some(sp) => {
                let _ = writeln!(
                    w,
                    "| {} | {} | {}{} | {} | {} | {} |",
                    p.threads,
                    mode(p.busy),
                    sp.count,
                    if subset { " (subset)" } else { "" },
                    human_us(sp.p50),
                    human_us(sp.p99),
                    human_us(sp.max)
                );
            }
            None => {
                let _ = writeln!(
                    w,
                    "| {} | {} | 0 | n/a | n/a | n/a |",
                    p.threads,
                    mode(p.busy)
                );
            }
        }
    }

    let _ = writeln!(w, "\n## eBPF program cost (kernel BPF statistics)\n");
    let _ = writeln!(
        w,
        "Program runs count every sampling tick on every CPU, also those that hit another process \
         (cheaper: the program returns early); \"per sample\" divides the whole run time by the \
         samples (emitted and dropped), an upper bound of the cost of one watched sample. Idle \
         threads are never sampled, so the idle rows price an unwatched tick; the goal above \
         subtracts the busy rows' unwatched ticks at that price.\n"
    );
    let _ = writeln!(
        w,
        "| threads | target | snapshots | samples | drops | program runs | mean per run | run time per sample | read |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|");
    for p in &results.points {
        let costs: Vec<_> = p
            .ebpf
            .full
            .snapshots
            .iter()
            .filter_map(|s| s.ebpf.clone())
            .collect();
        let samples: u64 = costs.iter().map(|c| c.samples).sum();
        let drops: u64 = costs.iter().map(|c| c.drops).sum();
        let runs: u64 = costs.iter().map(|c| c.run_count).sum();
        let time: u64 = costs.iter().map(|c| c.run_time_ns).sum();
        let enabled = costs.iter().all(|c| c.stats_enabled) && !costs.is_empty();
        let per = |n: u64| {
            if enabled && n > 0 {
                format!("{:.2} us", time as f64 / n as f64 / 1e3)
            } else {
                "n/a".into()
            }
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {samples} | {drops} | {runs} | {} | {} | {} |",
            p.threads,
            mode(p.busy),
            costs.len(),
            per(runs),
            per(samples + drops),
            read_cell(&p.ebpf, p.threads)
        );
    }

    let _ = writeln!(
        w,
        "\n## Target throughput\n\n![throughput](bench-throughput.svg)\n"
    );
    let _ = writeln!(
        w,
        "Counter increments per second (millions), and in parentheses the share of the throughput \
         without a reader (the mean of the reader-less windows right before and after) and the \
         snapshots taken in the window. Reader-less windows alternate with the reader windows; \
         their spread shows the noise of the machine. \"Per CPU second\" divides by the CPU time \
         the target got instead of the wall time: it does not move with the CPU that other work \
         takes, but it also hides the CPU that the reader itself takes from the target.\n"
    );
    let mut header = "| busy threads | no reader (min-max) |".to_string();
    let mut rule = "|---|---|".to_string();
    if let Some(t) = results.throughput.first() {
        for m in &t.modes {
            let _ = write!(header, " {} {} |", m.backend, interval_name(m.interval));
            rule.push_str("---|");
        }
    }
    let _ = writeln!(w, "{header}\n{rule}");
    for t in &results.throughput {
        let (lo, hi) = baseline_range(t);
        let mut row = format!("| {} | {:.0}-{:.0} |", t.threads, lo / 1e6, hi / 1e6);
        for (i, m) in t.modes.iter().enumerate() {
            let base = baseline(t, i);
            let err = m
                .error
                .as_ref()
                .map_or(String::new(), |e| format!("; error: {e}"));
            let _ = write!(
                row,
                " {:.0} ({}; per CPU second {}; {} snapshots{err}) |",
                m.rate.per_second / 1e6,
                pct(m.rate.per_second, base.per_second),
                pct(m.rate.per_cpu_second, base.per_cpu_second),
                m.snapshots
            );
        }
        let _ = writeln!(w, "{row}");
    }
    s
}

pub fn write(results: &Results, out: &Path) -> Result<()> {
    plots(results, out)?;
    let md = markdown(results);
    let path = out.join("benchmarks.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!("\nGoals (issue 10), measured on this machine:");
    for g in goals(results) {
        println!("  [{}] {}: {}", met(g.met), g.goal, g.measured);
    }
    println!("\nRatios:");
    for p in &results.points {
        if let (Some(g), Some((t, _))) = (gdb_median(p), p.ptrace.median_us(p.threads)) {
            println!(
                "  {:>5} threads {}: gdb / ptrace = {:.1}x",
                p.threads,
                mode(p.busy),
                g / t
            );
        }
    }
    for &n in &results.config.thread_counts {
        if let (Some(i), Some(b)) = (find(results, n, false), find(results, n, true)) {
            if let (Some((iv, _)), Some((bv, _))) = (i.ptrace.median_us(n), b.ptrace.median_us(n)) {
                println!("  {n:>5} threads: ptrace busy / idle = {:.1}x", bv / iv);
            }
        }
    }
    for t in &results.throughput {
        println!(
            "  {:>5} busy threads: throughput {}",
            t.threads,
            throughput_line(t)
        );
    }
    println!(
        "\nWrote {} and bench-*.svg ({:.0} s)",
        path.display(),
        results.runtime.as_secs_f64()
    );
    Ok(())
}

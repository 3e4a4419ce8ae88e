//! `cargo bench -p context-reader`: what a snapshot costs the target, as distributions.
//!
//! For writers with 2, 16, 128 and 1000 idle threads and 2, 16 and 51 busy ones it takes repeated
//! ptrace snapshots in one session and reports the snapshot time (median, p90), the per-thread
//! stop window (median, p99, max) and how many threads went through the batch path, then the
//! eBPF backend's mean program run time. Needs root. Nothing here asserts a time.

#[path = "../tests/it/writer.rs"]
#[allow(dead_code)]
mod writer;

use std::time::Duration;

use context_reader::snapshot::Backend;
use context_reader::{Session, SnapshotOptions};
use writer::{build_writer, Libc, Placement, Writer};

/// Snapshots per writer; fewer for the big ones, which take longer and load a shared machine.
fn rounds(threads: usize, busy: bool) -> usize {
    match (threads, busy) {
        (t, false) if t >= 1000 => 10,
        (t, true) if t > 16 => 10,
        _ => 30,
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; this bench has no tests
    }
    let exe = build_writer(Libc::Glibc, Placement::TlsdescDso);
    println!(
        "{:<22} {:>12} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "writer",
        "snap med us",
        "snap p90 us",
        "stop med us",
        "stop p99 us",
        "stop max us",
        "batched"
    );
    // Busy writers spin every thread: on a 2-core machine 128 of them starve everything else.
    for (busy, counts) in [(false, &[2, 16, 128, 1000][..]), (true, &[2, 16, 51][..])] {
        for &threads in counts {
            let n = threads.to_string();
            let mut args = vec!["--threads", n.as_str()];
            if busy {
                args.push("--busy");
            }
            let w = Writer::start_with(&exe, &args);
            let mut session = Session::new(w.pid(), SnapshotOptions::default()).expect("session");
            let (mut snaps, mut stops, mut batched) = (Vec::new(), Vec::new(), 0);
            for _ in 0..rounds(threads, busy) {
                let (_, stats) = session.snapshot().expect("snapshot");
                snaps.push(stats.total);
                stops.extend(stats.stops.windows);
                batched += stats.stops.batched;
            }
            snaps.sort();
            stops.sort();
            println!(
                "{:<22} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>8}",
                format!("{threads} threads{}", if busy { ", busy" } else { "" }),
                us(quantile(&snaps, 0.5)),
                us(quantile(&snaps, 0.9)),
                us(quantile(&stops, 0.5)),
                us(quantile(&stops, 0.99)),
                us(*stops.last().unwrap()),
                batched,
            );
        }
    }
    let w = Writer::start_with(&exe, &["--threads", "2", "--busy"]);
    let opts = SnapshotOptions {
        backend: Backend::Ebpf,
        ..SnapshotOptions::default()
    };
    match Session::new(w.pid(), opts).and_then(|mut s| s.snapshot()) {
        Ok((_, stats)) => {
            let k = stats.ebpf.expect("ebpf stats").kernel;
            println!(
                "ebpf: {} samples, {} drops, mean program run {} over {} runs",
                k.samples,
                k.drops,
                k.mean_run_ns()
                    .map_or("n/a".into(), |ns| format!("{ns:.0} ns")),
                k.run_count
            );
        }
        Err(e) => println!("ebpf: unavailable: {e}"),
    }
}

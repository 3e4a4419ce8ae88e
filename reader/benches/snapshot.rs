//! `cargo bench -p context-reader`: what a snapshot costs the target, as distributions.
//!
//! For writers with 2, 16 and 128 idle threads and 2 and 16 busy ones it takes repeated ptrace snapshots and
//! reports the snapshot time and the per-thread stop window (median, p90, max), then the eBPF
//! backend's mean program run time. Needs root. Nothing here asserts a time.

#[path = "../tests/it/writer.rs"]
#[allow(dead_code)]
mod writer;

use std::time::Duration;

use context_reader::snapshot::BackendKind;
use context_reader::{Session, SnapshotOptions};
use writer::{build_writer, Libc, Placement, Writer};

const ROUNDS: usize = 30;

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
        "{:<22} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "writer", "snap med us", "snap p90 us", "stop med us", "stop p90 us", "stop max us"
    );
    // Busy writers spin every thread: on a 2-core machine 128 of them starve everything else.
    for (busy, counts) in [(false, &[2, 16, 128][..]), (true, &[2, 16][..])] {
        for &threads in counts {
            let n = threads.to_string();
            let mut args = vec!["--threads", n.as_str()];
            if busy {
                args.push("--busy");
            }
            let w = Writer::start_with(&exe, &args);
            let mut session = Session::new(w.pid(), SnapshotOptions::default()).expect("session");
            let (mut snaps, mut stops) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                let (_, stats) = session.snapshot().expect("snapshot");
                snaps.push(stats.total);
                stops.extend(stats.stops.windows);
            }
            snaps.sort();
            stops.sort();
            println!(
                "{:<22} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
                format!("{threads} threads{}", if busy { ", busy" } else { "" }),
                us(quantile(&snaps, 0.5)),
                us(quantile(&snaps, 0.9)),
                us(quantile(&stops, 0.5)),
                us(quantile(&stops, 0.9)),
                us(*stops.last().unwrap()),
            );
        }
    }
    let w = Writer::start_with(&exe, &["--threads", "2", "--busy"]);
    let opts = SnapshotOptions {
        backend: BackendKind::Ebpf,
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

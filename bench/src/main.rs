//! `context-bench` (run by `cargo xtask bench`): what reading a process costs, side by side for the
//! ptrace backend, the eBPF backend and gdb, written to docs/benchmarks.md with SVG plots.
//!
//! Every reader measurement runs in a child process of this binary (`context-bench point`), which
//! uses the reader as a library and stops itself at a time budget (see point.rs). Nothing here
//! asserts a time: the goals of issue 10 are printed with the measured figure and met / not met.

mod measure;
mod plot;
mod point;
mod report;
mod stats;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "context-bench",
    about = "Benchmarks context-reader against gdb"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// A short run: fewer snapshots per point, shorter budgets and throughput windows.
    #[arg(long)]
    quick: bool,
    /// Where benchmarks.md and the plots go (default: docs/ of the workspace, or
    /// target/bench-quick/ with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Thread counts of the target (default 2,16,128,1000).
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
}

#[derive(Subcommand)]
enum Cmd {
    /// One measurement with the reader library; prints JSON (used by the driver).
    #[command(hide = true)]
    Point(point::PointArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Point(args)) => {
            let result = point::run(&args);
            println!(
                "{}",
                serde_json::to_string(&result).expect("results serialise")
            );
            ExitCode::SUCCESS
        }
        None => match measure::run_all(&cli.run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("context-bench: error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

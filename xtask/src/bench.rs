//! `cargo xtask bench`: installs what the benchmark needs (the host packages and gdb, its
//! baseline), then runs the `context-bench` driver in release mode. The driver is a crate of its
//! own (bench/) because it links the reader with its eBPF backend, whose build needs clang: xtask
//! itself must build on a fresh machine before `setup` has installed anything.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::paths::Paths;
use crate::process::run;
use crate::setup;

/// What the user asked of the benchmark.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BenchArgs {
    /// A short run (fewer snapshots, shorter budgets; written to target/bench-quick/ unless --out).
    #[arg(long)]
    pub quick: bool,
    /// Thread counts of the target, comma-separated (default 2,16,128,1000).
    #[arg(long, value_delimiter = ',')]
    pub threads: Option<Vec<usize>>,
    /// Directory for benchmarks.md and the plots (default docs/).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The command that runs the driver: release build, so the reader is measured as shipped.
pub fn driver_command(mut cargo: Command, args: &BenchArgs) -> Command {
    cargo.args(["run", "--release", "-p", "context-bench", "--"]);
    if args.quick {
        cargo.arg("--quick");
    }
    if let Some(threads) = &args.threads {
        let list: Vec<String> = threads.iter().map(|t| t.to_string()).collect();
        cargo.arg("--threads").arg(list.join(","));
    }
    if let Some(out) = &args.out {
        cargo.arg("--out").arg(out);
    }
    cargo
}

pub fn bench(paths: &Paths, args: &BenchArgs) -> Result<()> {
    setup::setup(
        setup::Legs {
            x86_64: true,
            aarch64: false,
            bench: true,
            tracers: false,
        },
        &paths.cache,
    )?;
    run(&mut driver_command(crate::host_cargo(paths), args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::describe;

    #[test]
    fn driver_runs_in_release_with_the_users_choices() {
        let plain = driver_command(Command::new("cargo"), &BenchArgs::default());
        assert_eq!(describe(&plain), "cargo run --release -p context-bench --");
        let chosen = driver_command(
            Command::new("cargo"),
            &BenchArgs {
                quick: true,
                threads: Some(vec![2, 1000]),
                out: Some(PathBuf::from("/tmp/b")),
            },
        );
        assert_eq!(
            describe(&chosen),
            "cargo run --release -p context-bench -- --quick --threads 2,1000 --out /tmp/b"
        );
    }
}

//! `cargo xtask soak`: the long runs of the hostile suite (conformance/tests/hostile.rs): the kill
//! test and the churn soak with counts far above CI's, through the environment variables the test
//! binary reads.

use anyhow::Result;
use std::process::Command;

/// What to run and how many times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Soak {
    /// Reader kills of the kill test (`KILL_TEST_KILLS`).
    pub kills: u64,
    /// ptrace snapshots of the churn soak (`CHURN_SOAK_SNAPSHOTS`).
    pub snapshots: u64,
    /// eBPF snapshots of the churn soak (`CHURN_SOAK_EBPF_SNAPSHOTS`); 0 leaves eBPF out.
    pub ebpf_snapshots: u64,
}

/// The `cargo test` command of one soak: the kill test and the churn soak trials only.
pub fn command(cmd: &mut Command, soak: &Soak) {
    let backends = if soak.ebpf_snapshots > 0 {
        "ptrace,ebpf"
    } else {
        "ptrace"
    };
    cmd.args([
        "test",
        "-p",
        "conformance",
        "--test",
        "hostile",
        "--",
        "--nocapture",
        "--test-threads",
        "1",
        "--skip",
        "hostile/",
    ])
    .env("CONFORMANCE_BACKENDS", backends)
    .env("KILL_TEST_KILLS", soak.kills.to_string())
    .env("CHURN_SOAK_SNAPSHOTS", soak.snapshots.to_string())
    .env("CHURN_SOAK_EBPF_SNAPSHOTS", soak.ebpf_snapshots.to_string());
}

/// Builds the reader binary (the kill test runs it) and runs the soak.
pub fn run(cargo: impl Fn() -> Command, soak: &Soak) -> Result<()> {
    crate::process::run(cargo().args(["build", "-p", "context-reader", "--bins"]))?;
    let mut cmd = cargo();
    command(&mut cmd, soak);
    crate::process::run(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soak_counts_go_to_the_environment_and_hostile_cases_are_skipped() {
        let mut cmd = Command::new("cargo");
        command(
            &mut cmd,
            &Soak {
                kills: 10_000,
                snapshots: 1_000_000,
                ebpf_snapshots: 0,
            },
        );
        assert_eq!(
            crate::process::describe(&cmd),
            "cargo test -p conformance --test hostile -- --nocapture --test-threads 1 --skip hostile/"
        );
        let env: Vec<_> = cmd.get_envs().collect();
        for (k, v) in [
            ("CONFORMANCE_BACKENDS", "ptrace"),
            ("KILL_TEST_KILLS", "10000"),
            ("CHURN_SOAK_SNAPSHOTS", "1000000"),
            ("CHURN_SOAK_EBPF_SNAPSHOTS", "0"),
        ] {
            assert!(env.contains(&(k.as_ref(), Some(v.as_ref()))), "{k}={v}");
        }
    }
}

//! The benchmark target process (bench/c/target.c) and the gdb baseline.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running target: N worker threads publishing context; killed on drop.
pub struct Target {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub pid: i32,
    pub threads: usize,
}

impl Target {
    pub fn start(threads: usize, busy: bool) -> Result<Target> {
        let mut cmd = Command::new(env!("BENCH_TARGET"));
        cmd.arg("--threads").arg(threads.to_string());
        if busy {
            cmd.arg("--busy");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", env!("BENCH_TARGET")))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).context("reading READY")?;
        let pid = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("the target said {line:?}, not READY <pid>"))?;
        Ok(Target {
            child,
            stdin,
            stdout,
            pid,
            threads,
        })
    }

    /// The sum of the workers' counters, the target's CLOCK_MONOTONIC time and its CPU time (all
    /// threads), both in ns.
    pub fn count(&mut self) -> Result<(u64, u64, u64)> {
        self.stdin.write_all(b"c\n")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("COUNT"), Some(n), Some(t), Some(cpu)) => {
                Ok((n.parse()?, t.parse()?, cpu.parse()?))
            }
            _ => bail!("the target answered {line:?}"),
        }
    }

    /// The worker tids (every task but the main thread), in /proc order.
    pub fn worker_tids(&self) -> Vec<i32> {
        let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .filter(|&t| t != self.pid)
                    .collect()
            })
            .unwrap_or_default();
        tids.sort_unstable();
        tids
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The target's counter increments per wall-clock second and per second of its own CPU time.
/// On a machine shared with other work the first follows the CPU the target gets; the second
/// shows whether the work it did per CPU second changed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub per_cpu_second: f64,
}

impl Rate {
    pub fn mean(a: Rate, b: Rate) -> Rate {
        Rate {
            per_second: (a.per_second + b.per_second) / 2.0,
            per_cpu_second: (a.per_cpu_second + b.per_cpu_second) / 2.0,
        }
    }
}

/// The target's rate while `during` runs.
pub fn throughput(target: &mut Target, during: impl FnOnce() -> Result<()>) -> Result<Rate> {
    let (c0, t0, cpu0) = target.count()?;
    during()?;
    let (c1, t1, cpu1) = target.count()?;
    if t1 <= t0 || cpu1 <= cpu0 {
        bail!("the target's clocks did not advance");
    }
    let n = c1.saturating_sub(c0) as f64;
    Ok(Rate {
        per_second: n / ((t1 - t0) as f64 / 1e9),
        per_cpu_second: n / ((cpu1 - cpu0) as f64 / 1e9),
    })
}

/// One gdb run over the target.
#[derive(Debug, Clone)]
pub struct GdbRun {
    pub wall_us: f64,
    /// Threads for which gdb printed a non-null `custom_labels_current_set`.
    pub read: usize,
    pub timed_out: bool,
}

/// The gdb command line of the baseline: attach, read every thread's v1 TLS slot, detach.
pub fn gdb_command(pid: i32) -> Command {
    let mut cmd = Command::new("gdb");
    cmd.args([
        "-p",
        &pid.to_string(),
        "-batch",
        "-nx",
        "-iex",
        "set debuginfod enabled off",
        "-ex",
        "thread apply all -q print/x (long)custom_labels_current_set",
    ]);
    cmd
}

/// Lines of gdb's output that show a non-null slot (`$12 = 0x7f...`).
pub fn count_read_slots(output: &str) -> usize {
    output
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('$')?
                .split_once(" = ")
                .map(|(_, v)| v)
        })
        .filter(|v| v.starts_with("0x") && u64::from_str_radix(&v[2..], 16).is_ok_and(|n| n != 0))
        .count()
}

pub fn run_gdb(pid: i32, timeout: Duration) -> Result<GdbRun> {
    let started = Instant::now();
    let mut child = gdb_command(pid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting gdb (cargo xtask bench installs it)")?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut timed_out = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() >= timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            // gdb stops threads with SIGSTOP: once it is gone, make sure none stays stopped.
            for _ in 0..5 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGCONT,
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall_us = started.elapsed().as_secs_f64() * 1e6;
    let text = reader.join().unwrap_or_default();
    Ok(GdbRun {
        wall_us,
        read: count_read_slots(&text),
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_non_null_slots_in_gdb_output() {
        let out = "__GI___libc_read (nbytes=4096) at read.c:26\n\
                   26\tread.c: No such file or directory.\n\
                   $1 = 0x7fa954000b70\n$2 = 0x7fa960000b70\n$3 = 0x0\n\
                   Cannot find thread-local storage for Thread 0x7f (LWP 9)\n\
                   [Inferior 1 (process 20512) detached]\n";
        assert_eq!(count_read_slots(out), 2);
    }
}

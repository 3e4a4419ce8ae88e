//! The target protocol (conformance.md section 4): spawn a writer, wait for its `CONTEXT-READY`
//! line (with a timeout, never a sleep), and shut it down by closing stdin. A `RunningTarget` runs
//! the writer in its own process group and kills that group on drop and on every timeout, so no
//! writer (nor a process it started) outlives a failed or panicking trial.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The parsed `CONTEXT-READY` document.
#[derive(Debug, Clone)]
pub struct Ready {
    pub protocol: u64,
    pub pid: i32,
    pub writer: String,
    /// The snapshot a correct reader must report (section 3 shape).
    pub expect: serde_json::Value,
    /// Writer-specific extras (our C writer: TLS slot offset, fillers, mapping name).
    pub notes: serde_json::Value,
}

const READY_PREFIX: &str = "CONTEXT-READY ";

/// Longest stdout line kept (a `CONTEXT-READY` document of hundreds of threads is well below it);
/// a longer line is cut there, so a writer cannot make the reader hold unbounded output.
const MAX_LINE: u64 = 16 << 20;
/// Stdout lines buffered ahead of `wait_ready`; past it the reading thread waits, so a writer that
/// keeps printing after `CONTEXT-READY` only blocks itself.
const MAX_QUEUED_LINES: usize = 1024;
/// How often a wait looks at the SIGINT/SIGTERM flag (set only where the binary installed its
/// handler: `context-reader certify`), so Ctrl-C ends a trial with the writer killed.
const POLL: Duration = Duration::from_millis(50);

fn interrupted() -> bool {
    crate::sys::interrupted()
}

impl Ready {
    /// Parses one stdout line; `None` if it is not a `CONTEXT-READY` line.
    pub fn parse_line(line: &str) -> Option<Result<Ready, String>> {
        let json = line.strip_prefix(READY_PREFIX)?;
        Some(Self::parse_json(json))
    }

    fn parse_json(json: &str) -> Result<Ready, String> {
        let doc: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("CONTEXT-READY is not JSON: {e}"))?;
        let protocol = doc["protocol"]
            .as_u64()
            .ok_or("CONTEXT-READY: no \"protocol\"")?;
        if protocol != 1 {
            return Err(format!(
                "CONTEXT-READY: protocol {protocol}, this runner speaks 1"
            ));
        }
        let pid = doc["pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or("CONTEXT-READY: no \"pid\"")?;
        let writer = doc["writer"].as_str().unwrap_or("").to_string();
        let expect = doc
            .get("expect")
            .cloned()
            .ok_or("CONTEXT-READY: no \"expect\"")?;
        if !expect.is_object() {
            return Err("CONTEXT-READY: \"expect\" is not an object".to_string());
        }
        let notes = doc.get("notes").cloned().unwrap_or(serde_json::Value::Null);
        Ok(Ready {
            protocol,
            pid,
            writer,
            expect,
            notes,
        })
    }
}

/// A spawned target; killed and reaped on drop unless `finish` already reaped it.
pub struct RunningTarget {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Disconnected once the stderr reader has seen end of file.
    stderr_closed: Receiver<()>,
    description: String,
}

impl RunningTarget {
    /// Spawns `cmd` with piped stdin/stdout/stderr, in a process group of its own.
    pub fn spawn(mut cmd: Command) -> Result<RunningTarget, String> {
        let description = format!("{cmd:?}");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {description}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut stderr_pipe = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, lines) = mpsc::sync_channel(MAX_QUEUED_LINES);
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match (&mut stdout).take(MAX_LINE).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let (stderr_open, stderr_closed) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            // Dropped when this thread ends, which tells `stderr_after_exit` all is collected.
            let _open = stderr_open;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut all) = sink.lock() {
                    // Bounded: a target cannot make the runner hold unbounded stderr.
                    if all.len() < 1 << 20 {
                        all.extend_from_slice(&chunk[..n]);
                    }
                }
            }
        });
        Ok(RunningTarget {
            child: Some(child),
            stdin,
            lines,
            stderr,
            stderr_closed,
            description,
        })
    }

    /// The command line, as `Command`'s `Debug` shows it (for messages).
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// What the target wrote to stderr so far (for failure messages).
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default()
    }

    /// What the target wrote to stderr, once it has exited or was killed: waits (briefly: a child
    /// of the target may still hold the pipe) until the stderr reader has collected everything.
    fn stderr_after_exit(&self) -> String {
        let _ = self.stderr_closed.recv_timeout(Duration::from_secs(1));
        self.stderr_text()
    }

    /// Waits for the `CONTEXT-READY` line; other stdout lines are ignored.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Ready, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if interrupted() {
                self.kill();
                return Err(format!(
                    "{}: interrupted before CONTEXT-READY (killed)",
                    self.description
                ));
            }
            match self.lines.recv_timeout(left.min(POLL)) {
                Ok(line) => {
                    if let Some(ready) = Ready::parse_line(&line) {
                        return ready;
                    }
                }
                Err(RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Err(format!(
                        "{}: no CONTEXT-READY within {timeout:?} (killed); stderr: {}",
                        self.description,
                        self.stderr_after_exit()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Stdout closed: the writer exited early, or closed stdout and goes on.
                    let left = deadline.saturating_duration_since(Instant::now());
                    let exit = match self.wait_exit(left) {
                        Some(status) => format!("exited with {status}"),
                        None => {
                            self.kill();
                            "still running, killed".to_string()
                        }
                    };
                    return Err(format!(
                        "{}: stdout closed before CONTEXT-READY ({exit}); stderr: {}",
                        self.description,
                        self.stderr_after_exit()
                    ));
                }
            }
        }
    }

    /// Waits up to `timeout` for the writer to exit; its status, or `None` if it still runs.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.child.as_mut()?.try_wait().ok()?;
            if let Some(status) = status {
                // Reaped: the pid (and so the group id) may be reused; never signal it again.
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline || interrupted() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILLs the writer's process group (the writer and whatever it started that stayed in
    /// it), then reaps the writer. The group is signalled only while the writer is unreaped, so
    /// its id cannot belong to anyone else.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Closes stdin and waits up to `timeout` for the exit status. On timeout the target is killed
    /// and an error is returned.
    pub fn finish(mut self, timeout: Duration) -> Result<ExitStatus, String> {
        drop(self.stdin.take());
        if self.child.is_none() {
            return Err("already finished".to_string());
        }
        match self.wait_exit(timeout) {
            Some(status) => Ok(status),
            None => {
                self.kill();
                Err(format!(
                    "{}: did not exit within {timeout:?} of stdin EOF (killed)",
                    self.description
                ))
            }
        }
    }
}

impl Drop for RunningTarget {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_ready_line_and_rejects_others() {
        let ok = Ready::parse_line(
            r#"CONTEXT-READY {"protocol":1,"pid":7,"writer":"w","expect":{"pid":7}}"#,
        )
        .expect("is a ready line")
        .expect("valid");
        assert_eq!((ok.pid, ok.writer.as_str()), (7, "w"));
        assert_eq!(ok.expect["pid"], 7);
        assert!(Ready::parse_line("hello").is_none());
        let bad = Ready::parse_line(r#"CONTEXT-READY {"protocol":2,"pid":7,"expect":{}}"#)
            .expect("ready line");
        assert!(bad.unwrap_err().contains("protocol 2"));
        assert!(Ready::parse_line("CONTEXT-READY {")
            .expect("ready line")
            .is_err());
    }
}

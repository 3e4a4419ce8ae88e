//! `/proc/PID/task`: listing a process's threads, their names and `stat` lines, and which task
//! stands for the process. Plain file reads, shared by both backends and the session.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::snapshot::Bytes;

/// The threads of `pid` in tid order; empty if the process is gone.
pub fn list_threads(pid: i32) -> std::io::Result<Vec<i32>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    Ok(tids)
}

/// The thread's name (`comm`), empty when it is gone.
pub fn thread_name(pid: i32, tid: i32) -> Bytes {
    let mut name = std::fs::read(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    Bytes(name)
}

/// Name (field 2), scheduler state (field 3) and start time (field 22) of
/// `/proc/PID/task/TID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadStat {
    pub state: u8,
    pub start_time: u64,
    name: [u8; 16],
    name_len: usize,
}

impl ThreadStat {
    pub fn parse(text: &[u8]) -> Option<ThreadStat> {
        // The name is in parentheses and may itself contain ')' and spaces: it ends at the last
        // ')'. The kernel prints it unescaped, as in `comm`.
        let open = text.iter().position(|b| *b == b'(')?;
        let close = text.iter().rposition(|b| *b == b')')?;
        let raw = text.get(open + 1..close)?;
        let mut name = [0u8; 16];
        let name_len = raw.len().min(name.len());
        name[..name_len].copy_from_slice(&raw[..name_len]);
        let mut fields = text[close + 1..]
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let state = *fields.next()?.first()?;
        let start_time = std::str::from_utf8(fields.nth(18)?).ok()?.parse().ok()?;
        Some(ThreadStat {
            state,
            start_time,
            name,
            name_len,
        })
    }

    /// The thread's name (`comm`).
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }

    /// Zombie or dead: exited, only its entry is left.
    pub fn is_exited(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

pub(super) fn stat_path(pid: i32, tid: i32) -> String {
    format!("/proc/{pid}/task/{tid}/stat")
}

pub(super) fn read_stat(file: &File) -> Option<ThreadStat> {
    let mut buf = [0u8; 1024];
    // procfs regenerates the text on every read from offset 0.
    let n = file.read_at(&mut buf, 0).ok()?;
    ThreadStat::parse(&buf[..n])
}

/// The first thread of `pid` still alive: the thread-group leader, or, when the leader has
/// exited (`pthread_exit` in `main`) and is a zombie, another thread; `None` when every thread is
/// gone or a zombie.
fn first_live_task(pid: i32) -> Option<i32> {
    let alive = |tid: i32| {
        std::fs::read(format!("/proc/{pid}/task/{tid}/stat"))
            .is_ok_and(|text| ThreadStat::parse(&text).is_some_and(|s| !s.is_exited()))
    };
    if alive(pid) {
        return Some(pid);
    }
    list_threads(pid).ok()?.into_iter().find(|&t| alive(t))
}

/// The task whose `/proc` entries and address space stand for the process: the thread-group
/// leader, or, when the leader is a zombie whose `maps`, `exe` and memory are gone, the first
/// thread still alive.
pub fn live_task(pid: i32) -> i32 {
    first_live_task(pid).unwrap_or(pid)
}

/// Whether the process is gone or a zombie. A zombie thread-group leader alone is not enough: the
/// main thread may have exited (`pthread_exit`) while other threads run on, so the process has
/// exited only when no thread of it is left alive.
pub fn process_exited(pid: i32) -> bool {
    first_live_task(pid).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_with_a_name_holding_parentheses_and_spaces() {
        let text = b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 \
                     1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let stat = ThreadStat::parse(text).expect("parses");
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.start_time, 987654);
        assert_eq!(stat.name(), b"a) b (c)");
        assert!(!stat.is_exited());
    }

    #[test]
    fn zombie_and_truncated_stat() {
        let z = ThreadStat::parse(b"7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0").unwrap();
        assert!(z.is_exited());
        assert_eq!(z.start_time, 55);
        assert_eq!(ThreadStat::parse(b"7 (x) R 1 2 3"), None);
        assert_eq!(ThreadStat::parse(b"garbage"), None);
    }

    #[test]
    fn own_thread_stat_matches_comm() {
        let pid = std::process::id() as i32;
        let tid = nix::unistd::gettid().as_raw();
        let text = std::fs::read(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
        let stat = ThreadStat::parse(&text).unwrap();
        assert_eq!(Bytes(stat.name().to_vec()), thread_name(pid, tid));
        assert_eq!(stat.state, b'R', "the reading thread is running");
    }
}

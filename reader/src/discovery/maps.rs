//! `/proc/PID/maps`, parsed with `procfs` into plain `Mapping`s (testable on recorded text).

use procfs::process::{MMapPath, MemoryMaps};
use procfs::FromBufRead;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub inode: u64,
    /// The path column as the kernel prints it (`[anon:OTEL_CTX]`, `/memfd:X (deleted)`, ...).
    pub path: String,
}

impl Mapping {
    /// A mapping of a regular file that can be parsed as ELF.
    pub fn is_file(&self) -> bool {
        self.path.starts_with('/')
            && self.inode != 0
            && !self.path.starts_with("/memfd:")
            && !self.path.starts_with("/dev/")
            && !self.path.starts_with("/SYSV")
    }
}

fn display_path(path: &MMapPath) -> String {
    match path {
        MMapPath::Path(p) => p.to_string_lossy().into_owned(),
        MMapPath::Heap => "[heap]".into(),
        MMapPath::Stack => "[stack]".into(),
        MMapPath::TStack(tid) => format!("[stack:{tid}]"),
        MMapPath::Vdso => "[vdso]".into(),
        MMapPath::Vvar => "[vvar]".into(),
        MMapPath::Vsyscall => "[vsyscall]".into(),
        MMapPath::Rollup => "[rollup]".into(),
        MMapPath::Anonymous => String::new(),
        MMapPath::Vsys(key) => format!("/SYSV{key:08x}"),
        MMapPath::Other(s) => format!("[{s}]"),
    }
}

/// The lines of a `/proc/PID/maps` listing that a read plan depends on: mappings of files
/// (modules, memfd context mappings) and named anonymous ones (`[anon:OTEL_CTX]`), not unnamed
/// anonymous memory, the heap or stacks, which a busy process changes constantly.
pub fn plan_relevant_lines(text: &str) -> String {
    text.lines()
        .filter(|line| {
            // address perms offset dev inode [path]: the path is the sixth field.
            let path = line.split_whitespace().nth(5).unwrap_or("");
            !path.is_empty() && path != "[heap]" && !path.starts_with("[stack")
        })
        .flat_map(|line| [line, "\n"])
        .collect()
}

pub fn parse_maps(text: &str) -> Result<Vec<Mapping>, procfs::ProcError> {
    let maps = MemoryMaps::from_buf_read(text.as_bytes())?;
    Ok(maps
        .into_iter()
        .map(|m| Mapping {
            start: m.address.0,
            end: m.address.1,
            perms: m.perms.as_str().to_string(),
            offset: m.offset,
            inode: m.inode,
            path: display_path(&m.pathname),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_relevant_lines_ignore_heap_stacks_and_unnamed_memory() {
        let before = "55d0-55d1 r-xp 0 08:01 7 /usr/bin/w\n\
                      55e0-55f0 rw-p 0 00:00 0 [heap]\n\
                      7f00-7f10 rw-p 0 00:00 0 \n\
                      7f20-7f21 rw-s 0 00:01 9 /memfd:OTEL_CTX (deleted)\n\
                      7ffd-7ffe rw-p 0 00:00 0 [stack]\n";
        let grown = before
            .replace("55e0-55f0", "55e0-5600")
            .replace("7f00-7f10 rw-p 0 00:00 0 \n", "7f00-7f18 rw-p 0 00:00 0 \n");
        assert_eq!(plan_relevant_lines(before), plan_relevant_lines(&grown));
        let relevant = plan_relevant_lines(before);
        assert!(relevant.contains("/usr/bin/w") && relevant.contains("OTEL_CTX"));
        let named = format!("{before}7f30-7f31 rw-p 0 00:00 0 [anon:OTEL_CTX]\n");
        assert_ne!(plan_relevant_lines(before), plan_relevant_lines(&named));
        let dlopened = format!("{before}7f40-7f41 r-xp 0 08:01 8 /lib/libotelctx.so\n");
        assert_ne!(plan_relevant_lines(before), plan_relevant_lines(&dlopened));
    }

    // Recorded from a glibc writer on kernel 6.18, plus the named-anonymous form of kernels with
    // CONFIG_ANON_VMA_NAME.
    const RECORDED: &str = "\
5581c3a00000-5581c3a01000 r--p 00000000 fe:01 1837431                    /tmp/w/writer
5581c3a01000-5581c3a02000 r-xp 00001000 fe:01 1837431                    /tmp/w/writer
7f1f6c000000-7f1f6c001000 rw-p 00000000 00:01 2051                       /memfd:OTEL_CTX (deleted)
7f1f6c001000-7f1f6c002000 rw-p 00000000 00:01 2052                       /memfd:OTEL_CTX_BACKUP (deleted)
7f1f6c003000-7f1f6c004000 r--p 00000000 00:00 0                          [anon:OTEL_CTX]
7f1f6c800000-7f1f6c828000 r--p 00000000 fe:01 1050123                    /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1c5e0000-7ffd1c601000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn keeps_the_path_column_as_printed() {
        let maps = parse_maps(RECORDED).unwrap();
        let paths: Vec<_> = maps.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/tmp/w/writer",
                "/tmp/w/writer",
                "/memfd:OTEL_CTX (deleted)",
                "/memfd:OTEL_CTX_BACKUP (deleted)",
                "[anon:OTEL_CTX]",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "[stack]"
            ]
        );
        assert_eq!(
            (maps[1].start, maps[1].offset, maps[1].perms.as_str()),
            (0x5581c3a01000, 0x1000, "r-xp")
        );
        assert!(maps[0].is_file() && !maps[2].is_file() && !maps[4].is_file());
    }
}

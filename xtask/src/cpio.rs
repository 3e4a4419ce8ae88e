//! Writer for the `newc` cpio format that the Linux kernel unpacks as an initramfs.
//!
//! Only what an initramfs needs: directories, regular files, symlinks and character devices, all
//! owned by root. The kernel accepts several archives concatenated, which is how the VM runner
//! appends a small per-run archive to the base one.

use std::io::{self, Write};

/// File type and permission bits as `st_mode` encodes them.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// newc fields are 8 hex digits; a file must fit in 32 bits.
const MAX_FIELD: u64 = u32::MAX as u64;

/// Builds one archive in memory; [`CpioWriter::finish`] appends the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_inode: u32,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_inode: 1,
        }
    }

    /// A directory; `path` has no leading slash (`"usr/bin"`).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node, e.g. `/dev/console` = (5, 1).
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Writes the `TRAILER!!!` entry and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_inode = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        if path.is_empty() || path.starts_with('/') || path.as_bytes().contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio path {path:?}"),
            ));
        }
        if data.len() as u64 > MAX_FIELD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path} is too large for cpio"),
            ));
        }
        let inode = self.next_inode;
        self.next_inode = self.next_inode.wrapping_add(1);
        let name_size = path.len() + 1;
        let fields: [u32; 13] = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name_size as u32,
            0, // check
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// newc aligns every header and every file body to 4 bytes.
    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..padding])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, (rdev major, rdev minor), data) of one parsed entry.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Parses a newc archive back into entries; a reader written from the
    /// format description, independent of the writer.
    fn parse(mut bytes: &[u8]) -> Vec<Entry> {
        let total = bytes.len();
        let mut entries = Vec::new();
        loop {
            assert_eq!(&bytes[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(),
                    16,
                )
                .unwrap()
            };
            let (mode, size, rmaj, rmin, namesize) = (
                field(1),
                field(6) as usize,
                field(9),
                field(10),
                field(11) as usize,
            );
            let name_end = 110 + namesize;
            assert_eq!(bytes[name_end - 1], 0, "name is NUL-terminated");
            let name = String::from_utf8(bytes[110..name_end - 1].to_vec()).unwrap();
            let data_start = name_end.div_ceil(4) * 4;
            let data = bytes[data_start..data_start + size].to_vec();
            let next = (data_start + size).div_ceil(4) * 4;
            assert_eq!((total - bytes.len() + next) % 4, 0);
            bytes = &bytes[next..];
            if name == "TRAILER!!!" {
                assert!(bytes.is_empty());
                return entries;
            }
            entries.push((name, mode, (rmaj, rmin), data));
        }
    }

    #[test]
    fn round_trips_every_entry_kind_with_alignment() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.dir("dev", 0o755).unwrap();
        writer.char_device("dev/console", 0o600, 5, 1).unwrap();
        writer.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        writer.file("odd", 0o644, b"abcde").unwrap();
        writer.symlink("bin/sh", "busybox").unwrap();
        let bytes = writer.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "init", "odd", "bin/sh"]);
        assert_eq!(entries[0].1, 0o040755);
        assert_eq!((entries[1].1, entries[1].2), (0o020600, (5, 1)));
        assert_eq!(
            (entries[2].1, entries[2].3.as_slice()),
            (0o100755, &b"#!/bin/sh\n"[..])
        );
        assert_eq!(entries[3].3, b"abcde");
        assert_eq!(
            (entries[4].1, entries[4].3.as_slice()),
            (0o120777, &b"busybox"[..])
        );
    }

    #[test]
    fn rejects_absolute_and_empty_paths() {
        let mut writer = CpioWriter::new(Vec::new());
        assert!(writer.file("/init", 0o755, b"").is_err());
        assert!(writer.dir("", 0o755).is_err());
    }
}

//! Writing the "newc" cpio format the kernel unpacks an initramfs from:
//! per entry a 110-byte ASCII header (`070701` and thirteen 8-digit hex
//! fields), the NUL-terminated name, padding to 4 bytes, the data, padding
//! to 4 bytes; a `TRAILER!!!` entry ends the archive.
//!
//! Output is deterministic: entries sorted by path (so every directory
//! precedes its contents), owner root, mtime 0, inodes numbered in order.

use std::collections::BTreeMap;
use std::io::{self, Write};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    CharDev { mode: u32, major: u32, minor: u32 },
}

/// An archive being assembled; paths are relative (`lib/modules/x.ko`).
#[derive(Debug, Clone, Default)]
pub struct Cpio {
    nodes: BTreeMap<String, Node>,
}

impl Cpio {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.insert(path, Node::Dir { mode })
    }

    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> io::Result<()> {
        self.insert(path, Node::File { mode, data })
    }

    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.insert(path, Node::CharDev { mode, major, minor })
    }

    /// Adds a node and any missing parent directories (mode 0755).
    fn insert(&mut self, path: &str, node: Node) -> io::Result<()> {
        if path.is_empty()
            || path.starts_with('/')
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path:?} is not a plain relative path"),
            ));
        }
        let mut parent = String::new();
        for component in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, p)| p)
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            self.nodes
                .entry(parent.clone())
                .or_insert(Node::Dir { mode: 0o755 });
        }
        self.nodes.insert(path.to_owned(), node);
        Ok(())
    }

    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        for (index, (path, node)) in self.nodes.iter().enumerate() {
            let ino = u32::try_from(index + 1).map_err(io::Error::other)?;
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match node {
                Node::Dir { mode } => (S_IFDIR | mode, 2, &[], (0, 0)),
                Node::File { mode, data } => (S_IFREG | mode, 1, data, (0, 0)),
                Node::CharDev { mode, major, minor } => (S_IFCHR | mode, 1, &[], (*major, *minor)),
            };
            write_entry(out, path, ino, mode, nlink, data, rdev)?;
        }
        write_entry(out, "TRAILER!!!", 0, 0, 1, &[], (0, 0))
    }
}

fn write_entry(
    out: &mut impl Write,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    data: &[u8],
    (rdev_major, rdev_minor): (u32, u32),
) -> io::Result<()> {
    let size = u32::try_from(data.len())
        .map_err(|_| io::Error::other(format!("{name} is too large for cpio (4 GiB)")))?;
    let name_size = name.len() + 1;
    let header = format!(
        "070701{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{size:08X}\
         {dev_major:08X}{dev_minor:08X}{rdev_major:08X}{rdev_minor:08X}{name_size:08X}{check:08X}",
        uid = 0,
        gid = 0,
        mtime = 0,
        dev_major = 0,
        dev_minor = 0,
        check = 0,
    );
    debug_assert_eq!(header.len(), 110);
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    out.write_all(&[0; 3][..pad4(110 + name_size)])?;
    out.write_all(data)?;
    out.write_all(&[0; 3][..pad4(data.len())])
}

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// A newc reader for tests: (name, mode, rdev major, rdev minor, data).
#[cfg(test)]
pub(crate) fn read_newc(mut bytes: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
    let mut entries = Vec::new();
    let total = bytes.len();
    loop {
        assert_eq!((total - bytes.len()) % 4, 0, "entries start 4-aligned");
        assert_eq!(&bytes[..6], b"070701", "newc magic");
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&bytes[6 + i * 8..14 + i * 8]).unwrap(),
                16,
            )
            .unwrap()
        };
        let (mode, size, rmaj, rmin, name_size) =
            (field(1), field(6), field(9), field(10), field(11));
        assert_eq!(field(5), 0, "mtime is 0");
        let name_end = 110 + name_size as usize;
        assert_eq!(bytes[name_end - 1], 0, "name is NUL-terminated");
        let name = String::from_utf8(bytes[110..name_end - 1].to_vec()).unwrap();
        let data_start = name_end + pad4(name_end);
        let data_end = data_start + size as usize;
        let data = bytes[data_start..data_end].to_vec();
        bytes = &bytes[data_end + pad4(size as usize)..];
        if name == "TRAILER!!!" {
            assert!(bytes.is_empty(), "nothing after the trailer");
            return entries;
        }
        entries.push((name, mode, rmaj, rmin, data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Cpio {
        let mut c = Cpio::new();
        c.file("init", 0o755, b"#!agent".to_vec()).unwrap();
        c.file("lib/modules/6.1/kernel/a.ko", 0o644, vec![1, 2, 3])
            .unwrap();
        c.dir("proc", 0o555).unwrap();
        c.char_dev("dev/console", 0o600, 5, 1).unwrap();
        c
    }

    #[test]
    fn entries_read_back_sorted_with_parents_first() {
        let mut bytes = Vec::new();
        sample().write(&mut bytes).unwrap();
        let entries = read_newc(&bytes);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/6.1",
                "lib/modules/6.1/kernel",
                "lib/modules/6.1/kernel/a.ko",
                "proc"
            ]
        );
        let console = &entries[1];
        assert_eq!((console.1, console.2, console.3), (S_IFCHR | 0o600, 5, 1));
        assert_eq!(entries[2].1, S_IFREG | 0o755);
        assert_eq!(entries[2].4, b"#!agent");
        assert_eq!(entries[7].4, [1, 2, 3]);
        assert_eq!(entries[8].1, S_IFDIR | 0o555);
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sample().write(&mut a).unwrap();
        let mut other_order = Cpio::new();
        other_order.char_dev("dev/console", 0o600, 5, 1).unwrap();
        other_order.dir("proc", 0o555).unwrap();
        other_order
            .file("lib/modules/6.1/kernel/a.ko", 0o644, vec![1, 2, 3])
            .unwrap();
        other_order
            .file("init", 0o755, b"#!agent".to_vec())
            .unwrap();
        other_order.write(&mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn the_system_cpio_lists_it_when_installed() {
        if banger_sys::find_program("cpio").is_none() {
            eprintln!("skipping the cross-check: cpio is not installed");
            return;
        }
        let mut bytes = Vec::new();
        sample().write(&mut bytes).unwrap();
        let listed = banger_sys::Cmd::new("cpio")
            .args(["-i", "-t", "--quiet"])
            .stdin_bytes(bytes)
            .run()
            .unwrap()
            .stdout_str();
        assert!(
            listed.lines().any(|l| l == "lib/modules/6.1/kernel/a.ko"),
            "{listed}"
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let mut c = Cpio::new();
        for bad in ["", "/abs", "a/../b", "a//b", "./a"] {
            assert!(c.file(bad, 0o644, vec![]).is_err(), "{bad:?}");
        }
    }
}

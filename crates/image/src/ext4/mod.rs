//! Writing files into ext4 images without mounting them (SPEC §7), so the
//! owner daemon needs no root for it: through e2fsprogs' `debugfs`, one
//! process per batch of edits.
//!
//! A write is three debugfs runs: one reads what exists at the paths
//! involved, one applies every edit ([`plan`]), one reads the results back
//! (metadata and file content, [`verify`]) and compares them with what was
//! asked, because debugfs exits 0 when a command fails.
//!
//! Raw images and block devices only: a qcow2 overlay is not an ext4
//! image and cannot be edited this way. A failed batch may leave the image partly edited; callers
//! write into per-VM disks they discard when creation fails.
//!
//! The image must not be in use (mounted, or open by a running VM): debugfs
//! edits the filesystem structures directly.

mod debugfs;
pub(crate) mod guest_path;
pub(crate) mod kind;
mod plan;
mod verify;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use guest_path::{BadChar, GuestPathProblem, check_guest_path, check_symlink_target};
pub use kind::FileKind;

use crate::error::DiskError;

/// Largest file [`Ext4Image::read_file`] returns: images are untrusted and
/// what banger reads from them (config files, keys) is small.
pub const READ_LIMIT: u64 = 16 * 1024 * 1024;

/// ext2/3/4 superblock magic, at byte 56 of the superblock, which starts at
/// byte 1024.
const MAGIC_OFFSET: u64 = 1024 + 56;
const MAGIC: [u8; 2] = 0xEF53u16.to_le_bytes();

/// One thing to write into an image. Paths are absolute guest paths (see
/// [`check_guest_path`]); modes are permission bits (at most `0o7777`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory, created if missing (with missing parents, `mkdir -p`),
    /// its owner and mode set either way.
    Dir {
        path: String,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    /// A regular file, replacing any file or symlink at `path`.
    File {
        path: String,
        content: Vec<u8>,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    /// A symlink, owned by root, replacing any file or symlink at `path`.
    Symlink { path: String, target: String },
}

impl Entry {
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "regular file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
        })
    }
}

/// An inode's metadata as `stat` inside the image shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub kind: FileKind,
    /// Type bits and permission bits, as in `st_mode`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

impl FileInfo {
    /// The permission bits (`mode & 0o7777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }

    fn describe(&self) -> String {
        format!(
            "{} mode {:04o} owner {}:{} size {}",
            self.kind,
            self.permissions(),
            self.uid,
            self.gid,
            self.size
        )
    }
}

/// An ext2/3/4 filesystem image (a file or a block device).
#[derive(Debug, Clone)]
pub struct Ext4Image {
    path: PathBuf,
}

impl Ext4Image {
    /// Opens an image: it must exist and carry the ext2/3/4 superblock
    /// magic (read here, so a wrong file is refused before debugfs runs).
    pub fn open(path: &Path) -> Result<Self, DiskError> {
        // Symlinks are followed: `/dev/mapper/<name>` is one. The path is
        // banger's own (an image or a VM's disk), never chosen by a guest.
        let file = File::open(path).map_err(|e| DiskError::io("open the ext4 image", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| DiskError::io("inspect the ext4 image", path, e))?;
        if !(meta.is_file() || meta.file_type().is_block_device()) {
            return Err(DiskError::NotExt4 {
                path: path.to_owned(),
            });
        }
        let mut magic = [0u8; 2];
        match file.read_exact_at(&mut magic, MAGIC_OFFSET) {
            Ok(()) if magic == MAGIC => Ok(Self {
                path: path.to_owned(),
            }),
            Ok(()) => Err(DiskError::NotExt4 {
                path: path.to_owned(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(DiskError::NotExt4 {
                path: path.to_owned(),
            }),
            Err(e) => Err(DiskError::io("read the superblock of", path, e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `entries` in order, in one debugfs batch. Missing parent
    /// directories are created (root's, mode 0755); an existing file or
    /// symlink at an entry's path is replaced; an existing directory is
    /// kept (its owner and mode set by a [`Entry::Dir`]) and never replaced
    /// by a file. Nothing is written when any entry is invalid.
    pub fn write_files(&self, entries: &[Entry]) -> Result<(), DiskError> {
        if entries.is_empty() {
            return Ok(());
        }
        for entry in entries {
            check_entry(entry)?;
        }
        let scratch = debugfs::scratch_dir()?;

        let mut involved: Vec<&str> = Vec::new();
        for entry in entries {
            for p in guest_path::ancestors(entry.path()).chain([entry.path()]) {
                if !involved.contains(&p) {
                    involved.push(p);
                }
            }
        }
        let existing: HashMap<String, FileKind> = involved
            .iter()
            .zip(self.stat_many(&involved, scratch.path())?)
            .filter_map(|(p, info)| info.map(|i| (p.to_string(), i.kind)))
            .collect();

        let plan = plan::plan(&self.path, entries, existing, scratch.path())?;
        for (index, host) in &plan.uploads {
            let Entry::File { content, .. } = &entries[*index] else {
                unreachable!("uploads are planned for file entries only")
            };
            stage(host, content)?;
        }
        let (applied, _) = debugfs::batch(&self.path, &plan.commands, true, scratch.path())?;
        verify::verify(self, &plan, entries, &applied, scratch.path())?;
        tracing::debug!(image = %self.path.display(), entries = entries.len(), "wrote files into image");
        Ok(())
    }

    /// The content of a regular file (at most [`READ_LIMIT`] bytes).
    /// Symlinks are not followed.
    pub fn read_file(&self, guest_path: &str) -> Result<Vec<u8>, DiskError> {
        let info = self
            .stat(guest_path)?
            .ok_or_else(|| DiskError::GuestNotFound {
                image: self.path.clone(),
                guest_path: guest_path.to_owned(),
            })?;
        if info.kind != FileKind::Regular {
            return Err(DiskError::NotRegularFile {
                image: self.path.clone(),
                guest_path: guest_path.to_owned(),
                found: info.kind,
            });
        }
        if info.size > READ_LIMIT {
            return Err(DiskError::TooLarge {
                image: self.path.clone(),
                guest_path: guest_path.to_owned(),
                size: info.size,
                limit: READ_LIMIT,
            });
        }
        let out = debugfs::request(&self.path, &format!("cat {guest_path}"))?;
        self.no_errors(&out)?;
        if out.stdout.len() as u64 != info.size {
            return Err(DiskError::UnexpectedOutput {
                argv: out.argv,
                detail: format!(
                    "{} bytes for {guest_path}, whose size is {}",
                    out.stdout.len(),
                    info.size
                ),
            });
        }
        Ok(out.stdout)
    }

    /// The metadata of `guest_path`, `None` if it does not exist. The last
    /// component is not followed if it is a symlink.
    /// `/` itself may be inspected (it cannot be written).
    pub fn stat(&self, guest_path: &str) -> Result<Option<FileInfo>, DiskError> {
        if guest_path != "/" {
            check_path(guest_path)?;
        }
        let out = debugfs::request(&self.path, &format!("stat {guest_path}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        self.interpret_stat(&out, guest_path, &text)
    }

    /// `stat` of many paths in one debugfs run.
    fn stat_many(
        &self,
        paths: &[&str],
        scratch: &Path,
    ) -> Result<Vec<Option<FileInfo>>, DiskError> {
        let (infos, out) = self.stat_batch(paths, &[], scratch)?;
        self.no_errors(&out)?;
        Ok(infos)
    }

    /// `stat` of each path, then the `extra` commands, in one debugfs run.
    /// The error lines of paths that are missing are dropped from the
    /// returned outcome; what remains is for the caller to judge.
    fn stat_batch(
        &self,
        paths: &[&str],
        extra: &[String],
        scratch: &Path,
    ) -> Result<(Vec<Option<FileInfo>>, debugfs::Outcome), DiskError> {
        let commands: Vec<String> = paths
            .iter()
            .map(|p| format!("stat {p}"))
            .chain(extra.iter().cloned())
            .collect();
        let (mut out, sections) = debugfs::batch(&self.path, &commands, false, scratch)?;
        let stats = &sections[..paths.len()];
        out.errors.retain(|line| {
            !paths
                .iter()
                .zip(stats)
                .any(|(p, s)| s.trim().is_empty() && debugfs::says_missing(line, p))
        });
        let infos = paths
            .iter()
            .zip(stats)
            .map(|(p, section)| self.parse_section(&out.argv, p, section))
            .collect::<Result<_, _>>()?;
        Ok((infos, out))
    }

    fn interpret_stat(
        &self,
        out: &debugfs::Outcome,
        guest_path: &str,
        text: &str,
    ) -> Result<Option<FileInfo>, DiskError> {
        if text.trim().is_empty()
            && out
                .errors
                .iter()
                .all(|l| debugfs::says_missing(l, guest_path))
        {
            return Ok(None);
        }
        self.no_errors(out)?;
        self.parse_section(&out.argv, guest_path, text)
    }

    fn parse_section(
        &self,
        argv: &str,
        guest_path: &str,
        text: &str,
    ) -> Result<Option<FileInfo>, DiskError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        debugfs::parse_stat(text)
            .map(Some)
            .map_err(|detail| DiskError::UnexpectedOutput {
                argv: argv.to_owned(),
                detail: format!("stat of {guest_path}: {detail}"),
            })
    }

    fn no_errors(&self, out: &debugfs::Outcome) -> Result<(), DiskError> {
        if out.errors.is_empty() {
            Ok(())
        } else {
            Err(self.debugfs_error(&out.argv, &out.errors.iter().collect::<Vec<_>>()))
        }
    }

    fn debugfs_error(&self, argv: &str, errors: &[&String]) -> DiskError {
        DiskError::Debugfs {
            image: self.path.clone(),
            argv: argv.to_owned(),
            errors: errors
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

fn check_path(path: &str) -> Result<(), DiskError> {
    check_guest_path(path).map_err(|problem| DiskError::GuestPath {
        path: path.to_owned(),
        problem,
    })
}

fn check_entry(entry: &Entry) -> Result<(), DiskError> {
    check_path(entry.path())?;
    match entry {
        Entry::Dir { path, mode, .. } | Entry::File { path, mode, .. } if *mode > 0o7777 => {
            Err(DiskError::InvalidMode {
                path: path.clone(),
                mode: *mode,
            })
        }
        Entry::Symlink { path, target } => {
            check_symlink_target(target).map_err(|problem| DiskError::SymlinkTarget {
                path: path.clone(),
                target: target.clone(),
                problem,
            })
        }
        _ => Ok(()),
    }
}

/// Writes one file's content to a host file only this user can read, in
/// the private scratch directory.
fn stage(host: &Path, content: &[u8]) -> Result<(), DiskError> {
    use std::io::Write;
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(host)
        .map_err(|e| DiskError::io("stage file content in", host, e))?;
    f.write_all(content)
        .map_err(|e| DiskError::io("stage file content in", host, e))
}

#[cfg(test)]
mod tests;

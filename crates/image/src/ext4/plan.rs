//! Turning entries into one batch of debugfs commands, given what already
//! exists in the image, so that in the normal case no command fails: debugfs
//! cannot report which of its commands failed, so the batch is built never
//! to rely on a failure (no `mkdir` of an existing directory, no `write`
//! over an existing file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::debugfs::{quote, upload_path};
use super::guest_path::ancestors;
use super::{Entry, FileInfo, FileKind};
use crate::error::DiskError;

/// Directories created because an entry needs them (`mkdir -p`): root's,
/// like the directories of a freshly installed system.
const PARENT_MODE: u32 = 0o755;

#[derive(Debug, Default)]
pub(super) struct Plan {
    pub commands: Vec<String>,
    /// The content to stage for each file entry: entry index and host path.
    pub uploads: Vec<(usize, PathBuf)>,
    /// What each entry's path must look like afterwards (the last entry for
    /// a path wins), in order of first appearance.
    pub expected: Vec<Expected>,
}

/// The state of one written path after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Expected {
    pub path: String,
    pub kind: FileKind,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// Checked for files (content length) and symlinks (target length).
    pub size: Option<u64>,
    /// For files: the entry whose content must read back.
    pub content_of: Option<usize>,
}

impl Expected {
    pub fn matches(&self, info: &FileInfo) -> bool {
        info.kind == self.kind
            && info.permissions() == self.perm
            && info.uid == self.uid
            && info.gid == self.gid
            && self.size.is_none_or(|s| s == info.size)
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} mode {:04o} owner {}:{}",
            self.kind, self.perm, self.uid, self.gid
        );
        if let Some(size) = self.size {
            s.push_str(&format!(" size {size}"));
        }
        s
    }
}

struct Planner<'a> {
    image: &'a Path,
    scratch: &'a Path,
    state: HashMap<String, FileKind>,
    plan: Plan,
}

/// Plans `entries` against `existing` (the kinds of the paths involved that
/// exist in the image). File content is to be staged under `scratch`.
pub(super) fn plan(
    image: &Path,
    entries: &[Entry],
    existing: HashMap<String, FileKind>,
    scratch: &Path,
) -> Result<Plan, DiskError> {
    let mut p = Planner {
        image,
        scratch,
        state: existing,
        plan: Plan::default(),
    };
    for (index, entry) in entries.iter().enumerate() {
        p.entry(index, entry)?;
    }
    Ok(p.plan)
}

impl Planner<'_> {
    fn cmd(&mut self, command: String) {
        self.plan.commands.push(command);
    }

    fn set_owner_mode(&mut self, path: &str, type_bits: u32, perm: u32, uid: u32, gid: u32) {
        // A leading 0: debugfs parses numbers with strtoul(.., 0), so octal.
        self.cmd(format!("sif {path} mode 0{:o}", type_bits | perm));
        self.cmd(format!("sif {path} uid {uid}"));
        self.cmd(format!("sif {path} gid {gid}"));
    }

    fn not_a_directory(&self, path: &str, found: FileKind, wanted: String) -> DiskError {
        DiskError::GuestNotADirectory {
            image: self.image.to_owned(),
            guest_path: path.to_owned(),
            found,
            wanted,
        }
    }

    /// `mkdir -p` of the directories above `path`.
    fn parents(&mut self, path: &str) -> Result<(), DiskError> {
        for dir in ancestors(path) {
            match self.state.get(dir) {
                Some(FileKind::Directory) => {}
                Some(&found) => {
                    return Err(self.not_a_directory(dir, found, format!("writing {path}")));
                }
                None => {
                    self.cmd(format!("mkdir {dir}"));
                    self.set_owner_mode(dir, FileKind::Directory.type_bits(), PARENT_MODE, 0, 0);
                    self.state.insert(dir.to_owned(), FileKind::Directory);
                }
            }
        }
        Ok(())
    }

    /// Makes room for a file or symlink at `path`: an existing file or
    /// symlink is removed, a directory is refused.
    fn replace(&mut self, path: &str) -> Result<(), DiskError> {
        match self.state.get(path) {
            None => Ok(()),
            Some(FileKind::Directory) => Err(DiskError::GuestIsADirectory {
                image: self.image.to_owned(),
                guest_path: path.to_owned(),
            }),
            Some(_) => {
                self.cmd(format!("rm {path}"));
                self.state.remove(path);
                Ok(())
            }
        }
    }

    fn entry(&mut self, index: usize, entry: &Entry) -> Result<(), DiskError> {
        let path = entry.path();
        self.parents(path)?;
        let expected = match entry {
            Entry::Dir { uid, gid, mode, .. } => {
                match self.state.get(path) {
                    None => self.cmd(format!("mkdir {path}")),
                    Some(FileKind::Directory) => {}
                    Some(&found) => {
                        return Err(self.not_a_directory(
                            path,
                            found,
                            format!("creating directory {path}"),
                        ));
                    }
                }
                self.set_owner_mode(path, FileKind::Directory.type_bits(), *mode, *uid, *gid);
                self.state.insert(path.to_owned(), FileKind::Directory);
                Expected {
                    path: path.to_owned(),
                    kind: FileKind::Directory,
                    perm: *mode,
                    uid: *uid,
                    gid: *gid,
                    size: None,
                    content_of: None,
                }
            }
            Entry::File {
                content,
                uid,
                gid,
                mode,
                ..
            } => {
                self.replace(path)?;
                let host = upload_path(self.scratch, index);
                self.cmd(format!("write {} {path}", quote(&host)?));
                self.plan.uploads.push((index, host));
                self.set_owner_mode(path, FileKind::Regular.type_bits(), *mode, *uid, *gid);
                self.state.insert(path.to_owned(), FileKind::Regular);
                Expected {
                    path: path.to_owned(),
                    kind: FileKind::Regular,
                    perm: *mode,
                    uid: *uid,
                    gid: *gid,
                    size: Some(content.len() as u64),
                    content_of: Some(index),
                }
            }
            Entry::Symlink { target, .. } => {
                self.replace(path)?;
                self.cmd(format!("symlink {path} {target}"));
                self.state.insert(path.to_owned(), FileKind::Symlink);
                // debugfs makes symlinks root's with mode 0777, as the
                // kernel reports every symlink.
                Expected {
                    path: path.to_owned(),
                    kind: FileKind::Symlink,
                    perm: 0o777,
                    uid: 0,
                    gid: 0,
                    size: Some(target.len() as u64),
                    content_of: None,
                }
            }
        };
        match self.plan.expected.iter_mut().find(|e| e.path == path) {
            Some(earlier) => *earlier = expected,
            None => self.plan.expected.push(expected),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Entry {
        Entry::File {
            path: path.into(),
            content: b"x".to_vec(),
            uid: 1,
            gid: 2,
            mode: 0o640,
        }
    }

    fn run(entries: &[Entry], existing: &[(&str, FileKind)]) -> Result<Plan, DiskError> {
        let existing = existing.iter().map(|(p, k)| (p.to_string(), *k)).collect();
        plan(Path::new("/img"), entries, existing, Path::new("/scratch"))
    }

    #[test]
    fn missing_parents_are_created_once_and_existing_ones_left_alone() {
        let p = run(
            &[file("/a/b/c"), file("/a/b/d")],
            &[("/a", FileKind::Directory)],
        )
        .unwrap();
        let mkdirs: Vec<_> = p
            .commands
            .iter()
            .filter(|c| c.starts_with("mkdir"))
            .collect();
        assert_eq!(mkdirs, ["mkdir /a/b"]);
        assert!(
            p.commands.contains(&"sif /a/b mode 040755".to_owned()),
            "{:?}",
            p.commands
        );
        assert!(!p.commands.iter().any(|c| c.starts_with("rm")));
        assert_eq!(
            p.uploads,
            [
                (0, PathBuf::from("/scratch/content-0")),
                (1, PathBuf::from("/scratch/content-1"))
            ]
        );
    }

    #[test]
    fn existing_files_are_removed_before_writing_and_directories_are_kept() {
        let p = run(
            &[
                file("/etc/hostname"),
                Entry::Dir {
                    path: "/etc".into(),
                    uid: 0,
                    gid: 0,
                    mode: 0o755,
                },
            ],
            &[
                ("/etc", FileKind::Directory),
                ("/etc/hostname", FileKind::Regular),
            ],
        )
        .unwrap();
        assert_eq!(
            p.commands[..2],
            [
                "rm /etc/hostname".to_owned(),
                "write \"/scratch/content-0\" /etc/hostname".to_owned()
            ]
        );
        assert!(
            !p.commands.iter().any(|c| c.starts_with("mkdir")),
            "{:?}",
            p.commands
        );
    }

    #[test]
    fn a_file_where_a_directory_is_needed_is_refused() {
        let err = run(&[file("/a/b")], &[("/a", FileKind::Regular)]).unwrap_err();
        assert!(
            matches!(&err, DiskError::GuestNotADirectory { guest_path, .. } if guest_path == "/a"),
            "{err:?}"
        );
        let err = run(&[file("/a")], &[("/a", FileKind::Directory)]).unwrap_err();
        assert!(
            matches!(err, DiskError::GuestIsADirectory { .. }),
            "{err:?}"
        );
        // Also within one batch: a file entry then something below it.
        let err = run(&[file("/a"), file("/a/b")], &[]).unwrap_err();
        assert!(
            matches!(err, DiskError::GuestNotADirectory { .. }),
            "{err:?}"
        );
        // A symlinked directory is not followed.
        let err = run(&[file("/root/x")], &[("/root", FileKind::Symlink)]).unwrap_err();
        assert!(
            matches!(
                err,
                DiskError::GuestNotADirectory {
                    found: FileKind::Symlink,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn the_last_entry_for_a_path_is_the_expectation() {
        let link = Entry::Symlink {
            path: "/a".into(),
            target: "/b".into(),
        };
        let p = run(&[file("/a"), link], &[]).unwrap();
        assert_eq!(p.expected.len(), 1);
        assert_eq!(p.expected[0].kind, FileKind::Symlink);
        assert_eq!(p.expected[0].size, Some(2));
        assert!(
            p.commands.contains(&"rm /a".to_owned()),
            "the file written first is replaced"
        );
    }
}

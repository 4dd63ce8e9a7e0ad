//! Writing into a bootstrapped root tree on the host. Paths are guest
//! paths and are resolved as inside the guest (`openat2` with
//! `RESOLVE_IN_ROOT`): a symlink in the tree, such as bookworm's
//! `/sbin -> usr/sbin` or an absolute one, is followed within the tree and
//! can never lead the build, which runs as root, onto a host file.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::images::error::ImageError;

pub struct GuestTree {
    root: OwnedFd,
    path: PathBuf,
    /// Mode of directories made for files written in.
    dir_mode: u32,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// `/a/b/c` → (`a/b`, `c`); the parent of a top-level entry is `.`.
fn split(guest: &str) -> (&str, &str) {
    let rel = guest.trim_start_matches('/');
    match rel.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => (".", rel),
    }
}

impl GuestTree {
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let root = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ImageError::io("open the image tree", path, e.into()))?;
        Ok(Self {
            root,
            path: path.to_owned(),
            dir_mode: 0o755,
        })
    }

    /// Directories made from now on get `mode` (e.g. 0700 for a tree that
    /// will hold secrets).
    pub fn with_dir_mode(mut self, mode: u32) -> Self {
        self.dir_mode = mode;
        self
    }

    /// Whether anything (a symlink too, not followed) is at `guest`.
    pub fn exists(&self, guest: &str) -> bool {
        let (parent, name) = split(guest);
        self.open_dir(parent)
            .is_ok_and(|dir| rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of a guest path, for messages only.
    fn host(&self, guest: &str) -> PathBuf {
        self.path.join(guest.trim_start_matches('/'))
    }

    fn open_dir(&self, rel: &str) -> Result<OwnedFd, Errno> {
        let rel = if rel.is_empty() { "." } else { rel };
        rustix::fs::openat2(
            &self.root,
            rel,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
    }

    /// Whether `guest` is a directory (symlinks resolved inside the tree).
    pub fn is_dir(&self, guest: &str) -> bool {
        self.open_dir(guest.trim_start_matches('/')).is_ok()
    }

    /// Opens the directory `guest_dir`, creating it and missing parents
    /// (mode 0755, or what [`GuestTree::with_dir_mode`] set) first.
    fn create_dir_all(&self, guest_dir: &str) -> Result<OwnedFd, ImageError> {
        let rel = guest_dir.trim_start_matches('/');
        let err = |e: Errno| {
            ImageError::io(
                "create a directory in the image tree",
                self.host(guest_dir),
                e.into(),
            )
        };
        let mut end = 0;
        let mut fd = self.open_dir(".").map_err(err)?;
        for component in rel.split('/').filter(|c| !c.is_empty()) {
            end += component.len() + usize::from(end > 0);
            let prefix = &rel[..end];
            fd = match self.open_dir(prefix) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, component, Mode::from_raw_mode(self.dir_mode)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                    self.open_dir(prefix).map_err(err)?
                }
                Err(e) => return Err(err(e)),
            };
        }
        Ok(fd)
    }

    /// Removes whatever non-directory is at `name` in `parent`, so a new
    /// file or symlink can be created there with `O_EXCL`.
    fn clear(&self, parent: &OwnedFd, name: &str, guest: &str) -> Result<(), ImageError> {
        match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(ImageError::io(
                "replace (a directory is never replaced by a file)",
                self.host(guest),
                e.into(),
            )),
        }
    }

    /// Writes a regular file (replacing a file or symlink there) with
    /// exactly `mode`, whatever the umask.
    pub fn write_file(
        &self,
        guest: &str,
        content: &mut dyn Read,
        mode: u32,
    ) -> Result<(), ImageError> {
        let (parent, name) = split(guest);
        let dir = self.create_dir_all(parent)?;
        self.clear(&dir, name, guest)?;
        let err = |e: io::Error| ImageError::io("write into the image tree", self.host(guest), e);
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| err(e.into()))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| err(e.into()))?;
        let mut file = File::from(fd);
        io::copy(content, &mut file).map_err(err)?;
        Ok(())
    }

    /// Creates a symlink (replacing a file or symlink there).
    pub fn symlink(&self, guest: &str, target: &str) -> Result<(), ImageError> {
        let (parent, name) = split(guest);
        let dir = self.create_dir_all(parent)?;
        self.clear(&dir, name, guest)?;
        rustix::fs::symlinkat(target, &dir, name).map_err(|e| {
            ImageError::io(
                "create a symlink in the image tree",
                self.host(guest),
                e.into(),
            )
        })
    }

    /// Removes the file or symlink at `guest` (never following it) if there
    /// is one; a missing one, or a missing parent, is not an error.
    pub(crate) fn remove(&self, guest: &str) -> Result<(), ImageError> {
        let (parent, name) = split(guest);
        let dir = match self.open_dir(parent.trim_start_matches('/')) {
            Ok(dir) => dir,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(ImageError::io("remove", self.host(guest), e.into())),
        };
        self.clear(&dir, name, guest)
    }

    /// Removes the entries of `guest_dir` whose names start with `prefix`
    /// (not directories); returns their names, sorted. A missing directory
    /// has none.
    pub(crate) fn remove_prefixed(
        &self,
        guest_dir: &str,
        prefix: &str,
    ) -> Result<Vec<String>, ImageError> {
        let err = |e: Errno| ImageError::io("clean up", self.host(guest_dir), e.into());
        let dir = match self.open_dir(guest_dir.trim_start_matches('/')) {
            Ok(dir) => dir,
            Err(Errno::NOENT) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && entry.file_type() != FileType::Directory {
                names.push(name);
            }
        }
        names.sort();
        for name in &names {
            rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()).map_err(err)?;
        }
        Ok(names)
    }

    /// Moves the top-level directory `name` out of the tree to `dest` (on
    /// the same filesystem) and leaves an empty one (mode 0700) in its
    /// place. A missing directory moves out as an empty one.
    pub(crate) fn take_dir(&self, name: &str, dest: &Path) -> Result<(), ImageError> {
        let guest = format!("/{name}");
        let err = |action, e: Errno| ImageError::io(action, self.host(&guest), e.into());
        match rustix::fs::statat(&self.root, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                rustix::fs::renameat(&self.root, name, rustix::fs::CWD, dest)
                    .map_err(|e| err("move out of the image tree", e))?;
            }
            Ok(_) => {
                return Err(ImageError::BadTree {
                    path: self.path.clone(),
                    what: "/root directory (it is not a directory)",
                });
            }
            Err(Errno::NOENT) => {
                std::fs::create_dir(dest).map_err(|e| ImageError::io("create", dest, e))?;
            }
            Err(e) => return Err(err("inspect", e)),
        }
        let mode = Mode::from_raw_mode(0o700);
        rustix::fs::mkdirat(&self.root, name, mode).map_err(|e| err("create", e))?;
        rustix::fs::chmodat(&self.root, name, mode, AtFlags::empty())
            .map_err(|e| err("set the mode of", e))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn tree() -> (tempfile::TempDir, GuestTree) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tree/usr/sbin")).unwrap();
        std::os::unix::fs::symlink("usr/sbin", dir.path().join("tree/sbin")).unwrap();
        let tree = GuestTree::open(&dir.path().join("tree")).unwrap();
        (dir, tree)
    }

    fn mode(path: &Path) -> u32 {
        path.symlink_metadata().unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_are_written_with_their_mode_and_parents_created() {
        let (dir, tree) = tree();
        tree.write_file("/etc/a/b/conf", &mut &b"x=1\n"[..], 0o640)
            .unwrap();
        let path = dir.path().join("tree/etc/a/b/conf");
        assert_eq!(std::fs::read(&path).unwrap(), b"x=1\n");
        assert_eq!(mode(&path), 0o640);
        assert_eq!(mode(&dir.path().join("tree/etc/a")), 0o755);
        // Replacing keeps nothing of the old file.
        tree.write_file("/etc/a/b/conf", &mut &b"y"[..], 0o600)
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"y");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn symlinks_in_the_tree_resolve_inside_it() {
        let (dir, tree) = tree();
        let host = tempfile::tempdir().unwrap();
        // An absolute symlink to a host directory, and one with `..`.
        std::os::unix::fs::symlink(host.path(), dir.path().join("tree/escape")).unwrap();
        std::os::unix::fs::symlink("../../..", dir.path().join("tree/up")).unwrap();
        // Dangling inside the tree: refused, not followed onto the host.
        assert!(tree.write_file("/escape/f", &mut &b"a"[..], 0o644).is_err());
        // Inside the tree the absolute target names the tree's own path.
        let inside = dir
            .path()
            .join("tree")
            .join(host.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        tree.write_file("/escape/f", &mut &b"a"[..], 0o644).unwrap();
        tree.write_file("/up/g", &mut &b"b"[..], 0o644).unwrap();
        tree.write_file("/sbin/init-ish", &mut &b"c"[..], 0o755)
            .unwrap();

        assert_eq!(
            std::fs::read_dir(host.path()).unwrap().count(),
            0,
            "wrote onto the host"
        );
        assert!(!dir.path().join("g").exists());
        assert_eq!(std::fs::read(inside.join("f")).unwrap(), b"a");
        assert_eq!(std::fs::read(dir.path().join("tree/g")).unwrap(), b"b");
        assert_eq!(
            std::fs::read(dir.path().join("tree/usr/sbin/init-ish")).unwrap(),
            b"c"
        );
    }

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let (dir, tree) = tree();
        let host = tempfile::tempdir().unwrap();
        let victim = host.path().join("victim");
        std::fs::write(&victim, b"host").unwrap();
        std::fs::create_dir(dir.path().join("tree/etc")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("tree/etc/fstab")).unwrap();
        tree.write_file("/etc/fstab", &mut &b"guest"[..], 0o644)
            .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"host");
        assert_eq!(
            std::fs::read(dir.path().join("tree/etc/fstab")).unwrap(),
            b"guest"
        );

        tree.symlink("/etc/link", "/etc/fstab").unwrap();
        tree.symlink("/etc/link", "/etc/other").unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join("tree/etc/link")).unwrap(),
            Path::new("/etc/other")
        );
        let err = tree.write_file("/usr", &mut &b""[..], 0o644).unwrap_err();
        assert!(err.to_string().contains("never replaced"), "{err}");
    }

    #[test]
    fn prefixed_entries_are_removed_and_others_kept() {
        let (dir, tree) = tree();
        let ssh = dir.path().join("tree/etc/ssh");
        std::fs::create_dir_all(ssh.join("ssh_host_dir")).unwrap();
        for f in [
            "ssh_host_rsa_key",
            "ssh_host_rsa_key.pub",
            "sshd_config",
            "moduli",
        ] {
            std::fs::write(ssh.join(f), b"").unwrap();
        }
        let removed = tree.remove_prefixed("/etc/ssh", "ssh_host_").unwrap();
        assert_eq!(removed, ["ssh_host_rsa_key", "ssh_host_rsa_key.pub"]);
        assert_eq!(
            crate::test_support::dir_names(&ssh),
            ["moduli", "ssh_host_dir", "sshd_config"]
        );
        assert!(tree.remove_prefixed("/nope", "x").unwrap().is_empty());
    }

    #[test]
    fn take_dir_moves_the_content_out_and_leaves_an_empty_private_dir() {
        let (dir, tree) = tree();
        std::fs::create_dir(dir.path().join("tree/root")).unwrap();
        std::fs::write(dir.path().join("tree/root/.bashrc"), b"alias ll='ls -l'").unwrap();
        let seed = dir.path().join("seed");
        tree.take_dir("root", &seed).unwrap();
        assert_eq!(
            std::fs::read(seed.join(".bashrc")).unwrap(),
            b"alias ll='ls -l'"
        );
        let root = dir.path().join("tree/root");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        assert_eq!(mode(&root), 0o700);

        // Missing: an empty seed. A symlink: refused.
        std::fs::remove_dir(&root).unwrap();
        let seed2 = dir.path().join("seed2");
        tree.take_dir("root", &seed2).unwrap();
        assert!(seed2.is_dir() && root.is_dir());
        std::fs::remove_dir(&root).unwrap();
        std::os::unix::fs::symlink("/etc", &root).unwrap();
        let err = tree
            .take_dir("root", &dir.path().join("seed3"))
            .unwrap_err();
        assert!(matches!(err, ImageError::BadTree { .. }), "{err:?}");
        assert!(tree.is_dir("/usr/sbin") && !tree.is_dir("/nope"));
    }
}

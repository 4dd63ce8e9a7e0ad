//! Staging directories: every image is assembled in
//! `images_dir/.staging-<name>@<random>` and renamed into place in one step.
//! The `@` cannot appear in an image name, so the entries of one name are
//! told apart from those of a name that merely starts the same; whoever
//! holds the name's lock knows any such entry is a leftover of a crash.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;

use super::error::ImageError;
use super::mounts;
use super::name::ImageName;

/// Entries of `images_dir` starting with `.` are banger's own; this one
/// marks images being assembled.
pub const STAGING_PREFIX: &str = ".staging-";

/// A staging directory being filled. Dropped without [`Staging::commit`],
/// it is removed with everything in it.
pub(crate) struct Staging {
    path: PathBuf,
    committed: bool,
}

fn prefix(name: &ImageName) -> String {
    format!("{STAGING_PREFIX}{name}@")
}

impl Staging {
    pub(crate) fn create(images_dir: &Path, name: &ImageName) -> Result<Self, ImageError> {
        let path = tempfile::Builder::new()
            .prefix(&prefix(name))
            .tempdir_in(images_dir)
            .map_err(|e| ImageError::io("create a staging directory in", images_dir, e))?
            .keep();
        Ok(Self {
            path,
            committed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the staged image to `dest` in one step: renamed there when
    /// `dest` does not exist, atomically exchanged with it when it does
    /// (the old image is then removed). Readers see the old image or the
    /// new one, never a mix. The caller holds the name's lock.
    pub(crate) fn commit(mut self, dest: &Path) -> Result<(), ImageError> {
        // tempfile makes the directory 0700; the owner daemon must read
        // images a root build made.
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| ImageError::io("set the mode of", &self.path, e))?;
        sync(&self.path)?;
        match rename(&self.path, dest, RenameFlags::NOREPLACE) {
            Ok(()) => {}
            Err(Errno::EXIST | Errno::NOTEMPTY) => self.exchange(dest)?,
            // NOREPLACE is not supported by this filesystem.
            Err(Errno::INVAL) if dest.exists() => self.exchange(dest)?,
            Err(Errno::INVAL) => rename(&self.path, dest, RenameFlags::empty())
                .map_err(|e| ImageError::io("move the staged image to", dest, e.into()))?,
            Err(e) => return Err(ImageError::io("move the staged image to", dest, e.into())),
        }
        self.committed = true;
        if let Some(parent) = dest.parent() {
            sync(parent)?;
        }
        Ok(())
    }

    fn exchange(&mut self, dest: &Path) -> Result<(), ImageError> {
        match rename(&self.path, dest, RenameFlags::EXCHANGE) {
            Ok(()) => {
                // The staging path now holds the old image.
                self.committed = true;
                if let Err(e) = remove(&self.path) {
                    tracing::warn!(error = %e, "the replaced image stays behind; it is removed at the next change of this image");
                }
                Ok(())
            }
            Err(Errno::INVAL | Errno::NOSYS) => self.swap_in_two_steps(dest),
            Err(e) => Err(ImageError::io("replace the image at", dest, e.into())),
        }
    }

    /// For filesystems without `RENAME_EXCHANGE`: the old image is moved
    /// aside (to a name this image's lock holder cleans up), then the new
    /// one in. Readers may find no image in between, but never a mix.
    fn swap_in_two_steps(&mut self, dest: &Path) -> Result<(), ImageError> {
        let mut aside = self.path.clone().into_os_string();
        aside.push("-old");
        let aside = PathBuf::from(aside);
        std::fs::rename(dest, &aside)
            .map_err(|e| ImageError::io("move the old image aside to", &aside, e))?;
        if let Err(e) = std::fs::rename(&self.path, dest) {
            // Put the old image back so the failure changes nothing.
            if let Err(back) = std::fs::rename(&aside, dest) {
                tracing::error!(error = %back, old = %aside.display(), "cannot restore the old image; move it back by hand");
            }
            return Err(ImageError::io("move the staged image to", dest, e));
        }
        self.committed = true;
        if let Err(e) = remove(&aside) {
            tracing::warn!(error = %e, "the replaced image stays behind; it is removed at the next change of this image");
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Err(e) = remove(&self.path) {
            tracing::warn!(error = %e, "cannot remove a staging directory after a failure; it is retried at the next change of this image");
        }
    }
}

fn rename(from: &Path, to: &Path, flags: RenameFlags) -> Result<(), Errno> {
    rustix::fs::renameat_with(CWD, from, CWD, to, flags)
}

fn sync(dir: &Path) -> Result<(), ImageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("flush", dir, e))
}

/// Moves the image directory `dir` out of sight in one step, then removes
/// it: a crash in between leaves only a leftover the lock holder cleans.
pub(crate) fn retire(images_dir: &Path, name: &ImageName, dir: &Path) -> Result<(), ImageError> {
    let staging = Staging::create(images_dir, name)?;
    // rename(2) replaces an empty directory, which the new one is.
    std::fs::rename(dir, staging.path())
        .map_err(|e| ImageError::io("move the image out of", dir, e))?;
    drop(staging);
    Ok(())
}

/// Removes leftovers of interrupted changes of `name`. The caller holds
/// the name's lock, so no other process is using them.
pub(crate) fn clean_stale(images_dir: &Path, name: &ImageName) -> Result<(), ImageError> {
    let prefix = prefix(name);
    let entries = match std::fs::read_dir(images_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ImageError::io("list", images_dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| ImageError::io("list", images_dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::info!(path = %entry.path().display(), "removing a leftover of an interrupted image change");
            remove(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes a staging tree (or a tree inside one), unless something is
/// mounted inside it.
pub(crate) fn remove(path: &Path) -> Result<(), ImageError> {
    let canonical = match path.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ImageError::io("resolve", path, e)),
    };
    let mount = mounts::first_mount_under(&canonical)
        .map_err(|e| ImageError::io("read the mount table to check", path, e))?;
    if let Some(mount) = mount {
        return Err(ImageError::StillMounted {
            staging: path.to_owned(),
            mount,
        });
    }
    match std::fs::remove_dir_all(&canonical) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ImageName {
        ImageName::new(s).unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        crate::test_support::dir_names(dir)
    }

    #[test]
    fn a_dropped_staging_directory_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::create(dir.path(), &name("img")).unwrap();
        std::fs::create_dir(staging.path().join("sub")).unwrap();
        std::fs::write(staging.path().join("sub/file"), b"x").unwrap();
        assert!(
            staging
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".staging-img@")
        );
        drop(staging);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn commit_moves_in_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("img");

        let first = Staging::create(dir.path(), &name("img")).unwrap();
        std::fs::write(first.path().join("v"), b"1").unwrap();
        first.commit(&dest).unwrap();
        assert_eq!(std::fs::read(dest.join("v")).unwrap(), b"1");
        let mode = dest.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);

        let second = Staging::create(dir.path(), &name("img")).unwrap();
        std::fs::write(second.path().join("v"), b"2").unwrap();
        second.commit(&dest).unwrap();
        assert_eq!(std::fs::read(dest.join("v")).unwrap(), b"2");
        assert_eq!(
            entries(dir.path()),
            ["img"],
            "the old image was not removed"
        );
    }

    #[test]
    fn readers_never_find_the_image_missing_while_it_is_replaced() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("img");
        let first = Staging::create(dir.path(), &name("img")).unwrap();
        std::fs::write(first.path().join("v"), b"0").unwrap();
        first.commit(&dest).unwrap();

        let done = AtomicBool::new(false);
        let (reads, misses) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    reads.fetch_add(1, Ordering::SeqCst);
                    if std::fs::read(dest.join("v")).is_err() {
                        misses.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
            for i in 1..=200 {
                let next = Staging::create(dir.path(), &name("img")).unwrap();
                std::fs::write(next.path().join("v"), i.to_string()).unwrap();
                next.commit(&dest).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        assert!(reads.load(Ordering::SeqCst) > 0);
        assert_eq!(misses.load(Ordering::SeqCst), 0, "a reader found no image");
        assert_eq!(std::fs::read(dest.join("v")).unwrap(), b"200");
        assert_eq!(entries(dir.path()), ["img"]);
    }

    #[test]
    fn the_two_step_swap_replaces_too() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("img");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("v"), b"old").unwrap();
        let mut staging = Staging::create(dir.path(), &name("img")).unwrap();
        std::fs::write(staging.path().join("v"), b"new").unwrap();
        staging.swap_in_two_steps(&dest).unwrap();
        drop(staging);
        assert_eq!(std::fs::read(dest.join("v")).unwrap(), b"new");
        assert_eq!(entries(dir.path()), ["img"]);
    }

    #[test]
    fn retire_and_clean_stale_touch_only_their_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        std::fs::create_dir(&img).unwrap();
        std::fs::write(img.join("rootfs.ext4"), b"x").unwrap();
        retire(dir.path(), &name("img"), &img).unwrap();
        assert!(entries(dir.path()).is_empty());

        for leftover in [
            ".staging-img@abc",
            ".staging-img@abc-old",
            ".staging-img-2@abc",
        ] {
            std::fs::create_dir(dir.path().join(leftover)).unwrap();
            std::fs::write(dir.path().join(leftover).join("f"), b"x").unwrap();
        }
        clean_stale(dir.path(), &name("img")).unwrap();
        assert_eq!(entries(dir.path()), [".staging-img-2@abc"]);
    }

    #[test]
    fn a_tree_with_a_mount_inside_is_not_removed() {
        if !banger_sys::os::is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::create(dir.path(), &name("img")).unwrap();
        let proc_dir = staging.path().join("rootfs/proc");
        std::fs::create_dir_all(&proc_dir).unwrap();
        banger_sys::Cmd::new("mount")
            .args(["-t", "tmpfs", "banger-staging-test"])
            .arg(&proc_dir)
            .run()
            .unwrap();
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = banger_sys::Cmd::new("umount").arg(&self.0).run();
            }
        }
        let _unmount = Unmount(proc_dir.clone());
        std::fs::write(proc_dir.join("host-file"), b"keep").unwrap();

        let err = remove(staging.path()).unwrap_err();
        let ImageError::StillMounted { mount, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(mount, &proc_dir.canonicalize().unwrap());
        assert_eq!(std::fs::read(proc_dir.join("host-file")).unwrap(), b"keep");
    }
}

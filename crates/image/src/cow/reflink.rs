//! Reflink clones: `FICLONE` makes the new file share every extent of the
//! base, so it takes constant time whatever the image size, and blocks are
//! copied only when the VM writes them.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::error::DiskError;
use crate::newfile::NewFile;

/// Clones `base` to `dest` (created with `O_EXCL`; removed again if the
/// clone fails).
pub(super) fn clone_file(base: &Path, dest: &Path) -> Result<PathBuf, DiskError> {
    let src = File::open(base).map_err(|e| DiskError::io("open the base image", base, e))?;
    let new = NewFile::create(dest)?;
    rustix::fs::ioctl_ficlone(new.file(), &src).map_err(|errno| DiskError::Reflink {
        base: base.to_owned(),
        dest: dest.to_owned(),
        hint: hint(errno),
        source: io::Error::from(errno),
    })?;
    Ok(new.keep())
}

fn hint(errno: Errno) -> &'static str {
    match errno {
        Errno::XDEV => {
            "the image and the VM directory are on different filesystems; \
             a reflink needs both on the same one"
        }
        Errno::OPNOTSUPP | Errno::INVAL | Errno::NOTTY => {
            "the filesystem does not support reflinks (xfs needs reflink=1; \
             `banger doctor` shows which strategy applies)"
        }
        _ => "the clone failed",
    }
}

/// Whether `FICLONE` works in `dir`: clones a small temporary file to
/// another one. Both are removed whatever happens.
pub(super) fn probe(dir: &Path) -> io::Result<()> {
    let temp = |what| tempfile::Builder::new().prefix(what).tempfile_in(dir);
    let mut src = temp(".banger-reflink-probe-src")?;
    // One whole block: some filesystems refuse to clone a partial block
    // that is not at the end of the file; this makes the probe depend only
    // on support.
    src.write_all(&[0x5a; 4096])?;
    src.as_file().sync_data()?;
    let dst = temp(".banger-reflink-probe-dst")?;
    rustix::fs::ioctl_ficlone(dst.as_file(), src.as_file()).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_that_fails_leaves_no_file() {
        // tmpfs and ext4 (where tests run) have no reflinks.
        let dir = tempfile::tempdir().unwrap();
        if probe(dir.path()).is_ok() {
            eprintln!("skipped: the temporary directory supports reflinks");
            return;
        }
        let base = dir.path().join("base");
        std::fs::write(&base, vec![1u8; 8192]).unwrap();
        let dest = dir.path().join("root.ext4");
        let err = clone_file(&base, &dest).unwrap_err();
        let DiskError::Reflink { hint, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(hint.contains("does not support reflinks"), "{err}");
        assert!(!dest.exists(), "the partial clone was left behind");
    }

    #[test]
    fn a_missing_base_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root.ext4");
        let err = clone_file(&dir.path().join("missing"), &dest).unwrap_err();
        assert!(err.to_string().contains("open the base image"), "{err}");
        assert!(!dest.exists());
    }
}

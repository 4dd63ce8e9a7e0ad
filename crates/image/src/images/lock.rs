//! One writer per image name: an exclusive `flock` on
//! `images_dir/.locks/<name>.lock`, held for the whole change (a build,
//! a promote, a delete). The lock files are never removed: removing one
//! while another process waits on it would let two writers in.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use super::error::ImageError;
use super::name::ImageName;

pub(crate) const LOCKS_DIR: &str = ".locks";

/// Held while one image name is being changed; released on drop.
#[derive(Debug)]
pub(crate) struct ImageLock {
    _file: File,
}

/// Takes the lock of `name`, waiting for its holder if there is one;
/// `on_wait` is called once before waiting, so the caller can say why
/// nothing happens.
pub(crate) fn lock(
    images_dir: &Path,
    name: &ImageName,
    on_wait: &mut dyn FnMut(),
) -> Result<ImageLock, ImageError> {
    let dir = images_dir.join(LOCKS_DIR);
    let path = dir.join(format!("{name}.lock"));
    let err = |source: io::Error| ImageError::Lock {
        name: name.to_string(),
        path: path.clone(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(err)?;
    let file = open(&path).map_err(err)?;
    match banger_sys::os::lock_exclusive_nonblocking(&file) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            on_wait();
            blocking(&file).map_err(err)?;
        }
        Err(e) => return Err(err(e)),
    }
    Ok(ImageLock { _file: file })
}

/// flock needs no write access, so a lock file another user created (the
/// root helper's) is opened read-only.
fn open(path: &PathBuf) -> io::Result<File> {
    match File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path),
        other => other,
    }
}

fn blocking(file: &File) -> io::Result<()> {
    loop {
        match rustix::fs::flock(file, FlockOperation::LockExclusive) {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_second_locker_waits_until_the_first_releases() {
        let dir = tempfile::tempdir().unwrap();
        let name = ImageName::new("img").unwrap();
        let first = lock(dir.path(), &name, &mut || panic!("nobody holds it yet")).unwrap();

        let (tx, rx) = mpsc::channel();
        let images = dir.path().to_owned();
        let waiter = std::thread::spawn(move || {
            let mut waited = false;
            let held = lock(&images, &name, &mut || waited = true).unwrap();
            tx.send(()).unwrap();
            drop(held);
            waited
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the second locker got in while the first held the lock"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the second locker never got the lock");
        assert!(waiter.join().unwrap(), "on_wait was not called");
    }

    #[test]
    fn different_names_do_not_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let _a = lock(dir.path(), &ImageName::new("a").unwrap(), &mut || panic!()).unwrap();
        let _b = lock(dir.path(), &ImageName::new("b").unwrap(), &mut || {
            panic!("b waited for a")
        })
        .unwrap();
    }
}

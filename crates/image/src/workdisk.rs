//! The work disk (SPEC §7): `/dev/vdb`, mounted at `/root` in the guest and
//! kept across stop/start. A fresh sparse ext4 whose root directory is
//! root's even when the daemon is not root, optionally seeded with a host
//! directory's content.

use std::path::Path;
use std::time::Instant;

use banger_api::model::ByteSize;
use banger_sys::Cmd;

use crate::error::DiskError;
use crate::newfile::NewFile;

/// The filesystem label the guest's fstab may refer to.
pub const WORK_DISK_LABEL: &str = "banger-work";

/// Creates the work disk at `path` (which must not exist): a sparse file of
/// `size` formatted as ext4. `seed`, a host directory, is copied in by
/// `mkfs.ext4 -d`; its files keep their host owners and modes, so the
/// caller prepares it (or fixes owners afterwards with
/// [`crate::Ext4Image::write_files`]). The partial file is removed if
/// anything fails.
pub fn create_work_disk(path: &Path, size: ByteSize, seed: Option<&Path>) -> Result<(), DiskError> {
    if let Some(seed) = seed {
        let meta = std::fs::metadata(seed)
            .map_err(|e| DiskError::io("inspect the seed directory", seed, e))?;
        if !meta.is_dir() {
            return Err(DiskError::SeedNotDirectory {
                path: seed.to_owned(),
            });
        }
    }
    let started = Instant::now();
    let mut disk = NewFile::create(path)?;
    disk.set_len(size.bytes())?;
    disk.close();

    // root_owner=0:0: without it mkfs gives the root directory the uid
    // and gid of whoever runs it, and the guest's /root must be root's.
    let mut cmd =
        Cmd::new("mkfs.ext4").args(["-F", "-q", "-L", WORK_DISK_LABEL, "-E", "root_owner=0:0"]);
    if let Some(seed) = seed {
        cmd = cmd.arg("-d").arg(seed);
    }
    cmd.arg(disk.path())
        .run()
        .map_err(|source| DiskError::Command {
            action: format!("format the work disk {}", path.display()),
            source,
        })?;
    disk.keep();
    tracing::info!(
        disk = %path.display(),
        size_mib = size.mib(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "work disk created"
    );
    Ok(())
}

/// Makes everything `create_work_disk` copied from `seed` root's inside the
/// disk (it is the guest's `/root`). `mkfs.ext4 -d` keeps host owners, and
/// an owner daemon that is not root copies the seed as itself, so without
/// this the guest would find its dotfiles owned by the host user's uid.
/// Modes and contents stay as they are.
pub fn give_seed_to_root(disk: &Path, seed: &Path) -> Result<(), DiskError> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries = Vec::new();
    let mut pending = vec![(seed.to_path_buf(), String::new())];
    while let Some((dir, guest)) = pending.pop() {
        let list = std::fs::read_dir(&dir).map_err(|e| DiskError::io("read the seed", &dir, e))?;
        for item in list {
            let item = item.map_err(|e| DiskError::io("read the seed", &dir, e))?;
            let host = item.path();
            let name = item.file_name().to_string_lossy().into_owned();
            let path = format!("{guest}/{name}");
            let meta =
                std::fs::symlink_metadata(&host).map_err(|e| DiskError::io("inspect", &host, e))?;
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                entries.push(crate::ext4::Entry::Dir {
                    path: path.clone(),
                    uid: 0,
                    gid: 0,
                    mode,
                });
                pending.push((host, path));
            } else if meta.is_file() {
                let content = std::fs::read(&host).map_err(|e| DiskError::io("read", &host, e))?;
                entries.push(crate::ext4::Entry::File {
                    path,
                    content,
                    uid: 0,
                    gid: 0,
                    mode,
                });
            } else if meta.file_type().is_symlink() {
                let target =
                    std::fs::read_link(&host).map_err(|e| DiskError::io("read", &host, e))?;
                entries.push(crate::ext4::Entry::Symlink {
                    path,
                    target: target.to_string_lossy().into_owned(),
                });
            }
        }
    }
    // Parents before children: `write_files` applies entries in order.
    entries.sort_by(|a, b| a.path().cmp(b.path()));
    crate::ext4::Ext4Image::open(disk)?.write_files(&entries)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_seed_copied_by_another_user_becomes_roots_in_the_disk() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(seed.join(".config/app")).unwrap();
        std::fs::write(seed.join(".bashrc"), b"rc").unwrap();
        std::fs::write(seed.join(".config/app/key"), b"k").unwrap();
        std::fs::set_permissions(
            seed.join(".config/app/key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink(".bashrc", seed.join(".rc-link")).unwrap();
        if banger_sys::os::is_root() {
            // As an owner daemon that is not root would have copied them.
            Cmd::new("chown")
                .args(["-R", "-h", "65534:65534"])
                .arg(&seed)
                .run()
                .unwrap();
        }
        let disk = dir.path().join("work.ext4");
        create_work_disk(&disk, "32M".parse().unwrap(), Some(&seed)).unwrap();
        give_seed_to_root(&disk, &seed).unwrap();
        let image = crate::ext4::Ext4Image::open(&disk).unwrap();
        for path in [
            "/.bashrc",
            "/.config",
            "/.config/app",
            "/.config/app/key",
            "/.rc-link",
        ] {
            let info = image
                .stat(path)
                .unwrap()
                .unwrap_or_else(|| panic!("{path} missing"));
            assert_eq!((info.uid, info.gid), (0, 0), "{path}");
        }
        let key = image.stat("/.config/app/key").unwrap().unwrap();
        assert_eq!(key.permissions(), 0o600);
        assert_eq!(image.read_file("/.config/app/key").unwrap(), b"k");
    }
    use crate::ext4::{Ext4Image, FileKind};

    /// Set for the child process of
    /// `a_daemon_that_is_not_root_still_makes_a_root_owned_root`.
    const CHILD_ENV: &str = "BANGER_TEST_WORK_DISK_CHILD";

    fn size(mib: u64) -> ByteSize {
        ByteSize::from_mib(mib).unwrap()
    }

    fn root_dir(path: &Path) -> crate::ext4::FileInfo {
        Ext4Image::open(path).unwrap().stat("/").unwrap().unwrap()
    }

    #[test]
    fn the_disk_is_sparse_labelled_ext4_with_a_root_owned_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ext4");
        create_work_disk(&path, size(1024), None).unwrap();

        let meta = path.metadata().unwrap();
        assert_eq!(meta.len(), 1024 * 1024 * 1024);
        let allocated = meta.blocks() * 512;
        assert!(
            allocated < 64 * 1024 * 1024,
            "1 GiB work disk allocates {allocated} bytes"
        );

        let root = root_dir(&path);
        assert_eq!((root.kind, root.uid, root.gid), (FileKind::Directory, 0, 0));
        let label = Cmd::new("e2label").arg(&path).run().unwrap().stdout_str();
        assert_eq!(label.trim(), WORK_DISK_LABEL);
    }

    /// The owner daemon is not root; mkfs run by another user must still
    /// make `/` root's. Runs `child_creates_a_work_disk` in this test binary
    /// as uid 65534.
    #[test]
    fn a_daemon_that_is_not_root_still_makes_a_root_owned_root() {
        if !banger_sys::os::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.path().join("work.ext4");
        Cmd::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "workdisk::tests::child_creates_a_work_disk",
                "--ignored",
                "--quiet",
            ])
            .env(CHILD_ENV, &path)
            .run()
            .unwrap();
        assert_eq!(
            path.metadata().unwrap().uid(),
            65534,
            "the child did not create the disk"
        );
        let root = root_dir(&path);
        assert_eq!((root.uid, root.gid), (0, 0));
    }

    #[test]
    #[ignore = "run by a_daemon_that_is_not_root_still_makes_a_root_owned_root"]
    fn child_creates_a_work_disk() {
        let Some(path) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        create_work_disk(Path::new(&path), size(64), None).unwrap();
    }

    #[test]
    fn seeded_files_are_present_with_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(seed.join(".config/git")).unwrap();
        std::fs::write(seed.join(".gitconfig"), b"[user]\n\tname = Ada\n").unwrap();
        std::fs::write(seed.join(".config/git/ignore"), b"target/\n").unwrap();
        let path = dir.path().join("work.ext4");
        create_work_disk(&path, size(64), Some(&seed)).unwrap();

        let image = Ext4Image::open(&path).unwrap();
        assert_eq!(
            image.read_file("/.gitconfig").unwrap(),
            b"[user]\n\tname = Ada\n"
        );
        assert_eq!(
            image.read_file("/.config/git/ignore").unwrap(),
            b"target/\n"
        );
        let root = root_dir(&path);
        assert_eq!((root.uid, root.gid), (0, 0));
    }

    #[test]
    fn failures_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ext4");

        let missing = dir.path().join("no-seed");
        let err = create_work_disk(&path, size(64), Some(&missing)).unwrap_err();
        assert!(err.to_string().contains("seed directory"), "{err}");
        let seed_file = dir.path().join("file");
        std::fs::write(&seed_file, b"").unwrap();
        assert!(matches!(
            create_work_disk(&path, size(64), Some(&seed_file)),
            Err(DiskError::SeedNotDirectory { .. })
        ));
        assert!(!path.exists());

        // mkfs itself fails after the file was created: the seed does not fit.
        let seed = dir.path().join("seed");
        std::fs::create_dir(&seed).unwrap();
        std::fs::write(seed.join("big"), vec![7u8; 3 * 1024 * 1024]).unwrap();
        let err = create_work_disk(&path, size(1), Some(&seed)).unwrap_err();
        assert!(matches!(err, DiskError::Command { .. }), "{err:?}");
        assert!(err.to_string().contains("format the work disk"), "{err}");
        assert!(!path.exists(), "the partial work disk was left behind");
    }

    #[test]
    fn an_existing_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ext4");
        std::fs::write(&path, b"keep me").unwrap();
        assert!(matches!(
            create_work_disk(&path, size(64), None),
            Err(DiskError::AlreadyExists { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }
}

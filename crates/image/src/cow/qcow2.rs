//! qcow2 overlays for the QEMU backend: a small qcow2 file whose backing
//! file is the raw base image. QEMU opens the base read-only and sends every
//! write to the overlay, so creating one costs the same for any image size
//! and needs no privilege.

use std::path::{Path, PathBuf};

use banger_sys::Cmd;

use crate::error::DiskError;
use crate::newfile::NewFile;

pub(super) fn create_overlay(base: &Path, dest: &Path) -> Result<PathBuf, DiskError> {
    create_overlay_of(base, "raw", dest)
}

/// An overlay over `base` of format `base_format` (`raw`, or `qcow2` for a
/// snapshot's frozen root, itself an overlay over the image).
pub(super) fn create_overlay_of(
    base: &Path,
    base_format: &str,
    dest: &Path,
) -> Result<PathBuf, DiskError> {
    // qemu-img resolves a relative backing path against the overlay's
    // directory, not ours; the overlay must name the base absolutely.
    let base = std::path::absolute(base).map_err(|e| DiskError::io("resolve", base, e))?;
    if let Err(e) = std::fs::metadata(&base) {
        return Err(DiskError::io("open the base image", base, e));
    }
    // Claim the name with O_EXCL first: qemu-img would truncate an existing
    // file. It then writes into the empty file we own, keeping its mode.
    let mut new = NewFile::create(dest)?;
    new.close();
    let cmd = Cmd::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", base_format, "-b"])
        .arg(&base)
        .arg(new.path());
    cmd.run().map_err(|source| DiskError::Command {
        action: format!(
            "create a qcow2 overlay {} over {}",
            dest.display(),
            base.display()
        ),
        source,
    })?;
    Ok(new.keep())
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_sys::find_program;

    fn have_qemu_img() -> bool {
        let found = find_program("qemu-img").is_some();
        if !found {
            eprintln!("skipped: qemu-img not installed");
        }
        found
    }

    fn info(path: &Path) -> serde_json::Value {
        let out = Cmd::new("qemu-img")
            .args(["info", "--output=json", "-U"])
            .arg(path)
            .run()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    #[test]
    fn the_overlay_is_qcow2_backed_by_the_absolute_base() {
        if !have_qemu_img() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("rootfs.ext4");
        std::fs::write(&base, vec![0x11u8; 1024 * 1024]).unwrap();
        let dest = dir.path().join("root.qcow2");
        assert_eq!(create_overlay(&base, &dest).unwrap(), dest);

        let info = info(&dest);
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["backing-filename"], base.to_str().unwrap());
        assert_eq!(info["backing-filename-format"], "raw");
        assert_eq!(info["virtual-size"], 1024 * 1024);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(dest.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        assert!(
            dest.metadata().unwrap().len() < 1024 * 1024,
            "the overlay copied the base"
        );
    }

    #[test]
    fn writes_go_to_the_overlay_and_leave_the_base_alone() {
        if !have_qemu_img() {
            return;
        }
        if find_program("qemu-io").is_none() {
            eprintln!("skipped: qemu-io not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("rootfs.ext4");
        let original = vec![0x11u8; 1024 * 1024];
        std::fs::write(&base, &original).unwrap();
        let dest = create_overlay(&base, &dir.path().join("root.qcow2")).unwrap();

        let io = |cmd: &str| {
            Cmd::new("qemu-io")
                .args(["-f", "qcow2", "-c", cmd])
                .arg(&dest)
                .run()
                .unwrap()
                .stdout_str()
        };
        io("write -P 0xab 65536 65536");
        let read = io("read -P 0xab 65536 65536");
        assert!(!read.contains("Pattern verification failed"), "{read}");
        let before = io("read -P 0x11 0 65536");
        assert!(
            !before.contains("Pattern verification failed"),
            "unwritten data comes from the base: {before}"
        );
        assert_eq!(
            std::fs::read(&base).unwrap(),
            original,
            "the base was written"
        );
    }

    #[test]
    fn a_failed_create_leaves_no_file() {
        if !have_qemu_img() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root.qcow2");
        // qemu-img itself refuses a directory as the backing image, after
        // the overlay's name was claimed.
        let not_an_image = dir.path().join("images");
        std::fs::create_dir(&not_an_image).unwrap();
        let err = create_overlay(&not_an_image, &dest).unwrap_err();
        assert!(matches!(err, DiskError::Command { .. }), "{err:?}");
        assert!(err.to_string().contains("create a qcow2 overlay"), "{err}");
        assert!(!dest.exists(), "the claimed overlay file was left behind");

        let missing = dir.path().join("missing.ext4");
        let err = create_overlay(&missing, &dest).unwrap_err();
        assert!(err.to_string().contains("open the base image"), "{err}");
        assert!(!dest.exists());
    }

    #[test]
    fn an_existing_overlay_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("rootfs.ext4");
        std::fs::write(&base, b"").unwrap();
        let dest = dir.path().join("root.qcow2");
        std::fs::write(&dest, b"earlier").unwrap();
        assert!(matches!(
            create_overlay(&base, &dest),
            Err(DiskError::AlreadyExists { .. })
        ));
        assert_eq!(std::fs::read(&dest).unwrap(), b"earlier");
    }
}

//! `image promote`: copies an unmanaged image's rootfs into banger's
//! storage, so the image no longer depends on a file banger does not own.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use banger_sys::Cmd;

use super::error::ImageError;
use super::manifest::{self, ImageKind, ImageManifest};
use super::name::ImageName;
use super::staging::Staging;
use super::store::{ImageStore, MANIFEST_FILE, ROOTFS_FILE, check_rootfs};

/// Images are shared by every VM's copy-on-write disk: never written.
pub(crate) const ROOTFS_MODE: u32 = 0o444;

impl ImageStore {
    /// Copies the registered rootfs of `name` into the image directory
    /// (reflinked when the filesystem can, otherwise a sparse copy) and
    /// makes the image managed. The registered file is left alone.
    pub fn promote(&self, name: &str) -> Result<ImageManifest, ImageError> {
        let name = ImageName::new(name)?;
        let _lock = self.lock(&name, &mut || {
            tracing::info!(image = %name, "waiting for another change of this image to finish");
        })?;
        let old = self.read(&name)?.ok_or_else(|| self.not_found(&name))?;
        if old.kind == ImageKind::Managed {
            return Err(ImageError::AlreadyManaged {
                name: name.to_string(),
            });
        }
        let size_bytes = check_rootfs(&old.rootfs)?;
        let staging = Staging::create(self.dir(), &name)?;
        let copy = staging.path().join(ROOTFS_FILE);
        copy_image(&old.rootfs, &copy)?;
        seal(&copy)?;

        let source = old.rootfs.display().to_string();
        let manifest = ImageManifest {
            kind: ImageKind::Managed,
            rootfs: self.image_dir(&name).join(ROOTFS_FILE),
            size_bytes,
            source: format!("promoted from {source}"),
            created_at: manifest::now(),
            ..old
        };
        manifest::write(&staging.path().join(MANIFEST_FILE), &manifest)?;
        staging.commit(&self.image_dir(&name))?;
        tracing::info!(image = %name, from = %source, "image promoted");
        Ok(manifest)
    }
}

/// GNU cp tries a reflink first (`--reflink=auto`: constant time on xfs or
/// btrfs) and otherwise copies leaving holes where the image has zeros.
/// The crate's own sparse copy is private to the copy-on-write module;
/// `dest` is in a fresh staging directory, so no existing file is at stake.
fn copy_image(src: &Path, dest: &Path) -> Result<(), ImageError> {
    Cmd::new("cp")
        .args(["--reflink=auto", "--sparse=always", "--"])
        .arg(src)
        .arg(dest)
        .run()
        .map_err(|source| ImageError::Command {
            action: format!("copy {} into banger's storage", src.display()),
            source,
        })?;
    Ok(())
}

/// Makes a finished rootfs read-only and durable before it is renamed
/// into place.
pub(crate) fn seal(rootfs: &Path) -> Result<(), ImageError> {
    std::fs::set_permissions(rootfs, std::fs::Permissions::from_mode(ROOTFS_MODE))
        .map_err(|e| ImageError::io("make read-only", rootfs, e))?;
    std::fs::File::open(rootfs)
        .and_then(|f| f.sync_all())
        .map_err(|e| ImageError::io("flush", rootfs, e))
}

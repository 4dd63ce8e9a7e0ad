//! The image store: one directory per image under `images_dir`.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};

use super::error::ImageError;
use super::lock::{self, ImageLock};
use super::manifest::{self, ImageKind, ImageManifest};
use super::name::{self, ImageName};
use super::staging::{self, Staging};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const ROOTFS_FILE: &str = "rootfs.ext4";
/// The image's `/root` content, copied onto each new work disk.
pub const ROOT_SEED_DIR: &str = "root-seed";
pub use super::staging::STAGING_PREFIX;

/// ext2/3/4 superblock magic, at byte 56 of the superblock (byte 1024).
const EXT4_MAGIC_OFFSET: u64 = 1024 + 56;
const EXT4_MAGIC: [u8; 2] = 0xEF53u16.to_le_bytes();

#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    /// Removes what interrupted builds and changes left in the store (a
    /// daemon killed mid-build): every staging directory, after killing
    /// any process still working in it (mmdebstrap outlives its parent).
    /// Only for the one daemon that owns the store, before it serves.
    pub fn clean_interrupted(&self) -> Result<Vec<PathBuf>, ImageError> {
        let entries = match std::fs::read_dir(self.dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ImageError::io("list", self.dir(), e)),
        };
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io("list", self.dir(), e))?;
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
            {
                continue;
            }
            let path = entry.path();
            for pid in banger_sys::proc::mentioning(&path) {
                banger_sys::proc::kill_hard(pid, path.as_path(), std::time::Duration::from_secs(5));
            }
            super::staging::remove(&path)?;
            removed.push(path);
        }
        Ok(removed)
    }

    /// A store over `images_dir`, created on the first change.
    pub fn new(images_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: images_dir.into(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn image_dir(&self, name: &ImageName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    /// Every image, by name. An entry whose manifest cannot be read is
    /// left out (and logged), so one broken image does not hide the others;
    /// `show` reports what is wrong with it.
    pub fn list(&self) -> Result<Vec<ImageManifest>, ImageError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ImageError::io("list the images in", &self.dir, e)),
        };
        let mut images = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io("list the images in", &self.dir, e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            // Staging directories and locks; names never start with a dot.
            if file_name.starts_with('.') {
                continue;
            }
            let Ok(name) = ImageName::new(file_name) else {
                tracing::warn!(entry = %entry.path().display(), "not an image name; ignored");
                continue;
            };
            match self.read(&name) {
                Ok(Some(manifest)) => images.push(manifest),
                Ok(None) => {}
                Err(e) => tracing::warn!(image = %name, error = %e, "image left out of the list"),
            }
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    pub fn show(&self, name: &str) -> Result<ImageManifest, ImageError> {
        let name = ImageName::new(name)?;
        self.read(&name)?.ok_or_else(|| self.not_found(&name))
    }

    /// The directory to seed a new work disk from, if the image has one.
    pub fn root_seed(&self, name: &str) -> Result<Option<PathBuf>, ImageError> {
        let manifest = self.show(name)?;
        let seed = self.image_dir(&manifest.name).join(ROOT_SEED_DIR);
        Ok(seed.is_dir().then_some(seed))
    }

    /// Removes an image and returns what it was. For an unmanaged image
    /// only banger's record goes; the registered file is left alone.
    pub fn delete(&self, name: &str) -> Result<ImageManifest, ImageError> {
        let name = ImageName::new(name)?;
        let _lock = self.lock(&name, &mut || {
            tracing::info!(image = %name, "waiting for another change of this image to finish");
        })?;
        let manifest = self.read(&name)?.ok_or_else(|| self.not_found(&name))?;
        staging::retire(&self.dir, &name, &self.image_dir(&name))?;
        tracing::info!(image = %name, "image deleted");
        Ok(manifest)
    }

    /// Records an ext4 file that stays where it is (an unmanaged image).
    pub fn register(
        &self,
        name: &str,
        rootfs: &Path,
        kernel_ref: Option<&str>,
    ) -> Result<ImageManifest, ImageError> {
        let name = ImageName::new(name)?;
        if let Some(kernel) = kernel_ref {
            name::check(kernel).map_err(|problem| ImageError::InvalidKernelRef {
                name: kernel.to_owned(),
                problem,
            })?;
        }
        // Canonical, so the record does not depend on the caller's working
        // directory or on a symlink that may later point elsewhere.
        let rootfs = rootfs
            .canonicalize()
            .map_err(|e| ImageError::io("find the rootfs", rootfs, e))?;
        let size_bytes = check_rootfs(&rootfs)?;

        let _lock = self.lock(&name, &mut || {
            tracing::info!(image = %name, "waiting for another change of this image to finish");
        })?;
        if self.image_dir(&name).exists() {
            return Err(ImageError::AlreadyExists {
                name: name.to_string(),
            });
        }
        let manifest = ImageManifest {
            name: name.clone(),
            distro: None,
            arch: banger_sys::os::arch().to_owned(),
            kind: ImageKind::Unmanaged,
            source: format!("registered {}", rootfs.display()),
            rootfs,
            kernel_ref: kernel_ref.map(str::to_owned),
            size_bytes,
            recipe_hash: None,
            created_at: manifest::now(),
            packages: Vec::new(),
            init: None,
        };
        let staging = Staging::create(&self.dir, &name)?;
        manifest::write(&staging.path().join(MANIFEST_FILE), &manifest)?;
        staging.commit(&self.image_dir(&name))?;
        tracing::info!(image = %name, rootfs = %manifest.rootfs.display(), "image registered");
        Ok(manifest)
    }

    /// The manifest of `name`, `None` if there is no such image.
    pub(crate) fn read(&self, name: &ImageName) -> Result<Option<ImageManifest>, ImageError> {
        let dir = self.image_dir(name);
        let path = dir.join(MANIFEST_FILE);
        let mut manifest = match manifest::read(&path, name) {
            Ok(m) => m,
            Err(ImageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                if !dir.exists() {
                    return Ok(None);
                }
                return Err(ImageError::BadManifest {
                    path,
                    detail: "it is missing".into(),
                });
            }
            Err(e) => return Err(e),
        };
        if manifest.kind == ImageKind::Managed {
            // Never a path from the file: a manifest may come from a bundle.
            manifest.rootfs = dir.join(ROOTFS_FILE);
        }
        Ok(Some(manifest))
    }

    /// Takes the lock of `name` (creating the store directory if needed)
    /// and removes what interrupted changes of it left behind.
    pub(crate) fn lock(
        &self,
        name: &ImageName,
        on_wait: &mut dyn FnMut(),
    ) -> Result<ImageLock, ImageError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .map_err(|e| ImageError::io("create the image directory", &self.dir, e))?;
        let held = lock::lock(&self.dir, name, on_wait)?;
        staging::clean_stale(&self.dir, name)?;
        Ok(held)
    }

    pub(crate) fn not_found(&self, name: &ImageName) -> ImageError {
        ImageError::NotFound {
            name: name.to_string(),
            dir: self.dir.clone(),
        }
    }
}

/// Checks that `path` is a regular file carrying the ext4 superblock
/// magic; returns its size.
pub(crate) fn check_rootfs(path: &Path) -> Result<u64, ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io("open the rootfs", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| ImageError::io("inspect the rootfs", path, e))?;
    if !meta.is_file() {
        return Err(ImageError::NotRegularFile {
            path: path.to_owned(),
        });
    }
    let mut magic = [0u8; 2];
    match file.read_exact_at(&mut magic, EXT4_MAGIC_OFFSET) {
        Ok(()) if magic == EXT4_MAGIC => Ok(meta.len()),
        Ok(()) => Err(ImageError::NotExt4 {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ImageError::NotExt4 {
            path: path.to_owned(),
        }),
        Err(e) => Err(ImageError::io("read the superblock of", path, e)),
    }
}

#[cfg(test)]
mod tests;

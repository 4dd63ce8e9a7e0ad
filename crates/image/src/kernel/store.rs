//! The kernel store: one directory per kernel under `kernels_dir`, holding
//! `vmlinux`, `bzImage`, `initrd.img`, `modules/`, `config` and
//! `manifest.json`.
//!
//! A kernel appears whole or not at all: everything is built in a
//! `.staging-<random>` directory beside the kernels and renamed into place.
//! Replacing a kernel moves the old one into the staging directory first,
//! so a crash leaves either the old or the new one, and dot-directories are
//! never listed as kernels.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::KernelError;
use super::kernel_dir::{BZIMAGE, CONFIG, INITRD, MANIFEST, MODULES, VMLINUX};
use super::manifest::{KernelManifest, validate_name};

/// The kernel `vm run` uses unless told otherwise.
pub const DEFAULT_KERNEL_NAME: &str = "debian-cloud-amd64";

#[derive(Debug, Clone)]
pub struct KernelStore {
    dir: PathBuf,
}

/// The files of one kernel (they need not all exist: see the manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPaths {
    pub dir: PathBuf,
    pub vmlinux: PathBuf,
    pub bzimage: PathBuf,
    pub initrd: PathBuf,
    pub modules: PathBuf,
    /// [`super::modules_disk`]: absent for a kernel without modules, or
    /// one installed before banger made them ([`KernelStore::modules_disk`]).
    pub modules_disk: PathBuf,
    pub config: PathBuf,
    pub manifest: PathBuf,
}

impl KernelStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where kernel `name`'s files are.
    pub fn paths(&self, name: &str) -> Result<KernelPaths, KernelError> {
        validate_name(name)?;
        let dir = self.dir.join(name);
        Ok(KernelPaths {
            vmlinux: dir.join(VMLINUX),
            bzimage: dir.join(BZIMAGE),
            initrd: dir.join(INITRD),
            modules: dir.join(MODULES),
            modules_disk: dir.join(super::MODULES_DISK),
            config: dir.join(CONFIG),
            manifest: dir.join(MANIFEST),
            dir,
        })
    }

    /// Every installed kernel, by name. A directory whose manifest cannot
    /// be read is skipped with a warning rather than hiding all the others.
    pub fn list(&self) -> Result<Vec<KernelManifest>, KernelError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KernelError::io("read the kernel directory", &self.dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| KernelError::io("read the kernel directory", &self.dir, e))?;
            // Staging and removal directories start with '.', which no
            // valid name does.
            match entry.file_name().to_str() {
                Some(name) if validate_name(name).is_ok() => names.push(name.to_owned()),
                _ => {}
            }
        }
        names.sort();
        let mut kernels = Vec::new();
        for name in names {
            match self.show(&name) {
                Ok(m) => kernels.push(m),
                Err(e) => {
                    tracing::warn!(kernel = %name, error = %e, "skipping an unreadable kernel")
                }
            }
        }
        Ok(kernels)
    }

    /// The manifest of kernel `name`.
    pub fn show(&self, name: &str) -> Result<KernelManifest, KernelError> {
        let paths = self.paths(name)?;
        let text = match fs::read(&paths.manifest) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.not_found(name)),
            Err(e) => return Err(KernelError::io("read", &paths.manifest, e)),
        };
        serde_json::from_slice(&text).map_err(|source| KernelError::Manifest {
            path: paths.manifest,
            source,
        })
    }

    /// The modules disk of kernel `name`, built now if the kernel has a
    /// module tree but no disk yet (installed by an older banger); `None`
    /// for a kernel without modules.
    pub fn modules_disk(&self, name: &str) -> Result<Option<PathBuf>, KernelError> {
        let manifest = self.show(name)?;
        super::modules_disk::ensure(&self.paths(name)?.dir, &manifest.version)
    }

    /// Rebuilds kernel `name`'s initrd around `agent` if banger built it
    /// around another agent (see `agent_initrd`); returns whether it did.
    pub fn refresh_initrd(&self, name: &str, agent: &Path) -> Result<bool, KernelError> {
        let manifest = self.show(name)?;
        super::agent_initrd::refresh(&self.paths(name)?.dir, &manifest, agent)
    }

    /// Removes kernel `name`; a kernel that does not exist is `NotFound`.
    /// It is first renamed into a staging directory, so a removal cut short
    /// never leaves a half kernel under its name.
    pub fn remove(&self, name: &str) -> Result<(), KernelError> {
        let paths = self.paths(name)?;
        if fs::symlink_metadata(&paths.dir).is_err() {
            return Err(self.not_found(name));
        }
        let staging = self.staging()?;
        let aside = staging.path().join("removed");
        fs::rename(&paths.dir, &aside).map_err(|e| KernelError::io("remove", &paths.dir, e))?;
        // Dropping the staging directory deletes the kernel's files.
        staging
            .close()
            .map_err(|e| KernelError::io("delete the files of", &paths.dir, e))
    }

    fn not_found(&self, name: &str) -> KernelError {
        KernelError::NotFound {
            name: name.to_owned(),
            dir: self.dir.clone(),
        }
    }

    /// A fresh `.staging-<random>` directory inside the store (so renames
    /// out of it are atomic); removed with everything in it when dropped.
    pub(crate) fn staging(&self) -> Result<TempDir, KernelError> {
        fs::create_dir_all(&self.dir).map_err(|e| KernelError::io("create", &self.dir, e))?;
        tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&self.dir)
            .map_err(|e| KernelError::io("create a staging directory in", &self.dir, e))
    }

    /// Writes the manifest into the complete kernel directory `built` (in
    /// `staging`) and renames it into place as `manifest.name`, replacing
    /// any kernel of that name only now.
    pub(crate) fn install(
        &self,
        staging: &TempDir,
        built: &Path,
        manifest: &KernelManifest,
    ) -> Result<(), KernelError> {
        let manifest_path = built.join(MANIFEST);
        let json = serde_json::to_vec_pretty(manifest).map_err(|source| KernelError::Manifest {
            path: manifest_path.clone(),
            source,
        })?;
        fs::write(&manifest_path, json).map_err(|e| KernelError::io("write", &manifest_path, e))?;
        let dest = self.paths(&manifest.name)?.dir;
        let aside = staging.path().join("replaced");
        let replacing = fs::symlink_metadata(&dest).is_ok();
        if replacing {
            fs::rename(&dest, &aside).map_err(|e| KernelError::io("move aside", &dest, e))?;
        }
        if let Err(e) = fs::rename(built, &dest) {
            if replacing {
                if let Err(back) = fs::rename(&aside, &dest) {
                    tracing::error!(kernel = %manifest.name, error = %back,
                        "cannot put the previous kernel back after a failed replace");
                }
            }
            return Err(KernelError::io("move into place", &dest, e));
        }
        Ok(())
    }
}

/// Now, as the manifest records it.
pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

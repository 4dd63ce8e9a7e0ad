//! `kernel import <name> --from DIR`: a kernel someone built or picked
//! themselves. DIR holds `vmlinux` and/or a bzImage (`bzImage`, `vmlinuz`,
//! `vmlinuz-<release>`), optionally an initrd (`initrd*`, `initramfs*`), a
//! `config` (`config`, `config-<release>`) and `modules/` (a
//! `lib/modules/<release>` directory, or a directory holding exactly one).

use std::fs;
use std::path::{Path, PathBuf};

use super::assemble::{Sources, Transfer, assemble};
use super::bzimage;
use super::error::KernelError;
use super::manifest::{KernelManifest, validate_name};
use super::store::{KernelStore, now_rfc3339};

impl KernelStore {
    /// Imports the kernel in `from_dir` as `name`, replacing any kernel of
    /// that name once the new one is complete. The files are copied; an
    /// initrd is kept as given, never built.
    pub fn import(&self, name: &str, from_dir: &Path) -> Result<KernelManifest, KernelError> {
        validate_name(name)?;
        let found = Found::scan(from_dir)?;
        let staging = self.staging()?;
        let built = staging.path().join("kernel");
        let release = found.release();
        let sources = Sources {
            vmlinux: found.vmlinux.clone(),
            bzimage: found.bzimage.clone(),
            initrd: found.initrd.clone(),
            config: found.config.clone(),
            modules: found.modules.as_ref().map(|(dir, _)| dir.clone()),
            agent: None,
            release: release.clone(),
        };
        let assembled = assemble(&built, &sources, Transfer::Copy, &mut |_| {})?;
        let manifest = KernelManifest {
            name: name.to_owned(),
            distro: "imported".into(),
            arch: assembled.arch.into(),
            version: release,
            sha256: assembled.sha256,
            source: format!("imported from {}", from_dir.display()),
            imported_at: now_rfc3339(),
            sizes: assembled.sizes,
            initramfs_modules: Vec::new(),
        };
        self.install(&staging, &built, &manifest)?;
        Ok(manifest)
    }
}

/// What an import directory holds.
#[derive(Debug, Default)]
struct Found {
    vmlinux: Option<PathBuf>,
    bzimage: Option<PathBuf>,
    initrd: Option<PathBuf>,
    config: Option<PathBuf>,
    /// The module directory and the release its name gives, if any.
    modules: Option<(PathBuf, Option<String>)>,
}

impl Found {
    fn scan(dir: &Path) -> Result<Self, KernelError> {
        let mut entries: Vec<(String, PathBuf, fs::Metadata)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| KernelError::io("read", dir, e))? {
            let entry = entry.map_err(|e| KernelError::io("read", dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // The user's own directory: following their symlinks is fine.
            let meta = fs::metadata(entry.path())
                .map_err(|e| KernelError::io("inspect", entry.path(), e))?;
            entries.push((name, entry.path(), meta));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let pick = |what: &'static str,
                    matches: &dyn Fn(&str) -> bool|
         -> Result<Option<PathBuf>, KernelError> {
            let hits: Vec<&(String, PathBuf, fs::Metadata)> = entries
                .iter()
                .filter(|(n, _, m)| m.is_file() && matches(n))
                .collect();
            match hits.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some(one.1.clone())),
                many => Err(KernelError::Ambiguous {
                    dir: dir.to_owned(),
                    what,
                    found: many
                        .iter()
                        .map(|h| h.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        };
        let found = Found {
            vmlinux: pick("vmlinux", &|n| n == "vmlinux")?,
            bzimage: pick("bzImage", &|n| {
                n == "bzImage" || n == "vmlinuz" || n.starts_with("vmlinuz-")
            })?,
            initrd: pick("initrd", &|n| {
                n.starts_with("initrd") || n.starts_with("initramfs")
            })?,
            config: pick("config", &|n| n == "config" || n.starts_with("config-"))?,
            modules: match entries
                .iter()
                .find(|(n, _, m)| n == "modules" && m.is_dir())
            {
                Some((_, path, _)) => Some(module_root(path)?),
                None => None,
            },
        };
        if found.vmlinux.is_none() && found.bzimage.is_none() {
            return Err(KernelError::NoKernel {
                dir: dir.to_owned(),
                detail: "no vmlinux, bzImage or vmlinuz file".into(),
            });
        }
        Ok(found)
    }

    /// The kernel release, from the first place that says it: the bzImage
    /// header, a `vmlinuz-<release>` or `config-<release>` name, the module
    /// directory's name.
    fn release(&self) -> String {
        let from_suffix = |path: &Option<PathBuf>, prefix: &str| {
            path.as_ref().and_then(|p| {
                p.file_name()?
                    .to_str()?
                    .strip_prefix(prefix)
                    .map(str::to_owned)
            })
        };
        self.bzimage
            .as_ref()
            .and_then(|p| fs::read(p).ok())
            .and_then(|image| bzimage::kernel_release(&image))
            .or_else(|| from_suffix(&self.bzimage, "vmlinuz-"))
            .or_else(|| from_suffix(&self.config, "config-"))
            .or_else(|| self.modules.as_ref().and_then(|(_, r)| r.clone()))
            .unwrap_or_else(|| "unknown".into())
    }
}

/// `modules/` is either a release directory itself (it has `kernel/` or
/// `modules.builtin`) or holds exactly one.
fn module_root(dir: &Path) -> Result<(PathBuf, Option<String>), KernelError> {
    let is_release_dir =
        |d: &Path| d.join("kernel").is_dir() || d.join("modules.builtin").is_file();
    if is_release_dir(dir) {
        return Ok((dir.to_owned(), None));
    }
    let mut candidates = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| KernelError::io("read", dir, e))? {
        let entry = entry.map_err(|e| KernelError::io("read", dir, e))?;
        if is_release_dir(&entry.path()) {
            candidates.push((entry.path(), entry.file_name().to_str().map(str::to_owned)));
        }
    }
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(KernelError::NoKernel {
            dir: dir.to_owned(),
            detail: "modules/ holds no lib/modules/<release> tree (no kernel/ directory)".into(),
        }),
        _ => Err(KernelError::Ambiguous {
            dir: dir.to_owned(),
            what: "module release",
            found: candidates
                .iter()
                .filter_map(|(_, n)| n.clone())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

//! `kernel pull`: Debian's cloud kernel from a mirror (SPEC §9.3). The
//! meta-package `linux-image-cloud-<arch>` names the current versioned
//! package in its `Depends`; that `.deb` is downloaded and verified through
//! the signed archive, and its vmlinuz, config and modules become a banger
//! kernel with an initramfs around the agent.

use std::path::Path;

use crate::debian::{
    Archive, DebianMirror, Fetch, HttpFetch, Package, PackageIndex, Selection, extract_deb,
};

use super::assemble::{Sources, Transfer, assemble};
use super::error::KernelError;
use super::manifest::{KernelManifest, validate_name};
use super::store::{KernelStore, now_rfc3339};

const IMAGE_PREFIX: &str = "linux-image-";

impl KernelStore {
    /// Pulls Debian's cloud kernel from `mirror` over HTTP as `name`.
    /// `agent_bin` becomes the initramfs `/init`; `progress` gets one line
    /// per stage.
    pub fn pull_debian(
        &self,
        name: &str,
        mirror: &DebianMirror,
        agent_bin: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<KernelManifest, KernelError> {
        self.pull_debian_with(name, mirror, &HttpFetch::new(), agent_bin, progress)
    }

    /// [`KernelStore::pull_debian`] through any [`Fetch`].
    pub fn pull_debian_with(
        &self,
        name: &str,
        mirror: &DebianMirror,
        fetch: &dyn Fetch,
        agent_bin: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<KernelManifest, KernelError> {
        validate_name(name)?;
        // Fail before downloading 25 MB if the initramfs cannot be built.
        std::fs::metadata(agent_bin).map_err(|source| KernelError::AgentMissing {
            path: agent_bin.to_owned(),
            source,
        })?;
        let staging = self.staging()?;
        let dir = |sub: &str| -> Result<std::path::PathBuf, KernelError> {
            let path = staging.path().join(sub);
            std::fs::create_dir(&path).map_err(|e| KernelError::io("create", &path, e))?;
            Ok(path)
        };
        let (work, download, extract) = (dir("work")?, dir("download")?, dir("extract")?);
        let archive = Archive::new(mirror, fetch);

        let index = archive
            .index(&work, &|n| n.starts_with(IMAGE_PREFIX), progress)
            .map_err(KernelError::debian(format!(
                "read the package index of {}",
                mirror.base_url
            )))?;
        let meta_name = format!("{IMAGE_PREFIX}cloud-{}", mirror.arch);
        let package = image_package(&index, &meta_name)?;
        let release = package.name[IMAGE_PREFIX.len()..].to_owned();
        // The release becomes part of paths below; Debian package names
        // never hold anything else, but the index is input all the same.
        if release.is_empty()
            || !release
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".+-~_".contains(&b))
        {
            return Err(KernelError::NoImagePackage {
                package: meta_name,
                depends: package.name.clone(),
            });
        }

        progress(&format!(
            "downloading {} {} ({} MiB)",
            package.name,
            package.version,
            package.size.div_ceil(1 << 20)
        ));
        let deb = archive
            .download_deb(package, &download)
            .map_err(KernelError::debian(format!("download {}", package.name)))?;

        progress("extracting");
        let vmlinuz = format!("boot/vmlinuz-{release}");
        let config = format!("boot/config-{release}");
        let modules = format!("lib/modules/{release}");
        let selection = Selection::new()
            .path(vmlinuz.clone())
            .path(config.clone())
            .prefix(modules.clone());
        extract_deb(&deb, &extract, &selection)
            .map_err(KernelError::debian(format!("extract {}", package.name)))?;
        // The package is no longer needed: free the space before unpacking.
        std::fs::remove_file(&deb).map_err(|e| KernelError::io("remove", &deb, e))?;
        for needed in [&vmlinuz, &modules] {
            if !extract.join(needed).exists() {
                return Err(KernelError::MissingInPackage {
                    package: package.name.clone(),
                    path: needed.clone(),
                });
            }
        }

        let sources = Sources {
            vmlinux: None,
            bzimage: Some(extract.join(&vmlinuz)),
            initrd: None,
            config: Some(extract.join(&config)).filter(|p| p.exists()),
            modules: Some(extract.join(&modules)),
            agent: Some(agent_bin.to_owned()),
            release: release.clone(),
        };
        let built = staging.path().join("kernel");
        let assembled = assemble(&built, &sources, Transfer::Move, progress)?;
        let manifest = KernelManifest {
            name: name.to_owned(),
            distro: "debian".into(),
            arch: mirror.arch.clone(),
            version: release,
            sha256: assembled.sha256,
            source: format!(
                "debian {} {} {} (sha256 {})",
                package.suite,
                package.name,
                package.version,
                hex::encode(package.sha256)
            ),
            imported_at: now_rfc3339(),
            sizes: assembled.sizes,
            initramfs_modules: assembled.initramfs_modules,
        };
        self.install(&staging, &built, &manifest)?;
        Ok(manifest)
    }
}

/// The versioned kernel package the newest meta-package depends on.
fn image_package<'i>(index: &'i PackageIndex, meta_name: &str) -> Result<&'i Package, KernelError> {
    let meta = index
        .newest(meta_name)
        .map_err(KernelError::debian(format!("find {meta_name}")))?;
    let relation = meta
        .depends
        .iter()
        .flatten()
        .find(|r| r.name.starts_with(IMAGE_PREFIX) && r.name != meta.name)
        .ok_or_else(|| KernelError::NoImagePackage {
            package: format!("{} {}", meta.name, meta.version),
            depends: meta
                .depends
                .iter()
                .flatten()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    index.resolve(relation).map_err(KernelError::debian(format!(
        "find {relation}, which {} depends on",
        meta.name
    )))
}

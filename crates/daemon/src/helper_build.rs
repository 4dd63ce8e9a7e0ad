//! The root helper's image builder: banger's own build (`build_image`, with
//! `mmdebstrap --mode=root`) into the owner's store, run as root because
//! mmdebstrap needs it; then what the build left there is given to the
//! owner, so the unprivileged daemon can use, rebuild and delete it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use banger_host::helper::{BuildVariant, ImageBuildRequest, ImageBuilder};
use banger_image::agent_bin::find_agent;
use banger_image::images::{BuildOptions, ImageName, ImageStore, Recipe, Variant, build_image};

pub struct HelperImageBuilder;

impl ImageBuilder for HelperImageBuilder {
    fn build(&self, request: &ImageBuildRequest, owner_uid: u32) -> Result<bool, String> {
        // The helper's own agent (root's install), never a path the owner names.
        let agent = find_agent().map_err(|e| banger_api::error_chain(&e))?;
        let name = ImageName::new(request.name.as_str()).map_err(|e| e.to_string())?;
        let variant = match request.variant {
            BuildVariant::Full => Variant::Full,
            BuildVariant::Minimal => Variant::Minimal,
        };
        let mut recipe = Recipe::bookworm(name, variant);
        recipe.mirror = request.mirror.as_str().to_owned();
        let downloads = request.cache_dir.as_path().to_path_buf();
        let opts = BuildOptions {
            force: request.force,
            kernel_ref: Some(request.kernel_ref.as_str().to_owned()),
            cache_dir: Some(downloads.clone()),
        };
        let store = ImageStore::new(request.images_dir.as_path());
        let outcome = build_image(&store, &recipe, &agent, &opts, &mut |stage: &str| {
            tracing::info!(stage, "image build");
        });
        let gid = banger_sys::os::primary_gid(owner_uid).unwrap_or(owner_uid);
        for dir in [request.images_dir.as_path(), downloads.as_path()] {
            give_to_owner(dir, owner_uid, gid);
        }
        outcome
            .map(|o| o.built)
            .map_err(|e| banger_api::error_chain(&e))
    }
}

/// Every entry under `dir` that root owns becomes the owner's: the build
/// runs as root, in directories the owner owns. Symbolic links are never
/// followed (the owner may have put them there), and a regular file with
/// more than one link is left alone (a hard link could name a file
/// elsewhere on the host).
pub fn give_to_owner(dir: &Path, uid: u32, gid: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            give_to_owner(&path, uid, gid);
        }
        let linked_file = meta.is_file() && meta.nlink() > 1;
        if meta.uid() == 0 && !linked_file {
            if let Err(e) = std::os::unix::fs::lchown(&path, Some(uid), Some(gid)) {
                tracing::warn!(path = %path.display(), error = %e, "cannot give the owner");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_files_become_the_owners_but_links_are_not_followed() {
        if !banger_sys::os::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("img/seed")).unwrap();
        std::fs::write(dir.path().join("img/rootfs.ext4"), b"fs").unwrap();
        std::fs::write(dir.path().join("img/seed/.bashrc"), b"rc").unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("img/link")).unwrap();
        std::fs::hard_link(&secret, dir.path().join("img/hard")).unwrap();
        give_to_owner(dir.path(), 4321, 4321);
        let uid = |p: &Path| std::fs::symlink_metadata(p).unwrap().uid();
        assert_eq!(uid(&dir.path().join("img")), 4321);
        assert_eq!(uid(&dir.path().join("img/rootfs.ext4")), 4321);
        assert_eq!(uid(&dir.path().join("img/seed/.bashrc")), 4321);
        assert_eq!(uid(&dir.path().join("img/link")), 4321, "the link itself");
        assert_eq!(uid(&secret), 0, "a link's target is never touched");
    }
}

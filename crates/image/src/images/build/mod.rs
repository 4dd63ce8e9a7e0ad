//! `image build` (SPEC §9.3): the golden image from a Debian mirror.
//!
//! The steps, all inside a staging directory of the store:
//! 1. bootstrap the root tree ([`Bootstrap`]; mmdebstrap for real);
//! 2. inject the agent, units and sshd drop-in, remove the ssh host keys
//!    and empty the machine-id (`inject`, `guest_files`); the full variant
//!    gets mise too, its npm tarball verified against the pin ([`mise`])
//!    and obtained before step 1, so a missing npm or a bad download fails
//!    the build before the slow bootstrap;
//! 3. move `/root` out as the work-disk seed;
//! 4. write `rootfs.ext4` with `mkfs.ext4 -d` and check it (`mkfs`);
//! 5. write the manifest and rename the directory into place.
//!
//! The image's lock is held throughout, and the recipe hash (recipe, agent,
//! injected files, build format) is checked under it: a second build of
//! the same image waits for the first and then finds it up to date.

mod bootstrap;
pub mod guest_files;
mod inject;
pub mod mise;
mod mkfs;
pub mod recipe;
mod tree;
mod variant;

#[cfg(test)]
mod real_tests;
#[cfg(test)]
mod tests;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use bootstrap::{Bootstrap, DEBIAN_KEYRING, Mmdebstrap};
pub use mkfs::ROOTFS_LABEL;
pub use recipe::{Recipe, Variant};

use self::mise::{MiseSource, NpmView};
pub use self::tree::GuestTree;
use super::error::ImageError;
use super::manifest::{self, ImageKind, ImageManifest};
use super::name;
use super::promote::seal;
use super::staging::{self, Staging};
use super::store::{ImageStore, MANIFEST_FILE, ROOT_SEED_DIR, ROOTFS_FILE};

/// The bootstrapped tree inside the staging directory; removed once the
/// filesystem is written.
const TREE_DIR: &str = "tree";
/// Where mise's tarball is downloaded inside the staging directory when
/// the build has no cache directory; removed once it is extracted.
const MISE_DOWNLOAD_DIR: &str = "downloads";

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Build even when the image is up to date.
    pub force: bool,
    /// The kernel recorded in the manifest; `None`: the configured default.
    pub kernel_ref: Option<String>,
    /// Where verified downloads (mise's tarball) are kept between builds,
    /// named by their sha256; created 0700 if missing. `None`: downloaded
    /// into the staging directory for this build only.
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub manifest: ImageManifest,
    /// `false`: the image was already up to date (possibly because a
    /// concurrent build of it just finished).
    pub built: bool,
    pub duration: Duration,
}

/// Builds `recipe` into `store` with mmdebstrap, mise's tarball located by
/// `npm view` and fetched over HTTP. See [`build_image_with`].
pub fn build_image(
    store: &ImageStore,
    recipe: &Recipe,
    agent_bin: &Path,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildOutcome, ImageError> {
    let mise_source = MiseSource {
        resolver: &NpmView::default(),
        fetch: &crate::debian::HttpFetch::new(),
    };
    build_image_with(
        store,
        recipe,
        agent_bin,
        opts,
        &Mmdebstrap::default(),
        mise_source,
        progress,
    )
}

/// Builds `recipe` into `store`, the tree made by `bootstrap`, with the
/// static agent binary at `agent_bin` and, if the recipe has mise, its
/// tarball from `opts.cache_dir` or `mise_source`. Returns early when the
/// stored image has the same recipe hash (unless `opts.force`). An
/// existing image is replaced only once the new one is complete; a
/// failure leaves it as it was and removes everything the build made.
pub fn build_image_with(
    store: &ImageStore,
    recipe: &Recipe,
    agent_bin: &Path,
    opts: &BuildOptions,
    bootstrap: &dyn Bootstrap,
    mise_source: MiseSource<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildOutcome, ImageError> {
    let started = Instant::now();
    recipe.validate()?;
    if let Some(kernel) = &opts.kernel_ref {
        name::check(kernel).map_err(|problem| ImageError::InvalidKernelRef {
            name: kernel.clone(),
            problem,
        })?;
    }
    if !agent_bin.metadata().is_ok_and(|m| m.is_file()) {
        return Err(ImageError::AgentNotFile {
            path: agent_bin.to_owned(),
        });
    }
    let hash = recipe.recipe_hash(agent_bin)?;
    let name = &recipe.name;

    let _lock = store.lock(name, &mut || {
        progress(&format!(
            "waiting for another build or change of image {name} to finish"
        ));
    })?;
    let existing = if opts.force {
        None
    } else {
        up_to_date(store, recipe, &hash)
    };
    if let Some(existing) = existing {
        progress(&format!(
            "image {name} is up to date (recipe {}); --force rebuilds it",
            &hash[..12]
        ));
        return Ok(BuildOutcome {
            manifest: existing,
            built: false,
            duration: started.elapsed(),
        });
    }

    bootstrap.check_ready()?;
    let staging = Staging::create(store.dir(), name)?;
    // Before the bootstrap: it is the slow step, and a missing npm or a
    // refused download should not wait for it.
    let mise_tarball = match &recipe.mise {
        Some(pin) => {
            let dir = opts
                .cache_dir
                .clone()
                .unwrap_or_else(|| staging.path().join(MISE_DOWNLOAD_DIR));
            Some(mise::obtain(pin, &dir, mise_source, progress)?)
        }
        None => None,
    };
    let tree_path = staging.path().join(TREE_DIR);
    bootstrap.bootstrap(recipe, &tree_path, progress)?;

    progress("injecting the agent, units and sshd settings");
    let tree = GuestTree::open(&tree_path)?;
    let injected = inject::inject(&tree, recipe.variant, agent_bin)?;
    tracing::debug!(image = %name, removed = ?injected.removed_host_keys, "removed the image's ssh host keys");
    if let (Some(pin), Some((tarball, path))) = (&recipe.mise, mise_tarball) {
        progress(&format!(
            "installing mise {} at {}",
            pin.version,
            mise::MISE_PATH
        ));
        let installed = mise::install(&tree, tarball, &path)?;
        tracing::debug!(image = %name, ?installed, "installed mise");
        if opts.cache_dir.is_none() {
            staging::remove(&staging.path().join(MISE_DOWNLOAD_DIR))?;
        }
    }
    let seed = staging.path().join(ROOT_SEED_DIR);
    tree.take_dir(guest_files::ROOT_HOME, &seed)?;
    // Readable by the owner daemon, which seeds work disks from it.
    std::fs::set_permissions(&seed, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| ImageError::io("set the mode of", &seed, e))?;
    drop(tree);

    let content = mkfs::content_bytes(&tree_path)?;
    let size = mkfs::rootfs_size(content, recipe.size)?;
    progress(&format!(
        "writing {ROOTFS_FILE} ({} MiB for {} MiB of content)",
        size / (1024 * 1024),
        content.div_ceil(1024 * 1024)
    ));
    let rootfs = staging.path().join(ROOTFS_FILE);
    mkfs::make_rootfs(&tree_path, &rootfs, size)?;
    staging::remove(&tree_path)?;
    seal(&rootfs)?;

    let manifest = ImageManifest {
        name: name.clone(),
        distro: Some(format!("debian-{}", recipe.suite)),
        arch: banger_sys::os::arch().to_owned(),
        kind: ImageKind::Managed,
        rootfs: store.image_dir(name).join(ROOTFS_FILE),
        kernel_ref: opts.kernel_ref.clone(),
        size_bytes: size,
        recipe_hash: Some(hash),
        source: format!(
            "debian {} from {} ({} variant, {}){}",
            recipe.suite,
            recipe.mirror,
            recipe.variant,
            bootstrap.name(),
            recipe
                .mise
                .map(|pin| format!(", mise {} from npm {}", pin.version, pin.package))
                .unwrap_or_default()
        ),
        created_at: manifest::now(),
        packages: recipe.package_set(),
        init: (recipe.variant == Variant::Minimal).then(|| guest_files::GUEST_INIT.to_owned()),
    };
    manifest::write(&staging.path().join(MANIFEST_FILE), &manifest)?;
    staging.commit(&store.image_dir(name))?;
    let duration = started.elapsed();
    progress(&format!(
        "image {name} built in {:.1} s",
        duration.as_secs_f64()
    ));
    tracing::info!(image = %name, size_mib = size / (1024 * 1024), elapsed_ms = duration.as_millis() as u64, "image built");
    Ok(BuildOutcome {
        manifest,
        built: true,
        duration,
    })
}

/// The stored image, if it was built from the same inputs and is intact
/// enough to use. A manifest that cannot be read means "rebuild".
fn up_to_date(store: &ImageStore, recipe: &Recipe, hash: &str) -> Option<ImageManifest> {
    let existing = match store.read(&recipe.name) {
        Ok(existing) => existing?,
        Err(e) => {
            tracing::warn!(image = %recipe.name, error = %e, "rebuilding an image whose manifest cannot be read");
            return None;
        }
    };
    let same = existing.kind == ImageKind::Managed
        && existing.recipe_hash.as_deref() == Some(hash)
        && existing.rootfs.is_file();
    same.then_some(existing)
}

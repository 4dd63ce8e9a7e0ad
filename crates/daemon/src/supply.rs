//! Images and kernels supplied as stages of an operation: building a
//! Debian image and pulling Debian's kernel, for `image build` and `kernel
//! pull` themselves and for the `vm.create` that needs them first (SPEC §1:
//! the first `vm run` on a fresh machine works).

use banger_api::protocol::{ErrorCode, ImageVariant, KernelInfo};
use banger_image::debian::DebianMirror;
use banger_image::images::{
    BuildOptions, BuildOutcome, ImageName, ImageStore, Recipe, Variant, build_image,
};
use banger_image::kernel::{DEFAULT_KERNEL_NAME, KernelError, KernelManifest, KernelStore};

use crate::blocking::run_staged;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::state::Daemon;
use std::sync::Arc;

use banger_host::helper::HelperHost;
use banger_image::agent_bin::find_agent;

pub fn image_store(daemon: &Daemon) -> ImageStore {
    ImageStore::new(&daemon.paths.images_dir)
}

pub fn kernel_store(daemon: &Daemon) -> KernelStore {
    KernelStore::new(&daemon.paths.kernels_dir)
}

/// The images banger builds by itself on first use, and their variants: the
/// default golden image and its fast-booting minimal sibling.
pub fn buildable_variant(name: &str) -> Option<ImageVariant> {
    match name {
        "debian-bookworm" => Some(ImageVariant::Full),
        "debian-bookworm-minimal" => Some(ImageVariant::Minimal),
        _ => None,
    }
}

/// Builds image `name` as stages of `op` (its own operation, or the
/// `vm.create` that needs it).
pub async fn build_staged(
    daemon: &Daemon,
    op: &mut OpTracker,
    name: ImageName,
    variant: ImageVariant,
    force: bool,
) -> Result<BuildOutcome, DaemonError> {
    let variant = match variant {
        ImageVariant::Full => Variant::Full,
        ImageVariant::Minimal => Variant::Minimal,
    };
    if let Some(helper) = daemon.vms.helper() {
        return build_through_helper(daemon, op, &helper, name, variant, force).await;
    }
    let mut recipe = Recipe::bookworm(name, variant);
    recipe.mirror = daemon.config.debian_mirror().to_owned();
    let agent = find_agent()?;
    let opts = BuildOptions {
        force,
        kernel_ref: Some(daemon.config.default_kernel_name().to_owned()),
        // The default image's mise tarball (~50 MB), kept between builds.
        cache_dir: Some(daemon.paths.cache_dir.join("downloads")),
    };
    let store = image_store(daemon);
    run_staged(op, move |progress| {
        let mut progress = |stage: &str| {
            // The tree is bootstrapped, in the store's staging directory.
            if stage.starts_with("injecting the agent") {
                crate::fault::point("image.bootstrapped");
            }
            progress(stage)
        };
        build_image(&store, &recipe, &agent, &opts, &mut progress)
    })
    .await
    .and_then(|r| r.map_err(DaemonError::from))
}

/// An unprivileged daemon's build: the root helper runs it (mmdebstrap
/// needs root) into this daemon's store and gives the result to its owner;
/// the manifest is then read from the store like any other.
async fn build_through_helper(
    daemon: &Daemon,
    op: &mut OpTracker,
    helper: &Arc<HelperHost>,
    name: ImageName,
    variant: Variant,
    force: bool,
) -> Result<BuildOutcome, DaemonError> {
    use banger_host::helper::{BuildName, BuildVariant, ImageBuildRequest, MirrorUrl};
    let bad = |e: String| DaemonError::failed(ErrorCode::BadRequest, e);
    let roots = banger_host::ManagedRoots::new([
        daemon.paths.state_dir.clone(),
        daemon.paths.cache_dir.clone(),
    ])
    .map_err(|e| bad(e.to_string()))?;
    let managed = |p: &std::path::Path| {
        banger_host::ManagedPath::new(p, &roots).map_err(|e| bad(e.to_string()))
    };
    let downloads = daemon.paths.cache_dir.join("downloads");
    std::fs::create_dir_all(&downloads).map_err(|e| {
        DaemonError::failed(
            ErrorCode::OperationFailed,
            format!("cannot create {}: {e}", downloads.display()),
        )
    })?;
    let request = ImageBuildRequest {
        images_dir: managed(&daemon.paths.images_dir)?,
        cache_dir: managed(&downloads)?,
        name: BuildName::try_from(name.to_string()).map_err(bad)?,
        variant: match variant {
            Variant::Full => BuildVariant::Full,
            Variant::Minimal => BuildVariant::Minimal,
        },
        mirror: MirrorUrl::try_from(daemon.config.debian_mirror().to_owned()).map_err(bad)?,
        kernel_ref: BuildName::try_from(daemon.config.default_kernel_name().to_owned())
            .map_err(bad)?,
        force,
    };
    op.stage(&format!(
        "building {name} through the root helper (mmdebstrap runs as root)"
    ))
    .await?;
    let started = std::time::Instant::now();
    let helper = helper.clone();
    // `run` hands the request's op id on to the helper.
    let built = crate::blocking::run(move || helper.build_image(request))
        .await?
        .map_err(|e| {
            DaemonError::failed(ErrorCode::OperationFailed, banger_api::error_chain(&e))
        })?;
    let store = image_store(daemon);
    let manifest = crate::blocking::run(move || store.show(name.as_str()))
        .await?
        .map_err(DaemonError::from)?;
    Ok(BuildOutcome {
        manifest,
        built,
        duration: started.elapsed(),
    })
}

/// Whether `name` is a kernel banger can fetch.
pub fn is_pullable(name: &str) -> bool {
    name == DEFAULT_KERNEL_NAME
}

pub fn check_pullable(name: &str) -> Result<(), DaemonError> {
    if is_pullable(name) {
        return Ok(());
    }
    Err(DaemonError::failed(
        ErrorCode::NotFound,
        format!(
            "no kernel {name:?} to pull: `banger kernel list --available` shows what can be pulled ({DEFAULT_KERNEL_NAME})"
        ),
    ))
}

pub fn info(store: &KernelStore, m: KernelManifest) -> Result<KernelInfo, KernelError> {
    let dir = store.paths(&m.name)?.dir;
    let s = &m.sizes;
    Ok(KernelInfo {
        size_bytes: s.vmlinux
            + s.bzimage.unwrap_or(0)
            + s.initrd.unwrap_or(0)
            + s.modules.unwrap_or(0),
        path: dir.display().to_string(),
        name: m.name,
        distro: m.distro,
        arch: m.arch,
        version: m.version,
        sha256: m.sha256,
        source: m.source,
        imported_at: m.imported_at,
    })
}

/// Pulls kernel `name` as stages of `op` (its own operation, or the
/// `vm.create` that needs it).
pub async fn pull_staged(
    daemon: &Daemon,
    op: &mut OpTracker,
    name: String,
) -> Result<KernelInfo, DaemonError> {
    check_pullable(&name)?;
    let mirror = DebianMirror {
        base_url: daemon.config.debian_mirror().to_owned(),
        ..DebianMirror::default()
    };
    let agent = find_agent()?;
    let store = kernel_store(daemon);
    run_staged(op, move |progress| {
        store
            .pull_debian(&name, &mirror, &agent, progress)
            .and_then(|m| info(&store, m))
    })
    .await
    .and_then(|r| r.map_err(DaemonError::from))
}

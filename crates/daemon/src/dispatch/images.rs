//! `image.*`: the image store, and building the golden image from Debian.

use banger_api::protocol::{
    ImageBuildParams, ImageBuilt, ImageInfo, ImageRegisterParams, ImageVariant, NameParams,
};
use banger_image::images::{
    BuildOptions, BuildOutcome, ImageKind, ImageManifest, ImageName, ImageStore, Recipe, Variant,
    build_image,
};

use super::RequestCtx;
use super::blocking::{run, run_staged};
use crate::agent_bin::find_agent;
use crate::daemon::Daemon;
use crate::error::DaemonError;
use crate::ops::OpTracker;

fn store(daemon: &Daemon) -> ImageStore {
    ImageStore::new(&daemon.paths.images_dir)
}

pub fn info(m: ImageManifest) -> ImageInfo {
    ImageInfo {
        name: m.name.to_string(),
        distro: m.distro.unwrap_or_else(|| "unknown".into()),
        arch: m.arch,
        kind: match m.kind {
            ImageKind::Managed => "managed",
            ImageKind::Unmanaged => "unmanaged",
        }
        .to_owned(),
        rootfs: m.rootfs.display().to_string(),
        kernel_ref: m.kernel_ref,
        size_bytes: m.size_bytes,
        source: m.source,
        created_at: m.created_at,
        recipe_hash: m.recipe_hash,
        init: m.init,
    }
}

pub async fn list(daemon: &Daemon) -> Result<Vec<ImageInfo>, DaemonError> {
    let store = store(daemon);
    let list = run(move || store.list()).await??;
    Ok(list.into_iter().map(info).collect())
}

pub async fn show(daemon: &Daemon, p: NameParams) -> Result<ImageInfo, DaemonError> {
    let store = store(daemon);
    Ok(info(run(move || store.show(&p.name)).await??))
}

pub async fn delete(daemon: &Daemon, p: NameParams) -> Result<(), DaemonError> {
    let store = store(daemon);
    run(move || store.delete(&p.name)).await??;
    Ok(())
}

pub async fn register(daemon: &Daemon, p: ImageRegisterParams) -> Result<ImageInfo, DaemonError> {
    let store = store(daemon);
    let m =
        run(move || store.register(&p.name, p.rootfs.as_ref(), p.kernel_ref.as_deref())).await??;
    Ok(info(m))
}

pub async fn promote(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: NameParams,
) -> Result<ImageInfo, DaemonError> {
    let store = store(daemon);
    let mut op =
        OpTracker::begin(&daemon.store, ctx, "image.promote", Some(p.name.clone())).await?;
    let result = run_staged(&mut op, move |progress| {
        progress("copying the rootfs into managed storage");
        store.promote(&p.name)
    })
    .await
    .and_then(|r| r.map_err(DaemonError::from));
    op.finish(result).await.map(info)
}

/// Builds (or finds up to date) an image from Debian with the static agent
/// inside, tracked as an operation whose stages the client sees.
pub async fn build(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: ImageBuildParams,
) -> Result<ImageBuilt, DaemonError> {
    let name = ImageName::new(&p.name)?;
    let mut op = OpTracker::begin(&daemon.store, ctx, "image.build", Some(p.name.clone())).await?;
    let result = build_staged(daemon, &mut op, name, p.variant, p.force)
        .await
        .map(|outcome| ImageBuilt {
            image: info(outcome.manifest),
            built: outcome.built,
            seconds: outcome.duration.as_secs_f64(),
        });
    op.finish(result).await
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
    let mut recipe = Recipe::bookworm(name, variant);
    recipe.mirror = daemon.config.debian_mirror().to_owned();
    let agent = find_agent()?;
    let opts = BuildOptions {
        force,
        kernel_ref: Some(daemon.config.default_kernel_name().to_owned()),
    };
    let store = store(daemon);
    run_staged(op, move |progress| {
        build_image(&store, &recipe, &agent, &opts, progress)
    })
    .await
    .and_then(|r| r.map_err(DaemonError::from))
}

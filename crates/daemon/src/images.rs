//! `image.*`: the image store, and building the golden image from Debian.

use banger_api::protocol::{
    ImageBuildParams, ImageBuilt, ImageInfo, ImageRegisterParams, NameParams,
};
use banger_image::images::{ImageKind, ImageManifest, ImageName, ImageStore};

use crate::blocking::{run, run_staged};
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::state::Daemon;
use crate::supply::build_staged;

fn store(daemon: &Daemon) -> ImageStore {
    crate::supply::image_store(daemon)
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

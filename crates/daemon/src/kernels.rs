//! `kernel.*`: the kernel store, and pulling the default kernel from Debian.

use banger_api::protocol::{KernelImportParams, KernelInfo, NameParams};
use banger_image::kernel::KernelStore;

use crate::blocking::{run, run_staged};
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::state::Daemon;
use crate::supply::{check_pullable, info, pull_staged};

fn store(daemon: &Daemon) -> KernelStore {
    crate::supply::kernel_store(daemon)
}

pub async fn list(daemon: &Daemon) -> Result<Vec<KernelInfo>, DaemonError> {
    let store = store(daemon);
    let infos = run(move || {
        store
            .list()?
            .into_iter()
            .map(|m| info(&store, m))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    Ok(infos)
}

pub async fn show(daemon: &Daemon, p: NameParams) -> Result<KernelInfo, DaemonError> {
    let store = store(daemon);
    Ok(run(move || store.show(&p.name).and_then(|m| info(&store, m))).await??)
}

pub async fn remove(daemon: &Daemon, p: NameParams) -> Result<(), DaemonError> {
    let store = store(daemon);
    run(move || store.remove(&p.name)).await??;
    Ok(())
}

pub async fn import(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: KernelImportParams,
) -> Result<KernelInfo, DaemonError> {
    let store = store(daemon);
    let mut op =
        OpTracker::begin(&daemon.store, ctx, "kernel.import", Some(p.name.clone())).await?;
    let result = run_staged(&mut op, move |progress| {
        progress("importing");
        store
            .import(&p.name, p.from.as_ref())
            .and_then(|m| info(&store, m))
    })
    .await
    .and_then(|r| r.map_err(DaemonError::from));
    op.finish(result).await
}

/// Only Debian's cloud kernel can be pulled (SPEC §9.3); the catalog of
/// downloadable bundles comes later.
pub async fn pull(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: NameParams,
) -> Result<KernelInfo, DaemonError> {
    check_pullable(&p.name)?;
    let mut op = OpTracker::begin(&daemon.store, ctx, "kernel.pull", Some(p.name.clone())).await?;
    let result = pull_staged(daemon, &mut op, p.name).await;
    op.finish(result).await
}

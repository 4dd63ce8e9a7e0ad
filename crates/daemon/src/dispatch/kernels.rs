//! `kernel.*`: the kernel store, and pulling the default kernel from Debian.

use banger_api::protocol::{KernelImportParams, KernelInfo, NameParams};
use banger_image::debian::DebianMirror;
use banger_image::kernel::{DEFAULT_KERNEL_NAME, KernelError, KernelManifest, KernelStore};

use super::RequestCtx;
use super::blocking::{run, run_staged};
use crate::agent_bin::find_agent;
use crate::daemon::Daemon;
use crate::error::DaemonError;
use crate::ops::OpTracker;

fn store(daemon: &Daemon) -> KernelStore {
    KernelStore::new(&daemon.paths.kernels_dir)
}

fn info(store: &KernelStore, m: KernelManifest) -> Result<KernelInfo, KernelError> {
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

/// Whether `name` is a kernel banger can fetch.
pub fn is_pullable(name: &str) -> bool {
    name == DEFAULT_KERNEL_NAME
}

fn check_pullable(name: &str) -> Result<(), DaemonError> {
    if is_pullable(name) {
        return Ok(());
    }
    Err(DaemonError::failed(
        banger_api::protocol::ErrorCode::NotFound,
        format!(
            "no kernel {name:?} to pull: `banger kernel list --available` shows what can be pulled ({DEFAULT_KERNEL_NAME})"
        ),
    ))
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
    let store = store(daemon);
    run_staged(op, move |progress| {
        store
            .pull_debian(&name, &mirror, &agent, progress)
            .and_then(|m| info(&store, m))
    })
    .await
    .and_then(|r| r.map_err(DaemonError::from))
}

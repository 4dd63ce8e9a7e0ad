//! `vm.fork`: N running copies of a running VM. One snapshot of it (memory,
//! devices and disks as they are now; the VM runs on), then the children
//! restored side by side, each with its own name, address, tap, MAC, machine-id, host key,
//! RNG seed and clock, and the parent's workspace on record. The snapshot
//! is internal: it goes when the last child does.

use banger_api::model::VmName;
use banger_api::protocol::{ErrorCode, MAX_FORK, Vm, VmForkParams};

use super::allocate::{ensure_name_free, valid_name};
use super::handles::{read_handles, running_agent};
use super::power::locked;
use super::record::find;
use super::restore::restore_tracked;
use super::snapshot::{Kind, take};
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::snapshots;
use crate::state::Daemon;

pub async fn fork(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: VmForkParams,
) -> Result<Vec<Vm>, DaemonError> {
    daemon.vms.host()?;
    if p.count == 0 || p.count > MAX_FORK {
        return Err(DaemonError::failed(
            ErrorCode::BadRequest,
            format!("-n must be between 1 and {MAX_FORK}"),
        ));
    }
    let (parent, guard) = locked(daemon, &p.vm).await?;
    let prefix = p
        .name_prefix
        .clone()
        .unwrap_or_else(|| parent.name.to_string());
    // Every child's name is checked before anything is made.
    let mut names = Vec::new();
    for i in 1..=p.count {
        let name = valid_name(&format!("{prefix}-{i}"))?;
        ensure_name_free(daemon, &name).await?;
        names.push(name);
    }
    let agent = running_agent(daemon, &parent)?;
    let handle = read_handles(&daemon.paths.vm_dir(&parent.id))
        .map(|h| h.handle)
        .ok_or_else(|| {
            DaemonError::failed(
                ErrorCode::OperationFailed,
                format!("VM {} has no running VMM on record", parent.name),
            )
        })?;
    let mut op =
        OpTracker::begin(&daemon.store, ctx, "vm.fork", Some(parent.name.to_string())).await?;
    let result = async {
        let store = snapshots::store(daemon);
        let snapshot = format!("fork-{}-{:08x}", parent.name, fastrand::u32(..));
        let snapshot = valid_name(&snapshot)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("fork-{:016x}", fastrand::u64(..)));
        take(
            daemon,
            &mut op,
            &store,
            &parent,
            &snapshot,
            &agent,
            handle,
            Kind::Fork,
        )
        .await?;
        // The parent runs on; its lock is not needed for the children.
        drop(guard);
        let children = restore_children(daemon, ctx, &mut op, &snapshot, names, &parent).await;
        if children.as_ref().is_ok_and(Vec::is_empty) || children.is_err() {
            snapshots::release(daemon, &snapshot).await?;
        }
        children
    }
    .await;
    op.finish(result).await
}

/// Restores the children side by side (each restore waits mostly on its
/// guest, and they share nothing but the allocation lock); a child that
/// fails is unwound, and the first failure is the answer once all are done,
/// the others staying.
async fn restore_children(
    daemon: &Daemon,
    ctx: &RequestCtx,
    op: &mut OpTracker,
    snapshot: &str,
    names: Vec<VmName>,
    parent: &banger_store::VmRecord,
) -> Result<Vec<Vm>, DaemonError> {
    let store = snapshots::store(daemon);
    let wanted = snapshot.to_owned();
    let (manifest, dir) = crate::blocking::run(move || store.show(&wanted)).await??;
    let restores = names.into_iter().map(|name| {
        let mut part = op.part(name.as_str());
        let (manifest, dir) = (&manifest, &dir);
        async move {
            let child =
                restore_tracked(daemon, ctx, &mut part, Some(name.clone()), manifest, dir).await?;
            if let Some(workspace) = &parent.workspace {
                let (id, ws) = (child.id.clone(), workspace.clone());
                daemon
                    .store
                    .call(move |s| s.set_vm_workspace(&id, Some(&ws)))
                    .await?;
            }
            find(daemon, &child.id).await
        }
    });
    let mut children = Vec::new();
    let mut first_error = None;
    for result in join_all(restores.collect()).await {
        match result {
            Ok(child) => {
                let (name, ip) = (
                    child.name.to_string(),
                    child
                        .runtime
                        .as_ref()
                        .map(|r| r.ip.to_string())
                        .unwrap_or_default(),
                );
                op.stage(&format!("forked {name}: {ip}, {name}.vm")).await?;
                children.push(super::view::vm(child));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(children),
    }
}

/// Runs `futures` concurrently on this task; their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

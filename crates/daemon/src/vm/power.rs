//! `vm.start`, `vm.stop`, `vm.restart`, `vm.kill` and `vm.delete`.

use banger_api::model::{VmAction, VmState};
use banger_api::protocol::{Vm, VmRef};
use banger_store::VmRecord;

use super::boot::boot;
use super::record::{find, transition};
use super::teardown::{Logs, dispose, halt, stop_guest};
use super::view;
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::state::Daemon;

/// Looks the VM up, takes its lock, and reads it again under the lock.
pub(super) async fn locked(
    daemon: &Daemon,
    reference: &str,
) -> Result<(VmRecord, tokio::sync::OwnedMutexGuard<()>), DaemonError> {
    let vm = find(daemon, reference).await?;
    let guard = daemon.vms.lock(&vm.id).await;
    let vm = find(daemon, &vm.id).await?;
    Ok((vm, guard))
}

pub async fn start(daemon: &Daemon, ctx: &RequestCtx, r: VmRef) -> Result<Vm, DaemonError> {
    daemon.vms.host()?;
    let (vm, _guard) = locked(daemon, &r.vm).await?;
    // Refused before any work when the state does not allow it.
    allowed(&vm, VmAction::Start)?;
    let mut op =
        OpTracker::begin(&daemon.store, ctx, "vm.start", Some(vm.name.to_string())).await?;
    let result = boot_or_fail(daemon, ctx, &mut op, vm).await;
    op.finish(result).await.map(view::vm)
}

/// Stops a running VM, then boots it again: one operation, one lock held
/// throughout, so nothing else can slip in between. A VM that is not
/// running is just started.
pub async fn restart(daemon: &Daemon, ctx: &RequestCtx, r: VmRef) -> Result<Vm, DaemonError> {
    let (vm, _guard) = locked(daemon, &r.vm).await?;
    daemon.vms.host()?;
    let running = vm.state == VmState::Running;
    let action = if running {
        VmAction::Stop
    } else {
        VmAction::Start
    };
    allowed(&vm, action)?;
    let mut op =
        OpTracker::begin(&daemon.store, ctx, "vm.restart", Some(vm.name.to_string())).await?;
    let result = async {
        let vm = if running {
            op.stage("stopping").await?;
            stop_locked(daemon, vm).await?
        } else {
            vm
        };
        boot_or_fail(daemon, ctx, &mut op, vm).await
    }
    .await;
    op.finish(result).await.map(view::vm)
}

fn allowed(vm: &VmRecord, action: VmAction) -> Result<(), DaemonError> {
    vm.state
        .apply(action)
        .map_err(|source| banger_store::StoreError::IllegalTransition {
            name: vm.name.to_string(),
            source,
        })?;
    Ok(())
}

/// Boots `vm`; on failure stops what was started and records `error`.
async fn boot_or_fail(
    daemon: &Daemon,
    ctx: &RequestCtx,
    op: &mut OpTracker,
    vm: VmRecord,
) -> Result<VmRecord, DaemonError> {
    let work = daemon.vms.interruptible(&vm.id, &ctx.cancel);
    let booted = async {
        let identity = if super::boot::needs_identity(&daemon.paths.vm_dir(&vm.id)) {
            Some(super::allocate::ssh_identity(daemon, op, &vm).await?)
        } else {
            None
        };
        boot(daemon, op, &work.token, vm.clone(), identity).await
    };
    match booted.await {
        Ok(vm) => Ok(vm),
        Err(e) => {
            let e = if work.killed() {
                super::allocate::killed()
            } else {
                e
            };
            let reason = banger_api::error_chain(&e);
            tracing::warn!(vm = %vm.name, error = %reason, "start failed; stopping what was started");
            let current = find(daemon, &vm.id).await.unwrap_or(vm.clone());
            if let Err(h) = halt(daemon, &current).await {
                tracing::error!(error = %banger_api::error_chain(&h), "cleaning up a failed start");
            }
            if let Err(t) = transition(daemon, &vm.id, VmAction::Fail, Some(reason)).await {
                tracing::error!(error = %banger_api::error_chain(&t), "recording the failure");
            }
            Err(e)
        }
    }
}

pub async fn stop(daemon: &Daemon, ctx: &RequestCtx, r: VmRef) -> Result<Vm, DaemonError> {
    let (vm, _guard) = locked(daemon, &r.vm).await?;
    let op = OpTracker::begin(&daemon.store, ctx, "vm.stop", Some(vm.name.to_string())).await?;
    let result = stop_locked(daemon, vm).await;
    op.finish(result).await.map(view::vm)
}

pub(super) async fn stop_locked(daemon: &Daemon, vm: VmRecord) -> Result<VmRecord, DaemonError> {
    let vm = transition(daemon, &vm.id, VmAction::Stop, None)
        .await?
        .expect("stop keeps the record");
    if let Err(e) = stop_guest(daemon, &vm).await {
        let reason = banger_api::error_chain(&e);
        let _ = transition(daemon, &vm.id, VmAction::Fail, Some(reason)).await;
        return Err(e);
    }
    crate::fault::point("stop.halted");
    Ok(transition(daemon, &vm.id, VmAction::Halted, None)
        .await?
        .expect("halted keeps the record"))
}

/// Kills the VMM. A create or start in progress is interrupted first (it
/// unwinds what it made and records why); the VM is then left as that
/// left it.
pub async fn kill(daemon: &Daemon, ctx: &RequestCtx, r: VmRef) -> Result<Vm, DaemonError> {
    let interrupted = daemon.vms.interrupt(&find(daemon, &r.vm).await?.id);
    let (vm, _guard) = locked(daemon, &r.vm).await?;
    let op = OpTracker::begin(&daemon.store, ctx, "vm.kill", Some(vm.name.to_string())).await?;
    let result = if interrupted && !vm.state.may_have_vmm() {
        Ok(vm)
    } else {
        kill_locked(daemon, vm).await
    };
    op.finish(result).await.map(view::vm)
}

async fn kill_locked(daemon: &Daemon, vm: VmRecord) -> Result<VmRecord, DaemonError> {
    let vm = transition(daemon, &vm.id, VmAction::Kill, None)
        .await?
        .expect("kill keeps the record");
    halt(daemon, &vm).await?;
    Ok(vm)
}

/// Stops the VM if it runs, removes everything it owns, then its record.
pub async fn delete(daemon: &Daemon, ctx: &RequestCtx, r: VmRef) -> Result<Vm, DaemonError> {
    let (vm, _guard) = locked(daemon, &r.vm).await?;
    let mut op =
        OpTracker::begin(&daemon.store, ctx, "vm.delete", Some(vm.name.to_string())).await?;
    let result = async {
        // No orderly shutdown: the disks are removed next, so nothing the
        // guest could flush survives, and a systemd guest's power-off costs
        // seconds (`vm run --rm` pays it on every run).
        let vm = match vm.state {
            VmState::Running | VmState::Starting | VmState::Stopping => {
                op.stage("killing (its disks go with it)").await?;
                kill_locked(daemon, vm).await?
            }
            VmState::Created | VmState::Stopped | VmState::Error => vm,
        };
        // The VM may have ended in `error` above; delete is still allowed.
        let vm = find(daemon, &vm.id).await?;
        op.stage("removing disks, keys, address and record").await?;
        remove_halted(daemon, &vm).await?;
        Ok(vm)
    }
    .await;
    op.finish(result).await.map(view::vm)
}

/// Removes a VM that no VMM runs (created, stopped or error): what is left
/// of its running parts, its disks, keys and address, then its record. The
/// caller holds the VM's lock.
pub(super) async fn remove_halted(daemon: &Daemon, vm: &VmRecord) -> Result<(), DaemonError> {
    halt(daemon, vm).await?;
    crate::fault::point("delete.halted");
    dispose(daemon, vm, Logs::Remove).await?;
    crate::fault::point("delete.disposed");
    transition(daemon, &vm.id, VmAction::Delete, None).await?;
    daemon.vms.forget_lock(&vm.id);
    if let Some(from) = vm.runtime.as_ref().and_then(|r| r.restored_from.as_deref()) {
        crate::snapshots::release(daemon, from).await?;
    }
    Ok(())
}

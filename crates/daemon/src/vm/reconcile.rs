//! Reconcile at daemon start (SPEC §6): a daemon restart (crash, update,
//! `kill -9`) must not kill VMs. Each VM recorded with a VMM is looked up
//! from its `handles.json`: a live VMM is adopted (its `.vm` name served
//! again); a dead one is cleaned up from the durable record and the VM
//! marked stopped. A VM whose create was under way is unwound like a failed
//! create. Then what no record names any more is removed (`sweep`).

use banger_api::model::{VmAction, VmState};
use banger_store::VmRecord;
use tracing::Instrument;

use super::handles::read_handles;
use super::record::transition;
use super::teardown::halt;
use crate::state::Daemon;

pub async fn reconcile(daemon: &Daemon) {
    let vms = match daemon.store.call(|s| s.list_vms()).await {
        Ok(vms) => vms,
        Err(e) => {
            tracing::error!(error = %e, "cannot list VMs to reconcile");
            return;
        }
    };
    for vm in &vms {
        let span = tracing::info_span!("reconcile", vm = %vm.name, id = %vm.id);
        let creating = daemon.paths.vm_dir(&vm.id).join(super::allocate::CREATING);
        if creating.exists() {
            unwind_interrupted_create(daemon, vm).instrument(span).await;
        } else if vm.state.may_have_vmm() {
            reconcile_one(daemon, vm.clone()).instrument(span).await;
        }
    }
    super::sweep::sweep(daemon, &vms).await;
}

/// The daemon died during this VM's create: nobody got an answer, so it
/// goes the way of a failed create (everything but its logs removed, the
/// record kept as `error` saying why, for `vm delete`).
async fn unwind_interrupted_create(daemon: &Daemon, vm: &VmRecord) {
    tracing::warn!("its create was interrupted by the previous daemon's exit; unwinding it");
    if let Err(e) = super::teardown::unwind_create(daemon, vm).await {
        tracing::warn!(error = %banger_api::error_chain(&e), "unwinding incomplete; `banger vm delete` retries it");
    }
    let reason = "the daemon stopped while this VM was being created; what the create had made \
                  was removed: `banger vm delete` removes the record";
    if let Err(e) = transition(daemon, &vm.id, VmAction::Fail, Some(reason.to_owned())).await {
        tracing::warn!(error = %banger_api::error_chain(&e), "cannot record the VM as failed");
    }
}

async fn reconcile_one(daemon: &Daemon, vm: VmRecord) {
    let handles = read_handles(&daemon.paths.vm_dir(&vm.id));
    let alive = match &handles {
        // The backend the VM was launched with, whatever config says now.
        Some(h) => daemon.vms.driver_for(h.handle.backend).is_alive(&h.handle),
        None => false,
    };
    // Only a VM that had finished booting is adopted: one caught half-way
    // through a start lost the request that was driving it.
    if alive && vm.state == VmState::Running {
        if let Some(ip) = vm.ip() {
            daemon.dns.set(&vm.name, ip);
        }
        tracing::info!("adopted: its VMM is still running");
        return;
    }
    tracing::info!(state = %vm.state, alive, "cleaning up: the VM's run ended with the previous daemon");
    if let Err(e) = halt(daemon, &vm).await {
        tracing::warn!(error = %banger_api::error_chain(&e), "cleanup incomplete; `banger vm kill` retries it");
    }
    if let Err(e) = transition(daemon, &vm.id, VmAction::Halted, None).await {
        tracing::warn!(error = %banger_api::error_chain(&e), "cannot record the VM as stopped");
    }
}

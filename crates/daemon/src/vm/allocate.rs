//! What creating a VM and restoring one share: choosing the name,
//! recording the VM (directory, CID, lease) with its `creating` marker, its
//! ssh identity, and settling the outcome (unwinding a failure).

use std::os::unix::fs::DirBuilderExt;

use banger_agent_proto::protocol::{HostKey as AgentHostKey, IdentityRequest};
use banger_api::model::{VmAction, VmName, generate_name};
use banger_api::protocol::{ErrorCode, VmSpec};
use banger_net::ssh::{SshPaths, ensure_user_key, generate_host_key, pin_host};
use banger_net::subnet::GuestSubnet;
use banger_store::{NewVm, VmRecord};

use super::record::{find, transition};
use super::teardown::unwind_create;
use crate::blocking::run;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::state::Daemon;

/// How a create (or a restore) ends: on success the VM loses its
/// [`CREATING`] marker; on failure everything made is unwound and the
/// record says why.
pub(super) async fn settle(
    daemon: &Daemon,
    vm: &VmRecord,
    was_killed: bool,
    result: Result<VmRecord, DaemonError>,
) -> Result<VmRecord, DaemonError> {
    match result {
        Ok(vm) => {
            let marker = daemon.paths.vm_dir(&vm.id).join(CREATING);
            std::fs::remove_file(&marker).map_err(|e| {
                DaemonError::Internal(format!("cannot remove {}: {e}", marker.display()))
            })?;
            Ok(vm)
        }
        Err(e) => {
            let e = if was_killed { killed() } else { e };
            let reason = banger_api::error_chain(&e);
            tracing::warn!(vm = %vm.name, error = %reason, "create failed; unwinding");
            let current = find(daemon, &vm.id).await.unwrap_or_else(|_| vm.clone());
            if let Err(u) = unwind_create(daemon, &current).await {
                tracing::error!(vm = %vm.name, error = %banger_api::error_chain(&u), "unwinding a failed create");
            }
            if let Err(t) = transition(daemon, &vm.id, VmAction::Fail, Some(reason)).await {
                tracing::error!(vm = %vm.name, error = %banger_api::error_chain(&t), "recording the failure");
            }
            Err(e)
        }
    }
}

/// The requested name if still free, else a generated one; called under
/// `daemon.vms.alloc`, so two creates never pick the same.
pub(super) async fn choose_name(
    daemon: &Daemon,
    requested: Option<VmName>,
) -> Result<VmName, DaemonError> {
    match requested {
        Some(name) => {
            ensure_name_free(daemon, &name).await?;
            Ok(name)
        }
        None => {
            daemon
                .store
                .call(|s| Ok(generate_name(|n| s.vm_name_taken(n).unwrap_or(true))))
                .await
        }
    }
}

/// In the VM directory while its create runs: a VM that has it at daemon
/// start was being created when the previous daemon died, and is unwound
/// by reconcile like a failed create (a `--no-start` VM that finished has
/// none).
pub(super) const CREATING: &str = "creating";

fn mark_creating(vm_dir: &std::path::Path) -> std::io::Result<()> {
    let marker = std::fs::File::create(vm_dir.join(CREATING))?;
    marker.sync_all()?;
    std::fs::File::open(vm_dir)?.sync_all()
}

/// How a create or start that `vm kill` interrupted ends.
pub(super) fn killed() -> DaemonError {
    DaemonError::failed(
        ErrorCode::OperationFailed,
        "interrupted by `banger vm kill`; everything it had made was removed",
    )
}

pub(super) fn valid_name(name: &str) -> Result<VmName, DaemonError> {
    VmName::new(name)
        .map_err(|e| DaemonError::failed(ErrorCode::BadRequest, format!("invalid VM name: {e}")))
}

pub(super) async fn ensure_name_free(daemon: &Daemon, name: &VmName) -> Result<(), DaemonError> {
    let n = name.clone();
    if daemon.store.call(move |s| s.vm_name_taken(&n)).await? {
        return Err(banger_store::StoreError::VmNameTaken {
            name: name.to_string(),
        }
        .into());
    }
    Ok(())
}

/// The VM directory, vsock CID, the record (`created`) and the IP lease.
pub(super) async fn record(
    daemon: &Daemon,
    id: &str,
    name: &VmName,
    image: &str,
    kernel: &str,
    spec: VmSpec,
) -> Result<VmRecord, DaemonError> {
    let vm_dir = daemon.paths.vm_dir(id);
    std::fs::create_dir_all(&daemon.paths.vms_dir)
        .and_then(|()| std::fs::DirBuilder::new().mode(0o700).create(&vm_dir))
        .and_then(|()| mark_creating(&vm_dir))
        .map_err(|e| DaemonError::Internal(format!("cannot create {}: {e}", vm_dir.display())))?;
    let subnet = GuestSubnet::new(daemon.config.bridge_ip(), daemon.config.cidr_prefix())
        .map_err(|e| DaemonError::failed(ErrorCode::OperationFailed, e.to_string()))?;
    let new = NewVm {
        id: id.to_owned(),
        name: name.clone(),
        image: image.to_owned(),
        spec,
        kernel: kernel.to_owned(),
    };
    // One transaction: the record, its vsock CID and its address lease.
    let inserted = daemon
        .store
        .call(move |s| s.create_vm(new, subnet.guest_addresses()))
        .await;
    if inserted.is_err() {
        let _ = std::fs::remove_dir(&vm_dir);
    }
    inserted
}

/// The VM's ssh identity for its first boot: banger's user key (made once)
/// authorised, and a fresh host key pinned in banger's known_hosts under the
/// VM's name and address before anything connects. The agent installs it
/// in the guest ([`super::boot`]).
pub(super) async fn ssh_identity(
    daemon: &Daemon,
    op: &mut OpTracker,
    vm: &VmRecord,
) -> Result<IdentityRequest, DaemonError> {
    let stage = "ssh keys: host key pinned before the first connection";
    op.stage(stage).await?;
    let ssh = SshPaths::new(&daemon.paths);
    let ssh = match daemon.config.ssh_key_path() {
        Some(key) => ssh.with_user_key(key),
        None => ssh,
    };
    let (name, ip, dir) = (vm.name.clone(), vm.ip(), daemon.paths.vm_dir(&vm.id));
    run(move || {
        let user = ensure_user_key(&ssh)?;
        let host_key = generate_host_key(&dir)?;
        pin_host(&ssh, &name, ip, &host_key.public)?;
        Ok::<_, DaemonError>(IdentityRequest {
            hostname: Some(name.to_string()),
            authorized_keys: Some(format!("{user}\n")),
            host_key: Some(AgentHostKey {
                private: host_key.private,
                public: host_key.public,
            }),
            ..IdentityRequest::default()
        })
    })
    .await?
    .map_err(|e| e.in_stage(stage))
}

//! `vm.prune` (delete every VM that is not running) and `vm.set` (change
//! vCPUs, memory, work disk size and NAT).

use std::path::Path;

use banger_api::model::{ByteSize, VmState};
use banger_api::protocol::{
    ErrorCode, MIN_DISK_MIB, MIN_MEMORY_MIB, PruneEntry, PruneOutcome, Vm, VmPruneParams,
    VmSetParams, VmSpec,
};
use banger_store::VmRecord;
use banger_sys::Cmd;

use super::power::{locked, remove_halted};
use super::record::{WORK_DISK_FILE, find, held};
use crate::blocking::run;
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::machinery::bridge_name;
use crate::ops::OpTracker;
use crate::state::Daemon;

/// A VM in one of these states has no VMM: prune may delete it.
fn prunable(state: VmState) -> bool {
    matches!(state, VmState::Created | VmState::Stopped | VmState::Error)
}

/// Deletes the VMs that are not running, one after the other, each under
/// its lock and only if it is still not running then: a VM started after
/// the client listed it is skipped, never stopped.
pub async fn prune(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: VmPruneParams,
) -> Result<Vec<PruneEntry>, DaemonError> {
    let all = daemon.store.call(|s| s.list_vms()).await?;
    let candidates: Vec<VmRecord> = match &p.ids {
        // Asked for by id: running ones are reported as skipped.
        Some(ids) => all.into_iter().filter(|vm| ids.contains(&vm.id)).collect(),
        None => all.into_iter().filter(|vm| prunable(vm.state)).collect(),
    };
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut op = OpTracker::begin(&daemon.store, ctx, "vm.prune", None).await?;
    let mut entries = Vec::with_capacity(candidates.len());
    for listed in candidates {
        op.stage(&format!("deleting {}", listed.name)).await?;
        entries.push(prune_one(daemon, listed).await);
    }
    let failed = entries
        .iter()
        .filter(|e| e.outcome == PruneOutcome::Failed)
        .count();
    tracing::info!(vms = entries.len(), failed, "prune done");
    op.finish(Ok(entries)).await
}

async fn prune_one(daemon: &Daemon, listed: VmRecord) -> PruneEntry {
    let entry = |vm: &VmRecord, outcome, message| PruneEntry {
        id: vm.id.clone(),
        name: vm.name.clone(),
        state: vm.state,
        outcome,
        message,
    };
    let (vm, _guard) = match locked(daemon, &listed.id).await {
        Ok(found) => found,
        Err(e) => {
            let why = banger_api::error_chain(&e);
            return entry(&listed, PruneOutcome::Failed, Some(why));
        }
    };
    if !prunable(vm.state) {
        let why = format!("it is {}", vm.state);
        return entry(&vm, PruneOutcome::Skipped, Some(why));
    }
    match remove_halted(daemon, &vm).await {
        Ok(()) => entry(&vm, PruneOutcome::Deleted, None),
        Err(e) => {
            let why = banger_api::error_chain(&e);
            tracing::warn!(vm = %vm.name, error = %why, "prune: delete failed");
            entry(&vm, PruneOutcome::Failed, Some(why))
        }
    }
}

fn bad_request(message: String) -> DaemonError {
    DaemonError::failed(ErrorCode::BadRequest, message)
}

/// Refuses values no VM can have, before anything is looked up.
fn check_values(p: &VmSetParams) -> Result<(), DaemonError> {
    if p.changes_nothing() {
        return Err(bad_request(
            "nothing to change: give --vcpu, --memory, --disk-size, --nat or --no-nat".into(),
        ));
    }
    if p.vcpu == Some(0) {
        return Err(bad_request("--vcpu must be at least 1".into()));
    }
    if p.memory_mib.is_some_and(|m| m < MIN_MEMORY_MIB) {
        return Err(bad_request(format!(
            "--memory must be at least {MIN_MEMORY_MIB} MiB"
        )));
    }
    if p.disk_size.is_some_and(|d| d.mib() < MIN_DISK_MIB) {
        return Err(bad_request(format!(
            "--disk-size must be at least {MIN_DISK_MIB}M"
        )));
    }
    Ok(())
}

/// The spec after the change, or why the change is refused (nothing has
/// been changed then).
fn next_spec(vm: &VmRecord, p: &VmSetParams) -> Result<VmSpec, DaemonError> {
    if p.needs_stopped_vm() && vm.state.may_have_vmm() {
        return Err(DaemonError::failed(
            ErrorCode::OperationFailed,
            format!(
                "VM {name} is {state}: vCPUs, memory and disk size change only while it is \
                 stopped; run `banger vm stop {name}` first (NAT can change while it runs)",
                name = vm.name,
                state = vm.state
            ),
        ));
    }
    if let Some(size) = p.disk_size.filter(|s| *s < vm.spec.disk_size) {
        return Err(shrink_refused(
            &vm.name.to_string(),
            vm.spec.disk_size,
            size,
        ));
    }
    Ok(VmSpec {
        vcpu: p.vcpu.unwrap_or(vm.spec.vcpu),
        memory_mib: p.memory_mib.unwrap_or(vm.spec.memory_mib),
        disk_size: p.disk_size.unwrap_or(vm.spec.disk_size),
        nat: p.nat.unwrap_or(vm.spec.nat),
    })
}

fn shrink_refused(name: &str, current: ByteSize, asked: ByteSize) -> DaemonError {
    bad_request(format!(
        "the work disk of {name} is {current} and only grows: give a size of at least {current} \
         (asked for {asked}); nothing was changed"
    ))
}

/// Changes what a VM is. Every check runs before anything changes; the
/// disk grows, NAT switches (on a running VM), and then the spec is saved.
pub async fn set(daemon: &Daemon, ctx: &RequestCtx, p: VmSetParams) -> Result<Vm, DaemonError> {
    check_values(&p)?;
    let (vm, _guard) = locked(daemon, &p.vm).await?;
    let spec = next_spec(&vm, &p)?;
    if spec == vm.spec {
        return Ok(super::view::vm(vm));
    }
    let mut op = OpTracker::begin(&daemon.store, ctx, "vm.set", Some(vm.name.to_string())).await?;
    let result = apply(daemon, &mut op, &vm, spec).await;
    op.finish(result).await.map(super::view::vm)
}

async fn apply(
    daemon: &Daemon,
    op: &mut OpTracker,
    vm: &VmRecord,
    spec: VmSpec,
) -> Result<VmRecord, DaemonError> {
    if spec.disk_size > vm.spec.disk_size {
        let stage = format!("growing the work disk to {}", spec.disk_size);
        op.stage(&stage).await?;
        let path = daemon.paths.vm_dir(&vm.id).join(WORK_DISK_FILE);
        let (name, size) = (vm.name.to_string(), spec.disk_size);
        run(move || grow_work_disk(&name, &path, size))
            .await?
            .map_err(|e| e.in_stage(&stage))?;
    }
    // The record says NAT before the rule exists, and the rule is gone
    // before the record stops saying so; teardown removes a guest's rules
    // whatever the record says, so a crash in between leaks nothing.
    let live_nat = spec.nat != vm.spec.nat && vm.state == VmState::Running;
    if live_nat && !spec.nat {
        switch_nat(daemon, op, vm, false).await?;
    }
    let (id, saved) = (vm.id.clone(), spec.clone());
    daemon
        .store
        .call(move |s| s.set_vm_spec(&id, &saved))
        .await?;
    crate::fault::point("set.spec-saved");
    if live_nat && spec.nat {
        if let Err(e) = switch_nat(daemon, op, vm, true).await {
            let (id, old) = (vm.id.clone(), vm.spec.clone());
            if let Err(undo) = daemon.store.call(move |s| s.set_vm_spec(&id, &old)).await {
                tracing::error!(vm = %vm.name, error = %banger_api::error_chain(&undo), "restoring the spec after NAT failed");
            }
            return Err(e);
        }
        crate::fault::point("set.nat");
    }
    tracing::info!(vm = %vm.name, vcpu = spec.vcpu, memory_mib = spec.memory_mib,
        disk = %spec.disk_size, nat = spec.nat, "spec changed");
    find(daemon, &vm.id).await
}

/// Adds or removes the running VM's NAT rule, as boot and teardown do.
async fn switch_nat(
    daemon: &Daemon,
    op: &mut OpTracker,
    vm: &VmRecord,
    on: bool,
) -> Result<(), DaemonError> {
    let stage = if on {
        "network: adding NAT"
    } else {
        "network: removing NAT"
    };
    op.stage(stage).await?;
    let ip = held(vm)?.ip;
    let host = daemon.vms.host()?;
    let bridge = bridge_name(&daemon.config)?;
    run(move || {
        if on {
            host.add_nat(ip, &bridge)
        } else {
            host.remove_nat(ip, &bridge)
        }
    })
    .await?
    .map_err(|e| DaemonError::from(e).in_stage(stage))
}

/// Extends the sparse work disk file to `size` and grows its ext4 to fill
/// it. The file is checked first (resize2fs insists on a freshly checked
/// filesystem); if the check fails nothing has changed.
fn grow_work_disk(name: &str, path: &Path, size: ByteSize) -> Result<(), DaemonError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DaemonError::failed(
                ErrorCode::OperationFailed,
                format!(
                    "VM {name} has no work disk ({} is missing: it was never made, or a failed \
                     create removed it); delete the VM and create it again",
                    path.display()
                ),
            ));
        }
        Err(e) => return Err(io_error("inspect", path, e)),
    };
    if !meta.file_type().is_file() {
        return Err(DaemonError::failed(
            ErrorCode::OperationFailed,
            format!(
                "{} is not a regular file; refusing to resize it",
                path.display()
            ),
        ));
    }
    // The file is the truth if an earlier grow got further than the record.
    if meta.len() > size.bytes() {
        let current = ByteSize::from_mib(meta.len().div_ceil(1 << 20)).unwrap_or(size);
        return Err(shrink_refused(name, current, size));
    }
    check_fs(path)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(size.bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| io_error("extend", path, e))?;
    Cmd::new("resize2fs")
        .arg(path)
        .run()
        .map_err(|source| banger_image::DiskError::Command {
            action: format!(
                "grow the filesystem of {} (the file is already {size}; `resize2fs {}` can be \
                 run again)",
                path.display(),
                path.display()
            ),
            source,
        })?;
    tracing::info!(disk = %path.display(), size = %size, "work disk grown");
    Ok(())
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> DaemonError {
    banger_image::DiskError::Io {
        action,
        path: path.to_owned(),
        source,
    }
    .into()
}

/// `e2fsck -fy` repairs what it can and exits non-zero when it repaired
/// anything, so a failure is followed by a read-only check: a clean
/// answer then means the filesystem is fit to resize.
fn check_fs(path: &Path) -> Result<(), DaemonError> {
    let repair = Cmd::new("e2fsck").arg("-fy").arg(path).run();
    let Err(repaired) = repair else {
        return Ok(());
    };
    tracing::info!(disk = %path.display(), result = %repaired, "e2fsck changed the work disk; checking again");
    Cmd::new("e2fsck")
        .arg("-fn")
        .arg(path)
        .run()
        .map(|_| ())
        .map_err(|source| {
            banger_image::DiskError::Command {
                action: format!(
                    "check the work disk {} before growing it (nothing was changed)",
                    path.display()
                ),
                source,
            }
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(state: VmState) -> VmRecord {
        VmRecord {
            id: "0123456789abcdef".into(),
            name: banger_api::model::VmName::new("dev").unwrap(),
            image: "img".into(),
            state,
            spec: VmSpec {
                vcpu: 2,
                memory_mib: 2048,
                disk_size: "8G".parse().unwrap(),
                nat: false,
            },
            runtime: None,
            workspace: None,
            created_at: String::new(),
            updated_at: String::new(),
            last_error: None,
        }
    }

    fn params() -> VmSetParams {
        VmSetParams {
            vm: "dev".into(),
            ..Default::default()
        }
    }

    fn code(r: Result<impl std::fmt::Debug, DaemonError>) -> (ErrorCode, String) {
        let e = r.unwrap_err();
        (e.code(), e.to_protocol().message)
    }

    #[test]
    fn values_are_positive_and_something_changes() {
        assert_eq!(code(check_values(&params())).0, ErrorCode::BadRequest);
        for p in [
            VmSetParams {
                vcpu: Some(0),
                ..params()
            },
            VmSetParams {
                memory_mib: Some(64),
                ..params()
            },
            VmSetParams {
                disk_size: Some("32M".parse().unwrap()),
                ..params()
            },
        ] {
            assert_eq!(code(check_values(&p)).0, ErrorCode::BadRequest, "{p:?}");
        }
        check_values(&VmSetParams {
            vcpu: Some(1),
            ..params()
        })
        .unwrap();
    }

    #[test]
    fn a_running_vm_changes_only_nat() {
        let grow = VmSetParams {
            memory_mib: Some(4096),
            ..params()
        };
        let (c, message) = code(next_spec(&vm(VmState::Running), &grow));
        assert_eq!(c, ErrorCode::OperationFailed);
        assert!(message.contains("banger vm stop dev"), "{message}");
        let nat = VmSetParams {
            nat: Some(true),
            ..params()
        };
        assert!(next_spec(&vm(VmState::Running), &nat).unwrap().nat);
        let stopped = next_spec(&vm(VmState::Stopped), &grow).unwrap();
        assert_eq!((stopped.memory_mib, stopped.vcpu), (4096, 2));
    }

    #[test]
    fn the_disk_only_grows() {
        let shrink = VmSetParams {
            disk_size: Some("4G".parse().unwrap()),
            ..params()
        };
        let (c, message) = code(next_spec(&vm(VmState::Stopped), &shrink));
        assert_eq!(c, ErrorCode::BadRequest);
        assert!(
            message.contains("only grows") && message.contains("8G"),
            "{message}"
        );
        let same = VmSetParams {
            disk_size: Some("8G".parse().unwrap()),
            ..params()
        };
        assert_eq!(
            next_spec(&vm(VmState::Stopped), &same).unwrap(),
            vm(VmState::Stopped).spec
        );
    }

    #[test]
    fn only_vms_without_a_vmm_are_pruned() {
        let pruned: Vec<VmState> = VmState::ALL.into_iter().filter(|s| prunable(*s)).collect();
        assert_eq!(pruned, [VmState::Created, VmState::Stopped, VmState::Error]);
    }

    #[test]
    fn a_missing_or_odd_work_disk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let size: ByteSize = "1G".parse().unwrap();
        let missing = dir.path().join("work.ext4");
        let message = code(grow_work_disk("dev", &missing, size)).1;
        assert!(message.contains("no work disk"), "{message}");
        std::os::unix::fs::symlink("/etc/passwd", &missing).unwrap();
        let message = code(grow_work_disk("dev", &missing, size)).1;
        assert!(message.contains("not a regular file"), "{message}");
    }

    /// A real ext4 file grows, and its filesystem with it.
    #[test]
    fn a_work_disk_grows_with_its_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ext4");
        banger_image::create_work_disk(&path, "64M".parse().unwrap(), None).unwrap();
        let bigger: ByteSize = "96M".parse().unwrap();
        grow_work_disk("dev", &path, bigger).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bigger.bytes());
        let out = Cmd::new("dumpe2fs")
            .arg("-h")
            .arg(&path)
            .run()
            .unwrap()
            .stdout_str();
        let field = |key: &str| -> u64 {
            out.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{key} in {out}"))
        };
        assert_eq!(field("Block count:") * field("Block size:"), bigger.bytes());
        let smaller: ByteSize = "80M".parse().unwrap();
        let message = code(grow_work_disk("dev", &path, smaller)).1;
        assert!(message.contains("only grows"), "{message}");
    }
}

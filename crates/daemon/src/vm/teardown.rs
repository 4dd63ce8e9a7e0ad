//! Taking a VM apart, from its durable record alone. Every step is
//! idempotent (what is already gone counts as removed) and every step runs
//! even when an earlier one failed; the first failure is returned.

use std::time::Duration;

use banger_api::model::VmName;
use banger_net::ssh::{SshPaths, unpin_host};
use banger_store::VmRecord;

use super::handles::{handles_path, read_handles};
use super::record::{release_runtime, root_disk_of, save_runtime};
use crate::blocking::run;
use crate::error::DaemonError;
use crate::machinery::{Machinery, bridge_name};
use crate::state::Daemon;

/// How long a guest gets to power off before its VMM is stopped.
pub(super) const POWEROFF_WAIT: Duration = Duration::from_secs(10);

/// Keeps the first error while every step still runs.
#[derive(Default)]
struct Errors(Option<DaemonError>);

impl Errors {
    fn note(&mut self, what: &str, result: Result<(), DaemonError>) {
        if let Err(e) = result {
            tracing::warn!(step = what, error = %banger_api::error_chain(&e), "teardown step failed");
            self.0.get_or_insert(e.in_stage(what));
        }
    }

    fn into_result(self) -> Result<(), DaemonError> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Asks the guest to power off (agent `poweroff`, else the VMM's shutdown
/// request), waits up to [`POWEROFF_WAIT`], then kills the VMM: always, as
/// that also stops QEMU's agent-mux sidecar and removes a jail.
/// Then [`halt`]. The driver is the one the VM's handle records.
pub(super) async fn stop_guest(daemon: &Daemon, vm: &VmRecord) -> Result<(), DaemonError> {
    let vm_dir = daemon.paths.vm_dir(&vm.id);
    if let Some(handles) = read_handles(&vm_dir) {
        let driver = daemon.vms.driver_for(handles.handle.backend);
        let (guest, handle) = (daemon.vms.guest(), handles.handle.clone());
        run(move || {
            let asked = guest.poweroff(&handle.vsock_uds);
            if let Err(e) = asked {
                tracing::info!(error = %e, "the agent did not take the poweroff; asking the VMM");
                if let Err(e) = driver.request_shutdown(&handle) {
                    tracing::warn!(error = %e, "the VMM refused the shutdown request");
                }
            }
            match driver.wait_exit(&handle, POWEROFF_WAIT) {
                Ok(true) => tracing::info!("guest powered off"),
                Ok(false) => tracing::warn!("guest still running after {POWEROFF_WAIT:?}; killing"),
                Err(e) => tracing::warn!(error = %e, "waiting for the VMM"),
            }
        })
        .await?;
        crate::fault::point("stop.poweroff");
    }
    halt(daemon, vm).await
}

/// Stops the VMM and its sidecar if they still run, and gives back what a
/// running VM holds: its tap, NAT rules, DNS record, `handles.json`.
pub(super) async fn halt(daemon: &Daemon, vm: &VmRecord) -> Result<(), DaemonError> {
    let machinery: &Machinery = &daemon.vms;
    let vm_dir = daemon.paths.vm_dir(&vm.id);
    let mut errors = Errors::default();
    let handles = read_handles(&vm_dir);
    if let Some(h) = &handles {
        let driver = daemon.vms.driver_for(h.handle.backend);
        let handle = h.handle.clone();
        let killed = run(move || driver.kill(&handle))
            .await
            .and_then(|r| r.map_err(DaemonError::from));
        errors.note("stopping the VMM", killed);
    }
    // Processes a crash left running before their pids were recorded (a
    // VMM and its sidecar spawned, `handles.json` not yet written) still
    // name the VM directory in their arguments.
    let dir = vm_dir.clone();
    let strays = run(move || kill_strays(&dir)).await.and_then(|r| r);
    errors.note("stopping processes left by a crash", strays);
    daemon.dns.remove(&vm.name);
    // Whatever the spec says: a `vm set --nat` that died between adding the
    // rule and saving the spec left a rule the spec does not mention, and
    // the next VM given this address would inherit it. Removal is idempotent.
    if let (Some(ip), Some(host)) = (vm.ip(), machinery.host_if_any()) {
        let removed = match bridge_name(&daemon.config) {
            Ok(bridge) => run(move || host.remove_nat(ip, &bridge))
                .await
                .and_then(|r| r.map_err(DaemonError::from)),
            Err(e) => Err(e),
        };
        errors.note("removing NAT", removed);
    }
    let tap = vm
        .tap()
        .map(str::to_owned)
        .or_else(|| handles.as_ref().and_then(|h| h.tap.clone()));
    if let Some(tap) = tap {
        let released = match (machinery.host(), banger_host::TapName::new(tap)) {
            (Ok(host), Ok(tap)) => run(move || {
                host.unfence_guest(&tap)?;
                host.delete_tap(&tap)
            })
            .await
            .and_then(|r| r.map_err(DaemonError::from)),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(banger_host::HostError::from(e).into()),
        };
        errors.note("releasing the tap", released);
        if let (None, Some(runtime)) = (&errors.0, &vm.runtime) {
            let mut runtime = runtime.clone();
            runtime.tap = None;
            errors.note(
                "recording the tap's release",
                save_runtime(daemon, &vm.id, &runtime).await,
            );
        }
    }
    if errors.0.is_none() {
        let path = handles_path(&vm_dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => errors.note(
                "removing handles.json",
                Err(DaemonError::Internal(format!(
                    "cannot remove {}: {e}",
                    path.display()
                ))),
            ),
            _ => {}
        }
    }
    errors.into_result()
}

/// Removes what a VM owns besides its running parts: the root disk, the VM
/// directory (work disk, logs, sockets), its known_hosts pins and its IP
/// lease. The record itself stays (the caller deletes it or marks it failed).
pub(super) async fn dispose(daemon: &Daemon, vm: &VmRecord, logs: Logs) -> Result<(), DaemonError> {
    let mut errors = Errors::default();
    match root_disk_of(vm) {
        Ok(Some(disk)) => {
            let removed = match daemon.vms.host_if_any() {
                Some(host) => run(move || banger_image::teardown_root_disk(&disk, host.as_ref()))
                    .await
                    .and_then(|r| r.map_err(DaemonError::from)),
                // Only a device-mapper snapshot needs the host; files go
                // with the VM directory below.
                None if disk.strategy == banger_image::CowStrategy::DmSnapshot => {
                    daemon.vms.host().map(|_| ())
                }
                None => Ok(()),
            };
            errors.note("removing the root disk", removed);
        }
        Ok(None) => {}
        Err(e) => errors.note("reading the root disk record", Err(e)),
    }
    let ssh = SshPaths::new(&daemon.paths);
    let name: VmName = vm.name.clone();
    let unpinned = run(move || unpin_host(&ssh, &name))
        .await
        .and_then(|r| r.map_err(DaemonError::from));
    errors.note("removing the known_hosts pins", unpinned);
    let vm_dir = daemon.paths.vm_dir(&vm.id);
    let removed = run(move || remove_vm_dir(&vm_dir, logs))
        .await
        .and_then(|r| r);
    errors.note("removing the VM directory", removed);
    let id = vm.id.clone();
    let released = daemon
        .store
        .call(move |s| s.release_ip(&id))
        .await
        .map(|_| ());
    errors.note("releasing the IP lease", released);
    errors.into_result()
}

/// After a failed create: everything goes but the logs, the record stays,
/// emptied of what it no longer holds, so `vm show` explains, `vm logs`
/// shows what the VMM and the console said, and `vm delete` removes it.
pub(super) async fn unwind_create(daemon: &Daemon, vm: &VmRecord) -> Result<(), DaemonError> {
    let halted = halt(daemon, vm).await;
    let disposed = dispose(daemon, vm, Logs::Keep).await;
    let cleared = release_runtime(daemon, &vm.id).await;
    halted.and(disposed).and(cleared)
}

/// What happens to the VM directory's logs when the rest goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Logs {
    /// A failed create: the evidence stays until `vm delete`.
    Keep,
    Remove,
}

/// Removes the VM directory, or with [`Logs::Keep`] all of it but its log
/// files (the directory itself goes when none is left).
fn remove_vm_dir(vm_dir: &std::path::Path, logs: Logs) -> Result<(), DaemonError> {
    let failed = |path: &std::path::Path, e: std::io::Error| {
        DaemonError::Internal(format!("cannot remove {}: {e}", path.display()))
    };
    let gone = |r: std::io::Result<()>, path: &std::path::Path| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(path, e)),
        _ => Ok(()),
    };
    if logs == Logs::Remove {
        return gone(std::fs::remove_dir_all(vm_dir), vm_dir);
    }
    let entries = match std::fs::read_dir(vm_dir) {
        Ok(entries) => entries,
        Err(e) => return gone(Err(e), vm_dir),
    };
    let mut kept = 0;
    for entry in entries {
        let entry = entry.map_err(|e| failed(vm_dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| failed(&path, e))?;
        if kind.is_file() && super::evidence::is_log(&entry.file_name().to_string_lossy()) {
            kept += 1;
        } else if kind.is_dir() {
            gone(std::fs::remove_dir_all(&path), &path)?;
        } else {
            gone(std::fs::remove_file(&path), &path)?;
        }
    }
    if kept == 0 {
        return gone(std::fs::remove_dir(vm_dir), vm_dir);
    }
    Ok(())
}

/// Kills every process whose arguments name something in `vm_dir`.
fn kill_strays(vm_dir: &std::path::Path) -> Result<(), DaemonError> {
    let mut left = Vec::new();
    for pid in banger_sys::proc::mentioning(vm_dir) {
        tracing::warn!(pid, dir = %vm_dir.display(), "killing a process left for this VM");
        if !banger_sys::proc::kill_hard(pid, vm_dir, Duration::from_secs(5)) {
            left.push(pid);
        }
    }
    match left.is_empty() {
        true => Ok(()),
        false => Err(DaemonError::Internal(format!(
            "processes {left:?} naming {} survived SIGKILL",
            vm_dir.display()
        ))),
    }
}

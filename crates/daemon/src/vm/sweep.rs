//! At daemon start, after reconcile: what a crash left that no record
//! names. A VM directory without a VM whose create was interrupted (the
//! crash came between making it and recording the VM), with any process
//! still naming it; taps this
//! daemon made (its ledger, see `crate::tap_ledger`) that no VM holds (the
//! pool, or a tap taken and not yet recorded; the pool refills at the next
//! boot); IP leases whose holder is gone; staging
//! directories of interrupted image builds.

use std::collections::HashSet;

use banger_store::VmRecord;

use crate::blocking::run;
use crate::state::Daemon;

pub async fn sweep(daemon: &Daemon, vms: &[VmRecord]) {
    let ids: HashSet<String> = vms.iter().map(|vm| vm.id.clone()).collect();
    let (vms_dir, held) = (
        daemon.paths.vms_dir.clone(),
        vms.iter()
            .filter_map(|vm| vm.tap().map(str::to_owned))
            .collect::<HashSet<_>>(),
    );
    let images = crate::supply::image_store(daemon);
    let host = daemon.vms.host_if_any();
    let ids_for_dirs = ids.clone();
    let ledger = crate::tap_ledger::ledger_path(&daemon.paths);
    let swept = run(move || {
        orphan_dirs(&vms_dir, &ids_for_dirs);
        if let Some(host) = host {
            orphan_taps(host.as_ref(), &ledger, &held);
        }
        match images.clean_interrupted() {
            Ok(removed) if !removed.is_empty() => {
                tracing::warn!(?removed, "removed what interrupted image builds left");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %banger_api::error_chain(&e), "cannot clean interrupted image builds"),
        }
    })
    .await;
    if let Err(e) = swept {
        tracing::warn!(error = %e, "sweeping after a crash failed");
    }
    let released = daemon
        .store
        .call(move |s| {
            let mut released = 0;
            for lease in s.list_leases()? {
                if !ids.contains(&lease.holder) {
                    s.release_ip(&lease.holder)?;
                    released += 1;
                }
            }
            Ok(released)
        })
        .await;
    match released {
        Ok(0) => {}
        Ok(n) => tracing::warn!(released = n, "released IP leases no VM holds"),
        Err(e) => tracing::warn!(error = %e, "cannot release orphaned IP leases"),
    }
}

/// VM directories no record names. Only what a crash in the middle of a
/// create can have left is removed: a directory holding the create's
/// `creating` marker (and whatever it made after it), or an empty one (the
/// crash came between making it and marking it). Anything else (say, the
/// database was restored from an older copy) may hold someone's work disk:
/// it is left alone and reported.
fn orphan_dirs(vms_dir: &std::path::Path, ids: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(vms_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ids.contains(&name) {
            continue;
        }
        let path = entry.path();
        let interrupted_create = path.join(super::allocate::CREATING).is_file()
            || std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none());
        if !interrupted_create {
            tracing::warn!(dir = %path.display(), "a VM directory no VM record names, left alone: remove it by hand if nothing in it is needed");
            continue;
        }
        tracing::warn!(dir = %path.display(), "removing what an interrupted create left (no VM record names it)");
        for pid in banger_sys::proc::mentioning(&path) {
            banger_sys::proc::kill_hard(pid, path.as_path(), std::time::Duration::from_secs(5));
        }
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(dir = %path.display(), error = %e, "cannot remove it");
        }
    }
}

/// Taps this daemon made (its ledger says so) that no VM holds: the warm
/// pool of the previous daemon, or a tap taken for a VM and not yet
/// recorded. Nobody else's taps are looked at.
fn orphan_taps(host: &dyn banger_host::HostOps, ledger: &std::path::Path, held: &HashSet<String>) {
    let ours = crate::tap_ledger::recorded(ledger);
    for name in ours.iter().filter(|t| !held.contains(*t)) {
        let Ok(tap) = banger_host::TapName::new(name.clone()) else {
            continue;
        };
        let removed = host
            .unfence_guest(&tap)
            .and_then(|()| host.delete_tap(&tap));
        if let Err(e) = removed {
            tracing::warn!(tap = %name, error = %banger_api::error_chain(&e), "cannot remove a tap no VM holds");
        }
    }
}

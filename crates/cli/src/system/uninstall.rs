//! `banger system uninstall [--purge]`: stops the VMs and both services and
//! removes everything install wrote; `--purge` also removes the state (VMs,
//! images, kernels, the store), the cache, config and the owner's banger
//! directories. Each removal is its own step: one failure does not stop the
//! others, and the command fails at the end if any did.

use std::path::PathBuf;
use std::time::Duration;

use banger_api::model::VmState;
use banger_api::protocol::{NoParams, Request, Vm, VmRef};
use banger_config::{Config, InstallInfo};

use super::layout::Layout;
use super::service;
use super::steps::{Steps, remove_path};
use super::{SystemError, require_root};

pub fn uninstall(purge: bool) -> Result<(), SystemError> {
    require_root("system uninstall")?;
    let layout = Layout::system();
    let info = InstallInfo::load(&layout.install_file()).ok();
    let mut steps = Steps::open(&layout.log_file());
    println!(
        "Removing banger's system install{}; full output in {}",
        if purge { " and all its state" } else { "" },
        steps.log_path().display()
    );
    let mut failed = 0;
    let mut attempt =
        |steps: &mut Steps,
         what: &str,
         f: &mut dyn FnMut(&mut Steps) -> Result<(), SystemError>| {
            if let Err(e) = steps.step(what, f) {
                println!("    {}", crate::error_line::error_line(&e));
                failed += 1;
            }
        };
    let socket = layout.daemon_socket();
    if socket.exists() {
        let what = if purge {
            "delete every VM"
        } else {
            "stop the running VMs"
        };
        attempt(&mut steps, what, &mut |_| stop_vms(&socket, purge));
    }
    attempt(&mut steps, "stop and disable the services", &mut |s| {
        let [helper, daemon] = service::units();
        // Absent units are fine: removing is what we want anyway.
        let _ = service::systemctl(s, &["disable", "--now", daemon, helper]);
        Ok(())
    });
    attempt(&mut steps, "end what is left of the VMs", &mut |_| {
        kill_leftovers(&layout.state_dir().join("vms"));
        Ok(())
    });
    attempt(&mut steps, "remove the bridge and its rules", &mut |_| {
        remove_network(&layout)
    });
    let mut files: Vec<PathBuf> = vec![
        layout.unit(super::layout::DAEMON_UNIT),
        layout.unit(super::layout::HELPER_UNIT),
        layout.banger(),
        layout.bangerd(),
        layout.lib_dir(),
        layout.install_file(),
        layout.run_dir(),
        layout.helper_run_dir(),
    ];
    files.extend(layout.completions().into_iter().map(|(_, p)| p));
    files.extend(man_pages(&layout));
    if purge {
        files.extend([
            layout.state_dir(),
            layout.cache_dir(),
            layout.helper_cache_dir(),
            layout.etc_dir(),
        ]);
        if let Some(info) = &info {
            files.extend(Layout::owner_dirs(&info.owner.home));
        }
    }
    attempt(
        &mut steps,
        "remove the programs, units, completions and man pages",
        &mut |_| files.iter().try_for_each(|p| remove_path(p)),
    );
    // An /etc/banger holding only what the user wrote (config.toml) stays.
    let _ = std::fs::remove_dir(layout.etc_dir());
    attempt(&mut steps, "systemd forgets the units", &mut |s| {
        service::systemctl(s, &["daemon-reload"])
    });
    if purge {
        let _ = remove_path(&layout.log_file());
    }
    if failed > 0 {
        return Err(SystemError::Refused(format!(
            "{failed} step(s) failed; what they left is listed above"
        )));
    }
    println!(
        "banger is uninstalled{}.",
        if purge {
            ", with its state"
        } else {
            "; its VMs, images and kernels are kept in /var/lib/banger (--purge removes them)"
        }
    );
    Ok(())
}

/// Through the daemon, so each VM's taps, rules and devices go the usual
/// way: running VMs are killed (they cannot outlive their daemon usefully);
/// with `purge` every VM is deleted.
fn stop_vms(socket: &std::path::Path, purge: bool) -> Result<(), SystemError> {
    let client = crate::client::Client::new(socket);
    let vms: Vec<Vm> = client.call(Request::VmList(NoParams {})).map_err(|e| {
        SystemError::Refused(format!(
            "the daemon does not answer: {}",
            crate::error_line::error_line(&e)
        ))
    })?;
    for vm in vms {
        let vm_ref = VmRef { vm: vm.id.clone() };
        let request = if purge {
            Request::VmDelete(vm_ref)
        } else if vm.state == VmState::Running {
            Request::VmKill(vm_ref)
        } else {
            continue;
        };
        client.call::<serde_json::Value>(request).map_err(|e| {
            SystemError::Refused(format!(
                "VM {}: {}",
                vm.name,
                crate::error_line::error_line(&e)
            ))
        })?;
    }
    Ok(())
}

/// A VMM whose daemon could not be asked (it was down) still names its VM's
/// directory on its command line.
fn kill_leftovers(vms_dir: &std::path::Path) {
    for pid in banger_sys::proc::mentioning(vms_dir) {
        banger_sys::proc::kill_hard(pid, vms_dir, Duration::from_secs(2));
    }
}

/// The bridge and banger's nftables rules, removed in-process (this is
/// root, and the helper is gone).
fn remove_network(layout: &Layout) -> Result<(), SystemError> {
    use banger_host::HostOps;
    let config = Config::load(&layout.etc_dir().join("config.toml"))?;
    let bridge = banger_host::BridgeName::new(config.bridge_name())
        .map_err(|e| SystemError::Refused(e.to_string()))?;
    let host = banger_host::LocalHost::new();
    host.remove_bridge_fence(&bridge)
        .and_then(|()| host.delete_bridge(&bridge))
        .map_err(|e| SystemError::Refused(banger_api::error_chain(&e)))
}

fn man_pages(layout: &Layout) -> Vec<PathBuf> {
    let dir = layout.man_dir();
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name == "banger.1" || (name.starts_with("banger-") && name.ends_with(".1"))
        })
        .collect()
}

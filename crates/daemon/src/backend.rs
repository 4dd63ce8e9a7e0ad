//! The VMM that runs new VMs, chosen once per daemon from `vmm` in
//! config.toml (`banger_vmm::select`), with Firecracker's jailer when
//! `jailer_enabled`; and the driver for an existing VM, which comes from the
//! backend its `handles.json` records, never from today's config.

use std::path::Path;
use std::sync::Arc;

use banger_api::protocol::ErrorCode;
use banger_config::{Config, Paths, Vmm};
use banger_vmm::firecracker::{Firecracker, JailerConfig};
use banger_vmm::logcap::{self, LogCapper};
use banger_vmm::qemu::Qemu;
use banger_vmm::select::{self, Choice, FirecrackerFound, Preference};
use banger_vmm::{BackendKind, Kvm, VmmBackend};

use crate::error::DaemonError;

/// The driver new VMs are launched with.
pub struct Chosen {
    pub driver: Arc<dyn VmmBackend>,
    /// For stage lines: `QEMU (tcg)`, `Firecracker (1.17.0, jailed)`.
    pub label: String,
    /// Firecracker runs under the jailer, which hard-links the disks into
    /// its chroot (so a device-mapper root disk cannot be used).
    pub jailed: bool,
    /// The VMM's program: its contents are part of the warm cache's key.
    pub binary: std::path::PathBuf,
}

impl Chosen {
    pub fn kind(&self) -> BackendKind {
        self.driver.kind()
    }
}

fn preference(vmm: Vmm) -> Preference {
    match vmm {
        Vmm::Auto => Preference::Auto,
        Vmm::Firecracker => Preference::Firecracker,
        Vmm::Qemu => Preference::Qemu,
    }
}

/// Decides and builds the driver (blocking: it runs `--version` and may
/// probe KVM). An explicit `vmm = "firecracker"` that cannot work is an
/// error naming what is missing.
pub fn discover(config: &Config, paths: &Paths, owner_uid: u32) -> Result<Chosen, DaemonError> {
    let preference = preference(config.vmm());
    let choice = select::choose(
        preference,
        || FirecrackerFound::detect(config.firecracker_bin()),
        Kvm::detect,
    )
    .map_err(|e| DaemonError::failed(ErrorCode::OperationFailed, e.to_string()))?;
    tracing::info!(choice = %choice.summary(preference), "VMM chosen");
    match choice {
        Choice {
            kind: BackendKind::Firecracker,
            firecracker: Some((binary, version)),
            ..
        } => {
            let mut fc = Firecracker::new(binary).with_log_capper(log_capper());
            if config.jailer_enabled() {
                require_root_for_jailer(banger_sys::os::is_root(), owner_uid)?;
                fc.jailer = Some(jailer(config, paths, owner_uid)?);
            }
            let jailed = fc.jailer.is_some();
            tracing::info!(firecracker = %fc.binary.display(), %version, jailed, "VMM: Firecracker");
            Ok(Chosen {
                label: format!(
                    "Firecracker ({version}{})",
                    if jailed { ", jailed" } else { "" }
                ),
                binary: fc.binary.clone(),
                driver: Arc::new(fc),
                jailed,
            })
        }
        _ => {
            let bin = config.qemu_bin().map(|p| p.to_string_lossy().into_owned());
            let qemu =
                Qemu::discover(bin.as_deref(), own_executable())?.with_log_capper(log_capper());
            tracing::info!(qemu = %qemu.binary.display(), accel = qemu.accel.as_str(), "VMM: QEMU");
            Ok(Chosen {
                label: format!("QEMU ({})", qemu.accel.as_str()),
                binary: qemu.binary.clone(),
                driver: Arc::new(qemu),
                jailed: false,
            })
        }
    }
}

/// The agent-mux sidecar under QEMU is this daemon's own executable in its
/// hidden `--agent-mux` mode (`banger_vmm::agent_mux`), which outlives a
/// daemon restart like the VMM. `bangerd` by name when the executable
/// cannot be found: the launch then says what is missing.
fn own_executable() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| std::path::PathBuf::from("bangerd"))
}

/// The log capper is this daemon's own executable in its hidden
/// `--cap-log` mode (`banger_vmm::logcap`): a separate process per log, so
/// it outlives a daemon restart like the VMM does. Without it (the
/// executable cannot be named) logs are written uncapped, with a warning.
fn log_capper() -> Option<LogCapper> {
    match std::env::current_exe() {
        Ok(exe) => Some(LogCapper::new(exe, logcap::DEFAULT_CAP)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot find bangerd's own executable: VM logs are not capped");
            None
        }
    }
}

/// The jailer must start as root (it builds a chroot and device nodes, then
/// drops to the owner's uid); a daemon that is not root cannot start it,
/// and the root helper does not launch VMMs yet. Said before any VM is
/// touched, with what to do.
fn require_root_for_jailer(daemon_is_root: bool, owner_uid: u32) -> Result<(), DaemonError> {
    if daemon_is_root {
        return Ok(());
    }
    Err(DaemonError::failed(
        ErrorCode::OperationFailed,
        format!(
            "jailer_enabled = true in config.toml, but the jailer must start as root and this              daemon runs as uid {owner_uid}; set jailer_enabled = false (Firecracker then runs as              uid {owner_uid}, without the jailer's chroot), or run bangerd as root"
        ),
    ))
}

/// The jailer runs Firecracker as the owner (the user the VM files are
/// for), chrooted under `jailer_chroot_base`, by default the state
/// directory's `jail/`, on the same filesystem as the VM directories so the
/// disks can be hard-linked in.
fn jailer(config: &Config, paths: &Paths, owner_uid: u32) -> Result<JailerConfig, DaemonError> {
    let looked_for = config
        .jailer_bin()
        .map_or_else(|| "jailer".to_owned(), |p| p.to_string_lossy().into_owned());
    let binary = banger_sys::find_program(&looked_for).ok_or_else(|| {
        DaemonError::failed(
            ErrorCode::OperationFailed,
            format!(
                "jailer_enabled = true in config.toml, but {looked_for} was not found; install \
                 Firecracker's jailer and set jailer_bin, or set jailer_enabled = false"
            ),
        )
    })?;
    let gid = banger_sys::os::primary_gid(owner_uid).ok_or_else(|| {
        DaemonError::failed(
            ErrorCode::OperationFailed,
            format!("cannot run the jailer as uid {owner_uid}: no such user in /etc/passwd"),
        )
    })?;
    let chroot_base = config
        .jailer_chroot_base()
        .map_or_else(|| paths.jail_dir.clone(), Path::to_path_buf);
    Ok(JailerConfig {
        binary,
        uid: owner_uid,
        gid,
        chroot_base,
    })
}

/// The VMM drivers: the one new VMs get, and the one for a VM launched
/// earlier (by the backend its `handles.json` records, never by today's
/// config).
pub trait Vmms: Send + Sync {
    /// Decides and builds the driver for new VMs (blocking: it may run
    /// `--version` and probe KVM).
    fn choose(&self, config: &Config, paths: &Paths, owner_uid: u32)
    -> Result<Chosen, DaemonError>;
    fn for_kind(&self, kind: BackendKind) -> Arc<dyn VmmBackend>;
}

/// The real drivers: the configured choice for new VMs, and for a VM
/// launched earlier the driver of the backend its handle names; that one
/// needs only the handle's pids and sockets, so it works after that VMM was
/// uninstalled or the config switched to the other one.
pub struct SystemVmms;

impl Vmms for SystemVmms {
    fn choose(
        &self,
        config: &Config,
        paths: &Paths,
        owner_uid: u32,
    ) -> Result<Chosen, DaemonError> {
        discover(config, paths, owner_uid)
    }

    fn for_kind(&self, kind: BackendKind) -> Arc<dyn VmmBackend> {
        Arc::from(banger_vmm::driver_for(kind))
    }
}

/// The copy-on-write strategy's view of the backend.
pub fn cow_backend(kind: BackendKind) -> banger_image::cow::Backend {
    match kind {
        BackendKind::Firecracker => banger_image::cow::Backend::Firecracker,
        BackendKind::Qemu => banger_image::cow::Backend::Qemu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_that_is_not_root_refuses_the_jailer_with_what_to_do() {
        assert!(require_root_for_jailer(true, 0).is_ok());
        let err = require_root_for_jailer(false, 1000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("jailer_enabled = false") && err.contains("uid 1000"),
            "{err}"
        );
    }

    #[test]
    fn every_configured_value_maps_to_its_preference() {
        assert_eq!(preference(Vmm::Auto), Preference::Auto);
        assert_eq!(preference(Vmm::Firecracker), Preference::Firecracker);
        assert_eq!(preference(Vmm::Qemu), Preference::Qemu);
    }

    #[test]
    fn an_explicit_firecracker_that_is_missing_is_refused_with_the_fix() {
        let config = Config::parse(
            "vmm = \"firecracker\"\nfirecracker_bin = \"/nonexistent/firecracker\"\n",
            Path::new("config.toml"),
        )
        .unwrap();
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::development(home.path());
        let err = match discover(&config, &paths, 0) {
            Ok(_) => panic!("a missing firecracker was accepted"),
            Err(e) => banger_api::error_chain(&e),
        };
        assert!(
            err.contains("/nonexistent/firecracker was not found")
                && err.contains("firecracker_bin"),
            "{err}"
        );
    }

    #[test]
    fn handles_get_the_driver_they_record() {
        assert_eq!(
            SystemVmms.for_kind(BackendKind::Qemu).kind(),
            BackendKind::Qemu
        );
        assert_eq!(
            SystemVmms.for_kind(BackendKind::Firecracker).kind(),
            BackendKind::Firecracker
        );
    }
}

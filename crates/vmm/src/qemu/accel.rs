//! Which QEMU accelerator to use: KVM when it demonstrably works, else TCG.
//!
//! Policy, in order:
//! 1. `BANGER_QEMU_ACCEL=tcg|kvm` decides (any other value is an error, so a
//!    typo is not silently ignored).
//! 2. KVM not usable per [`Kvm::detect`], the one KVM probe both drivers
//!    share: no read-write `/dev/kvm`, or the host is itself a guest (nested
//!    KVM, on which standard guest kernels often cannot boot, SPEC §13):
//!    TCG, which is slow but always boots. Set `BANGER_QEMU_ACCEL=kvm` on
//!    nested hosts known to work.
//! 3. Probe: start `-accel kvm -M microvm -S` and ask it over QMP for its
//!    status within 2 s; KVM if it answers, else TCG.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_sys::Cmd;
use banger_sys::proc;

use super::qmp::QmpClient;
use crate::{Kvm, VmmError};

/// The environment variable that forces the accelerator.
pub const ACCEL_ENV: &str = "BANGER_QEMU_ACCEL";
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// Software emulation.
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// Decides per the module's policy; `qemu_binary` runs the probe.
    pub fn detect(qemu_binary: &Path) -> Result<Accel, VmmError> {
        let forced = std::env::var(ACCEL_ENV).ok();
        decide(forced.as_deref(), Kvm::detect, || probe_kvm(qemu_binary))
    }
}

/// The policy itself, with every host fact behind a closure so it is
/// testable and nothing is probed that an earlier rule already settled.
pub(crate) fn decide(
    forced: Option<&str>,
    kvm: impl FnOnce() -> Kvm,
    probe: impl FnOnce() -> bool,
) -> Result<Accel, VmmError> {
    match forced.map(str::trim) {
        Some("kvm") => return Ok(Accel::Kvm),
        Some("tcg") => return Ok(Accel::Tcg),
        Some("") | None => {}
        Some(other) => {
            return Err(VmmError::InvalidConfig(format!(
                "{ACCEL_ENV}={other:?}: expected kvm or tcg"
            )));
        }
    }
    if kvm() != Kvm::Usable {
        return Ok(Accel::Tcg);
    }
    Ok(if probe() { Accel::Kvm } else { Accel::Tcg })
}

/// Starts a paused KVM microvm and asks for its status; any failure is
/// simply "no KVM". The probe's directory and process never outlive it.
fn probe_kvm(qemu_binary: &Path) -> bool {
    let Some(dir) = ProbeDir::create() else {
        return false;
    };
    let qmp = dir.0.join("qmp.sock");
    let Some(qmp_arg) = qmp.to_str().map(|p| p.replace(',', ",,")) else {
        return false;
    };
    let spawned = Cmd::new(qemu_binary)
        .args(["-accel", "kvm", "-M", "microvm", "-cpu", "host", "-m", "64"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-S"])
        .args([
            "-chardev",
            &format!("socket,id=qmp,path={qmp_arg},server=on,wait=off"),
        ])
        .args(["-mon", "chardev=qmp,mode=control"])
        .spawn_detached(&dir.0.join("probe.log"));
    let Ok(pid) = spawned else {
        return false;
    };
    let identity = qmp_arg.clone();
    let deadline = Instant::now() + PROBE_TIMEOUT;
    proc::wait_exec(pid, identity.as_str(), PROBE_TIMEOUT);
    let mut answered = false;
    while Instant::now() < deadline && proc::is_ours(pid, identity.as_str()) {
        if let Ok(mut client) = QmpClient::connect(&qmp, PROBE_TIMEOUT) {
            answered = client.query_status().is_ok();
            let _ = client.quit();
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    if !proc::wait_gone(pid, identity.as_str(), Duration::from_millis(500)) {
        proc::kill_hard(pid, identity.as_str(), Duration::from_secs(1));
    }
    tracing::debug!(answered, "KVM probe");
    answered
}

/// A private temporary directory, removed on drop.
struct ProbeDir(PathBuf);

impl ProbeDir {
    fn create() -> Option<ProbeDir> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("banger-kvm-probe-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .ok()
            .map(|()| ProbeDir(path))
    }
}

impl Drop for ProbeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> bool {
        panic!("this fact must not be consulted")
    }

    fn no_kvm() -> Kvm {
        panic!("KVM must not be probed")
    }

    #[test]
    fn the_environment_wins_without_probing() {
        assert_eq!(decide(Some("kvm"), no_kvm, never).unwrap(), Accel::Kvm);
        assert_eq!(decide(Some("tcg"), no_kvm, never).unwrap(), Accel::Tcg);
        let err = decide(Some("hvf"), no_kvm, never).unwrap_err();
        assert!(
            err.to_string().contains("BANGER_QEMU_ACCEL=\"hvf\""),
            "{err}"
        );
    }

    #[test]
    fn without_kvm_or_when_nested_it_is_tcg() {
        let missing = || Kvm::Unavailable("no /dev/kvm".into());
        assert_eq!(decide(None, missing, never).unwrap(), Accel::Tcg);
        assert_eq!(decide(Some(""), || Kvm::Nested, never).unwrap(), Accel::Tcg);
    }

    #[test]
    fn bare_metal_kvm_follows_the_probe() {
        assert_eq!(decide(None, || Kvm::Usable, || true).unwrap(), Accel::Kvm);
        assert_eq!(decide(None, || Kvm::Usable, || false).unwrap(), Accel::Tcg);
    }

    #[test]
    fn the_kvm_probe_is_bounded_and_leaves_nothing_behind() {
        let Some(qemu) = banger_sys::find_program("qemu-system-x86_64") else {
            eprintln!("skipped: qemu-system-x86_64 is not installed");
            return;
        };
        let started = Instant::now();
        let answered = probe_kvm(&qemu);
        let took = started.elapsed();
        println!("KVM probe: {answered} in {took:?}");
        assert!(took < PROBE_TIMEOUT + Duration::from_secs(2), "{took:?}");
        let marker = format!("banger-kvm-probe-{}-", std::process::id());
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&marker),
                "probe process left: {:?}",
                entry.path()
            );
        }
        let leftover_dirs = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&marker))
            .count();
        assert_eq!(leftover_dirs, 0);
    }
}

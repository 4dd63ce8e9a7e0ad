//! Which QEMU accelerator to use: KVM when it demonstrably works, else TCG.
//!
//! Policy, in order:
//! 1. `BANGER_QEMU_ACCEL=tcg|kvm` decides (any other value is an error, so a
//!    typo is not silently ignored).
//! 2. No read-write `/dev/kvm`: TCG.
//! 3. The host is itself a guest (the `hypervisor` CPU flag): TCG. Nested
//!    KVM often opens and even starts QEMU, yet standard guest kernels cannot
//!    boot on it (SPEC §13), and a probe cannot tell; so when in doubt, TCG,
//!    which is slow but always boots. Set `BANGER_QEMU_ACCEL=kvm` on nested
//!    hosts known to work.
//! 4. Probe: start `-accel kvm -M microvm -S` and ask it over QMP for its
//!    status within 2 s; KVM if it answers, else TCG.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_sys::Cmd;

use super::proc;
use super::qmp::QmpClient;
use crate::VmmError;

/// The environment variable that forces the accelerator.
pub const ACCEL_ENV: &str = "BANGER_QEMU_ACCEL";
const KVM_DEVICE: &str = "/dev/kvm";
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
        decide(
            forced.as_deref(),
            || banger_sys::os::can_open_rw(Path::new(KVM_DEVICE)).is_ok(),
            host_is_a_guest,
            || probe_kvm(qemu_binary),
        )
    }
}

/// The policy itself, with every host fact behind a closure so it is
/// testable and nothing is probed that an earlier rule already settled.
pub(crate) fn decide(
    forced: Option<&str>,
    kvm_usable: impl FnOnce() -> bool,
    nested: impl FnOnce() -> bool,
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
    if !kvm_usable() || nested() {
        return Ok(Accel::Tcg);
    }
    Ok(if probe() { Accel::Kvm } else { Accel::Tcg })
}

fn host_is_a_guest() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|text| cpuinfo_has_hypervisor_flag(&text))
}

pub(crate) fn cpuinfo_has_hypervisor_flag(cpuinfo: &str) -> bool {
    cpuinfo.lines().any(|line| {
        line.split_once(':').is_some_and(|(key, flags)| {
            key.trim() == "flags" && flags.split_whitespace().any(|f| f == "hypervisor")
        })
    })
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
    proc::wait_exec(pid, &identity, PROBE_TIMEOUT);
    let mut answered = false;
    while Instant::now() < deadline && proc::is_ours(pid, &identity) {
        if let Ok(mut client) = QmpClient::connect(&qmp, PROBE_TIMEOUT) {
            answered = client.query_status().is_ok();
            let _ = client.quit();
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    if !proc::wait_gone(pid, &identity, Duration::from_millis(500)) {
        proc::kill_hard(pid, &identity, Duration::from_secs(1));
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

    #[test]
    fn the_environment_wins_without_probing() {
        assert_eq!(
            decide(Some("kvm"), never, never, never).unwrap(),
            Accel::Kvm
        );
        assert_eq!(
            decide(Some("tcg"), never, never, never).unwrap(),
            Accel::Tcg
        );
        let err = decide(Some("hvf"), never, never, never).unwrap_err();
        assert!(
            err.to_string().contains("BANGER_QEMU_ACCEL=\"hvf\""),
            "{err}"
        );
    }

    #[test]
    fn without_kvm_or_when_nested_it_is_tcg() {
        assert_eq!(decide(None, || false, never, never).unwrap(), Accel::Tcg);
        assert_eq!(
            decide(Some(""), || true, || true, never).unwrap(),
            Accel::Tcg
        );
    }

    #[test]
    fn bare_metal_kvm_follows_the_probe() {
        assert_eq!(
            decide(None, || true, || false, || true).unwrap(),
            Accel::Kvm
        );
        assert_eq!(
            decide(None, || true, || false, || false).unwrap(),
            Accel::Tcg
        );
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

    #[test]
    fn hypervisor_flag_is_found_only_in_flags() {
        let guest = "processor\t: 0\nflags\t\t: fpu vme hypervisor lahf_lm\n";
        let metal = "processor\t: 0\nflags\t\t: fpu vme lahf_lm\nmodel name\t: hypervisor\n";
        assert!(cpuinfo_has_hypervisor_flag(guest));
        assert!(!cpuinfo_has_hypervisor_flag(metal));
    }
}

//! Checks on a [`VmConfig`] before anything is started, so a bad value is a
//! clear error instead of a QEMU that hangs or a guest that never answers.

use std::path::Path;

use super::paths::RunPaths;
use crate::{VmConfig, VmmError};

/// vsock CIDs 0–2 are reserved (hypervisor, local, host).
const MIN_GUEST_CID: u32 = 3;
/// Below this the Debian kernel cannot even unpack its initramfs, and the
/// failure is a silent hang on the console rather than an error.
const MIN_MEMORY_MIB: u64 = 64;
/// microvm's CPU limit in QEMU 7.x/8.x.
const MAX_VCPU: u32 = 255;
/// x86's `COMMAND_LINE_SIZE` (2048) including the NUL: the kernel silently
/// truncates anything longer, which would drop banger's own arguments.
const MAX_KERNEL_CMDLINE: usize = 2047;
/// `sun_path` holds 108 bytes including the NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Guest-initiated vsock connections arrive on `<vsock_uds>_<port>`; the
/// longest port suffix is `_4294967295`.
const PORT_SUFFIX: usize = 11;
/// Linux `IFNAMSIZ` (16) including the NUL.
const MAX_IFNAME: usize = 15;

fn invalid(msg: impl Into<String>) -> VmmError {
    VmmError::InvalidConfig(msg.into())
}

/// Everything that can be checked without touching the filesystem.
pub fn check_values(config: &VmConfig, paths: &RunPaths) -> Result<(), VmmError> {
    if config.vsock_cid < MIN_GUEST_CID {
        return Err(invalid(format!(
            "vsock CID {} is reserved; guests use {MIN_GUEST_CID} or more",
            config.vsock_cid
        )));
    }
    if config.vcpu == 0 || config.vcpu > MAX_VCPU {
        return Err(invalid(format!(
            "{} vCPUs: expected 1 to {MAX_VCPU}",
            config.vcpu
        )));
    }
    if config.memory_mib < MIN_MEMORY_MIB {
        return Err(invalid(format!(
            "{} MiB of memory: at least {MIN_MEMORY_MIB} MiB is needed",
            config.memory_mib
        )));
    }
    if config.kernel_args.contains(['\0', '\n']) {
        return Err(invalid("kernel arguments contain a NUL or newline"));
    }
    match (&config.tap, &config.mac) {
        (Some(tap), mac) => {
            check_tap(tap)?;
            if let Some(mac) = mac {
                check_mac(mac)?;
            }
        }
        (None, Some(mac)) => {
            return Err(invalid(format!(
                "MAC address {mac} given without a tap device"
            )));
        }
        (None, None) => {}
    }
    for socket in paths.sockets() {
        check_socket_path(socket, 0)?;
    }
    check_socket_path(&paths.vsock_uds, PORT_SUFFIX)
}

pub fn check_kernel_cmdline(cmdline: &str) -> Result<(), VmmError> {
    if cmdline.len() > MAX_KERNEL_CMDLINE {
        return Err(invalid(format!(
            "the kernel command line is {} bytes; the kernel keeps only {MAX_KERNEL_CMDLINE}",
            cmdline.len()
        )));
    }
    Ok(())
}

fn check_tap(tap: &str) -> Result<(), VmmError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if tap.is_empty() || tap.len() > MAX_IFNAME || !tap.chars().all(ok_char) {
        return Err(invalid(format!(
            "tap name {tap:?}: expected 1 to {MAX_IFNAME} of [A-Za-z0-9._-]"
        )));
    }
    Ok(())
}

fn check_mac(mac: &str) -> Result<(), VmmError> {
    let octets: Vec<&str> = mac.split(':').collect();
    let well_formed = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
    if !well_formed {
        return Err(invalid(format!(
            "MAC address {mac:?}: expected six hex pairs like 02:fc:00:00:00:01"
        )));
    }
    // The low bit of the first octet marks multicast; QEMU refuses it for a NIC.
    let first = u8::from_str_radix(octets[0], 16).unwrap_or(1);
    if first & 1 == 1 {
        return Err(invalid(format!(
            "MAC address {mac} is multicast; a NIC needs a unicast address"
        )));
    }
    Ok(())
}

fn check_socket_path(path: &Path, reserve: usize) -> Result<(), VmmError> {
    let len = path.as_os_str().len();
    if len + reserve > MAX_SOCKET_PATH {
        return Err(invalid(format!(
            "socket path {} is {len} bytes; Unix sockets allow {} here: use a shorter run directory",
            path.display(),
            MAX_SOCKET_PATH - reserve
        )));
    }
    Ok(())
}

/// The files the VM needs exist, and the run directory is a directory.
pub fn check_files(config: &VmConfig) -> Result<(), VmmError> {
    let must_exist = |what: &'static str, path: &Path| {
        std::fs::metadata(path)
            .map(drop)
            .map_err(|source| VmmError::Io {
                action: what,
                path: path.to_owned(),
                source,
            })
    };
    must_exist("find the kernel", &config.kernel)?;
    if let Some(initrd) = &config.initrd {
        must_exist("find the initrd", initrd)?;
    }
    must_exist("find the root disk", &config.root_disk.path)?;
    if let Some(work) = &config.work_disk {
        must_exist("find the work disk", &work.path)?;
    }
    if let Some(modules) = &config.modules_disk {
        must_exist("find the kernel's modules disk", &modules.path)?;
    }
    let meta = std::fs::metadata(&config.run_dir).map_err(|source| VmmError::Io {
        action: "open the run directory",
        path: config.run_dir.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(invalid(format!(
            "run directory {} is not a directory",
            config.run_dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::argv::tests::config;

    fn check(config: &VmConfig) -> Result<(), VmmError> {
        check_values(config, &RunPaths::new(&config.run_dir))
    }

    fn refused(config: &VmConfig, needle: &str) {
        match check(config) {
            Err(VmmError::InvalidConfig(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("expected InvalidConfig containing {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_normal_config_passes() {
        check(&config()).unwrap();
    }

    #[test]
    fn reserved_cids_are_refused() {
        for cid in 0..3 {
            refused(
                &VmConfig {
                    vsock_cid: cid,
                    ..config()
                },
                "reserved",
            );
        }
        check(&VmConfig {
            vsock_cid: 3,
            ..config()
        })
        .unwrap();
    }

    #[test]
    fn cpu_and_memory_bounds() {
        refused(
            &VmConfig {
                vcpu: 0,
                ..config()
            },
            "vCPUs",
        );
        refused(
            &VmConfig {
                vcpu: 256,
                ..config()
            },
            "vCPUs",
        );
        refused(
            &VmConfig {
                memory_mib: 63,
                ..config()
            },
            "at least 64",
        );
    }

    #[test]
    fn tap_and_mac_are_validated() {
        let net = |tap: &str, mac: Option<&str>| VmConfig {
            tap: Some(tap.into()),
            mac: mac.map(Into::into),
            ..config()
        };
        check(&net("fctap0", Some("02:fc:00:00:00:01"))).unwrap();
        check(&net("fctap0", None)).unwrap();
        refused(&net("fctap0,script=/x", None), "tap name");
        refused(&net("a-very-long-tap-name", None), "tap name");
        refused(&net("", None), "tap name");
        refused(&net("fctap0", Some("02:fc:00:00:00")), "six hex pairs");
        refused(&net("fctap0", Some("02:fc:00:00:00:zz")), "six hex pairs");
        refused(&net("fctap0", Some("01:00:5e:00:00:01")), "multicast");
        refused(
            &VmConfig {
                mac: Some("02:fc:00:00:00:01".into()),
                ..config()
            },
            "without a tap",
        );
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let deep = format!("/tmp/{}", "d".repeat(92));
        refused(
            &VmConfig {
                run_dir: deep.into(),
                ..config()
            },
            "shorter run directory",
        );
    }

    #[test]
    fn kernel_arguments_are_one_line_and_fit() {
        refused(
            &VmConfig {
                kernel_args: "a\nb".into(),
                ..config()
            },
            "newline",
        );
        check_kernel_cmdline(&"x".repeat(2047)).unwrap();
        assert!(check_kernel_cmdline(&"x".repeat(2048)).is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("bzImage");
        let disk = dir.path().join("root.qcow2");
        std::fs::write(&kernel, b"k").unwrap();
        let mut c = VmConfig {
            kernel: kernel.clone(),
            initrd: None,
            run_dir: dir.path().to_owned(),
            ..config()
        };
        c.root_disk.path = disk.clone();
        c.work_disk = None;
        let err = check_files(&c).unwrap_err();
        assert!(
            matches!(&err, VmmError::Io { path, .. } if *path == disk),
            "{err:?}"
        );
        std::fs::write(&disk, b"d").unwrap();
        check_files(&c).unwrap();
        c.run_dir = kernel;
        assert!(matches!(check_files(&c), Err(VmmError::InvalidConfig(_))));
    }
}

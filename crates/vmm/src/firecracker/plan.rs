//! The configuration requests of one launch, in the order they are sent:
//! logging first (so Firecracker logs the rest), then the machine, the boot
//! source, the drives (the root drive first: Firecracker attaches it as
//! `vda`, the next as `vdb`), the network, the vsock, and finally the start.

use super::api::{
    ActionType, ApiRequest, BootSource, Drive, InstanceAction, LogLevel, Logger, MachineConfig,
    MemoryBackend, Metrics, NetworkInterface, NetworkOverride, PartialDrive, RunState,
    SnapshotCreate, SnapshotLoad, VmState, Vsock, VsockOverride,
};
use super::error::FirecrackerError;
use super::layout::Layout;
use crate::{DiskFormat, DiskSpec, VmConfig};

/// Kernel arguments every Firecracker guest gets before banger's own: the
/// serial console; `reboot=k` so a guest reboot (and Ctrl-Alt-Del) exits
/// Firecracker instead of hanging; `panic=1` to turn a panic into that exit;
/// `pci=off` because Firecracker has no PCI bus to probe; `banger.halt=reboot`
/// because Firecracker has no power-off device, so banger's init must
/// reboot (and thereby end the VM) where under QEMU it powers off.
pub const BASE_BOOT_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off banger.halt=reboot";

pub const ROOT_DRIVE_ID: &str = "rootfs";
pub const WORK_DRIVE_ID: &str = "work";
pub const MODULES_DRIVE_ID: &str = "modules";
pub const IFACE_ID: &str = "eth0";

/// Refuses what Firecracker cannot use before anything is started.
pub fn check(config: &VmConfig) -> Result<(), FirecrackerError> {
    let disks = std::iter::once(&config.root_disk)
        .chain(config.work_disk.as_ref())
        .chain(config.modules_disk.as_ref());
    for disk in disks {
        if disk.format == DiskFormat::Qcow2 {
            return Err(FirecrackerError::Qcow2 {
                path: disk.path.clone(),
            });
        }
    }
    Ok(())
}

/// The requests that configure the VM, without the final `InstanceStart`.
pub fn configuration(
    config: &VmConfig,
    layout: &Layout,
) -> Result<Vec<ApiRequest>, FirecrackerError> {
    let mut requests = vec![
        ApiRequest::Logger(Logger {
            log_path: layout.vmm_log.vmm_str()?,
            level: LogLevel::Info,
            show_level: true,
            show_log_origin: false,
        }),
        ApiRequest::Metrics(Metrics {
            metrics_path: layout.metrics.vmm_str()?,
        }),
        ApiRequest::MachineConfig(MachineConfig {
            vcpu_count: config.vcpu,
            mem_size_mib: config.memory_mib,
            smt: false,
        }),
        ApiRequest::BootSource(BootSource {
            kernel_image_path: layout.kernel.vmm_str()?,
            initrd_path: layout.initrd.as_ref().map(|p| p.vmm_str()).transpose()?,
            boot_args: boot_args(&config.kernel_args),
        }),
        drive(
            ROOT_DRIVE_ID,
            &config.root_disk,
            layout.root_disk.vmm_str()?,
            true,
        ),
    ];
    if let (Some(disk), Some(mapped)) = (&config.work_disk, &layout.work_disk) {
        requests.push(drive(WORK_DRIVE_ID, disk, mapped.vmm_str()?, false));
    }
    if let (Some(disk), Some(mapped)) = (&config.modules_disk, &layout.modules_disk) {
        requests.push(drive(MODULES_DRIVE_ID, disk, mapped.vmm_str()?, false));
    }
    if let Some(tap) = &config.tap {
        requests.push(ApiRequest::NetworkInterface(NetworkInterface {
            iface_id: IFACE_ID.into(),
            host_dev_name: tap.clone(),
            guest_mac: config.mac.clone(),
        }));
    }
    requests.push(ApiRequest::Vsock(Vsock {
        guest_cid: config.vsock_cid,
        uds_path: layout.vsock.vmm_str()?,
    }));
    Ok(requests)
}

/// The state and memory files in a snapshot's directory.
pub const STATE_FILE: &str = "vmstate.fc";
pub const MEMORY_FILE: &str = "memory.fc";

/// The requests that save a running VM into `dir`: pause, then a full
/// snapshot (the VM stays paused).
pub fn save(dir: &std::path::Path) -> Result<Vec<ApiRequest>, FirecrackerError> {
    let path = |file: &str| {
        let p = dir.join(file);
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| FirecrackerError::Malformed {
                request: "PUT /snapshot/create".into(),
                reason: format!("{} is not valid UTF-8", p.display()),
            })
    };
    Ok(vec![
        pause_or_resume(RunState::Paused),
        ApiRequest::SnapshotCreate(SnapshotCreate {
            snapshot_type: "Full",
            snapshot_path: path(STATE_FILE)?,
            mem_file_path: path(MEMORY_FILE)?,
        }),
    ])
}

pub fn pause_or_resume(state: RunState) -> ApiRequest {
    ApiRequest::PatchVm(VmState { state })
}

/// The requests that restore the snapshot in `dir` as `config`, in a
/// Firecracker started without configuration: the logger and metrics,
/// the load (paused, with this VM's tap and vsock socket), each drive
/// pointed at this VM's own disk (the snapshot names its parent's), then
/// resume.
pub fn restore(
    config: &VmConfig,
    layout: &Layout,
    dir: &std::path::Path,
) -> Result<Vec<ApiRequest>, FirecrackerError> {
    let mut requests = configuration(config, layout)?;
    requests.retain(|r| matches!(r, ApiRequest::Logger(_) | ApiRequest::Metrics(_)));
    let file = |name: &str| dir.join(name).display().to_string();
    requests.push(ApiRequest::SnapshotLoad(SnapshotLoad {
        snapshot_path: file(STATE_FILE),
        mem_backend: MemoryBackend {
            backend_type: "File",
            backend_path: file(MEMORY_FILE),
        },
        resume_vm: false,
        network_overrides: config
            .tap
            .iter()
            .map(|tap| NetworkOverride {
                iface_id: IFACE_ID.into(),
                host_dev_name: tap.clone(),
            })
            .collect(),
        vsock_override: VsockOverride {
            uds_path: layout.vsock.vmm_str()?,
        },
    }));
    let mut drives = vec![(ROOT_DRIVE_ID, layout.root_disk.vmm_str()?)];
    if let Some(work) = &layout.work_disk {
        drives.push((WORK_DRIVE_ID, work.vmm_str()?));
    }
    if let Some(modules) = &layout.modules_disk {
        drives.push((MODULES_DRIVE_ID, modules.vmm_str()?));
    }
    for (id, path) in drives {
        requests.push(ApiRequest::PatchDrive(PartialDrive {
            drive_id: id.into(),
            path_on_host: path,
        }));
    }
    requests.push(pause_or_resume(RunState::Resumed));
    Ok(requests)
}

pub fn start() -> ApiRequest {
    ApiRequest::Action(InstanceAction {
        action_type: ActionType::InstanceStart,
    })
}

pub fn ctrl_alt_del() -> ApiRequest {
    ApiRequest::Action(InstanceAction {
        action_type: ActionType::SendCtrlAltDel,
    })
}

pub fn boot_args(banger_args: &str) -> String {
    let banger_args = banger_args.trim();
    if banger_args.is_empty() {
        BASE_BOOT_ARGS.to_owned()
    } else {
        format!("{BASE_BOOT_ARGS} {banger_args}")
    }
}

fn drive(id: &str, disk: &DiskSpec, path: String, root: bool) -> ApiRequest {
    ApiRequest::Drive(Drive {
        drive_id: id.into(),
        path_on_host: path,
        is_root_device: root,
        is_read_only: disk.read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firecracker::layout::tests::config;
    use std::path::Path;

    #[test]
    fn requests_come_in_launch_order_with_banger_args_last() {
        let config = config(Path::new("/run/vm-7"));
        let requests = configuration(&config, &Layout::direct(&config)).unwrap();
        let names: Vec<String> = requests.iter().map(ApiRequest::describe).collect();
        assert_eq!(
            names,
            [
                "PUT /logger",
                "PUT /metrics",
                "PUT /machine-config",
                "PUT /boot-source",
                "PUT /drives/rootfs",
                "PUT /drives/work",
                "PUT /drives/modules",
                "PUT /network-interfaces/eth0",
                "PUT /vsock",
            ]
        );
        let ApiRequest::BootSource(boot) = &requests[3] else {
            panic!()
        };
        assert_eq!(
            boot.boot_args,
            "console=ttyS0 reboot=k panic=1 pci=off banger.halt=reboot banger.root=/dev/vda"
        );
        assert_eq!(boot.initrd_path.as_deref(), Some("/images/initrd.img"));
        let ApiRequest::Drive(root) = &requests[4] else {
            panic!()
        };
        assert!(root.is_root_device && !root.is_read_only);
        assert_eq!(root.path_on_host, "/vms/vm-7/root.ext4");
        let ApiRequest::Drive(modules) = &requests[6] else {
            panic!()
        };
        assert!(!modules.is_root_device && modules.is_read_only);
        assert_eq!(modules.path_on_host, "/images/modules.ext4");
        let ApiRequest::Vsock(vsock) = &requests[8] else {
            panic!()
        };
        assert_eq!(
            (vsock.guest_cid, vsock.uds_path.as_str()),
            (7, "/run/vm-7/vsock.sock")
        );
    }

    #[test]
    fn no_tap_no_work_disk_means_no_such_requests() {
        let mut config = config(Path::new("/run/vm-7"));
        config.tap = None;
        config.work_disk = None;
        config.modules_disk = None;
        config.initrd = None;
        let requests = configuration(&config, &Layout::direct(&config)).unwrap();
        assert!(
            !requests
                .iter()
                .any(|r| matches!(r, ApiRequest::NetworkInterface(_)))
        );
        assert_eq!(
            requests
                .iter()
                .filter(|r| matches!(r, ApiRequest::Drive(_)))
                .count(),
            1
        );
        let boot = requests[3].body().unwrap();
        assert!(boot.get("initrd_path").is_none(), "{boot}");
    }

    #[test]
    fn qcow2_is_refused_with_the_disk_named() {
        let mut config = config(Path::new("/run/vm-7"));
        assert!(check(&config).is_ok());
        config.work_disk.as_mut().unwrap().format = DiskFormat::Qcow2;
        let err = check(&config).unwrap_err();
        assert!(
            err.to_string().contains("/vms/vm-7/work.ext4") && err.to_string().contains("raw"),
            "{err}"
        );
    }

    #[test]
    fn empty_banger_args_leave_no_trailing_space() {
        assert_eq!(boot_args("  "), BASE_BOOT_ARGS);
    }
}

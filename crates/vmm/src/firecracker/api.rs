//! The Firecracker API requests banger sends, as typed bodies. Field names
//! follow the v1.x API description (`shared/reference/firecracker-api-*.yaml`);
//! optional fields are left out rather than sent as `null`, because
//! Firecracker rejects `null` for a typed field and any unknown field.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `PUT /machine-config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineConfig {
    pub vcpu_count: u32,
    pub mem_size_mib: u64,
    /// Always off: SMT would need an even vCPU count and buys a dev sandbox
    /// nothing.
    pub smt: bool,
}

/// `PUT /boot-source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootSource {
    pub kernel_image_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd_path: Option<String>,
    pub boot_args: String,
}

/// `PUT /drives/{drive_id}`: a virtio-block drive backed by a host file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drive {
    pub drive_id: String,
    pub path_on_host: String,
    pub is_root_device: bool,
    pub is_read_only: bool,
}

/// `PUT /network-interfaces/{iface_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkInterface {
    pub iface_id: String,
    pub host_dev_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_mac: Option<String>,
}

/// `PUT /vsock`: Firecracker listens on `uds_path` for host-initiated
/// connections (the hybrid-vsock handshake).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vsock {
    pub guest_cid: u32,
    pub uds_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
    Trace,
    Off,
}

/// `PUT /logger`. The file must exist: Firecracker opens, never creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Logger {
    pub log_path: String,
    pub level: LogLevel,
    pub show_level: bool,
    pub show_log_origin: bool,
}

/// `PUT /metrics`. The file must exist, like the logger's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metrics {
    pub metrics_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ActionType {
    InstanceStart,
    /// x86 only: the guest sees Ctrl-Alt-Del; with `reboot=k` the guest's
    /// reboot makes Firecracker exit.
    SendCtrlAltDel,
    FlushMetrics,
}

/// `PUT /actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InstanceAction {
    pub action_type: ActionType,
}

/// `PATCH /vm`: pause or resume the guest's vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VmState {
    pub state: RunState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RunState {
    Paused,
    Resumed,
}

/// `PUT /snapshot/create`: the paused VM's state and memory to two files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotCreate {
    /// Always `Full`: a snapshot must stand alone.
    pub snapshot_type: &'static str,
    pub snapshot_path: String,
    pub mem_file_path: String,
}

/// `PUT /snapshot/load`, into a Firecracker that was started without any
/// configuration. The memory file is mapped privately: several VMs load
/// one snapshot and none writes to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotLoad {
    pub snapshot_path: String,
    pub mem_backend: MemoryBackend,
    /// Always false: the drives are pointed at the copy's own disks first.
    pub resume_vm: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_overrides: Vec<NetworkOverride>,
    pub vsock_override: VsockOverride,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryBackend {
    /// Always `File`.
    pub backend_type: &'static str,
    pub backend_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkOverride {
    pub iface_id: String,
    pub host_dev_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VsockOverride {
    pub uds_path: String,
}

/// `PATCH /drives/{drive_id}`: a drive's backing file, changed on a
/// loaded (still paused) snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartialDrive {
    pub drive_id: String,
    pub path_on_host: String,
}

/// The answer to `GET /`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub id: String,
    /// `Not started`, `Running` or `Paused`.
    pub state: String,
    pub vmm_version: String,
    pub app_name: String,
}

/// One request banger can send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRequest {
    GetInstanceInfo,
    Logger(Logger),
    Metrics(Metrics),
    MachineConfig(MachineConfig),
    BootSource(BootSource),
    Drive(Drive),
    NetworkInterface(NetworkInterface),
    Vsock(Vsock),
    Action(InstanceAction),
    PatchVm(VmState),
    SnapshotCreate(SnapshotCreate),
    SnapshotLoad(SnapshotLoad),
    PatchDrive(PartialDrive),
}

impl ApiRequest {
    pub fn method(&self) -> &'static str {
        match self {
            ApiRequest::GetInstanceInfo => "GET",
            ApiRequest::PatchVm(_) | ApiRequest::PatchDrive(_) => "PATCH",
            _ => "PUT",
        }
    }

    /// The request path; ids are banger's own (`rootfs`, `work`, `eth0`),
    /// which need no percent-encoding.
    pub fn path(&self) -> String {
        match self {
            ApiRequest::GetInstanceInfo => "/".into(),
            ApiRequest::Logger(_) => "/logger".into(),
            ApiRequest::Metrics(_) => "/metrics".into(),
            ApiRequest::MachineConfig(_) => "/machine-config".into(),
            ApiRequest::BootSource(_) => "/boot-source".into(),
            ApiRequest::Drive(d) => format!("/drives/{}", d.drive_id),
            ApiRequest::NetworkInterface(n) => format!("/network-interfaces/{}", n.iface_id),
            ApiRequest::Vsock(_) => "/vsock".into(),
            ApiRequest::Action(_) => "/actions".into(),
            ApiRequest::PatchVm(_) => "/vm".into(),
            ApiRequest::SnapshotCreate(_) => "/snapshot/create".into(),
            ApiRequest::SnapshotLoad(_) => "/snapshot/load".into(),
            ApiRequest::PatchDrive(d) => format!("/drives/{}", d.drive_id),
        }
    }

    /// The JSON body, if the request has one.
    pub fn body(&self) -> Option<Value> {
        // These are plain structs of strings, numbers and booleans, which
        // always serialize.
        fn json<T: Serialize>(t: &T) -> Value {
            serde_json::to_value(t).expect("API bodies always serialize")
        }
        match self {
            ApiRequest::GetInstanceInfo => None,
            ApiRequest::Logger(b) => Some(json(b)),
            ApiRequest::Metrics(b) => Some(json(b)),
            ApiRequest::MachineConfig(b) => Some(json(b)),
            ApiRequest::BootSource(b) => Some(json(b)),
            ApiRequest::Drive(b) => Some(json(b)),
            ApiRequest::NetworkInterface(b) => Some(json(b)),
            ApiRequest::Vsock(b) => Some(json(b)),
            ApiRequest::Action(b) => Some(json(b)),
            ApiRequest::PatchVm(b) => Some(json(b)),
            ApiRequest::SnapshotCreate(b) => Some(json(b)),
            ApiRequest::SnapshotLoad(b) => Some(json(b)),
            ApiRequest::PatchDrive(b) => Some(json(b)),
        }
    }

    /// `PUT /drives/rootfs`: how errors and logs name the request. An action
    /// also names its type, since all actions share one path.
    pub fn describe(&self) -> String {
        match self {
            ApiRequest::Action(a) => format!("PUT /actions ({:?})", a.action_type),
            _ => format!("{} {}", self.method(), self.path()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_have_the_api_field_names_and_omit_absent_options() {
        let boot = ApiRequest::BootSource(BootSource {
            kernel_image_path: "/k".into(),
            initrd_path: None,
            boot_args: "console=ttyS0".into(),
        });
        assert_eq!(
            boot.body(),
            Some(json!({"kernel_image_path": "/k", "boot_args": "console=ttyS0"}))
        );
        let net = ApiRequest::NetworkInterface(NetworkInterface {
            iface_id: "eth0".into(),
            host_dev_name: "fctap3".into(),
            guest_mac: Some("06:00:0a:00:00:02".into()),
        });
        assert_eq!(net.path(), "/network-interfaces/eth0");
        assert_eq!(
            net.body(),
            Some(
                json!({"iface_id": "eth0", "host_dev_name": "fctap3", "guest_mac": "06:00:0a:00:00:02"})
            )
        );
        let start = ApiRequest::Action(InstanceAction {
            action_type: ActionType::InstanceStart,
        });
        assert_eq!(start.body(), Some(json!({"action_type": "InstanceStart"})));
        assert_eq!(start.describe(), "PUT /actions (InstanceStart)");
        let logger = ApiRequest::Logger(Logger {
            log_path: "/l".into(),
            level: LogLevel::Warning,
            show_level: true,
            show_log_origin: false,
        });
        assert_eq!(logger.body().unwrap()["level"], "Warning");
    }

    #[test]
    fn get_has_no_body_and_drives_are_addressed_by_id() {
        assert_eq!(ApiRequest::GetInstanceInfo.body(), None);
        assert_eq!(ApiRequest::GetInstanceInfo.describe(), "GET /");
        let drive = ApiRequest::Drive(Drive {
            drive_id: "work".into(),
            path_on_host: "/w".into(),
            is_root_device: false,
            is_read_only: false,
        });
        assert_eq!(drive.describe(), "PUT /drives/work");
    }
}

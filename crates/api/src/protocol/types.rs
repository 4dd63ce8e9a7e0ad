//! Result shapes of the daemon's methods. These are also the `--json` output of
//! the CLI, so field names are a stable, documented interface.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::{ByteSize, VmName, VmState};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub protocol: u32,
    pub version: String,
    pub commit: String,
    pub pid: u32,
    /// Where the `.vm` DNS server answers, if it is up.
    #[serde(default)]
    pub dns: Option<String>,
}

/// What a VM was asked to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub vcpu: u32,
    pub memory_mib: u64,
    pub disk_size: ByteSize,
    #[serde(default)]
    pub nat: bool,
}

/// What a VM holds: its address, vsock CID, tap, root disk and kernel.
/// Every field is absent for a VM that holds nothing (a create that failed
/// and was unwound); `tap` is present only while it runs. This is a view
/// of the daemon's durable record, not the record itself: internals
/// teardown needs (loop devices, snapshot names) are not part of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRuntime {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock_cid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<String>,
    /// The VM's copy-on-write root disk, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_disk: Option<VmRootDisk>,
    /// The kernel the VM boots (a kernel store name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
}

/// A VM's root disk: how it shares its image and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRootDisk {
    /// `reflink`, `dm-snapshot`, `qcow2-overlay` or `sparse-copy`.
    pub strategy: String,
    /// `raw` or `qcow2`: the format the VMM opens it in.
    pub format: String,
    /// The file in the VM directory, or `/dev/mapper/banger-<id>`.
    pub path: String,
}

/// What `vm.exec` ran into in the guest. The CLI exits with `status`, or
/// 128 + `signal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmExecResult {
    pub status: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub duration_s: f64,
    /// The guest agent cut stdout at this many bytes (its cap per stream)
    /// and dropped the rest. Absent when it came whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_cut_at: Option<u64>,
    /// The same for stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_cut_at: Option<u64>,
    /// Output within the cap was lost on the way (the agent could not send
    /// it: the host took none for its write timeout), so what was relayed
    /// is incomplete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_dropped: bool,
}

/// A repository prepared inside the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub guest_path: String,
    pub host_path: String,
    pub base_commit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    /// 16 lower-case hex digits; any unique prefix refers to the VM.
    pub id: String,
    pub name: VmName,
    pub image: String,
    pub state: VmState,
    pub spec: VmSpec,
    pub runtime: VmRuntime,
    pub workspace: Option<Workspace>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl OperationState {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Running => "running",
            OperationState::Succeeded => "succeeded",
            OperationState::Failed => "failed",
            OperationState::Cancelled => "cancelled",
        }
    }
}

/// A long operation (create, pull, build) in the daemon's registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    /// The method that started it, e.g. `vm.create`.
    pub kind: String,
    /// What it works on (a VM or image name), when there is one.
    pub target: Option<String>,
    pub state: OperationState,
    /// The stage it is in, or was in when it ended.
    pub stage: Option<String>,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// A kernel in the kernel store (`kernel list`, `kernel show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    pub name: String,
    pub distro: String,
    pub arch: String,
    pub version: String,
    /// SHA-256 of the `vmlinux`.
    pub sha256: String,
    /// Where it came from, e.g. the Debian package and its hash.
    pub source: String,
    pub imported_at: String,
    /// Bytes on disk (vmlinux, bzImage, initramfs, modules).
    pub size_bytes: u64,
    /// The kernel's directory: `vmlinux`, `bzImage`, `initrd.img`.
    pub path: String,
}

/// An image in the image store (`image list`, `image show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub name: String,
    pub distro: String,
    pub arch: String,
    /// `managed` (banger owns the files) or `unmanaged` (registered in place).
    pub kind: String,
    pub rootfs: String,
    pub kernel_ref: Option<String>,
    pub size_bytes: u64,
    pub source: String,
    pub created_at: String,
    /// Recipe hash of a built image: an unchanged recipe is not rebuilt.
    pub recipe_hash: Option<String>,
    /// The init to pass on the kernel command line, when not `/sbin/init`.
    pub init: Option<String>,
}

/// What `image build` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBuilt {
    pub image: ImageInfo,
    /// False when the recipe was unchanged and nothing was rebuilt.
    pub built: bool,
    pub seconds: f64,
}

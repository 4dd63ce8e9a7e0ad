//! `vm.snapshot`, `vm.restore` and `snapshot.*` (SPEC §14.2).

use serde::{Deserialize, Serialize};

use super::VmSpec;

/// `vm.snapshot`: the memory, device state and disks of a running VM, as
/// they are at this moment; the VM keeps running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSnapshotParams {
    pub vm: String,
    /// The snapshot's name (a DNS label, like a VM's); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `vm.restore`: a new running VM from a snapshot, with its own name,
/// address, MAC, hostname, machine-id and ssh host key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmRestoreParams {
    pub snapshot: String,
    /// The new VM's name; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A snapshot as `snapshot list` and `snapshot show` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// The VM it was taken of (it may since be gone).
    pub source_vm: String,
    /// `qemu` or `firecracker`: only that backend restores it.
    pub backend: String,
    pub image: String,
    pub kernel: String,
    pub spec: VmSpec,
    /// RFC 3339.
    pub created_at: String,
    /// What its files hold on disk (memory, state and disks, sparse).
    pub disk_bytes: u64,
    pub path: String,
    /// Baked by the warm cache (`vm create`/`vm run`), not taken by a user.
    #[serde(default)]
    pub warm: bool,
    /// VMs restored from it that still exist: it cannot be deleted before
    /// them, their disks are layered on its own.
    #[serde(default)]
    pub used_by: Vec<String>,
}

/// `vm.fork`: `count` running copies of a running VM, its memory and disks
/// as they are at this moment, each with a fresh identity; the VM runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmForkParams {
    pub vm: String,
    pub count: u32,
    /// Children are `PREFIX-1` … `PREFIX-N`; the VM's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
}

/// The most children one `vm fork` makes.
pub const MAX_FORK: u32 = 64;

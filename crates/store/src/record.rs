//! What the store records about a VM: [`VmRecord`], the daemon's view of
//! its durable state. These are not wire types: the daemon turns a record
//! into `banger_api::protocol::Vm` when it answers a client, and nothing in
//! here (root disk internals, loop devices) has to be a stable interface.
//!
//! A VM's address and vsock CID are allocated in the transaction that
//! inserts it ([`crate::Store::create_vm`]), so a record that holds anything
//! holds them: [`RuntimeRecord`] has them as plain values. The one record
//! that holds nothing is a failed create, unwound: its runtime is released
//! (`None`), its lease given back.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use banger_api::model::{VmName, VmState};
use banger_api::protocol::{VmSpec, Workspace};
use serde::{Deserialize, Serialize};

/// A row of `vms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRecord {
    /// 16 lower-case hex digits.
    pub id: String,
    pub name: VmName,
    pub image: String,
    pub state: VmState,
    pub spec: VmSpec,
    /// What the VM holds; `None` once a failed create was unwound (it then
    /// holds no address, CID, tap or disk, and can only be deleted).
    pub runtime: Option<RuntimeRecord>,
    pub workspace: Option<Workspace>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    pub last_error: Option<String>,
}

impl VmRecord {
    /// The VM's address, unless it holds nothing.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.runtime.as_ref().map(|r| r.ip)
    }

    /// The tap it holds, if any.
    pub fn tap(&self) -> Option<&str> {
        self.runtime.as_ref().and_then(|r| r.tap.as_deref())
    }
}

/// What a VM got when it was set up: the durable part of its runtime,
/// enough for teardown even when the transient `handles.json` is lost.
///
/// Stored as JSON in the `runtime` column with the keys the earlier
/// `VmRuntime` had (`ip`, `vsock_cid`, `tap`, `root_disk`, `kernel`), so
/// rows written before this type existed load unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeRecord {
    /// The guest address; its lease in `ip_leases` is held by the VM's id.
    pub ip: Ipv4Addr,
    pub vsock_cid: u32,
    /// The tap the running VM is attached to; `None` when it holds none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap: Option<String>,
    /// The copy-on-write root disk, once it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_disk: Option<RootDiskRecord>,
    /// The kernel the VM boots (a kernel store name).
    pub kernel: String,
    /// The snapshot this VM was restored from: its disks are layered on
    /// that snapshot's, which must outlive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
}

impl RuntimeRecord {
    /// What a VM holds right after its record is inserted.
    pub fn new(ip: Ipv4Addr, vsock_cid: u32, kernel: String) -> RuntimeRecord {
        RuntimeRecord {
            ip,
            vsock_cid,
            tap: None,
            root_disk: None,
            kernel,
            restored_from: None,
        }
    }
}

/// A VM's root disk as teardown needs it. It mirrors the JSON that
/// `banger_image::cow::RootDisk` serialises to (the daemon converts between
/// the two), so the store needs no disk code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootDiskRecord {
    pub strategy: RootDiskStrategy,
    /// What the VMM opens: a file in the VM directory, or `/dev/mapper/...`.
    pub path: PathBuf,
    pub format: RootDiskFormat,
    /// The device-mapper snapshot, for [`RootDiskStrategy::DmSnapshot`].
    #[serde(default)]
    pub snapshot: Option<SnapshotRecord>,
    /// The snapshot's exception store, for [`RootDiskStrategy::DmSnapshot`].
    #[serde(default)]
    pub cow_file: Option<PathBuf>,
}

/// How a root disk shares its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootDiskStrategy {
    Reflink,
    DmSnapshot,
    Qcow2Overlay,
    SparseCopy,
}

impl RootDiskStrategy {
    /// The recorded name (`reflink`, `dm-snapshot`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RootDiskStrategy::Reflink => "reflink",
            RootDiskStrategy::DmSnapshot => "dm-snapshot",
            RootDiskStrategy::Qcow2Overlay => "qcow2-overlay",
            RootDiskStrategy::SparseCopy => "sparse-copy",
        }
    }
}

/// The format the VMM is told the root disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootDiskFormat {
    Raw,
    Qcow2,
}

impl RootDiskFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RootDiskFormat::Raw => "raw",
            RootDiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// A device-mapper snapshot: every part teardown removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The device-mapper name (`banger-<id>`).
    pub name: String,
    /// `/dev/mapper/<name>`.
    pub device: PathBuf,
    pub base_loop: PathBuf,
    pub cow_loop: PathBuf,
}

/// What a new VM is asked to be; [`crate::Store::create_vm`] adds its
/// address, CID and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVm {
    pub id: String,
    pub name: VmName,
    pub image: String,
    pub spec: VmSpec,
    pub kernel: String,
}

/// The `runtime` column as any banger version wrote it: every field
/// optional. Rows come in three shapes: complete (address, CID and kernel,
/// then tap and root disk as they appear); released (`{}`: a failed create
/// was unwound, or the baseline's default); and, from versions that
/// inserted the row before leasing its address, `{kernel, vsock_cid}` left
/// by a crash inside a create, which holds nothing either.
#[derive(Debug, Default, Deserialize)]
struct StoredRuntime {
    #[serde(default)]
    ip: Option<Ipv4Addr>,
    #[serde(default)]
    vsock_cid: Option<u32>,
    #[serde(default)]
    tap: Option<String>,
    #[serde(default)]
    root_disk: Option<RootDiskRecord>,
    #[serde(default)]
    kernel: Option<String>,
    #[serde(default)]
    restored_from: Option<String>,
}

/// Decodes the `runtime` column; the error is the reason a row is corrupt.
pub(crate) fn decode_runtime(text: &str) -> Result<Option<RuntimeRecord>, String> {
    let stored: StoredRuntime =
        serde_json::from_str(text).map_err(|e| format!("column runtime is not valid: {e}"))?;
    match stored {
        StoredRuntime {
            ip: Some(ip),
            vsock_cid: Some(vsock_cid),
            kernel: Some(kernel),
            tap,
            root_disk,
            restored_from,
        } => Ok(Some(RuntimeRecord {
            ip,
            vsock_cid,
            tap,
            root_disk,
            kernel,
            restored_from,
        })),
        // Nothing held: released, or a create's first write.
        StoredRuntime {
            ip: None,
            tap: None,
            root_disk: None,
            ..
        } => Ok(None),
        _ => Err("column runtime holds an address, tap or disk \
                  without the address, vsock CID and kernel every VM gets at creation"
            .to_owned()),
    }
}

/// The `runtime` column for `runtime` (`{}` when released).
pub(crate) fn encode_runtime(runtime: Option<&RuntimeRecord>) -> String {
    match runtime {
        Some(runtime) => {
            serde_json::to_string(runtime).expect("a runtime record always serialises")
        }
        None => "{}".to_owned(),
    }
}

#[cfg(test)]
mod tests;

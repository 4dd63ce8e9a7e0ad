//! `handles.json`: the transient file in a VM's directory naming the
//! processes that run it (the VMM's handle) and the tap it was given.

use std::path::{Path, PathBuf};

use banger_store::VmRecord;
use banger_vmm::VmHandle;
use serde::{Deserialize, Serialize};

use banger_api::model::VmState;
use banger_api::protocol::ErrorCode;

use crate::error::DaemonError;
use crate::state::Daemon;

/// The transient file naming the processes of a running VM.
const HANDLES_FILE: &str = "handles.json";

/// What `handles.json` holds: the VMM's handle and the tap it was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handles {
    pub handle: VmHandle,
    pub tap: Option<String>,
}

pub fn handles_path(vm_dir: &Path) -> PathBuf {
    vm_dir.join(HANDLES_FILE)
}

pub fn write_handles(vm_dir: &Path, handles: &Handles) -> Result<(), DaemonError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = handles_path(vm_dir);
    let tmp = vm_dir.join(format!(".{HANDLES_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(handles).expect("handles always serialise");
    let io =
        |e: std::io::Error| DaemonError::Internal(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&text).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// `None` when the VM has no running processes on record (or the file is
/// unreadable, which is logged: teardown must still go on).
pub fn read_handles(vm_dir: &Path) -> Option<Handles> {
    let path = handles_path(vm_dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the VM's handles");
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable handles file");
            None
        }
    }
}

/// The agent socket of a running VM, or why there is none.
pub fn running_agent(daemon: &Daemon, vm: &VmRecord) -> Result<PathBuf, DaemonError> {
    if vm.state != VmState::Running {
        return Err(DaemonError::failed(
            ErrorCode::OperationFailed,
            format!(
                "VM {} is {}; start it first with `banger vm start {}`",
                vm.name, vm.state, vm.name
            ),
        ));
    }
    let handles = read_handles(&daemon.paths.vm_dir(&vm.id)).ok_or_else(|| {
        DaemonError::failed(
            ErrorCode::OperationFailed,
            format!("VM {} has no running VMM on record", vm.name),
        )
    })?;
    Ok(handles.handle.vsock_uds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_through_the_vm_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_handles(dir.path()).is_none());
        let handles = Handles {
            handle: VmHandle {
                backend: banger_vmm::BackendKind::Qemu,
                pid: 42,
                helper_pids: vec![43],
                control_socket: dir.path().join("qmp.sock"),
                vsock_uds: dir.path().join("vsock.sock"),
                console_log: dir.path().join("console.log"),
                vmm_log: dir.path().join("qemu.log"),
            },
            tap: Some("fctap3".into()),
        };
        write_handles(dir.path(), &handles).unwrap();
        let back = read_handles(dir.path()).unwrap();
        assert_eq!(back.handle, handles.handle);
        assert_eq!(back.tap, handles.tap);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(handles_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(handles_path(dir.path()), "not json").unwrap();
        assert!(read_handles(dir.path()).is_none(), "garbage is no handle");
    }
}

//! Saving a running VM's state to a file and resuming it, through QMP:
//! `stop`, then a migration into the file (QEMU 7.2's way of writing a
//! snapshot), then `cont` once the caller has copied the disks. Restoring
//! is a launch with `-incoming` reading that file (`launch::launch_from`);
//! the file is only read, so any number of VMs restore from one.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{QMP_TIMEOUT, QmpClient, argv};
use crate::{VmHandle, VmmError};

/// Writing the state is bounded by the memory's size; this allows a few
/// GiB on a slow disk.
const SAVE_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(20);
/// QEMU throttles migrations to 128 MiB/s by default, a limit meant for
/// live migration over a network; the VM is stopped, so go as fast as the
/// disk allows.
const UNTHROTTLED: u64 = 64 << 30;

fn qmp(handle: &VmHandle) -> Result<QmpClient, VmmError> {
    QmpClient::connect(&handle.control_socket, QMP_TIMEOUT).map_err(refused("connect to QMP"))
}

fn refused(what: &'static str) -> impl Fn(super::QmpError) -> VmmError {
    move |e| VmmError::Refused {
        what: what.into(),
        detail: e.to_string(),
    }
}

/// Pauses the VM and writes its memory and device state to `memory`. The
/// VM stays paused (its disks flushed and still), for the caller to copy
/// them; [`resume`] continues it.
pub fn save(handle: &VmHandle, memory: &Path) -> Result<(), VmmError> {
    let uri = argv::outgoing_to_file(memory)?;
    let mut qmp = qmp(handle)?;
    qmp.execute("stop").map_err(refused("stop"))?;
    qmp.execute_with(
        "migrate-set-parameters",
        Some(json!({ "max-bandwidth": UNTHROTTLED })),
    )
    .map_err(refused("migrate-set-parameters"))?;
    qmp.execute_with("migrate", Some(json!({ "uri": uri })))
        .map_err(refused("migrate"))?;
    let deadline = Instant::now() + SAVE_TIMEOUT;
    loop {
        let status = qmp
            .execute("query-migrate")
            .map_err(refused("query-migrate"))?;
        match status.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") => {
                let detail = status
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given")
                    .to_owned();
                return Err(VmmError::Refused {
                    what: format!("saving the VM's state to {}", memory.display()),
                    detail,
                });
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            let _ = qmp.execute("migrate_cancel");
            return Err(VmmError::Timeout(
                SAVE_TIMEOUT,
                format!("QEMU to write the VM's state to {}", memory.display()),
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Continues a VM paused by [`save`] or loaded from a saved state.
pub fn resume(handle: &VmHandle) -> Result<(), VmmError> {
    qmp(handle)?
        .execute("cont")
        .map_err(refused("cont"))
        .map(drop)
}

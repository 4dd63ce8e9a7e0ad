//! Orderly power-off from PID 1: ask every process to stop, then insist,
//! flush, unmount the disks, remount `/` read-only, and stop the machine.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, sync};

use crate::boot_config::HaltAction;
use crate::{halt, mount_spec, mountinfo};

/// How long processes get to exit after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long to reap after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Stops everything and powers off; never returns.
pub fn power_off(action: HaltAction) -> ! {
    // pid -1: every process except PID 1 itself.
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    if !reap_until_none(TERM_GRACE) {
        crate::warn!("processes still running after SIGTERM: killing them");
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        reap_until_none(KILL_GRACE);
    }
    sync();
    for mount_point in mountinfo::unmount_order(&mount_spec::current_mounts()) {
        unmount(&mount_point);
    }
    if let Err(e) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    ) {
        crate::warn!("cannot remount / read-only: {e}");
    }
    crate::info!("powering off");
    halt::halt(action)
}

/// Unmounts, or at least makes read-only, so the journal is clean.
fn unmount(mount_point: &Path) {
    if umount2(mount_point, MntFlags::empty()).is_ok() {
        return;
    }
    let remounted = mount(
        None::<&str>,
        mount_point,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    );
    if let Err(e) = remounted {
        crate::warn!("cannot unmount or remount {}: {e}", mount_point.display());
    }
}

/// Reaps children until none is left (true) or `limit` passes (false).
fn reap_until_none(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return true,
            Ok(WaitStatus::StillAlive) | Err(_) => {
                if Instant::now() >= deadline {
                    return false;
                }
                thread::sleep(Duration::from_millis(20));
            }
            Ok(_) => {}
        }
    }
}

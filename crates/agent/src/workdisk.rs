//! The work disk (`banger.workdisk`, `/dev/vdb` by default) on `/root`.
//!
//! Mounted by banger's initramfs before the real init starts, so neither
//! init waits for udev to announce the device; the minimal image's init
//! and the systemd image's agent mount it themselves when the VM was
//! booted through another initramfs.

use std::path::Path;

use nix::mount::MsFlags;

use crate::{mount_spec, mountinfo};

/// Where the work disk goes, relative to the root it is mounted under.
pub const TARGET: &str = "root";

/// Mounts `device` on `root`/root unless something is mounted there
/// already; a missing device or a failed mount is logged, not fatal (the
/// VM still boots, with /root on its root disk).
pub fn mount(device: &Path, root: &Path) {
    let target = root.join(TARGET);
    if !device.exists() {
        crate::info!("no work disk at {}", device.display());
        return;
    }
    if mountinfo::is_mount_point(&mount_spec::current_mounts(), &target) {
        return;
    }
    match mount_spec::mount_device(device, &target, "ext4", MsFlags::empty()) {
        Ok(()) => crate::info!(
            "mounted work disk {} on {}",
            device.display(),
            target.display()
        ),
        Err(e) => crate::error!("{e}"),
    }
}

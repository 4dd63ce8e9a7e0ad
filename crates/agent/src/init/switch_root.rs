//! The classic switch_root: make the new root filesystem `/`.
//!
//! `pivot_root` does not work from the initramfs (rootfs cannot be
//! unmounted), so the new root is moved over `/` and chrooted into, as
//! util-linux's and busybox's switch_root do.

use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::unistd::{chdir, chroot};
use thiserror::Error;

/// A step of the switch that failed.
#[derive(Debug, Error)]
#[error("switch_root: {step} failed: {errno}")]
pub struct SwitchRootError {
    pub step: &'static str,
    pub errno: nix::errno::Errno,
}

/// `chdir(newroot)`, `mount(".", "/", MS_MOVE)`, `chroot(".")`, `chdir("/")`.
pub fn switch_root(newroot: &Path) -> Result<(), SwitchRootError> {
    let step = |step| move |errno| SwitchRootError { step, errno };
    chdir(newroot).map_err(step("chdir to the new root"))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(step("moving the new root onto /"))?;
    chroot(".").map_err(step("chroot"))?;
    chdir("/").map_err(step("chdir to /"))?;
    Ok(())
}

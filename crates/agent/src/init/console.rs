//! Standard streams of the initramfs init.
//!
//! The kernel opens `/dev/console` for init only if the initramfs contains
//! that node; otherwise Rust's runtime has pointed fds 0-2 at /dev/null (or
//! aborted, if even that is missing: the initramfs builder must ship
//! `dev/console` and `dev/null`). Once devtmpfs is mounted the console
//! exists, so the streams are pointed at it to make messages visible.

use std::fs::OpenOptions;
use std::os::fd::IntoRawFd;

use nix::unistd::{close, dup2};

/// Points fds 0, 1 and 2 at `/dev/console`; keeps them as they are if it
/// cannot be opened.
pub fn reopen_stdio() {
    let Ok(console) = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    else {
        return;
    };
    // The descriptor is handed over to fds 0-2 below; no File owns it.
    let fd = console.into_raw_fd();
    for target in 0..=2 {
        if target != fd {
            let _ = dup2(fd, target);
        }
    }
    if fd > 2 {
        let _ = close(fd);
    }
}

//! Stopping the guest: flush, then power off or reboot (Firecracker ends
//! the VM on reboot; QEMU on ACPI power-off).
//!
//! PID 1 must never exit (the kernel would panic and the reason on the
//! console would scroll away behind the panic), so when the final syscall
//! fails these functions park the process instead of returning.

use std::thread;
use std::time::Duration;

use nix::sys::reboot::{RebootMode, reboot};
use nix::unistd::sync;

use crate::boot_config::HaltAction;

/// Flushes filesystems and stops the machine; never returns.
pub fn halt(action: HaltAction) -> ! {
    sync();
    let mode = match action {
        HaltAction::PowerOff => RebootMode::RB_POWER_OFF,
        HaltAction::Reboot => RebootMode::RB_AUTOBOOT,
    };
    let err = match reboot(mode) {
        Ok(never) => match never {},
        Err(errno) => errno,
    };
    crate::error!("reboot({mode:?}) failed: {err}; halting here");
    park()
}

/// Reports a fatal boot error where it can be seen, waits so the console
/// shows it before the VM disappears, then stops the guest.
pub fn fatal(message: &str, action: HaltAction, delay: Duration) -> ! {
    crate::log::log(crate::log::Level::Fatal, format_args!("{message}"));
    // Also straight to stderr (the console): kmsg can be rate limited.
    eprintln_safe(&format!("banger-agent: FATAL: {message}"));
    eprintln_safe(&format!(
        "banger-agent: stopping the guest in {} s",
        delay.as_secs()
    ));
    thread::sleep(delay);
    halt(action)
}

fn eprintln_safe(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Sleeps forever.
pub fn park() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

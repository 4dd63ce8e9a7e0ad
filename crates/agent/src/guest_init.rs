//! The `guest-init` mode: PID 1 of the minimal image (no systemd).
//!
//! Sets up the basic mounts, hostname, network and work disk, then
//! supervises two children, sshd and the agent's own `service` mode, and
//! reaps every orphan. SIGTERM, SIGINT (Ctrl-Alt-Del, which is how
//! Firecracker asks a guest to stop), SIGPWR and the agent's `poweroff`
//! request (which signals PID 1) all lead to an orderly power-off.
//!
//! The service runs as a child process, not a thread of PID 1: PID 1 reaps
//! with `waitpid(-1)`, which would steal the exit status of every program
//! `exec` starts.

pub mod hostname;
pub mod mounts;
pub mod shutdown;
pub mod sshd;
pub mod supervisor;

use std::fs;
use std::path::Path;

use nix::sys::signal::Signal;

use crate::boot_config::BootConfig;
use crate::cmdline::{Cmdline, PROC_CMDLINE};
use crate::{network, workdisk};
use supervisor::{Role, Supervisor};

/// Runs the minimal image's init; never returns.
pub fn run() -> ! {
    // Block before anything else so every thread inherits the mask and
    // the signals wait for `sigwait` below instead of being dropped (PID 1
    // ignores signals it has no handler for).
    let signals = supervisor::handled_signals();
    if let Err(e) = signals.thread_block() {
        crate::error!("cannot block signals: {e}");
    }
    mounts::mount_all();
    crate::log::use_kmsg();
    crate::info!("guest-init {} starting", crate::AGENT_VERSION);
    // Ctrl-Alt-Del then sends SIGINT to PID 1 instead of an instant reboot.
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        crate::warn!("cannot route Ctrl-Alt-Del to init: {e}");
    }

    let config = boot_config();
    hostname::apply_from_file(Path::new("/etc/hostname"));
    // Booted through banger's initramfs, the NIC is up already.
    if network::configured(Path::new("/")) {
        crate::info!("network configured by the initramfs");
    } else if let Err(e) = network::configure(config.net.as_ref(), Path::new("/")) {
        crate::error!("network setup failed: {e}");
    }
    if let Some(device) = &config.workdisk {
        workdisk::mount(device, Path::new("/"));
    }

    let mut supervisor = Supervisor::new();
    match std::env::current_exe() {
        Ok(exe) => {
            match sshd::prepare(Path::new("/")) {
                Ok(true) => supervisor.add(Role::Sshd, launch_argv(&exe, &sshd::argv())),
                Ok(false) => crate::warn!("{} not found: no ssh access", sshd::SSHD),
                Err(e) => crate::error!("sshd setup failed: {e}"),
            }
            supervisor.add(Role::Service, service_argv(&exe));
        }
        Err(e) => crate::error!("cannot find the agent binary to start its children: {e}"),
    }
    supervisor.start_all();

    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => supervisor.reap(),
            Ok(Signal::SIGUSR1) => supervisor.start_due(),
            Ok(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGPWR)) => {
                crate::info!("{sig} received: powering off");
                shutdown::power_off(config.halt);
            }
            Ok(_) => {}
            Err(e) => crate::error!("sigwait failed: {e}"),
        }
    }
}

fn boot_config() -> BootConfig {
    let text = match fs::read_to_string(PROC_CMDLINE) {
        Ok(text) => text,
        Err(e) => {
            crate::error!("cannot read {PROC_CMDLINE}: {e}; using defaults");
            return BootConfig::default();
        }
    };
    let cmdline = Cmdline::parse(&text);
    BootConfig::from_cmdline(&cmdline).unwrap_or_else(|e| {
        // Keep going: with the agent up, the host can still see what is wrong.
        crate::error!("{e}; ignoring banger.* parameters");
        BootConfig {
            halt: BootConfig::halt_from_cmdline(&cmdline),
            ..BootConfig::default()
        }
    })
}

/// `argv` started through the agent's `launch` mode, which clears the
/// signal mask PID 1 would otherwise pass on (see `signals`).
fn launch_argv(exe: &Path, argv: &[String]) -> Vec<String> {
    let mut full = vec![exe.display().to_string(), "launch".into()];
    full.extend(argv.iter().cloned());
    full
}

/// The agent's own `service` mode (which clears its mask itself).
fn service_argv(exe: &Path) -> Vec<String> {
    vec![
        exe.display().to_string(),
        "service".into(),
        "--power".into(),
        "init".into(),
    ]
}

/// Mounts the work disk on /root when it is attached.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_is_started_through_launch() {
        let exe = Path::new("/usr/local/lib/banger/banger-agent");
        let argv = launch_argv(exe, &sshd::argv());
        assert_eq!(
            argv,
            [
                "/usr/local/lib/banger/banger-agent",
                "launch",
                "/usr/sbin/sshd",
                "-D",
                "-e"
            ]
        );
        assert_eq!(
            crate::mode::select(&argv[0], &argv[1..], 77),
            Ok(crate::mode::Mode::Launch(sshd::argv()))
        );
    }

    #[test]
    fn service_child_is_told_to_power_off_through_init() {
        assert_eq!(
            service_argv(Path::new("/usr/local/lib/banger/banger-agent")),
            [
                "/usr/local/lib/banger/banger-agent",
                "service",
                "--power",
                "init"
            ]
        );
        // And that command line selects the mode guest-init expects.
        let argv = service_argv(Path::new("/x"));
        assert_eq!(
            crate::mode::select(&argv[0], &argv[1..], 77),
            Ok(crate::mode::Mode::Service(crate::mode::ServiceArgs {
                power: crate::mode::PowerChoice::Init,
                unix: None,
                serial_socket: None,
            }))
        );
    }
}

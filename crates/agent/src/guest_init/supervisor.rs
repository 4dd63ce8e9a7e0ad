//! PID 1's children: start them, reap every exited process (ours and the
//! orphans re-parented to PID 1), restart ours with a growing delay.
//!
//! A restart delay cannot be a sleep in PID 1's loop (it must keep
//! reaping), so a timer thread sends SIGUSR1 when one is due.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The first restart delay; it doubles per quick failure.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest restart delay.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A child that ran this long is considered healthy again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// The signals PID 1 takes through `sigwait`.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGPWR,
        Signal::SIGUSR1,
        Signal::SIGHUP,
    ] {
        set.add(signal);
    }
    set
}

/// A supervised child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Sshd,
    Service,
}

/// The restart delay after `quick_failures` consecutive short runs.
pub fn restart_delay(quick_failures: u32) -> Duration {
    let factor = 1u32 << quick_failures.min(5);
    (FIRST_DELAY * factor).min(MAX_DELAY)
}

struct Program {
    argv: Vec<String>,
    quick_failures: u32,
    started: Option<Instant>,
    due: Option<Instant>,
}

/// The supervised children and their restart state.
pub struct Supervisor {
    programs: HashMap<Role, Program>,
    running: HashMap<Pid, Role>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        Supervisor {
            programs: HashMap::new(),
            running: HashMap::new(),
        }
    }

    /// Registers `role`, to be started by [`Supervisor::start_all`].
    pub fn add(&mut self, role: Role, argv: Vec<String>) {
        self.programs.insert(
            role,
            Program {
                argv,
                quick_failures: 0,
                started: None,
                due: Some(Instant::now()),
            },
        );
    }

    /// Starts every registered child.
    pub fn start_all(&mut self) {
        self.start_due();
    }

    /// Starts the children whose restart time has come.
    pub fn start_due(&mut self) {
        let now = Instant::now();
        let due: Vec<Role> = self
            .programs
            .iter()
            .filter(|(_, p)| p.due.is_some_and(|d| d <= now))
            .map(|(role, _)| *role)
            .collect();
        for role in due {
            self.start(role);
        }
    }

    fn start(&mut self, role: Role) {
        let Some(program) = self.programs.get_mut(&role) else {
            return;
        };
        program.due = None;
        let Some((exe, args)) = program.argv.split_first() else {
            crate::error!("{role:?} has an empty command line; not starting it");
            return;
        };
        let spawned = Command::new(exe)
            .args(args)
            .env("PATH", crate::DEFAULT_PATH)
            .env("HOME", "/root")
            .stdin(Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => {
                // Reaped by `reap` through waitpid(-1), never by the Child.
                let pid = Pid::from_raw(child.id() as i32);
                crate::info!("started {role:?} (pid {pid})");
                program.started = Some(Instant::now());
                self.running.insert(pid, role);
            }
            Err(e) => {
                crate::error!("cannot start {role:?} ({exe}): {e}");
                self.schedule_restart(role);
            }
        }
    }

    /// Reaps every exited child; schedules restarts for supervised ones.
    pub fn reap(&mut self) {
        loop {
            let (pid, how) = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, format!("exited with {code}")),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, format!("killed by {signal}")),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    crate::error!("waitpid failed: {e}");
                    return;
                }
            };
            if let Some(role) = self.running.remove(&pid) {
                crate::warn!("{role:?} (pid {pid}) {how}");
                self.schedule_restart(role);
            }
        }
    }

    fn schedule_restart(&mut self, role: Role) {
        let Some(program) = self.programs.get_mut(&role) else {
            return;
        };
        let ran = program.started.take().map(|s| s.elapsed());
        if ran.is_some_and(|r| r >= HEALTHY_AFTER) {
            program.quick_failures = 0;
        }
        let delay = restart_delay(program.quick_failures);
        program.quick_failures = program.quick_failures.saturating_add(1);
        program.due = Some(Instant::now() + delay);
        crate::info!("restarting {role:?} in {} s", delay.as_secs());
        let spawned = thread::Builder::new()
            .name("restart-timer".into())
            .spawn(move || {
                thread::sleep(delay);
                let _ = kill(Pid::this(), Signal::SIGUSR1);
            });
        if let Err(e) = spawned {
            crate::error!("cannot start a restart timer: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_doubles_up_to_the_cap() {
        assert_eq!(restart_delay(0), Duration::from_secs(1));
        assert_eq!(restart_delay(1), Duration::from_secs(2));
        assert_eq!(restart_delay(3), Duration::from_secs(8));
        assert_eq!(restart_delay(5), Duration::from_secs(30));
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn handled_signals_cover_shutdown_and_children() {
        let set = handled_signals();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGUSR1,
        ] {
            assert!(set.contains(s), "{s}");
        }
        assert!(!set.contains(Signal::SIGKILL));
    }
}

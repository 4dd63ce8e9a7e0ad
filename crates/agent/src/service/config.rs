//! How the service behaves: the one configuration every handler reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::boot_barrier::BootBarrier;
use super::power::PowerControl;

/// How the service behaves; [`ServiceConfig::guest`] is the real one.
pub struct ServiceConfig {
    /// The root under which `identity` writes (`/` in the guest).
    pub fs_root: PathBuf,
    /// Whether `identity` also changes the running kernel: `sethostname(2)`,
    /// the NIC's MAC, address and route, the RNG reseed and the clock. Never
    /// in tests: it would rename, readdress and re-time the machine running
    /// them. Files under `fs_root` are written either way.
    pub apply_live: bool,
    /// Set by `freeze`, cleared by `thaw` or an `identity` that reseeded the
    /// RNG and stepped the clock; while set, `exec` and `ports` are refused.
    /// Shared, so whoever built the configuration can see it.
    pub frozen: Arc<AtomicBool>,
    /// What `poweroff` does.
    pub power: Arc<dyn PowerControl>,
    /// The request line must arrive within this time.
    pub request_timeout: Duration,
    /// Each write of the response must progress within this time.
    pub write_timeout: Duration,
    /// Connections served at once; more are answered `failed` at once.
    pub max_connections: usize,
    /// What `exec` waits for before it runs a command (a systemd guest of
    /// banger's image, until `basic.target`).
    pub boot_barrier: Option<BootBarrier>,
}

impl ServiceConfig {
    /// The configuration inside a guest.
    pub fn guest(power: Arc<dyn PowerControl>) -> Self {
        ServiceConfig {
            fs_root: PathBuf::from("/"),
            apply_live: true,
            frozen: Arc::default(),
            power,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
            max_connections: 32,
            boot_barrier: None,
        }
    }

    /// Whether `exec` and `ports` are refused until the identity refresh.
    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Sets or clears the frozen state.
    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }
}

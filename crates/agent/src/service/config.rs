//! How the service behaves: the one configuration every handler reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::boot_barrier::BootBarrier;
use super::power::PowerControl;

/// How the service behaves; [`ServiceConfig::guest`] is the real one.
pub struct ServiceConfig {
    /// The root under which `identity` writes (`/` in the guest).
    pub fs_root: PathBuf,
    /// Whether `identity` also calls `sethostname(2)` (never in tests: it
    /// would rename the machine running them).
    pub set_kernel_hostname: bool,
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
            set_kernel_hostname: true,
            power,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
            max_connections: 32,
            boot_barrier: None,
        }
    }
}

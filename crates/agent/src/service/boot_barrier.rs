//! Commands wait for the boot to be far enough along.
//!
//! In banger's systemd image the agent and sshd start before
//! `basic.target` (they need nothing of it, and the host waits for both),
//! so a command could otherwise run before `sockets.target` listens —
//! `docker` would find no socket. The image's `banger-booted.service`,
//! ordered after `basic.target`, leaves [`MARKER`]; `exec` waits for it,
//! bounded. Images without that unit (minimal, or others) never wait.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::init::wait;

/// Left by `banger-booted.service` once `basic.target` is reached.
pub const MARKER: &str = "run/banger/basic-reached";
/// The unit that leaves it; its presence says the image has the barrier.
pub const UNIT: &str = "etc/systemd/system/banger-booted.service";
/// systemd's own mark that it is PID 1 (`sd_booted(3)`).
const SYSTEMD_BOOTED: &str = "run/systemd/system";
/// The longest a command waits; past it, it runs anyway.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct BootBarrier {
    marker: PathBuf,
    limit: Duration,
}

impl BootBarrier {
    /// The barrier of the system rooted at `root`, if systemd runs it and
    /// the image carries banger's unit.
    pub fn detect(root: &Path) -> Option<Self> {
        (root.join(SYSTEMD_BOOTED).is_dir() && root.join(UNIT).exists()).then(|| BootBarrier {
            marker: root.join(MARKER),
            limit: LIMIT,
        })
    }

    /// Waits for the marker; false if the limit passed without it.
    pub fn wait(&self) -> bool {
        match wait::wait_for_path(&self.marker, self.limit, wait::POLL) {
            Ok(waited) => {
                if waited > Duration::from_millis(50) {
                    crate::info!(
                        "waited {:.2} s for the boot to reach basic.target",
                        waited.as_secs_f64()
                    );
                }
                true
            }
            Err(waited) => {
                crate::warn!(
                    "the boot did not reach basic.target within {:.0} s; running the command anyway",
                    waited.as_secs_f64()
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn systemd_root(with_unit: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(SYSTEMD_BOOTED)).unwrap();
        if with_unit {
            fs::create_dir_all(dir.path().join("etc/systemd/system")).unwrap();
            fs::write(dir.path().join(UNIT), b"[Unit]\n").unwrap();
        }
        dir
    }

    #[test]
    fn only_a_systemd_guest_with_the_unit_has_a_barrier() {
        assert!(BootBarrier::detect(systemd_root(true).path()).is_some());
        assert!(BootBarrier::detect(systemd_root(false).path()).is_none());
        let no_systemd = tempfile::tempdir().unwrap();
        fs::create_dir_all(no_systemd.path().join("etc/systemd/system")).unwrap();
        fs::write(no_systemd.path().join(UNIT), b"").unwrap();
        assert!(BootBarrier::detect(no_systemd.path()).is_none());
    }

    #[test]
    fn a_command_waits_for_the_marker_and_no_longer() {
        let root = systemd_root(true);
        let mut barrier = BootBarrier::detect(root.path()).unwrap();
        barrier.limit = Duration::from_millis(200);
        assert!(!barrier.wait(), "no marker: the limit passes");
        let marker = root.path().join(MARKER);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            fs::create_dir_all(marker.parent().unwrap()).unwrap();
            fs::write(&marker, b"").unwrap();
        });
        barrier.limit = Duration::from_secs(5);
        assert!(barrier.wait());
        writer.join().unwrap();
    }
}

//! Waiting, bounded, for a device node to appear (drivers probe
//! asynchronously after their module loads).

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// How often the device is looked for.
pub const POLL: Duration = Duration::from_millis(20);

/// Returns how long it took for `path` to exist, or, as the error, how long
/// was waited in vain.
pub fn wait_for_path(path: &Path, timeout: Duration, poll: Duration) -> Result<Duration, Duration> {
    let start = Instant::now();
    loop {
        if path.exists() {
            return Ok(start.elapsed());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(waited);
        }
        thread::sleep(poll.min(timeout - waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_at_once_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let waited = wait_for_path(dir.path(), Duration::from_secs(5), POLL).unwrap();
        assert!(waited < Duration::from_millis(100));
    }

    #[test]
    fn notices_a_path_appearing_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vda");
        let creator = {
            let path = path.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(150));
                std::fs::write(path, b"").unwrap();
            })
        };
        let waited = wait_for_path(&path, Duration::from_secs(5), POLL).unwrap();
        creator.join().unwrap();
        assert!(waited >= Duration::from_millis(140), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn gives_up_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let waited =
            wait_for_path(&dir.path().join("never"), Duration::from_millis(120), POLL).unwrap_err();
        assert!(waited >= Duration::from_millis(120), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
}

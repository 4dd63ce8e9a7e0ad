//! Quoting the VMM's and the sidecar's logs in errors.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How much of a log an error quotes.
const LOG_TAIL_BYTES: u64 = 2048;

/// The end of a log file after byte `since`, prefixed for
/// [`crate::VmmError::ExitedEarly`]'s `tail`; empty when nothing is there.
/// Logs are appended to across launches, and an error must quote only the
/// launch that failed.
pub fn log_tail_since(path: &Path, since: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(LOG_TAIL_BYTES).max(since.min(len));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else if start > since {
        format!(":\n…{text}")
    } else {
        format!(":\n{text}")
    }
}

/// The current length of a log, to quote only what follows.
pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        assert_eq!(log_tail_since(&log, 0), "", "missing log");
        std::fs::write(&log, "  \n").unwrap();
        assert_eq!(log_tail_since(&log, 0), "", "blank log");
        std::fs::write(&log, "short error\n").unwrap();
        assert_eq!(log_tail_since(&log, 0), ":\nshort error");
        let long = format!("{}THE END", "x".repeat(5000));
        std::fs::write(&log, &long).unwrap();
        let tail = log_tail_since(&log, 0);
        assert!(
            tail.starts_with(":\n…") && tail.ends_with("THE END"),
            "{tail}"
        );
        assert!(tail.len() < 2100, "{}", tail.len());
        let since = log_len(&log);
        assert_eq!(log_tail_since(&log, since), "", "nothing new");
        std::fs::write(&log, format!("{long}\nthis launch\n")).unwrap();
        assert_eq!(log_tail_since(&log, since), ":\nthis launch");
    }
}

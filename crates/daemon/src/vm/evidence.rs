//! What a failed boot leaves to read: the last lines of the VMM's own log
//! (a KVM error, a refused device) and of the serial console, read from the
//! end of each file with a bound, cleaned of control sequences (both are
//! written by the guest or about it) and capped, to quote in the error; and
//! the log files themselves, kept when a failed create unwinds so `vm logs`
//! still shows them until `vm delete`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use banger_vmm::{BackendKind, VmHandle};

/// Lines quoted from each log.
const TAIL_LINES: usize = 15;
/// Bytes read from the end of a log to find them.
const TAIL_READ: u64 = 32 * 1024;
/// Most bytes of each log quoted in an error.
const TAIL_QUOTED: usize = 4 * 1024;

/// The last [`TAIL_LINES`] lines of `path`, cleaned, at most
/// [`TAIL_QUOTED`] bytes; empty when there is no such file.
pub fn tail(path: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_READ);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.take(TAIL_READ).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    // A read that starts mid-file starts mid-line: drop that piece.
    if start > 0 {
        let first_newline = bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
        bytes.drain(..first_newline);
    }
    let text = banger_api::text::clean_guest_bytes(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let last = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    // Cut from the front: the end is what explains the failure.
    if last.len() <= TAIL_QUOTED {
        return last;
    }
    let mut cut = last.len() - TAIL_QUOTED;
    while !last.is_char_boundary(cut) {
        cut += 1;
    }
    format!("[… {cut} bytes cut]{}", &last[cut..])
}

/// Both logs' tails, each under its path, for a boot failure's message.
pub fn quote_logs(handle: &VmHandle) -> String {
    let vmm = match handle.backend {
        BackendKind::Firecracker => "Firecracker's log",
        BackendKind::Qemu => "QEMU's log",
    };
    let mut text = String::new();
    for (what, path) in [(vmm, &handle.vmm_log), ("console", &handle.console_log)] {
        let tail = tail(path);
        let tail = if tail.is_empty() {
            "(empty)".to_owned()
        } else {
            tail
        };
        text.push_str(&format!("\n{what} ({}):\n{tail}", path.display()));
    }
    text
}

/// Whether a file in a VM directory is a log kept after a failed create.
pub fn is_log(name: &str) -> bool {
    name.ends_with(".log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_bounded_cleaned_and_end_where_the_file_ends() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut text = String::new();
        for i in 0..100_000 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str("\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2Jpanic: \x1b]0;pwned\x07the end\n");
        std::fs::write(&log, &text).unwrap();
        let tail = tail(&log);
        assert!(tail.ends_with("panic: the end"), "{tail}");
        assert!(tail.contains("line 99999"));
        assert!(!tail.contains("line 99985"), "only the last lines");
        assert!(!tail.contains('\x1b') && !tail.contains('\x07'), "{tail:?}");
        assert!(tail.len() <= TAIL_QUOTED + 32);
    }

    #[test]
    fn one_endless_line_is_cut_from_the_front() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("qemu.log");
        let mut text = "x".repeat(1 << 20);
        text.push_str("KVM_EXIT_INTERNAL_ERROR");
        std::fs::write(&log, &text).unwrap();
        let tail = tail(&log);
        assert!(tail.ends_with("KVM_EXIT_INTERNAL_ERROR"), "{}", &tail[..64]);
        assert!(tail.len() <= TAIL_QUOTED + 32, "{}", tail.len());
        assert_eq!(super::tail(&dir.path().join("absent.log")), "");
    }
}

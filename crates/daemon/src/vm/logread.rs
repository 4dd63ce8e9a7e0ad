//! Bounded reads of a log file a guest can grow without limit (its serial
//! console): never more than a cap per read, and never a character split
//! in two, so a follower can resume at the returned offset.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use banger_api::protocol::LogChunk;

/// Reads at most `cap` bytes of `path`: its tail when `offset` is `None`,
/// else what follows `offset`. A file shorter than `offset` was replaced
/// (a new boot): it is read from the start. A missing file is an empty
/// chunk without a path.
pub fn read_chunk(path: &Path, offset: Option<u64>, cap: u64) -> std::io::Result<LogChunk> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(empty(offset.unwrap_or(0)));
        }
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let (mut start, restarted) = match offset {
        None => (size.saturating_sub(cap), false),
        Some(o) if o > size => (0, true),
        Some(o) => (o, false),
    };
    let end = size.min(start.saturating_add(cap));
    let mut bytes = Vec::with_capacity((end - start) as usize);
    file.seek(SeekFrom::Start(start))?;
    // The file may grow while it is read; `take` keeps the cap.
    file.take(end - start).read_to_end(&mut bytes)?;
    let mut from = 0;
    if offset.is_none() {
        // A tail cut in the middle of a character starts at the next one.
        from = bytes
            .iter()
            .take(3)
            .take_while(|b| is_continuation(**b))
            .count();
        start += from as u64;
    }
    let to = bytes.len() - incomplete_tail(&bytes[from..]);
    let kept = &bytes[from..to.max(from)];
    Ok(LogChunk {
        path: Some(path.display().to_string()),
        size,
        offset: start,
        next_offset: start + kept.len() as u64,
        skipped: if offset.is_none() { start } else { 0 },
        restarted,
        more: end < size,
        text: String::from_utf8_lossy(kept).into_owned(),
    })
}

fn empty(offset: u64) -> LogChunk {
    LogChunk {
        path: None,
        size: 0,
        offset,
        next_offset: offset,
        skipped: 0,
        restarted: false,
        more: false,
        text: String::new(),
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// How many bytes at the end of `bytes` are the start of a UTF-8 character
/// whose rest has not been read yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(4) {
        let b = bytes[bytes.len() - back];
        if is_continuation(b) {
            continue;
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn a_missing_log_is_empty_and_pathless() {
        let c = read_chunk(Path::new("/nonexistent/console.log"), Some(7), 10).unwrap();
        assert_eq!((c.path, c.next_offset, c.text.as_str()), (None, 7, ""));
    }

    #[test]
    fn the_tail_is_capped_and_says_what_it_skipped() {
        let (_d, path) = file(b"0123456789abcdef");
        let c = read_chunk(&path, None, 4).unwrap();
        assert_eq!(c.text, "cdef");
        assert_eq!(
            (c.offset, c.skipped, c.next_offset, c.size),
            (12, 12, 16, 16)
        );
        assert!(!c.more);
        let all = read_chunk(&path, None, 100).unwrap();
        assert_eq!((all.text.len(), all.skipped), (16, 0));
    }

    #[test]
    fn following_reads_in_capped_steps_then_waits() {
        let (_d, path) = file(b"0123456789");
        let first = read_chunk(&path, Some(2), 4).unwrap();
        assert_eq!(
            (first.text.as_str(), first.next_offset, first.more),
            ("2345", 6, true)
        );
        let second = read_chunk(&path, Some(first.next_offset), 4).unwrap();
        assert_eq!((second.text.as_str(), second.next_offset), ("6789", 10));
        assert!(!second.more);
        let idle = read_chunk(&path, Some(10), 4).unwrap();
        assert_eq!((idle.text.as_str(), idle.next_offset), ("", 10));
    }

    #[test]
    fn a_replaced_file_is_read_from_its_start() {
        let (_d, path) = file(b"new boot\n");
        let c = read_chunk(&path, Some(1000), 100).unwrap();
        assert!(c.restarted);
        assert_eq!((c.offset, c.text.as_str()), (0, "new boot\n"));
    }

    #[test]
    fn characters_are_never_split() {
        // "aé€😀": 1 + 2 + 3 + 4 bytes.
        let text = "aé€😀";
        let (_d, path) = file(text.as_bytes());
        let mut offset = 0;
        let mut got = String::new();
        for _ in 0..20 {
            let c = read_chunk(&path, Some(offset), 2).unwrap();
            assert!(!c.text.contains('\u{FFFD}'), "{:?}", c.text);
            got.push_str(&c.text);
            offset = c.next_offset;
            if c.text.is_empty() && offset == text.len() as u64 {
                break;
            }
            // A cap smaller than a character makes no progress; a bigger
            // one is what the daemon uses.
            if c.text.is_empty() {
                let c = read_chunk(&path, Some(offset), 4).unwrap();
                got.push_str(&c.text);
                offset = c.next_offset;
            }
        }
        assert_eq!(got, text);
        // A tail starting inside "€" starts after it.
        let tail = read_chunk(&path, None, 5).unwrap();
        assert_eq!(tail.text, "😀");
        assert_eq!(tail.offset, 6);
    }

    #[test]
    fn invalid_bytes_are_replaced_not_fatal() {
        let (_d, path) = file(b"ok\xff\xfe!\n");
        let c = read_chunk(&path, Some(0), 100).unwrap();
        assert_eq!(c.text, "ok\u{FFFD}\u{FFFD}!\n");
        assert_eq!(c.next_offset, 6);
    }
}

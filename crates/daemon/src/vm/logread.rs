//! Bounded reads of a log file a guest can grow without limit (its serial
//! console): never more than a cap per read, and never a character split
//! in two, so a follower can resume at the returned offset.
//!
//! The VMM drivers keep each log capped on disk (`banger_vmm::logcap`):
//! `FILE.1` holds the previous part and `FILE.start` the logical offset of
//! `FILE`'s first byte. Offsets here are logical (bytes ever written to the
//! log), so a follower keeps its place across a rotation, reading the rest of
//! `FILE.1` before `FILE`; what the cap discarded before a reader got to it
//! is reported (`LogChunk::discarded`, `LogChunk::skipped`), never silently
//! jumped over. A log that was never capped reads as before (start 0, no
//! `.1`).

use std::path::Path;

use banger_api::protocol::LogChunk;
use banger_vmm::logcap::CappedLog;

/// Reads at most `cap` bytes of `path`: its tail when `offset` is `None`,
/// else what follows `offset`. A log shorter than `offset` was replaced (a
/// new boot of an uncapped log): it is read from its start. An `offset`
/// the cap has already discarded continues at the oldest byte kept, and
/// says how much was lost in `skipped`. A missing file is an empty chunk
/// without a path.
pub fn read_chunk(path: &Path, offset: Option<u64>, cap: u64) -> std::io::Result<LogChunk> {
    let Some(mut log) = CappedLog::open(path)? else {
        return Ok(empty(offset.unwrap_or(0)));
    };
    let (first, size) = (log.first, log.end);
    let (mut start, restarted, lost) = match offset {
        None => (size.saturating_sub(cap).max(first), false, 0),
        Some(o) if o > size => (first, true, 0),
        Some(o) if o < first => (first, false, first - o),
        Some(o) => (o, false, 0),
    };
    let end = size.min(start.saturating_add(cap));
    let bytes = log.read_range(start, end)?;
    let mut from = 0;
    if offset.is_none() || lost > 0 {
        // A read that does not continue a previous one may start in the
        // middle of a character: it starts at the next one.
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
        skipped: if offset.is_none() {
            start - first
        } else {
            lost
        },
        discarded: first,
        restarted,
        more: start + ((bytes.len() - from) as u64) < size,
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
        discarded: 0,
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

    /// A log written through the cap: `total` bytes of lines numbered from 0.
    fn capped(total_lines: u32, cap: u64) -> (tempfile::TempDir, std::path::PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let all: String = (0..total_lines)
            .map(|i| format!("line {i:06} é\n"))
            .collect();
        banger_vmm::logcap::cap_stream(all.as_bytes(), &path, cap).unwrap();
        (dir, path, all)
    }

    #[test]
    fn the_tail_of_a_cut_log_says_how_much_the_cap_discarded() {
        let (_d, path, all) = capped(5000, 8192);
        assert!(banger_vmm::logcap::rotated_path(&path).exists());
        let c = read_chunk(&path, None, 1 << 20).unwrap();
        let total = all.len() as u64;
        assert_eq!(c.size, total);
        assert!(c.discarded > 0 && c.discarded + 16384 >= total, "{c:?}");
        // Everything kept is sent (both files, oldest first) and it is the
        // newest output, ending where the log ends.
        assert_eq!(c.skipped, 0);
        assert_eq!(c.offset, c.discarded);
        assert!(all.ends_with(&c.text), "{:?}", &c.text[..40]);
        assert_eq!(c.text.len() as u64, total - c.discarded);
        // A small read's tail skips kept bytes, which it reports apart.
        let small = read_chunk(&path, None, 100).unwrap();
        assert_eq!(small.discarded, c.discarded);
        assert_eq!(small.skipped, small.offset - small.discarded);
        assert!(all.ends_with(&small.text));
    }

    #[test]
    fn following_continues_across_a_rotation_and_reports_what_it_missed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let cap = 8192;
        let part = |from: u32, to: u32| -> String {
            (from..to).map(|i| format!("line {i:06} é\n")).collect()
        };
        // 600 lines of 15 bytes: rotated once at 8192; the follower has
        // read all 9000.
        let first = part(0, 600);
        banger_vmm::logcap::cap_stream(first.as_bytes(), &path, cap).unwrap();
        let at = 9000;
        // The guest prints on: a rotation (at 16384) happens before the next
        // poll, so what follows 9000 now starts in `.1`.
        let second = part(600, 1200);
        banger_vmm::logcap::cap_stream(second.as_bytes(), &path, cap).unwrap();
        let all = format!("{first}{second}");
        let mut got = String::new();
        let mut offset = at;
        loop {
            let c = read_chunk(&path, Some(offset), 1000).unwrap();
            assert_eq!((c.skipped, c.restarted), (0, false), "{c:?}");
            got.push_str(&c.text);
            offset = c.next_offset;
            if !c.more {
                break;
            }
        }
        assert_eq!(got, all[at as usize..], "nothing lost, nothing doubled");
        // A follower too far behind continues at the oldest byte kept, told
        // how many bytes it missed.
        let late = read_chunk(&path, Some(10), 1 << 20).unwrap();
        assert!(late.discarded > 10);
        assert_eq!(late.skipped, late.offset - 10);
        assert!(all.ends_with(&late.text));
        assert!(!late.restarted);
    }
}

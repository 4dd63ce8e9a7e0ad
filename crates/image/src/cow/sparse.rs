//! The last resort: a full copy that keeps the copy sparse. Done in Rust
//! rather than with `cp --sparse=always` so the destination can be claimed
//! with `O_EXCL` and removed on failure, and so no external tool's flags
//! (GNU cp may reflink or use `copy_file_range`) decide what happens.
//!
//! Two kinds of holes are kept: the source's own holes, skipped with
//! `SEEK_DATA`/`SEEK_HOLE` (the generic kernel fallback reports one data
//! region covering the file, so this works on every filesystem), and
//! all-zero blocks inside data regions, which are not written (the
//! destination was sized with `set_len`, so they read back as zeros).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::error::DiskError;
use crate::newfile::NewFile;

/// Unit of the zero-block check: the page and usual filesystem block size.
const BLOCK: usize = 4096;
/// Read size: large enough that the per-call cost vanishes.
const CHUNK: usize = 1024 * 1024;

pub(super) fn copy(base: &Path, dest: &Path) -> Result<PathBuf, DiskError> {
    let src = File::open(base).map_err(|e| DiskError::io("open the base image", base, e))?;
    let len = src
        .metadata()
        .map_err(|e| DiskError::io("inspect the base image", base, e))?
        .len();
    let new = NewFile::create(dest)?;
    new.set_len(len)?;
    let read_err = |e| DiskError::io("read the base image", base, e);

    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0;
    while pos < len {
        let Some((start, end)) = next_data(&src, pos, len).map_err(read_err)? else {
            break;
        };
        let mut off = start;
        while off < end {
            let want = usize::try_from(end - off).map_or(CHUNK, |n| n.min(CHUNK));
            let got = read_full_at(&src, &mut buf[..want], off).map_err(read_err)?;
            if got == 0 {
                // The base shrank under us; what is left is zeros.
                break;
            }
            write_nonzero(new.file(), &buf[..got], off)
                .map_err(|e| DiskError::io("write the root disk", dest, e))?;
            off += got as u64;
        }
        pos = end;
    }
    Ok(new.keep())
}

/// The next data region at or after `pos`, as `[start, end)`; `None` when
/// only a hole remains.
fn next_data(src: &File, pos: u64, len: u64) -> std::io::Result<Option<(u64, u64)>> {
    let start = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
        Ok(start) => start,
        Err(Errno::NXIO) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let end = rustix::fs::seek(src, SeekFrom::Hole(start))?;
    Ok(Some((start, end.min(len))))
}

fn read_full_at(src: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match src.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes the runs of non-zero blocks of `data` (which starts at `off`),
/// skipping blocks that are entirely zero.
fn write_nonzero(dst: &File, data: &[u8], off: u64) -> std::io::Result<()> {
    let mut run_start: Option<usize> = None;
    for (i, block) in data.chunks(BLOCK).enumerate() {
        let at = i * BLOCK;
        let zero = block.iter().all(|&b| b == 0);
        match (zero, run_start) {
            (false, None) => run_start = Some(at),
            (true, Some(s)) => {
                dst.write_all_at(&data[s..at], off + s as u64)?;
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = run_start {
        dst.write_all_at(&data[s..], off + s as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// 512-byte units allocated to a file.
    fn allocated(path: &Path) -> u64 {
        path.metadata().unwrap().blocks()
    }

    #[test]
    fn holes_and_zero_blocks_stay_holes_and_content_is_equal() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let f = File::create(&base).unwrap();
        f.set_len(64 * MIB).unwrap();
        // Data at the start, in the middle (not block-aligned, spanning a
        // chunk boundary) and at the very end; 4 MiB of written zeros.
        f.write_all_at(&vec![0xa5; MIB as usize], 0).unwrap();
        f.write_all_at(&vec![0x3c; 3 * BLOCK + 17], 20 * MIB - 100)
            .unwrap();
        f.write_all_at(&vec![0u8; 4 * MIB as usize], 30 * MIB)
            .unwrap();
        f.write_all_at(b"tail", 64 * MIB - 4).unwrap();
        f.sync_all().unwrap();
        assert!(
            allocated(&base) >= 5 * MIB / 512,
            "the zeros must really be written"
        );

        let dest = dir.path().join("root.ext4");
        assert_eq!(copy(&base, &dest).unwrap(), dest);
        assert_eq!(std::fs::read(&base).unwrap(), std::fs::read(&dest).unwrap());
        // Data: 1 MiB + ~5 blocks + 1 block; allow some filesystem slack.
        let used = allocated(&dest) * 512;
        assert!(
            used < MIB + 64 * 1024 + 64 * 1024,
            "copy allocated {used} bytes"
        );
        assert!(used >= MIB, "copy allocated only {used} bytes");
    }

    #[test]
    fn an_existing_destination_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        std::fs::write(&base, b"image").unwrap();
        let dest = dir.path().join("root.ext4");
        std::fs::write(&dest, b"other").unwrap();
        assert!(matches!(
            copy(&base, &dest),
            Err(DiskError::AlreadyExists { .. })
        ));
        assert_eq!(std::fs::read(&dest).unwrap(), b"other");
    }

    #[test]
    fn an_empty_base_gives_an_empty_copy() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        std::fs::write(&base, b"").unwrap();
        let dest = dir.path().join("root.ext4");
        copy(&base, &dest).unwrap();
        assert_eq!(dest.metadata().unwrap().len(), 0);
    }

    #[test]
    fn zero_runs_are_skipped_between_written_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let f = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        f.set_len(4 * BLOCK as u64 + 10).unwrap();
        // Pre-fill with 0xff so skipped blocks are visible as not written.
        f.write_all_at(&vec![0xff; 4 * BLOCK + 10], 0).unwrap();
        let mut data = vec![0u8; 4 * BLOCK + 10];
        data[0] = 1;
        data[2 * BLOCK + 5] = 2;
        data[4 * BLOCK + 9] = 3;
        write_nonzero(&f, &data, 0).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(&back[..BLOCK], &data[..BLOCK]);
        assert!(
            back[BLOCK..2 * BLOCK].iter().all(|&b| b == 0xff),
            "zero block was written"
        );
        assert_eq!(&back[2 * BLOCK..3 * BLOCK], &data[2 * BLOCK..3 * BLOCK]);
        assert!(
            back[3 * BLOCK..4 * BLOCK].iter().all(|&b| b == 0xff),
            "zero block was written"
        );
        assert_eq!(&back[4 * BLOCK..], &data[4 * BLOCK..]);
    }
}

//! Capped logs (SPEC §12, "guest output is bounded"): a guest printing
//! forever on its serial console, or a VMM logging forever, must not fill the
//! host's disk.
//!
//! **Design.** A VMM never writes a capped log itself. Its stdout (and, for
//! QEMU, its stderr) is one end of an anonymous pipe whose other end is the
//! stdin of a *capper*: a small process (`bangerd --cap-log FILE BYTES`, a
//! hidden mode of the daemon's own binary, see [`LogCapper`]) that copies
//! what it reads into `FILE` and, when `FILE` reaches `BYTES`, renames it to
//! `FILE.1` (replacing the previous one) and starts a new `FILE`. So at most
//! 2 × `BYTES` are on disk per log, and the newest `BYTES`..2 × `BYTES` of
//! output are always kept.
//!
//! Why a process and a pipe:
//! - the capper must outlive the daemon (it can be `kill -9`ed; VMs keep
//!   running and are adopted), so it cannot be a daemon thread; like
//!   the agent-mux sidecar it is detached into its own process group, its pid
//!   recorded in [`crate::VmHandle::helper_pids`], and its argv names the
//!   log file inside the VM directory, so stop, kill, reconcile and teardown
//!   (which kills any process naming the VM directory) find it;
//! - an anonymous pipe needs no rendezvous: both ends exist before either
//!   process starts, so nothing can block on `open` (a FIFO writer blocks
//!   until a reader opens it), and when the VMM exits the capper reads EOF
//!   and exits. If the capper dies first, the VMM's writes fail with `EPIPE`
//!   (QEMU and Firecracker ignore `SIGPIPE`): console output is lost, but the
//!   VMM never hangs on its console;
//! - the capper never stops reading: a write error on the host (disk full)
//!   drops that output and tries again with the next, so a slow or failing
//!   file system at worst slows the guest's console, never stops it forever.
//!
//! **Offsets.** Readers (`vm logs`, `-f`) address a capped log by its
//! *logical* offset: bytes ever written through the capper. `FILE.start`
//! holds the logical offset of `FILE`'s first byte (absent: 0); `FILE.1`
//! ends where `FILE` starts. Rotation renames `FILE` to `FILE.1`, then
//! replaces `FILE.start` (written beside it and renamed), then creates the
//! new `FILE`, so a reader that reads `FILE.start` before and after opening
//! both files and sees the same value has a consistent pair
//! ([`CappedLog::open`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_sys::proc::{self, Argv};
use banger_sys::{Cmd, Detached};

use crate::{VmHandle, VmmError};

/// The cap per log: at most twice this is on disk (the file and its `.1`).
pub const DEFAULT_CAP: u64 = 8 * 1024 * 1024;
/// The smallest cap a capper accepts (tests use small ones).
pub const MIN_CAP: u64 = 4096;
/// The hidden command-line mode: `<program> --cap-log FILE BYTES`.
pub const CAP_LOG_FLAG: &str = "--cap-log";
/// How long a capper gets to drain and exit by itself once its VMM is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long it gets after SIGTERM (and again after SIGKILL).
const TERM_GRACE: Duration = Duration::from_secs(1);

/// `FILE.1`: the previous `CAP` bytes.
pub fn rotated_path(file: &Path) -> PathBuf {
    with_suffix(file, ".1")
}

/// `FILE.start`: the logical offset of `FILE`'s first byte, in decimal.
pub fn start_path(file: &Path) -> PathBuf {
    with_suffix(file, ".start")
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads `FILE.start`; 0 when there is none (never rotated, or a log that
/// was never capped).
pub fn read_start(file: &Path) -> std::io::Result<u64> {
    match std::fs::read_to_string(start_path(file)) {
        Ok(text) => text.trim().parse().map_err(|_| {
            std::io::Error::new(
                ErrorKind::InvalidData,
                format!("{} is not a number", start_path(file).display()),
            )
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// How the VMM drivers start cappers: the program that has the
/// [`CAP_LOG_FLAG`] mode (the daemon passes its own executable) and the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCapper {
    pub program: PathBuf,
    pub cap: u64,
}

impl LogCapper {
    pub fn new(program: impl Into<PathBuf>, cap: u64) -> LogCapper {
        LogCapper {
            program: program.into(),
            cap,
        }
    }

    /// The capper's command line for `file`.
    pub fn command(&self, file: &Path) -> Cmd {
        Cmd::new(&self.program)
            .arg(CAP_LOG_FLAG)
            .arg(file)
            .arg(self.cap.to_string())
    }

    /// Starts a capper for `file`; returns its pid and the pipe's write end,
    /// to become the VMM's stdout or stderr (drop it after spawning the VMM,
    /// so the capper sees EOF when the VMM exits).
    pub fn start(&self, file: &Path) -> Result<(u32, OwnedFd), VmmError> {
        let io = |source| VmmError::Io {
            action: "create a pipe for",
            path: file.to_owned(),
            source,
        };
        let (read, write) = banger_sys::pipe().map_err(io)?;
        let pid = self.command(file).spawn_detached_io(
            Detached::Pipe(read),
            Detached::Null,
            Detached::Null,
        )?;
        tracing::debug!(pid, log = %file.display(), cap = self.cap, "log capper started");
        Ok((pid, write))
    }
}

/// Whether `argv` is a capper of one of `handle`'s logs.
pub fn is_capper_of(handle: &VmHandle, argv: &Argv) -> bool {
    use std::os::unix::ffi::OsStrExt;
    argv.has(CAP_LOG_FLAG.as_bytes())
        && (argv.has(handle.console_log.as_os_str().as_bytes())
            || argv.has(handle.vmm_log.as_os_str().as_bytes()))
}

/// Stops the cappers among `handle`'s helpers, once the VMM is gone: each
/// gets [`DRAIN_GRACE`] to read the pipe's EOF and exit by itself (so the
/// last output is written), then SIGTERM, then SIGKILL. Pids that are not a
/// capper of this VM are skipped; returns those still running.
pub fn stop_cappers(handle: &VmHandle) -> Vec<u32> {
    let id = |argv: &Argv| is_capper_of(handle, argv);
    let deadline = Instant::now() + DRAIN_GRACE;
    let mut left = Vec::new();
    for &pid in &handle.helper_pids {
        if !proc::is_ours(pid, &id) {
            continue;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !proc::wait_gone(pid, &id, remaining) && !proc::terminate(pid, &id, TERM_GRACE) {
            left.push(pid);
        }
    }
    left
}

/// The capper: copies `input` into `file` until EOF, keeping at most `cap`
/// bytes in `file` and the previous `cap` in `FILE.1`. Write errors drop the
/// output they concern (the input is always drained, so the writer never
/// blocks on a full pipe); only a read error ends it early.
pub fn cap_stream(mut input: impl Read, file: &Path, cap: u64) -> std::io::Result<()> {
    let cap = cap.max(MIN_CAP);
    let mut log = Log::open(file, cap);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        log.write(&buf[..n]);
    }
}

/// The file being written, its size and its logical start.
struct Log {
    path: PathBuf,
    cap: u64,
    file: Option<File>,
    size: u64,
    start: u64,
}

impl Log {
    fn open(path: &Path, cap: u64) -> Log {
        let mut log = Log {
            path: path.to_owned(),
            cap,
            file: None,
            size: 0,
            start: read_start(path).unwrap_or(0),
        };
        log.reopen();
        // A log longer than the cap (written before capping, or with a
        // larger cap) is rotated at once.
        if log.size >= cap {
            log.rotate();
        }
        log
    }

    fn reopen(&mut self) {
        match File::options().create(true).append(true).open(&self.path) {
            Ok(f) => {
                self.size = f.metadata().map_or(0, |m| m.len());
                self.file = Some(f);
            }
            Err(e) => {
                eprintln!("cannot open {}: {e}", self.path.display());
                self.file = None;
            }
        }
    }

    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.file.is_none() {
                self.reopen();
            }
            let room = usize::try_from(self.cap.saturating_sub(self.size)).unwrap_or(usize::MAX);
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            let written = match &mut self.file {
                Some(f) => f.write_all(now).map(|()| now.len()),
                None => Ok(0),
            };
            match written {
                Ok(n) => self.size += n as u64,
                Err(e) => {
                    // Dropped; the size is read again from the file.
                    eprintln!("cannot write {}: {e}", self.path.display());
                    self.file = None;
                    return;
                }
            }
            if self.size >= self.cap {
                self.rotate();
            }
            bytes = later;
        }
    }

    /// `FILE` → `FILE.1`, `FILE.start` advanced, a new empty `FILE`.
    fn rotate(&mut self) {
        if let Err(e) = std::fs::rename(&self.path, rotated_path(&self.path)) {
            eprintln!("cannot rotate {}: {e}", self.path.display());
            // Never grow past the cap: start the file over instead.
            let _ = File::create(&self.path);
        }
        self.start += self.size;
        let start = start_path(&self.path);
        let tmp = with_suffix(&self.path, ".start.tmp");
        if let Err(e) = std::fs::write(&tmp, format!("{}\n", self.start))
            .and_then(|()| std::fs::rename(&tmp, &start))
        {
            eprintln!("cannot record {}: {e}", start.display());
        }
        self.file = None;
        self.reopen();
    }
}

/// The `--cap-log FILE BYTES` mode, given the arguments after the flag.
/// Reads stdin until EOF; returns the process's exit code.
pub fn main(args: &[OsString]) -> i32 {
    let [file, cap] = args else {
        eprintln!("usage: {CAP_LOG_FLAG} FILE BYTES");
        return 2;
    };
    let Some(cap) = cap.to_str().and_then(|c| c.parse::<u64>().ok()) else {
        eprintln!("{CAP_LOG_FLAG}: BYTES must be a number");
        return 2;
    };
    match cap_stream(std::io::stdin().lock(), Path::new(file), cap) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{CAP_LOG_FLAG} {}: {e}", Path::new(file).display());
            1
        }
    }
}

/// A capped log opened for reading: the kept bytes as one logical range,
/// `FILE.1` (if any) then `FILE`, opened together consistently.
#[derive(Debug)]
pub struct CappedLog {
    /// `(file, logical offset of its first byte, its length)`, oldest first.
    pub parts: Vec<(File, u64, u64)>,
    /// The logical offset of the oldest byte still kept: this many bytes
    /// were discarded by the cap.
    pub first: u64,
    /// The logical offset after the newest byte.
    pub end: u64,
}

impl CappedLog {
    /// Opens `file` and its `.1`; `Ok(None)` when `file` does not exist.
    /// Retries while a rotation moves the files underneath.
    pub fn open(file: &Path) -> std::io::Result<Option<CappedLog>> {
        const ATTEMPTS: usize = 20;
        for attempt in 1..=ATTEMPTS {
            let before = read_start(file)?;
            let current = match File::open(file) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if before == 0 && !rotated_path(file).exists() {
                        return Ok(None);
                    }
                    // Mid-rotation: the new file is about to appear. A
                    // capper that died right there left only `.1`.
                    if attempt < ATTEMPTS {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    None
                }
                Err(e) => return Err(e),
            };
            let rotated = match File::open(rotated_path(file)) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            if read_start(file)? != before && attempt < ATTEMPTS {
                continue;
            }
            let mut parts = Vec::new();
            let mut first = before;
            if let Some(r) = rotated {
                let len = r.metadata()?.len();
                if len <= before {
                    first = before - len;
                    parts.push((r, first, len));
                }
            }
            let mut end = before;
            if let Some(c) = current {
                let len = c.metadata()?.len();
                end += len;
                parts.push((c, before, len));
            }
            return Ok(Some(CappedLog { parts, first, end }));
        }
        Err(std::io::Error::other(
            "the log kept rotating while it was read",
        ))
    }

    /// Reads the logical range `[from, to)` (clamped to what is kept).
    pub fn read_range(&mut self, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
        use std::io::{Seek, SeekFrom};
        let mut out = Vec::new();
        for (file, start, len) in &mut self.parts {
            let (lo, hi) = (from.max(*start), to.min(*start + *len));
            if lo >= hi {
                continue;
            }
            file.seek(SeekFrom::Start(lo - *start))?;
            // The file may grow while it is read; `take` keeps the range.
            file.take(hi - lo).read_to_end(&mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;

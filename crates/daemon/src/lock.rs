//! The state directory's lock, taken before the daemon changes anything.

use std::fs::File;
use std::io::{Read, Seek, Write};

use banger_config::Paths;

use crate::error::{StartupError, io_err};

/// One daemon per state directory: an exclusive advisory lock on
/// `run/bangerd.lock`, held for the daemon's life. The kernel drops it when
/// the daemon dies, so a stale lock file never blocks a restart. The holder
/// writes its pid into the file, so a second daemon can say who holds it.
pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire(paths: &Paths) -> Result<StateLock, StartupError> {
        let lock = paths.run_dir.join("bangerd.lock");
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock)
            .map_err(io_err("open the lock file", &lock))?;
        match banger_sys::os::lock_exclusive_nonblocking(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut text = String::new();
                let _ = (&file).take(32).read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "pid unknown".to_owned(),
                };
                return Err(StartupError::AlreadyRunning {
                    socket: paths.socket.clone(),
                    lock,
                    holder,
                });
            }
            Err(e) => return Err(io_err("lock", &lock)(e)),
        }
        // Ours now: say so for the next daemon that finds it held.
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io_err("write our pid into", &lock))?;
        Ok(StateLock { _file: file })
    }
}

//! Where the agent's messages go.
//!
//! Everything goes to stderr: under systemd that is the journal; as an init
//! (`init`, `guest-init`) it is `/dev/console`, i.e. the VMM's serial log.
//! Once [`use_kmsg`] is called (the init modes, when `/dev` exists), errors
//! go to the kernel log instead, which the kernel also prints on the
//! console, so they are in `dmesg` too. Routine messages stay on the
//! console: the kernel rate-limits `/dev/kmsg` writers (10 lines per 5 s by
//! default) and would silently drop most of a boot's progress lines.
//!
//! Writing a message never fails or panics: logging must not be a new way
//! for PID 1 to die.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// The kernel accepts at most this much per `/dev/kmsg` record.
const KMSG_MAX: usize = 976;

static KMSG: OnceLock<Mutex<File>> = OnceLock::new();

/// Message severities, with their syslog levels for `/dev/kmsg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The guest cannot boot; printed even with `quiet`.
    Fatal = 2,
    Error = 3,
    Warn = 4,
    Info = 6,
}

/// Sends later errors to `/dev/kmsg` (once `/dev` is mounted). Returns
/// false, and keeps using stderr, when it cannot be opened.
pub fn use_kmsg() -> bool {
    if KMSG.get().is_some() {
        return true;
    }
    match OpenOptions::new().write(true).open("/dev/kmsg") {
        Ok(file) => KMSG.set(Mutex::new(file)).is_ok() || KMSG.get().is_some(),
        Err(_) => false,
    }
}

/// Logs one message.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    let message = args.to_string();
    let to_kmsg = matches!(level, Level::Fatal | Level::Error);
    if let Some(kmsg) = KMSG.get().filter(|_| to_kmsg) {
        let mut record = format!("<{}>banger-agent: {message}", level as u8);
        truncate_at_char_boundary(&mut record, KMSG_MAX);
        record.push('\n');
        let written = match kmsg.lock() {
            Ok(mut file) => file.write_all(record.as_bytes()).is_ok(),
            Err(_) => false,
        };
        if written {
            return;
        }
    }
    let prefix = match level {
        Level::Fatal => "FATAL: ",
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info => "",
    };
    let _ = writeln!(std::io::stderr(), "banger-agent: {prefix}{message}");
}

fn truncate_at_char_boundary(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

/// `info!("...", args)`: routine progress.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, format_args!($($arg)*)) };
}

/// `warn!("...", args)`: something is missing but the agent carries on.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, format_args!($($arg)*)) };
}

/// `error!("...", args)`: a step failed.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_utf8() {
        let mut s = "aé".repeat(600);
        truncate_at_char_boundary(&mut s, KMSG_MAX);
        assert!(s.len() <= KMSG_MAX);
        assert!(s.len() >= KMSG_MAX - 1);
        let mut short = String::from("short");
        truncate_at_char_boundary(&mut short, KMSG_MAX);
        assert_eq!(short, "short");
    }
}

//! Noticing that the host went away while a command runs.
//!
//! The host sends nothing on an `exec` connection after its request (and,
//! with `stdin_stream`, its input frames up to the end frame), so reading
//! it then only ever ends in end of file or an error: the host closed the
//! connection, shut down its write half (what a VMM's splice shows the
//! guest when the host side closes), or the connection broke. Nobody wants
//! the command's result any more, and the command is killed.

use std::io;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use crate::wire::{TimeoutStream, is_timeout};

/// Reads `stream` until the host hangs up, and returns why; or until
/// `stop` says the command is over (its sender was dropped), and returns
/// `None`. Bytes the host should not have sent are read and dropped.
/// `poll` bounds how late the end of the command is noticed.
pub(super) fn watch<S: TimeoutStream + ?Sized>(
    stream: &mut S,
    stop: &Receiver<()>,
    poll: Duration,
) -> Option<String> {
    if let Err(e) = stream.set_read_timeout(Some(poll)) {
        crate::warn!("cannot watch the connection for a hang-up: {e}");
        return None;
    }
    let mut buf = [0u8; 4096];
    loop {
        if let Err(TryRecvError::Disconnected) = stop.try_recv() {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some("the host closed the connection".into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted || is_timeout(&e) => {}
            Err(e) => return Some(format!("the connection failed: {e}")),
        }
    }
}

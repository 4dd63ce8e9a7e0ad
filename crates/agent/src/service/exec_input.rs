//! `exec` with `stdin_stream`: the command's standard input arrives as input
//! frames on the connection, after the request.
//!
//! A dedicated thread reads the frames and writes their bytes to the
//! command's stdin pipe. A command that reads slowly therefore slows the
//! host's writer down (the socket's buffers fill) instead of growing the
//! agent's memory, and the connection's own thread stays free to relay
//! output and watch the command.
//!
//! Input that ends any other way than with the end frame (connection closed
//! or broken, a malformed or oversized frame, a stall past the command's
//! timeout) is incomplete. The pipe is then kept open and the command's
//! process group killed, so nothing ever sees end of file on partial input
//! and acts on it (a half-extracted archive, say).
//!
//! The same thread watches the connection once there is no input to read
//! (after the end frame, or from the start without `stdin_stream`): a host
//! that hangs up while the command runs gets its command killed
//! ([`super::hangup`]), since nobody will read its result.

use std::io::{self, Write};
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::exec_spec::ExecSpec;
use super::hangup;
use super::process::{ExecError, MAX_POLL, feed_stdin, kill_group, kill_pgid};
use crate::protocol::{InputEvent, InputFrame, MAX_FRAME_LINE_BYTES};
use crate::wire::{LineError, LineReader, TimeoutStream};

/// How often the input thread, while no frame arrives, checks whether the
/// command is over.
const STOP_POLL: Duration = MAX_POLL;

/// The connection's read side, positioned just after the request line.
pub struct InputSource {
    lines: LineReader<Box<dyn TimeoutStream + Send>>,
}

impl InputSource {
    /// `reader` is a handle on the connection used only for reading;
    /// `buffered` holds what was read past the request's newline already
    /// (the first frames, when the host sent them right behind it).
    pub fn new<S: TimeoutStream + Send + 'static>(reader: S, buffered: Vec<u8>) -> InputSource {
        InputSource {
            lines: LineReader::with_pending(Box::new(reader), buffered),
        }
    }
}

/// Why the command must die before it ends.
enum Doom {
    /// Its streamed input can never be complete.
    Incomplete(String),
    /// The host hung up: nobody wants its result.
    HungUp(String),
}

/// What the input thread and the command's watcher share.
struct Shared {
    /// Why the command must die, once that is known.
    doom: OnceLock<Doom>,
    /// The watcher killed the process group for it.
    killed: AtomicBool,
}

/// A running input (or hang-up watching) thread. Dropping it tells the
/// thread the command is over (the watcher has reaped it), so the thread
/// stops reading.
pub(super) struct StdinFeed {
    shared: Arc<Shared>,
    program: String,
    // Never sent on: dropping it disconnects the thread's receiver.
    _stop: mpsc::Sender<()>,
}

/// How the frames ended.
enum Fed {
    /// The end frame: the input is complete.
    Complete,
    /// The command is over and the agent answers without the rest.
    Stopped,
    /// The input can never be complete.
    Failed(String),
}

/// Starts whatever feeds the command's stdin: the request's bytes, or the
/// input frames of `input`, read until `deadline` (the command's timeout).
/// With `input` (the connection's read side), the connection is then
/// watched for the host hanging up.
pub(super) fn start(
    child: &mut Child,
    spec: &ExecSpec,
    input: Option<InputSource>,
    deadline: Instant,
) -> Result<Option<StdinFeed>, ExecError> {
    if let Some(data) = &spec.stdin {
        feed_stdin(child, data.clone());
    } else if spec.input_follows() && input.is_none() {
        return Err(ExecError::NoInput);
    }
    let Some(input) = input else {
        return Ok(None);
    };
    StdinFeed::start(child, input, deadline, spec)
        .map(Some)
        .map_err(ExecError::Thread)
}

impl StdinFeed {
    fn start(
        child: &mut Child,
        input: InputSource,
        deadline: Instant,
        spec: &ExecSpec,
    ) -> io::Result<StdinFeed> {
        let shared = Arc::new(Shared {
            doom: OnceLock::new(),
            killed: AtomicBool::new(false),
        });
        let (stop_tx, stop_rx) = mpsc::channel();
        let (pipe_tx, pipe_rx) = mpsc::channel::<Option<ChildStdin>>();
        let pgid = child.id();
        let state = Arc::clone(&shared);
        let program = &spec.argv[0];
        let name = program.clone();
        let raw = spec.stdin_raw;
        thread::Builder::new()
            .name("exec-input".into())
            .spawn(move || {
                let Ok(pipe) = pipe_rx.recv() else { return };
                let streamed = pipe.is_some();
                let mut stdin = pipe;
                let mut lines = input.lines;
                let fed = match (streamed, raw) {
                    (false, _) => Fed::Complete,
                    (true, Some(len)) => feed_raw(&mut lines, &mut stdin, len, deadline, &stop_rx),
                    (true, None) => feed(&mut lines, &mut stdin, deadline, &stop_rx),
                };
                match fed {
                    Fed::Failed(reason) => {
                        let _ = state.doom.set(Doom::Incomplete(reason));
                        // Hold the pipe until the command is dead: closing
                        // it would show the command an end of file, as if
                        // its input were complete.
                        let _ = stop_rx.recv();
                    }
                    Fed::Complete => {
                        let (mut conn, _) = lines.into_parts();
                        if let Some(reason) = hangup::watch(&mut conn, &stop_rx, STOP_POLL) {
                            let _ = state.doom.set(Doom::HungUp(reason));
                        }
                    }
                    Fed::Stopped => {}
                }
                if stdin.is_some() {
                    kill_leftovers(&state, pgid, &name);
                }
            })?;
        // Handed over only once the thread runs: had it failed to start,
        // the caller kills the group before the pipe closes.
        let pipe = spec
            .input_follows()
            .then(|| child.stdin.take().expect("stdin is piped"));
        let _ = pipe_tx.send(pipe);
        Ok(StdinFeed {
            shared,
            program: program.clone(),
            _stop: stop_tx,
        })
    }

    /// Kills the command's process group once its input is known to be
    /// incomplete or the host hung up. Call it only while the command is
    /// not yet reaped.
    pub(super) fn kill_if_doomed(&self, child: &Child) {
        if self.shared.killed.load(Ordering::SeqCst) {
            return;
        }
        if let Some(doom) = self.shared.doom.get() {
            match doom {
                Doom::Incomplete(reason) => crate::warn!(
                    "exec {:?}: incomplete input ({reason}); killing it so nothing acts on partial input",
                    self.program
                ),
                Doom::HungUp(reason) => crate::warn!(
                    "exec {:?}: {reason} while it ran; killing it, nobody wants its result",
                    self.program
                ),
            }
            kill_group(child);
            self.shared.killed.store(true, Ordering::SeqCst);
        }
    }
}

/// Reads frames until the end frame, a failure, or the command being over,
/// writing their bytes to `stdin` while it takes them.
fn feed(
    lines: &mut LineReader<Box<dyn TimeoutStream + Send>>,
    stdin: &mut Option<ChildStdin>,
    deadline: Instant,
    stop: &Receiver<()>,
) -> Fed {
    loop {
        if let Err(TryRecvError::Disconnected) = stop.try_recv() {
            return Fed::Stopped;
        }
        let now = Instant::now();
        if now >= deadline {
            return Fed::Failed("no end of input within the command's timeout".into());
        }
        // Short waits, so the end of the command is noticed even when the
        // host sends nothing more.
        let line = match lines.next_line(MAX_FRAME_LINE_BYTES, (now + STOP_POLL).min(deadline)) {
            Ok(line) => line,
            Err(LineError::TimedOut) => continue,
            Err(LineError::TooLong { limit }) => {
                return Fed::Failed(format!("an input frame is longer than {limit} bytes"));
            }
            Err(LineError::Closed { .. }) => {
                return Fed::Failed("the connection ended before the end of input".into());
            }
            Err(LineError::Io(e)) => return Fed::Failed(format!("reading input failed: {e}")),
        };
        match InputFrame::decode(&line) {
            Err(e) => return Fed::Failed(format!("bad input frame: {e}")),
            Ok(InputEvent::End) => {
                // Closing the pipe is the command's end of file.
                *stdin = None;
                return Fed::Complete;
            }
            Ok(InputEvent::Data(bytes)) => {
                // EPIPE: the command closed its stdin or ended and wants no
                // more. Keep reading (and dropping) frames so the host's
                // writer never blocks on a full socket.
                if let Some(pipe) = stdin {
                    if pipe.write_all(&bytes).is_err() {
                        *stdin = None;
                    }
                }
            }
        }
    }
}

/// Copies exactly `len` raw bytes from the connection to `stdin`, then
/// closes it; anything short of `len` is incomplete input. Same rules as
/// [`feed`]: a command that stops reading gets the rest dropped.
fn feed_raw(
    lines: &mut LineReader<Box<dyn TimeoutStream + Send>>,
    stdin: &mut Option<ChildStdin>,
    len: u64,
    deadline: Instant,
    stop: &Receiver<()>,
) -> Fed {
    let mut left = len;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        if let Err(TryRecvError::Disconnected) = stop.try_recv() {
            return Fed::Stopped;
        }
        let now = Instant::now();
        if now >= deadline {
            return Fed::Failed("no end of input within the command's timeout".into());
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match lines.read_raw(&mut buf[..want], (now + STOP_POLL).min(deadline)) {
            Ok(0) => {
                return Fed::Failed(format!(
                    "the connection ended {left} bytes before the end of input"
                ));
            }
            Ok(n) => n,
            Err(LineError::TimedOut) => continue,
            Err(e) => return Fed::Failed(format!("reading input failed: {e}")),
        };
        left -= n as u64;
        if let Some(pipe) = stdin {
            if pipe.write_all(&buf[..n]).is_err() {
                *stdin = None;
            }
        }
    }
    *stdin = None;
    Fed::Complete
}

/// The command ended before its input did, and the pipe was still open:
/// processes it left running may still read it and must not see the end of
/// file that closing it means. While members remain the group id stays
/// taken; when none do, the id was freed a moment ago, and handing it to a
/// new group so soon would need the whole pid space to wrap around.
fn kill_leftovers(shared: &Shared, pgid: u32, program: &str) {
    if shared.killed.load(Ordering::SeqCst) {
        return;
    }
    if kill_pgid(pgid) {
        crate::warn!(
            "exec {program:?}: ended before its input did; killed the processes it left \
             so none acts on partial input"
        );
    }
}

#[cfg(test)]
mod tests;

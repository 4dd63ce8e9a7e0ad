//! Many byte streams over one serial port, with per-stream credit so a
//! stream whose reader stalls never stalls the others.
//!
//! Each stream is bridged to a local Unix stream (the sidecar's client
//! connection on the host, one end of a socket pair in the guest) by two
//! threads: the *out-pump* reads the local stream and sends DATA frames
//! while it has credit; the *in-writer* writes received DATA to the local
//! stream and returns the credit. A stream exists while its entry is in
//! [`State::streams`]; removing the entry (RST, a new session) shuts the
//! local stream down, which ends both threads.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::frame::{Event, Frame, MAX_PAYLOAD, PAD, Parser};

/// Bytes a sender may have in flight on one stream before it waits for
/// credit; the receiver queues at most this much.
pub const WINDOW: usize = 256 * 1024;
/// Streams one session carries at once.
pub const MAX_STREAMS: usize = 64;

/// Which end of the port this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Starts sessions and opens streams (the sidecar beside the VMM).
    Host,
    /// Answers them (the guest agent).
    Guest,
}

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("the guest has not taken a session yet (is the agent running?)")]
    NotReady,
    #[error("{MAX_STREAMS} streams are open already")]
    TooMany,
    #[error("the guest refused: {0}")]
    Refused(String),
    #[error("no answer from the guest within {0:?}")]
    Timeout(Duration),
    #[error("the session ended while opening")]
    Reset,
    #[error("cannot write to the port: {0}")]
    Io(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Opening {
    Pending,
    Open,
    Refused(String),
}

struct Stream {
    opening: Opening,
    /// Bytes we may still send.
    credit: usize,
    /// Received DATA not yet written locally; `None` is the peer's EOF.
    inbound: VecDeque<Option<Vec<u8>>>,
    inbound_bytes: usize,
    /// A handle on the local stream, to shut it down when the stream ends.
    local: Option<UnixStream>,
    out_done: bool,
    in_done: bool,
}

impl Stream {
    fn new(opening: Opening) -> Stream {
        Stream {
            opening,
            credit: WINDOW,
            inbound: VecDeque::new(),
            inbound_bytes: 0,
            local: None,
            out_done: false,
            in_done: false,
        }
    }

    fn end(self) {
        if let Some(local) = self.local {
            let _ = local.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Default)]
struct State {
    synced: bool,
    /// The host's current session nonce.
    nonce: u64,
    streams: HashMap<u32, Stream>,
    next_id: u32,
}

struct Shared {
    role: Role,
    writer: Mutex<Box<dyn Write + Send>>,
    state: Mutex<State>,
    changed: Condvar,
    /// Guest: the ports that accept streams, and where they go.
    accept: Option<(Vec<u32>, Mutex<mpsc::Sender<UnixStream>>)>,
}

/// One end of a multiplexed port. Cheap to clone.
#[derive(Clone)]
pub struct Mux {
    shared: Arc<Shared>,
}

impl Mux {
    /// The host end, writing to the port through `writer`. Call
    /// [`Mux::start_session`], then run [`Mux::read_from`] on a thread.
    pub fn host(writer: Box<dyn Write + Send>) -> Mux {
        Mux::build(Role::Host, writer, None)
    }

    /// The guest end: streams opened to one of `ports` arrive on the
    /// returned receiver as the far end of a socket pair.
    pub fn guest(
        writer: Box<dyn Write + Send>,
        ports: Vec<u32>,
    ) -> (Mux, mpsc::Receiver<UnixStream>) {
        let (tx, rx) = mpsc::channel();
        (
            Mux::build(Role::Guest, writer, Some((ports, Mutex::new(tx)))),
            rx,
        )
    }

    fn build(
        role: Role,
        writer: Box<dyn Write + Send>,
        accept: Option<(Vec<u32>, Mutex<mpsc::Sender<UnixStream>>)>,
    ) -> Mux {
        Mux {
            shared: Arc::new(Shared {
                role,
                writer: Mutex::new(writer),
                state: Mutex::new(State {
                    next_id: 1,
                    ..State::default()
                }),
                changed: Condvar::new(),
                accept,
            }),
        }
    }

    pub fn is_synced(&self) -> bool {
        self.shared.lock().synced
    }

    /// Host: drops every stream and offers a new session, after enough
    /// zeros to end any frame the guest is half-way through.
    pub fn start_session(&self) -> io::Result<()> {
        let nonce = new_nonce();
        {
            let mut state = self.shared.lock();
            state.synced = false;
            state.nonce = nonce;
            self.shared.drop_streams(&mut state);
        }
        let mut bytes = vec![0u8; PAD];
        bytes.extend_from_slice(&Frame::Sync { nonce }.encode());
        self.shared.write(&bytes)
    }

    /// Guest: asks the host for a session (sent again every `every` while
    /// none is taken), forever, on its own thread.
    pub fn request_sessions(&self, every: Duration) {
        let shared = Arc::clone(&self.shared);
        let _ = thread::Builder::new()
            .name("mux-sync".into())
            .spawn(move || {
                loop {
                    if !shared.lock().synced {
                        let _ = shared.send(&Frame::SyncReq);
                    }
                    thread::sleep(every);
                }
            });
    }

    /// The peer went away (the port reads EOF): every stream ends, and the
    /// next bytes are hunted for a sync frame.
    pub fn lost(&self, parser: &mut Parser) {
        parser.reset();
        let mut state = self.shared.lock();
        state.synced = false;
        self.shared.drop_streams(&mut state);
    }

    /// Reads the port until it reports EOF (`Ok`) or fails, handling every
    /// frame. `parser` carries a half-read frame across calls.
    pub fn read_from(&self, port: &mut dyn Read, parser: &mut Parser) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match port.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            for event in parser.push(&buf[..n]) {
                self.handle(event)?;
            }
        }
    }

    /// Host: opens a stream to `port`; bridge it with [`Mux::attach`].
    pub fn open(&self, port: u32, timeout: Duration) -> Result<u32, OpenError> {
        let id = {
            let mut state = self.shared.lock();
            if !state.synced {
                return Err(OpenError::NotReady);
            }
            if state.streams.len() >= MAX_STREAMS {
                return Err(OpenError::TooMany);
            }
            let mut id = state.next_id;
            while id == 0 || state.streams.contains_key(&id) {
                id = id.wrapping_add(1);
            }
            state.next_id = id.wrapping_add(1);
            state.streams.insert(id, Stream::new(Opening::Pending));
            id
        };
        if let Err(e) = self.shared.send(&Frame::Open { stream: id, port }) {
            self.shared.remove(id);
            return Err(OpenError::Io(e.to_string()));
        }
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            match state.streams.get(&id).map(|s| s.opening.clone()) {
                None => return Err(OpenError::Reset),
                Some(Opening::Open) => return Ok(id),
                Some(Opening::Refused(reason)) => {
                    state.streams.remove(&id);
                    return Err(OpenError::Refused(reason));
                }
                Some(Opening::Pending) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                if let Some(stream) = state.streams.remove(&id) {
                    stream.end();
                }
                drop(state);
                let _ = self.shared.send(&Frame::Rst { stream: id });
                return Err(OpenError::Timeout(timeout));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Bridges stream `id` to `local` until both directions end or the
    /// stream is reset. Data received before this call is kept for it.
    pub fn attach(&self, id: u32, local: UnixStream) -> io::Result<()> {
        let reader = local.try_clone()?;
        let writer = local.try_clone()?;
        {
            let mut state = self.shared.lock();
            let Some(stream) = state.streams.get_mut(&id) else {
                let _ = local.shutdown(Shutdown::Both);
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "stream reset",
                ));
            };
            stream.local = Some(local);
        }
        let out = Arc::clone(&self.shared);
        let inbound = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name(format!("mux-out-{id}"))
            .spawn(move || out.pump_out(id, reader))
            .and_then(|_| {
                thread::Builder::new()
                    .name(format!("mux-in-{id}"))
                    .spawn(move || inbound.write_in(id, writer))
            });
        if let Err(e) = spawned {
            self.shared.reset_stream(id);
            return Err(e);
        }
        Ok(())
    }

    fn handle(&self, event: Event) -> io::Result<()> {
        let shared = &self.shared;
        let frame = match event {
            Event::Frame(frame) => frame,
            Event::Lost => {
                {
                    let mut state = shared.lock();
                    state.synced = false;
                    shared.drop_streams(&mut state);
                }
                // The host starts over at once; the guest's requests go on.
                return match shared.role {
                    Role::Host => self.start_session(),
                    Role::Guest => Ok(()),
                };
            }
        };
        match (shared.role, frame) {
            (Role::Guest, Frame::Sync { nonce }) => {
                {
                    let mut state = shared.lock();
                    shared.drop_streams(&mut state);
                    state.synced = true;
                }
                shared.send(&Frame::SyncAck { nonce })
            }
            (Role::Host, Frame::SyncAck { nonce }) => {
                let mut state = shared.lock();
                if nonce == state.nonce {
                    state.synced = true;
                    shared.changed.notify_all();
                }
                Ok(())
            }
            (Role::Host, Frame::SyncReq) => self.start_session(),
            (Role::Guest, Frame::Open { stream, port }) => self.accept(stream, port),
            (Role::Host, Frame::OpenOk { stream }) => {
                let known = shared.set_opening(stream, Opening::Open);
                if known {
                    Ok(())
                } else {
                    shared.send(&Frame::Rst { stream })
                }
            }
            (Role::Host, Frame::OpenErr { stream, reason }) => {
                shared.set_opening(stream, Opening::Refused(reason));
                Ok(())
            }
            (_, Frame::Data { stream, bytes }) => shared.received(stream, Some(bytes)),
            (_, Frame::Eof { stream }) => shared.received(stream, None),
            (_, Frame::Credit { stream, bytes }) => shared.credit(stream, bytes as usize),
            (_, Frame::Rst { stream }) => {
                shared.remove(stream);
                Ok(())
            }
            // A frame meant for the other role: a confused or hostile peer.
            // Dropping it is enough; it carries no stream state we hold.
            _ => Ok(()),
        }
    }

    /// Guest: a stream opened by the host.
    fn accept(&self, id: u32, port: u32) -> io::Result<()> {
        let shared = &self.shared;
        let Some((ports, sender)) = &shared.accept else {
            return Ok(());
        };
        let refusal = {
            let mut state = shared.lock();
            if !state.synced {
                return Ok(());
            }
            if !ports.contains(&port) {
                Some(format!("nothing listens on port {port}"))
            } else if state.streams.contains_key(&id) {
                Some(format!("stream {id} is open already"))
            } else if state.streams.len() >= MAX_STREAMS {
                Some(format!("{MAX_STREAMS} streams are open already"))
            } else {
                state.streams.insert(id, Stream::new(Opening::Open));
                None
            }
        };
        if let Some(reason) = refusal {
            return shared.send(&Frame::OpenErr { stream: id, reason });
        }
        let pair = UnixStream::pair().and_then(|(ours, theirs)| {
            self.attach(id, ours)?;
            Ok(theirs)
        });
        match pair {
            Ok(theirs) => {
                shared.send(&Frame::OpenOk { stream: id })?;
                let sender = sender.lock().unwrap_or_else(|e| e.into_inner());
                if sender.send(theirs).is_err() {
                    shared.reset_stream(id);
                }
                Ok(())
            }
            Err(e) => {
                shared.remove(id);
                shared.send(&Frame::OpenErr {
                    stream: id,
                    reason: format!("cannot start the stream: {e}"),
                })
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.write_all(bytes)?;
        writer.flush()
    }

    fn send(&self, frame: &Frame) -> io::Result<()> {
        self.write(&frame.encode())
    }

    fn drop_streams(&self, state: &mut State) {
        for (_, stream) in state.streams.drain() {
            stream.end();
        }
        self.changed.notify_all();
    }

    /// Ends a stream here; the peer is told nothing.
    fn remove(&self, id: u32) {
        let mut state = self.lock();
        if let Some(stream) = state.streams.remove(&id) {
            stream.end();
        }
        self.changed.notify_all();
    }

    /// Ends a stream here and tells the peer.
    fn reset_stream(&self, id: u32) {
        self.remove(id);
        let _ = self.send(&Frame::Rst { stream: id });
    }

    fn set_opening(&self, id: u32, opening: Opening) -> bool {
        let mut state = self.lock();
        match state.streams.get_mut(&id) {
            Some(stream) if stream.opening == Opening::Pending => {
                stream.opening = opening;
                self.changed.notify_all();
                true
            }
            _ => false,
        }
    }

    fn received(&self, id: u32, bytes: Option<Vec<u8>>) -> io::Result<()> {
        let overrun = {
            let mut state = self.lock();
            let Some(stream) = state.streams.get_mut(&id) else {
                return Ok(());
            };
            let len = bytes.as_ref().map_or(0, Vec::len);
            if stream.inbound_bytes + len > WINDOW {
                true
            } else {
                stream.inbound_bytes += len;
                stream.inbound.push_back(bytes);
                self.changed.notify_all();
                false
            }
        };
        if overrun {
            // More than the credit it was given: the peer ignores flow
            // control, and this stream cannot be trusted any further.
            self.reset_stream(id);
        }
        Ok(())
    }

    fn credit(&self, id: u32, bytes: usize) -> io::Result<()> {
        let overrun = {
            let mut state = self.lock();
            let Some(stream) = state.streams.get_mut(&id) else {
                return Ok(());
            };
            stream.credit = stream.credit.saturating_add(bytes);
            self.changed.notify_all();
            stream.credit > WINDOW
        };
        if overrun {
            self.reset_stream(id);
        }
        Ok(())
    }

    /// Marks one direction of `id` finished; the stream goes when both are.
    fn finish(&self, id: u32, out: bool) {
        let mut state = self.lock();
        let Some(stream) = state.streams.get_mut(&id) else {
            return;
        };
        if out {
            stream.out_done = true;
        } else {
            stream.in_done = true;
        }
        if stream.out_done && stream.in_done {
            if let Some(stream) = state.streams.remove(&id) {
                stream.end();
            }
        }
    }

    /// The out-pump: local stream → DATA frames, as credit allows.
    fn pump_out(&self, id: u32, mut local: UnixStream) {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        loop {
            let allowed = {
                let mut state = self.lock();
                loop {
                    match state.streams.get(&id) {
                        None => return,
                        Some(stream) if stream.credit > 0 => break stream.credit.min(MAX_PAYLOAD),
                        Some(_) => {}
                    }
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            match local.read(&mut buf[..allowed]) {
                Ok(0) => {
                    if self.lock().streams.contains_key(&id) {
                        let _ = self.send(&Frame::Eof { stream: id });
                    }
                    self.finish(id, true);
                    return;
                }
                Ok(n) => {
                    {
                        let mut state = self.lock();
                        let Some(stream) = state.streams.get_mut(&id) else {
                            return;
                        };
                        stream.credit -= n;
                    }
                    let frame = Frame::Data {
                        stream: id,
                        bytes: buf[..n].to_vec(),
                    };
                    if self.send(&frame).is_err() {
                        self.remove(id);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.reset_stream(id);
                    return;
                }
            }
        }
    }

    /// The in-writer: received DATA → local stream, returning credit.
    fn write_in(&self, id: u32, mut local: UnixStream) {
        loop {
            let item = {
                let mut state = self.lock();
                loop {
                    let Some(stream) = state.streams.get_mut(&id) else {
                        return;
                    };
                    if let Some(item) = stream.inbound.pop_front() {
                        stream.inbound_bytes -= item.as_ref().map_or(0, Vec::len);
                        break item;
                    }
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            match item {
                Some(bytes) => {
                    if local.write_all(&bytes).is_err() {
                        self.reset_stream(id);
                        return;
                    }
                    let credit = Frame::Credit {
                        stream: id,
                        bytes: bytes.len() as u32,
                    };
                    if self.send(&credit).is_err() {
                        self.remove(id);
                        return;
                    }
                }
                None => {
                    let _ = local.shutdown(Shutdown::Write);
                    self.finish(id, false);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
impl Mux {
    pub(super) fn shared_streams(&self) -> usize {
        self.shared.lock().streams.len()
    }

    pub(super) fn inject_for_test(&self, frame: Frame) {
        let _ = self.handle(Event::Frame(frame));
    }
}

/// A session nonce: unique per session, not secret (the port is private to
/// one VM and its host process).
fn new_nonce() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

//! The multiplexer's frames and a parser that finds its footing again.
//!
//! A frame is a 9-byte header — kind (u8), stream id (u32, big-endian),
//! payload length (u32, big-endian) — and the payload. The byte stream
//! under it is a virtio-serial port, which a snapshot can cut in the middle
//! of a frame (part of it already in guest memory, the rest lost with the
//! old host process), so each side can lose its place. The parser then
//! *hunts*: it drops bytes until it finds [`MAGIC`] behind a valid sync
//! header, and only sync frames are taken while hunting. A zero byte is
//! never a valid kind, so a run of zeros longer than the largest frame
//! ([`PAD`]) ends any half-read frame and puts the reader into hunting.

/// Bytes that mark a sync frame's payload.
pub const MAGIC: [u8; 8] = *b"\xb4NGRmx01";
pub const HEADER_LEN: usize = 9;
/// The largest DATA payload.
pub const MAX_PAYLOAD: usize = 32 * 1024;
/// The largest frame of any kind.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD;
/// Zeros the host sends before a SYNC: longer than any frame.
pub const PAD: usize = MAX_FRAME + HEADER_LEN;
/// The longest reason an OPEN_ERR carries.
const MAX_REASON: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Host → guest: a new session (payload: MAGIC, nonce).
    Sync = 1,
    /// Guest → host: the session is taken (payload: MAGIC, nonce).
    SyncAck = 2,
    /// Guest → host: please start a session (payload: MAGIC).
    SyncReq = 3,
    /// Host → guest: open a stream to a port (payload: port u32).
    Open = 4,
    OpenOk = 5,
    /// Payload: a reason, UTF-8.
    OpenErr = 6,
    Data = 7,
    /// The receiver consumed this many bytes (payload: u32).
    Credit = 8,
    /// The sender will send no more on this stream.
    Eof = 9,
    /// The stream is gone in both directions.
    Rst = 10,
}

impl Kind {
    fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Sync,
            2 => Kind::SyncAck,
            3 => Kind::SyncReq,
            4 => Kind::Open,
            5 => Kind::OpenOk,
            6 => Kind::OpenErr,
            7 => Kind::Data,
            8 => Kind::Credit,
            9 => Kind::Eof,
            10 => Kind::Rst,
            _ => return None,
        })
    }

    fn is_sync(self) -> bool {
        matches!(self, Kind::Sync | Kind::SyncAck | Kind::SyncReq)
    }

    /// The payload length this kind allows: exact for fixed-size kinds.
    fn length_ok(self, len: usize) -> bool {
        match self {
            Kind::Sync | Kind::SyncAck => len == MAGIC.len() + 8,
            Kind::SyncReq => len == MAGIC.len(),
            Kind::Open | Kind::Credit => len == 4,
            Kind::OpenOk | Kind::Eof | Kind::Rst => len == 0,
            Kind::OpenErr => len <= MAX_REASON,
            Kind::Data => (1..=MAX_PAYLOAD).contains(&len),
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Sync { nonce: u64 },
    SyncAck { nonce: u64 },
    SyncReq,
    Open { stream: u32, port: u32 },
    OpenOk { stream: u32 },
    OpenErr { stream: u32, reason: String },
    Data { stream: u32, bytes: Vec<u8> },
    Credit { stream: u32, bytes: u32 },
    Eof { stream: u32 },
    Rst { stream: u32 },
}

impl Frame {
    /// The frame's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, stream, payload): (Kind, u32, Vec<u8>) = match self {
            Frame::Sync { nonce } => (Kind::Sync, 0, sync_payload(Some(*nonce))),
            Frame::SyncAck { nonce } => (Kind::SyncAck, 0, sync_payload(Some(*nonce))),
            Frame::SyncReq => (Kind::SyncReq, 0, sync_payload(None)),
            Frame::Open { stream, port } => (Kind::Open, *stream, port.to_be_bytes().to_vec()),
            Frame::OpenOk { stream } => (Kind::OpenOk, *stream, Vec::new()),
            Frame::OpenErr { stream, reason } => {
                let mut text = reason.as_bytes().to_vec();
                text.truncate(MAX_REASON);
                (Kind::OpenErr, *stream, text)
            }
            Frame::Data { stream, bytes } => (Kind::Data, *stream, bytes.clone()),
            Frame::Credit { stream, bytes } => {
                (Kind::Credit, *stream, bytes.to_be_bytes().to_vec())
            }
            Frame::Eof { stream } => (Kind::Eof, *stream, Vec::new()),
            Frame::Rst { stream } => (Kind::Rst, *stream, Vec::new()),
        };
        debug_assert!(
            kind.length_ok(payload.len()),
            "{kind:?} of {}",
            payload.len()
        );
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.push(kind as u8);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    fn decode(kind: Kind, stream: u32, payload: &[u8]) -> Option<Frame> {
        let u32_at = |p: &[u8]| u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        let nonce = |p: &[u8]| {
            (p[..MAGIC.len()] == MAGIC).then(|| {
                let mut n = [0u8; 8];
                n.copy_from_slice(&p[MAGIC.len()..]);
                u64::from_be_bytes(n)
            })
        };
        Some(match kind {
            Kind::Sync => Frame::Sync {
                nonce: nonce(payload)?,
            },
            Kind::SyncAck => Frame::SyncAck {
                nonce: nonce(payload)?,
            },
            Kind::SyncReq => (payload == MAGIC).then_some(Frame::SyncReq)?,
            Kind::Open => Frame::Open {
                stream,
                port: u32_at(payload),
            },
            Kind::OpenOk => Frame::OpenOk { stream },
            Kind::OpenErr => Frame::OpenErr {
                stream,
                reason: String::from_utf8_lossy(payload).into_owned(),
            },
            Kind::Data => Frame::Data {
                stream,
                bytes: payload.to_vec(),
            },
            Kind::Credit => Frame::Credit {
                stream,
                bytes: u32_at(payload),
            },
            Kind::Eof => Frame::Eof { stream },
            Kind::Rst => Frame::Rst { stream },
        })
    }
}

fn sync_payload(nonce: Option<u64>) -> Vec<u8> {
    let mut payload = MAGIC.to_vec();
    if let Some(nonce) = nonce {
        payload.extend_from_slice(&nonce.to_be_bytes());
    }
    payload
}

/// What the parser found in the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Frame(Frame),
    /// The stream stopped making sense: the parser is hunting for a sync
    /// frame, and every stream of the session is to be dropped.
    Lost,
}

/// Frames out of a byte stream, hunting for a sync frame after garbage.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    hunting: bool,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new()
    }
}

impl Parser {
    /// A parser that starts out hunting: nothing before the first sync frame
    /// can be trusted to start on a frame boundary.
    pub fn new() -> Parser {
        Parser {
            buf: Vec::new(),
            hunting: true,
        }
    }

    pub fn is_hunting(&self) -> bool {
        self.hunting
    }

    /// Forgets any half-read frame and starts hunting (the peer went away).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.hunting = true;
    }

    /// Feeds bytes; returns the events they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut at = 0;
        loop {
            if self.hunting {
                match find_sync(&self.buf[at..]) {
                    Some(offset) => {
                        at += offset;
                        self.hunting = false;
                    }
                    None => {
                        // Keep what could be the start of a sync frame.
                        let keep = (HEADER_LEN + MAGIC.len()).min(self.buf.len() - at);
                        at = self.buf.len() - keep;
                        break;
                    }
                }
            }
            let rest = &self.buf[at..];
            if rest.len() < HEADER_LEN {
                break;
            }
            let stream = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
            let len = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) as usize;
            let Some(kind) = Kind::from_u8(rest[0]).filter(|k| k.length_ok(len)) else {
                self.hunting = true;
                events.push(Event::Lost);
                at += 1;
                continue;
            };
            if rest.len() < HEADER_LEN + len {
                break;
            }
            match Frame::decode(kind, stream, &rest[HEADER_LEN..HEADER_LEN + len]) {
                Some(frame) => {
                    events.push(Event::Frame(frame));
                    at += HEADER_LEN + len;
                }
                None => {
                    self.hunting = true;
                    events.push(Event::Lost);
                    at += 1;
                }
            }
        }
        self.buf.drain(..at);
        events
    }
}

/// Where the first plausible sync frame starts in `bytes`: a sync kind
/// and length right before [`MAGIC`].
fn find_sync(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = find(&bytes[from..], &MAGIC) {
        let magic_at = from + pos;
        if magic_at >= HEADER_LEN {
            let start = magic_at - HEADER_LEN;
            let header = &bytes[start..magic_at];
            let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
            if Kind::from_u8(header[0]).is_some_and(|k| k.is_sync() && k.length_ok(len)) {
                return Some(start);
            }
        }
        from = magic_at + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

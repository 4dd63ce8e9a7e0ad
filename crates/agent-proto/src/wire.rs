//! Line framing shared by the agent and the client: read one `\n`-terminated
//! line with a size cap and an overall deadline.
//!
//! The deadline is for the whole line, not each `read`, so a peer trickling
//! one byte at a time cannot hold a connection open forever.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use thiserror::Error;

/// A byte stream whose blocking reads and writes can be bounded in time.
pub trait TimeoutStream: Read + Write {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl TimeoutStream for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
}

/// A shared reference reads and writes the socket too, so a reader can
/// borrow a stream its owner still uses for error reports.
impl TimeoutStream for &UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
}

/// A boxed stream, so the agent can hand a connection's read side to a
/// thread without making everything downstream generic over its type.
impl<S: TimeoutStream + ?Sized> TimeoutStream for Box<S> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }
}

/// Why no complete line was read.
#[derive(Debug, Error)]
pub enum LineError {
    #[error("line longer than {limit} bytes")]
    TooLong { limit: usize },
    #[error("connection closed after {received} bytes, before the end of the line")]
    Closed { received: usize },
    #[error("no complete line within the time limit")]
    TimedOut,
    #[error(transparent)]
    Io(io::Error),
}

/// How much to read per system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadChunk {
    /// One byte at a time: nothing past the newline is consumed, for a
    /// handshake line that is followed by a payload on the same stream.
    Exact,
    /// Large reads; bytes after the newline are discarded (the protocol has
    /// one message per direction per connection).
    Buffered,
}

/// Reads one line (without its `\n`) of at most `limit` bytes before
/// `deadline`.
pub fn read_line<S: TimeoutStream>(
    stream: &mut S,
    limit: usize,
    deadline: Instant,
    chunk: ReadChunk,
) -> Result<Vec<u8>, LineError> {
    let mut line = Vec::new();
    let mut buf = vec![
        0u8;
        match chunk {
            ReadChunk::Exact => 1,
            ReadChunk::Buffered => 64 * 1024,
        }
    ];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(LineError::TimedOut);
        }
        stream
            .set_read_timeout(Some(remaining))
            .map_err(LineError::Io)?;
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                return Err(LineError::Closed {
                    received: line.len(),
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(LineError::TimedOut),
            Err(e) => return Err(LineError::Io(e)),
        };
        let data = &buf[..n];
        if let Some(pos) = data.iter().position(|&b| b == b'\n') {
            if line.len() + pos > limit {
                return Err(LineError::TooLong { limit });
            }
            line.extend_from_slice(&data[..pos]);
            return Ok(line);
        }
        if line.len() + n > limit {
            return Err(LineError::TooLong { limit });
        }
        line.extend_from_slice(data);
    }
}

/// Reads successive lines from one stream, keeping what follows a newline
/// for the next line (unlike [`read_line`], which serves one message per
/// connection and may drop it).
pub struct LineReader<S> {
    stream: S,
    pending: Vec<u8>,
}

impl<S: TimeoutStream> LineReader<S> {
    pub fn new(stream: S) -> Self {
        LineReader::with_pending(stream, Vec::new())
    }

    /// A reader whose first bytes are `pending` (read from the stream
    /// earlier, e.g. by another reader), then the stream's.
    pub fn with_pending(stream: S, pending: Vec<u8>) -> Self {
        LineReader { stream, pending }
    }

    /// The stream and the bytes read from it but not yet returned as a
    /// line, which belong to whatever the peer sent next.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.stream, self.pending)
    }

    /// The next line (without its `\n`) of at most `limit` bytes, complete
    /// before `deadline`.
    pub fn next_line(&mut self, limit: usize, deadline: Instant) -> Result<Vec<u8>, LineError> {
        let mut scanned = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(pos) = self.pending[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                if end > limit {
                    return Err(LineError::TooLong { limit });
                }
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                return Ok(line);
            }
            scanned = self.pending.len();
            if scanned > limit {
                return Err(LineError::TooLong { limit });
            }
            match self.read_stream(&mut buf, deadline)? {
                0 => return Err(LineError::Closed { received: scanned }),
                n => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// One read from the stream (not the pending bytes) before `deadline`.
    fn read_stream(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LineError> {
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(LineError::TimedOut);
            }
            self.stream
                .set_read_timeout(Some(remaining))
                .map_err(LineError::Io)?;
            match self.stream.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(LineError::TimedOut),
                Err(e) => return Err(LineError::Io(e)),
            }
        }
    }

    /// Raw bytes, at most `buf.len()`: what is pending first, then the
    /// stream's, waiting until `deadline`. `Ok(0)` is the end of the stream.
    pub fn read_raw(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LineError> {
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        self.read_stream(buf, deadline)
    }
}

/// Writes `payload` followed by `\n` before `timeout` elapses per write.
pub fn write_line<S: TimeoutStream>(
    stream: &mut S,
    payload: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    stream.set_write_timeout(Some(timeout))?;
    let mut framed = Vec::with_capacity(payload.len() + 1);
    framed.extend_from_slice(payload);
    framed.push(b'\n');
    stream.write_all(&framed)?;
    stream.flush()
}

/// Socket timeouts surface as `WouldBlock` (EAGAIN) or `TimedOut`.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn reads_one_line_and_drops_the_newline() {
        let (mut a, mut b) = pair();
        a.write_all(b"hello\nrest").unwrap();
        let line = read_line(&mut b, 100, soon(), ReadChunk::Buffered).unwrap();
        assert_eq!(line, b"hello");
    }

    #[test]
    fn exact_reads_leave_the_rest_in_the_stream() {
        let (mut a, mut b) = pair();
        a.write_all(b"OK 1024\npayload\n").unwrap();
        assert_eq!(
            read_line(&mut b, 64, soon(), ReadChunk::Exact).unwrap(),
            b"OK 1024"
        );
        assert_eq!(
            read_line(&mut b, 64, soon(), ReadChunk::Exact).unwrap(),
            b"payload"
        );
    }

    #[test]
    fn limit_is_exclusive_of_the_newline() {
        let (mut a, mut b) = pair();
        a.write_all(b"12345\n").unwrap();
        assert_eq!(
            read_line(&mut b, 5, soon(), ReadChunk::Buffered).unwrap(),
            b"12345"
        );
        let (mut a, mut b) = pair();
        a.write_all(b"123456\n").unwrap();
        assert!(matches!(
            read_line(&mut b, 5, soon(), ReadChunk::Buffered),
            Err(LineError::TooLong { limit: 5 })
        ));
        let (mut a, mut b) = pair();
        a.write_all(b"1234567").unwrap();
        assert!(matches!(
            read_line(&mut b, 5, soon(), ReadChunk::Exact),
            Err(LineError::TooLong { limit: 5 })
        ));
    }

    #[test]
    fn eof_before_newline_is_closed() {
        let (mut a, mut b) = pair();
        a.write_all(b"partial").unwrap();
        drop(a);
        assert!(matches!(
            read_line(&mut b, 100, soon(), ReadChunk::Buffered),
            Err(LineError::Closed { received: 7 })
        ));
    }

    #[test]
    fn a_silent_peer_times_out_at_the_deadline() {
        let (mut a, mut b) = pair();
        a.write_all(b"no newline").unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(200);
        assert!(matches!(
            read_line(&mut b, 100, deadline, ReadChunk::Buffered),
            Err(LineError::TimedOut)
        ));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }

    #[test]
    fn line_reader_keeps_what_follows_each_newline() {
        let (mut a, b) = pair();
        let mut reader = LineReader::new(b);
        a.write_all(b"one\ntwo\nthr").unwrap();
        assert_eq!(reader.next_line(10, soon()).unwrap(), b"one");
        assert_eq!(reader.next_line(10, soon()).unwrap(), b"two");
        a.write_all(b"ee\n").unwrap();
        assert_eq!(reader.next_line(10, soon()).unwrap(), b"three");
        a.write_all(b"0123456789ab\n").unwrap();
        assert!(matches!(
            reader.next_line(10, soon()),
            Err(LineError::TooLong { limit: 10 })
        ));
        drop(a);
        let (mut a, b) = pair();
        let mut reader = LineReader::new(b);
        a.write_all(b"half").unwrap();
        drop(a);
        assert!(matches!(
            reader.next_line(10, soon()),
            Err(LineError::Closed { received: 4 })
        ));
    }

    #[test]
    fn leftover_bytes_survive_handing_the_stream_on() {
        let (mut a, b) = pair();
        let mut reader = LineReader::new(b);
        a.write_all(b"request\nframe one\nfra").unwrap();
        assert_eq!(reader.next_line(100, soon()).unwrap(), b"request");
        let (b, pending) = reader.into_parts();
        assert_eq!(pending, b"frame one\nfra");
        let mut reader = LineReader::with_pending(Box::new(b), pending);
        a.write_all(b"me two\n").unwrap();
        assert_eq!(reader.next_line(100, soon()).unwrap(), b"frame one");
        assert_eq!(reader.next_line(100, soon()).unwrap(), b"frame two");
    }

    #[test]
    fn write_line_appends_the_newline() {
        let (mut a, mut b) = pair();
        write_line(&mut a, b"{}", Duration::from_secs(1)).unwrap();
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"{}\n");
    }
}

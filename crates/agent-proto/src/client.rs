//! The host side: reach the agent through the VMM's hybrid vsock socket and
//! make one call.
//!
//! Firecracker exposes the guest's vsock as a Unix socket on the host: the
//! host connects, writes `CONNECT <port>\n`, reads `OK <n>\n` (`n` is the
//! host-side port the VMM assigned, not necessarily `<port>`), and the same
//! connection then carries the guest port's byte stream. Under QEMU the
//! agent-mux sidecar (`banger_vmm::agent_mux`, over the serial channel of
//! [`crate::mux`]) speaks the same handshake, so one client serves both
//! VMMs.

mod abort;
mod bounds;
mod error;
mod input;
mod stream;

pub use abort::Aborter;
pub use error::{ClientError, Stage};

/// Where a streaming `exec` hands each piece of the command's output.
pub type OutputSink<'a> = &'a mut dyn FnMut(crate::protocol::OutputStream, &[u8]);

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::protocol::{
    Call, Empty, ExecRequest, ExecResult, HealthResult, IdentityRequest, IdentityResult,
    ListeningPort, MAX_ERROR_MESSAGE_BYTES, MAX_PORTS, Request, Response, ResponseError,
};
use crate::wire::{self, LineError, ReadChunk};

/// The longest handshake reply accepted (`OK 4294967295` fits easily).
const MAX_HANDSHAKE_REPLY: usize = 64;

/// How much longer than the command's own timeout the client waits for an
/// `exec` answer: the agent needs time to kill the process group and send
/// up to 32 MiB of output.
const EXEC_ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// A connection to the agent, handshake done, ready for one call.
///
/// The protocol allows one request per connection, so every call consumes
/// the client; connect again for the next one.
#[derive(Debug)]
pub struct AgentClient {
    stream: UnixStream,
    path: PathBuf,
    timeout: Duration,
    /// Set by an [`Aborter`].
    aborted: Arc<AtomicBool>,
}

impl AgentClient {
    /// A client on a connection whose handshake is done.
    pub(crate) fn over(stream: UnixStream, path: PathBuf, timeout: Duration) -> AgentClient {
        AgentClient {
            stream,
            path,
            timeout,
            aborted: Arc::default(),
        }
    }

    /// Connects to the VMM's hybrid vsock socket at `uds_path` and asks for
    /// guest `port`. `timeout` bounds the connect, the handshake, and later
    /// the call (except `exec`, which also gets its own timeout).
    pub fn connect_hybrid(
        uds_path: &Path,
        port: u32,
        timeout: Duration,
    ) -> Result<AgentClient, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut stream = connect_with_timeout(uds_path, timeout)?;
        // The VMM drops the connection when nothing listens on the guest
        // port yet (the agent is not up): depending on timing that shows as
        // EOF, EPIPE on our write, or a reset. All of them are a refusal.
        let handshake_error = |e: io::Error| {
            if wire::is_timeout(&e) {
                ClientError::Timeout {
                    path: uds_path.to_path_buf(),
                    stage: Stage::Handshake,
                    timeout,
                }
            } else if is_disconnect(&e) {
                ClientError::HandshakeRefused {
                    path: uds_path.to_path_buf(),
                    port,
                    reply: String::new(),
                }
            } else {
                ClientError::Io {
                    path: uds_path.to_path_buf(),
                    stage: Stage::Handshake,
                    source: e,
                }
            }
        };
        wire::write_line(&mut stream, format!("CONNECT {port}").as_bytes(), timeout)
            .map_err(handshake_error)?;
        // One byte at a time: the agent's answer will follow on this stream
        // and must not be swallowed with the handshake.
        let reply =
            match wire::read_line(&mut stream, MAX_HANDSHAKE_REPLY, deadline, ReadChunk::Exact) {
                Ok(line) => line,
                Err(LineError::Closed { .. }) => Vec::new(),
                Err(LineError::TooLong { .. }) => b"<overlong reply>".to_vec(),
                Err(LineError::TimedOut) => {
                    return Err(handshake_error(io::ErrorKind::TimedOut.into()));
                }
                Err(LineError::Io(e)) => return Err(handshake_error(e)),
            };
        if !handshake_accepted(&reply) {
            return Err(ClientError::HandshakeRefused {
                path: uds_path.to_path_buf(),
                port,
                reply: String::from_utf8_lossy(&reply).into_owned(),
            });
        }
        Ok(AgentClient::over(stream, uds_path.to_path_buf(), timeout))
    }

    /// `health`: version, hostname, uptime, boot id. The answer is read
    /// up to [`MAX_SMALL_ANSWER_BYTES`](crate::protocol::MAX_SMALL_ANSWER_BYTES),
    /// and its strings are held to their natural sizes
    /// ([`MAX_HOSTNAME_BYTES`](crate::protocol::MAX_HOSTNAME_BYTES) …).
    pub fn health(self) -> Result<HealthResult, ClientError> {
        let health: HealthResult = self.call(Call::Health)?;
        bounds::health(&health)?;
        Ok(health)
    }

    /// `ports`: listening TCP and unconnected UDP sockets; at most
    /// [`MAX_PORTS`] of them, in an answer of at most
    /// [`MAX_PORTS_ANSWER_BYTES`](crate::protocol::MAX_PORTS_ANSWER_BYTES).
    pub fn ports(self) -> Result<Vec<ListeningPort>, ClientError> {
        let ports: Vec<ListeningPort> = self.call(Call::Ports)?;
        bounds::ports(&ports)?;
        Ok(ports)
    }

    /// `exec`: runs `request.argv` in the guest. A non-zero exit is a
    /// successful call; see [`ExecResult::status`]. The answer is read up
    /// to what the request's output cap allows
    /// ([`exec_answer_limit`](crate::protocol::exec_answer_limit)).
    pub fn exec(self, request: ExecRequest) -> Result<ExecResult, ClientError> {
        self.call(Call::Exec(request))
    }

    /// `identity`: hostname, authorized keys, ssh host key; and for a copy
    /// restored from a snapshot its machine id, NIC, RNG seed and clock.
    pub fn identity(self, request: IdentityRequest) -> Result<IdentityResult, ClientError> {
        let result: IdentityResult = self.call(Call::Identity(request))?;
        bounds::identity(&result)?;
        Ok(result)
    }

    /// `freeze`: the guest is about to be snapshotted; until `thaw` (or an
    /// `identity` with a new RNG seed and clock) the agent refuses `exec`
    /// and `ports` ([`ClientError::is_frozen`]).
    pub fn freeze(self) -> Result<(), ClientError> {
        self.call::<Empty>(Call::Freeze).map(|_| ())
    }

    /// `thaw`: the snapshot is taken; the agent serves everything again.
    pub fn thaw(self) -> Result<(), ClientError> {
        self.call::<Empty>(Call::Thaw).map(|_| ())
    }

    /// `poweroff`: the agent answers, then powers the guest off.
    pub fn poweroff(self) -> Result<(), ClientError> {
        self.call::<Empty>(Call::Poweroff).map(|_| ())
    }

    /// Sends `call` and decodes the result as `T`. The answer is read up to
    /// the call's own limit ([`Call::answer_limit`]), enforced while it is
    /// read, and decoded straight into `T`.
    pub fn call<T: DeserializeOwned>(mut self, call: Call) -> Result<T, ClientError> {
        let answer_within = match &call {
            Call::Exec(request) => self.exec_answer_within(request),
            _ => self.timeout,
        };
        let limit = call.answer_limit();
        let what = Answer::of(&call);
        let line = Request::new(call).encode();
        wire::write_line(&mut self.stream, &line, self.timeout)
            .map_err(|e| self.io_error(Stage::SendingRequest, e))?;
        let deadline = Instant::now() + answer_within;
        let answer = wire::read_line(&mut self.stream, limit, deadline, ReadChunk::Buffered)
            .map_err(|e| self.line_error(e, answer_within, what))?;
        Response::decode_result(&answer).map_err(from_response_error)
    }

    /// Why the answer could not be read, waiting at most `answer_within`.
    fn line_error(&self, e: LineError, answer_within: Duration, what: Answer) -> ClientError {
        if self.was_aborted() {
            return ClientError::Aborted;
        }
        match e {
            LineError::TimedOut => ClientError::Timeout {
                path: self.path.clone(),
                stage: Stage::ReadingResponse,
                timeout: answer_within,
            },
            LineError::TooLong { limit } => ClientError::BadResponse {
                reason: match what {
                    Answer::Ports => format!(
                        "the ports answer is longer than {limit} bytes: the guest reported \
                         more than {MAX_PORTS} listening sockets, or garbage"
                    ),
                    Answer::Method(method) => {
                        format!("the {method} answer is longer than {limit} bytes")
                    }
                    Answer::StreamLine => {
                        format!("a line of the streamed exec answer is longer than {limit} bytes")
                    }
                },
            },
            LineError::Closed { received } => ClientError::BadResponse {
                reason: format!("connection closed after {received} bytes of the response"),
            },
            LineError::Io(e) => self.io_error(Stage::ReadingResponse, e),
        }
    }

    /// How long to wait for the end of an `exec` answer.
    fn exec_answer_within(&self, request: &ExecRequest) -> Duration {
        self.timeout
            .max(request.effective_timeout() + EXEC_ANSWER_MARGIN)
    }

    fn io_error(&self, stage: Stage, source: io::Error) -> ClientError {
        if self.was_aborted() {
            ClientError::Aborted
        } else if wire::is_timeout(&source) {
            ClientError::Timeout {
                path: self.path.clone(),
                stage,
                timeout: self.timeout,
            }
        } else {
            ClientError::Io {
                path: self.path.clone(),
                stage,
                source,
            }
        }
    }
}

/// The peer went away (as opposed to a local failure).
fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// Which answer a line belongs to, for the message when it is too long.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Ports,
    Method(&'static str),
    StreamLine,
}

impl Answer {
    fn of(call: &Call) -> Answer {
        match call {
            Call::Ports => Answer::Ports,
            Call::Exec(request) if request.stream => Answer::StreamLine,
            call => Answer::Method(call.method()),
        }
    }
}

fn from_response_error(e: ResponseError) -> ClientError {
    match e {
        ResponseError::Agent(body) => ClientError::Agent {
            code: body.code,
            message: bounds::cap_message(body.message, MAX_ERROR_MESSAGE_BYTES),
        },
        ResponseError::Malformed(reason) => ClientError::BadResponse { reason },
    }
}

/// `OK <decimal>`: the number is the VMM's host-side port for this
/// connection, which differs from the guest port under Firecracker.
fn handshake_accepted(reply: &[u8]) -> bool {
    let Some(rest) = reply.strip_prefix(b"OK ") else {
        return false;
    };
    std::str::from_utf8(rest)
        .map(|n| n.trim_end_matches('\r').parse::<u32>().is_ok())
        .unwrap_or(false)
}

/// `connect(2)` on a Unix socket blocks when the listener's backlog is full;
/// run it on a helper thread so the caller's timeout holds. A thread left
/// behind on timeout ends when the connect finally returns.
fn connect_with_timeout(path: &Path, timeout: Duration) -> Result<UnixStream, ClientError> {
    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    thread::Builder::new()
        .name("agent-connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(&owned));
        })
        .map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(ClientError::Connect {
            path: path.to_path_buf(),
            source,
        }),
        Err(_) => Err(ClientError::Timeout {
            path: path.to_path_buf(),
            stage: Stage::Connecting,
            timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_reply_must_be_ok_and_a_number() {
        assert!(handshake_accepted(b"OK 1024"));
        assert!(handshake_accepted(b"OK 1073741824"));
        assert!(handshake_accepted(b"OK 5\r"));
        assert!(!handshake_accepted(b""));
        assert!(!handshake_accepted(b"OK"));
        assert!(!handshake_accepted(b"OK "));
        assert!(!handshake_accepted(b"OK port"));
        assert!(!handshake_accepted(b"ERR 1024"));
        assert!(!handshake_accepted(b"ok 1024"));
    }

    #[test]
    fn missing_socket_is_a_retryable_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = AgentClient::connect_hybrid(
            &dir.path().join("absent.sock"),
            1024,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.is_retryable());
    }
}

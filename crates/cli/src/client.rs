//! The daemon client: one request per connection, newline-delimited JSON
//! (see `banger_api::protocol`). In development mode a missing daemon is
//! started on demand.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_api::protocol::{Outcome, OutputStream, ProtocolError, Request, Response};
use banger_config::{Mode, Paths};
use serde::de::DeserializeOwned;

/// How long a freshly started daemon may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bangerd is not running ({socket}); start it with `sudo systemctl start bangerd`")]
    NotRunning { socket: PathBuf },
    #[error("permission denied connecting to {socket}: this daemon belongs to another user")]
    PermissionDenied { socket: PathBuf },
    #[error("cannot talk to bangerd at {socket}")]
    Io {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "bangerd sent an answer this CLI cannot read ({reason}); are `banger` and `bangerd` from the same release?"
    )]
    BadResponse { reason: String },
    #[error("{}", daemon_message(.error, .op_id))]
    Daemon { error: ProtocolError, op_id: String },
    #[error("cannot start bangerd")]
    Start(#[source] banger_sys::ProcessError),
    #[error(
        "cannot find the bangerd binary next to {banger} or in PATH; install both binaries together"
    )]
    NoDaemonBinary { banger: PathBuf },
    #[error("bangerd did not answer within {}s after start-up; see its log {log}{tail}", START_TIMEOUT.as_secs())]
    StartTimeout { log: PathBuf, tail: String },
    #[error("bangerd exited during start-up; see its log {log}{tail}")]
    StartExited { log: PathBuf, tail: String },
    #[error("cannot prepare banger's directories")]
    Dirs(#[source] banger_config::PathError),
    #[error(
        "{what} needs confirmation and stdin is not a terminal: run it again with -f (--force) \
         to go ahead without asking; nothing was changed"
    )]
    NeedsConfirmation { what: String },
    #[error("cannot read the answer from stdin")]
    Stdin(#[source] std::io::Error),
    #[error("cannot write the guest command's output")]
    Output(#[source] std::io::Error),
}

fn daemon_message(error: &ProtocolError, op_id: &str) -> String {
    match error.code {
        banger_api::protocol::ErrorCode::OperationFailed => {
            format!("{} (operation {op_id})", error.message)
        }
        _ => error.message.clone(),
    }
}

pub struct Client {
    socket: PathBuf,
    /// How long a whole exchange may take; `None` waits as long as the
    /// daemon works (a VM boot takes its time).
    limit: Option<Duration>,
}

/// Takes each piece of a streamed command's output; an error ends the call.
pub type OutputHandler<'a> = dyn FnMut(OutputStream, &[u8]) -> std::io::Result<()> + 'a;

enum Connect {
    Connected(UnixStream),
    /// Nobody listens: no socket file, or a stale one.
    Absent,
}

impl Client {
    /// A client for an already running daemon; never starts one.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            limit: None,
        }
    }

    /// The same client, giving up (with a [`ClientError::Io`]) on an
    /// exchange that has not ended within `limit`. For callers that must not
    /// hang on a wedged daemon, such as shell completion. The connect itself
    /// is not timed: a Unix socket nobody listens on refuses at once.
    pub fn with_limit(mut self, limit: Duration) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Connects, starting a development-mode daemon when none answers. Tells
    /// the user on stderr that it did, and where the daemon logs.
    pub fn connect_or_start(paths: &Paths) -> Result<Self, ClientError> {
        let client = Self::new(&paths.socket);
        if let Connect::Connected(_) = client.try_connect()? {
            return Ok(client);
        }
        if paths.mode != Mode::Development {
            return Err(ClientError::NotRunning {
                socket: paths.socket.clone(),
            });
        }
        let pid = start_daemon(paths)?;
        let started = Instant::now();
        loop {
            if let Connect::Connected(_) = client.try_connect()? {
                return Ok(client);
            }
            let tail = || log_tail(&paths.daemon_log);
            // Another CLI may have started a daemon at the same moment; ours
            // then exits on the lock while theirs answers. Only time out or
            // report the exit once nobody answers.
            if !banger_sys::os::process_alive(pid) || is_zombie(pid) {
                if started.elapsed() > Duration::from_secs(2) {
                    return Err(ClientError::StartExited {
                        log: paths.daemon_log.clone(),
                        tail: tail(),
                    });
                }
            } else if started.elapsed() > START_TIMEOUT {
                return Err(ClientError::StartTimeout {
                    log: paths.daemon_log.clone(),
                    tail: tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn try_connect(&self) -> Result<Connect, ClientError> {
        match UnixStream::connect(&self.socket) {
            Ok(s) => Ok(Connect::Connected(s)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(Connect::Absent)
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(ClientError::PermissionDenied {
                    socket: self.socket.clone(),
                })
            }
            Err(source) => Err(ClientError::Io {
                socket: self.socket.clone(),
                source,
            }),
        }
    }

    /// Sends one request and decodes the result as `T`. Long operations
    /// report stages as plain lines on stderr, so stdout stays the result
    /// alone (and parseable with --json).
    pub fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T, ClientError> {
        self.call_with(request, &mut print_stage)
    }

    /// [`Client::call`], handing each stage to `progress`.
    pub fn call_with<T: DeserializeOwned>(
        &self,
        request: Request,
        progress: &mut dyn FnMut(&str),
    ) -> Result<T, ClientError> {
        self.exchange(request, progress, None)
    }

    /// [`Client::call`] for a request whose answer streams output (a
    /// `vm.exec` with `stream`): each piece goes to `output` as it arrives;
    /// an error from `output` ends the call.
    pub fn call_streaming<T: DeserializeOwned>(
        &self,
        request: Request,
        output: &mut OutputHandler<'_>,
    ) -> Result<T, ClientError> {
        self.exchange(request, &mut print_stage, Some(output))
    }

    fn exchange<T: DeserializeOwned>(
        &self,
        request: Request,
        progress: &mut dyn FnMut(&str),
        mut output: Option<&mut OutputHandler<'_>>,
    ) -> Result<T, ClientError> {
        let Connect::Connected(stream) = self.try_connect()? else {
            return Err(ClientError::NotRunning {
                socket: self.socket.clone(),
            });
        };
        let io = |source| ClientError::Io {
            socket: self.socket.clone(),
            source,
        };
        let deadline = self.limit.map(|limit| Instant::now() + limit);
        // Each read and write may wait only for what is left of the limit, so
        // a daemon that trickles lines cannot stretch the exchange past it.
        let arm = |set: fn(&UnixStream, Option<Duration>) -> std::io::Result<()>| {
            let Some(deadline) = deadline else {
                return Ok(());
            };
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => set(&stream, Some(left)),
                _ => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            }
        };
        arm(UnixStream::set_write_timeout).map_err(io)?;
        let mut line =
            serde_json::to_vec(&request.into_envelope(None)).expect("requests always serialise");
        line.push(b'\n');
        // The daemon may answer before reading the request (a refused peer
        // gets `unauthorized` at once and the connection closed), so a failed
        // write is only an error if there is no answer to read either.
        let written = (&stream).write_all(&line);
        let mut reader = BufReader::new(&stream);
        loop {
            arm(UnixStream::set_read_timeout).map_err(io)?;
            let mut answer = String::new();
            let read = reader.read_line(&mut answer);
            if answer.is_empty() {
                written.map_err(io)?;
                read.map_err(io)?;
                return Err(ClientError::BadResponse {
                    reason: "the connection closed without an answer".into(),
                });
            }
            let response: Response =
                serde_json::from_str(&answer).map_err(|e| ClientError::BadResponse {
                    reason: e.to_string(),
                })?;
            match response.outcome {
                Outcome::Progress(p) => progress(&p.stage),
                Outcome::Output(chunk) => {
                    let Some(output) = output.as_mut() else {
                        return Err(ClientError::BadResponse {
                            reason: "output lines for a request that did not ask for them".into(),
                        });
                    };
                    let data = banger_agent_proto::base64::decode(&chunk.data).map_err(|e| {
                        ClientError::BadResponse {
                            reason: format!("output line: {e}"),
                        }
                    })?;
                    output(chunk.stream, &data).map_err(ClientError::Output)?;
                }
                Outcome::Result(value) => {
                    return serde_json::from_value(value).map_err(|e| ClientError::BadResponse {
                        reason: e.to_string(),
                    });
                }
                Outcome::Error(error) => {
                    return Err(ClientError::Daemon {
                        error,
                        op_id: response.op_id,
                    });
                }
            }
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// A progress stage on stderr. Stages can quote the guest (a warning about
/// a workspace step), so they are cleaned first.
fn print_stage(stage: &str) {
    eprintln!("  {}", banger_api::text::clean_guest_text(stage));
}

/// Spawns `bangerd` for these paths, detached, logging to the daemon log.
fn start_daemon(paths: &Paths) -> Result<u32, ClientError> {
    paths.ensure_private_dirs().map_err(ClientError::Dirs)?;
    let bangerd = find_bangerd()?;
    let pid = banger_sys::Cmd::new(&bangerd)
        .spawn_detached(&paths.daemon_log)
        .map_err(ClientError::Start)?;
    eprintln!(
        "banger: started bangerd (pid {pid}) for {}; log: {}",
        paths.state_dir.display(),
        paths.daemon_log.display()
    );
    Ok(pid)
}

/// A child we spawned and never waited for lingers as a zombie once it exits.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// `bangerd` next to this executable (how both are installed and built),
/// else from PATH.
fn find_bangerd() -> Result<PathBuf, ClientError> {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("banger"));
    if let Some(beside) = me
        .parent()
        .map(|d| d.join("bangerd"))
        .filter(|p| p.is_file())
    {
        return Ok(beside);
    }
    banger_sys::find_program("bangerd").ok_or(ClientError::NoDaemonBinary { banger: me })
}

/// The last lines of the daemon log, to show with a start-up failure.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail: Vec<&str> = lines.into_iter().rev().collect();
    format!("; it ends with:\n  {}", tail.join("\n  "))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    use banger_api::protocol::{VmExecParams, VmExecResult};

    use super::*;

    /// A daemon on a fresh socket that serves one connection with `serve`,
    /// given the request line.
    pub(crate) fn one_connection_daemon(
        serve: impl FnOnce(&str, &std::os::unix::net::UnixStream) + Send + 'static,
    ) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bangerd.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut request = String::new();
            BufReader::new(&conn).read_line(&mut request).unwrap();
            serve(&request, &conn);
        });
        (dir, socket)
    }

    /// A daemon that answers one connection with `lines`, after checking
    /// the request asked for streaming.
    fn scripted(lines: &'static [&'static str]) -> (tempfile::TempDir, Client) {
        let (dir, socket) = one_connection_daemon(move |request, conn| {
            assert!(request.contains(r#""stream":true"#), "{request}");
            for line in lines {
                // The client may stop reading early; that is what some tests check.
                let _ = (&*conn).write_all(format!("{line}\n").as_bytes());
            }
        });
        (dir, Client::new(socket))
    }

    fn exec_request() -> Request {
        Request::VmExec(VmExecParams {
            vm: "dev".into(),
            argv: vec!["make".into()],
            cwd: None,
            timeout_s: None,
            stream: true,
        })
    }

    const RESULT: &str = r#"{"op_id":"x","result":{"status":3,"signal":null,"timed_out":false,"stdout":"","stderr":"","duration_s":1.0}}"#;

    #[test]
    fn output_lines_reach_the_handler_in_order_before_the_result() {
        let (_dir, client) = scripted(&[
            r#"{"op_id":"x","output":{"stream":"stdout","data":"YQo="}}"#,
            r#"{"op_id":"x","output":{"stream":"stderr","data":"Ygo="}}"#,
            r#"{"op_id":"x","output":{"stream":"stdout","data":"/wA="}}"#,
            RESULT,
        ]);
        let mut got = Vec::new();
        let result: VmExecResult = client
            .call_streaming(exec_request(), &mut |stream, data| {
                got.push((stream, data.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(result.status, Some(3));
        assert_eq!(
            got,
            [
                (OutputStream::Stdout, b"a\n".to_vec()),
                (OutputStream::Stderr, b"b\n".to_vec()),
                (OutputStream::Stdout, vec![0xff, 0]),
            ]
        );
    }

    #[test]
    fn a_failing_handler_or_bad_data_ends_the_call() {
        let (_dir, client) = scripted(&[
            r#"{"op_id":"x","output":{"stream":"stdout","data":"YQo="}}"#,
            RESULT,
        ]);
        let err = client
            .call_streaming::<VmExecResult>(exec_request(), &mut |_, _| {
                Err(std::io::ErrorKind::BrokenPipe.into())
            })
            .unwrap_err();
        assert!(matches!(err, ClientError::Output(_)), "{err}");
        let (_dir, client) = scripted(&[
            r#"{"op_id":"x","output":{"stream":"stdout","data":"!!"}}"#,
            RESULT,
        ]);
        let err = client
            .call_streaming::<VmExecResult>(exec_request(), &mut |_, _| Ok(()))
            .unwrap_err();
        assert!(matches!(err, ClientError::BadResponse { .. }), "{err}");
    }
}

//! The daemon client: one request per connection, newline-delimited JSON
//! (see `banger_api::protocol`). In development mode a missing daemon is
//! started on demand.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banger_api::protocol::{Outcome, ProtocolError, Request, Response};
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
}

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
        }
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
        self.call_with(request, &mut |stage| eprintln!("  {stage}"))
    }

    /// [`Client::call`], handing each stage to `progress`.
    pub fn call_with<T: DeserializeOwned>(
        &self,
        request: Request,
        progress: &mut dyn FnMut(&str),
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
        let mut line =
            serde_json::to_vec(&request.into_envelope(None)).expect("requests always serialise");
        line.push(b'\n');
        // The daemon may answer before reading the request (a refused peer
        // gets `unauthorized` at once and the connection closed), so a failed
        // write is only an error if there is no answer to read either.
        let written = (&stream).write_all(&line);
        let mut reader = BufReader::new(&stream);
        loop {
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

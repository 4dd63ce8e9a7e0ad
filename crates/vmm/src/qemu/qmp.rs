//! A small QMP client: QEMU's JSON control protocol on a Unix socket.
//!
//! One command at a time: connect, read the greeting, leave negotiation mode
//! with `qmp_capabilities`, then send a command and read lines until its
//! `return` or `error`, skipping asynchronous events in between. Every read
//! is bounded in size and time.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::VmmError;

/// QMP replies are small; anything longer is not QEMU talking.
const MAX_MESSAGE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to the QMP socket {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("QMP I/O on {path} failed")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no QMP answer on {path} within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("QEMU closed the QMP connection on {path}")]
    Closed { path: PathBuf },
    #[error("unexpected QMP message on {path}: {detail}")]
    Protocol { path: PathBuf, detail: String },
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

impl From<QmpError> for VmmError {
    fn from(e: QmpError) -> VmmError {
        match e {
            QmpError::Connect { path, source } => VmmError::Io {
                action: "connect to the QMP socket",
                path,
                source,
            },
            QmpError::Io { path, source } => VmmError::Io {
                action: "talk QMP on",
                path,
                source,
            },
            QmpError::Timeout { path, timeout } => {
                VmmError::Timeout(timeout, format!("QMP on {}", path.display()))
            }
            e @ (QmpError::Closed { .. } | QmpError::Protocol { .. }) => VmmError::Refused {
                what: "QMP".into(),
                detail: e.to_string(),
            },
            QmpError::Command {
                command,
                class,
                desc,
            } => VmmError::Refused {
                what: command,
                detail: format!("{class}: {desc}"),
            },
        }
    }
}

/// One message from QEMU.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    Greeting,
    Return(Value),
    Error { class: String, desc: String },
    Event(String),
}

pub(crate) fn parse_message(line: &[u8]) -> Result<Message, String> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON ({e}): {}", lossy(line)))?;
    let Some(obj) = value.as_object() else {
        return Err(format!("not a JSON object: {}", lossy(line)));
    };
    if obj.contains_key("QMP") {
        return Ok(Message::Greeting);
    }
    if let Some(ret) = obj.get("return") {
        return Ok(Message::Return(ret.clone()));
    }
    if let Some(err) = obj.get("error") {
        let field = |k: &str| {
            err.get(k)
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned()
        };
        return Ok(Message::Error {
            class: field("class"),
            desc: field("desc"),
        });
    }
    if let Some(event) = obj.get("event").and_then(Value::as_str) {
        return Ok(Message::Event(event.to_owned()));
    }
    Err(format!("neither a reply nor an event: {}", lossy(line)))
}

fn lossy(bytes: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// QEMU's run state (`query-status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    /// `running`, `paused`, `prelaunch`, `shutdown`, ...
    pub status: String,
    pub running: bool,
}

/// A negotiated QMP connection.
#[derive(Debug)]
pub struct QmpClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    path: PathBuf,
    timeout: Duration,
}

impl QmpClient {
    /// Connects, reads the greeting and negotiates capabilities; `timeout`
    /// bounds each later command too.
    pub fn connect(path: &Path, timeout: Duration) -> Result<QmpClient, QmpError> {
        let stream = UnixStream::connect(path).map_err(|source| QmpError::Connect {
            path: path.to_owned(),
            source,
        })?;
        let io_err = |source| QmpError::Io {
            path: path.to_owned(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
        stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        let mut client = QmpClient {
            reader: BufReader::new(stream),
            writer,
            path: path.to_owned(),
            timeout,
        };
        let deadline = Instant::now() + timeout;
        match client.read_message(deadline)? {
            Message::Greeting => {}
            other => return Err(client.protocol(format!("expected the greeting, got {other:?}"))),
        }
        client.execute("qmp_capabilities")?;
        Ok(client)
    }

    /// Runs a command without arguments and returns its `return` value.
    pub fn execute(&mut self, command: &str) -> Result<Value, QmpError> {
        self.execute_with(command, None)
    }

    /// Runs a command with `arguments` (a JSON object) when given.
    pub fn execute_with(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let mut message = serde_json::json!({ "execute": command });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        self.send(&message)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.read_message(deadline)? {
                Message::Return(value) => return Ok(value),
                Message::Error { class, desc } => {
                    return Err(QmpError::Command {
                        command: command.to_owned(),
                        class,
                        desc,
                    });
                }
                Message::Event(name) => tracing::debug!(event = %name, "QMP event"),
                Message::Greeting => return Err(self.protocol("a second greeting".into())),
            }
        }
    }

    pub fn query_status(&mut self) -> Result<RunStatus, QmpError> {
        let value = self.execute("query-status")?;
        let status = value.get("status").and_then(Value::as_str);
        let running = value.get("running").and_then(Value::as_bool);
        match (status, running) {
            (Some(status), Some(running)) => Ok(RunStatus {
                status: status.to_owned(),
                running,
            }),
            _ => Err(self.protocol(format!("query-status returned {value}"))),
        }
    }

    /// Presses the ACPI power button.
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown").map(drop)
    }

    /// Presses Ctrl-Alt-Del on the guest's keyboard (the i8042 controller).
    pub fn send_ctrl_alt_del(&mut self) -> Result<(), QmpError> {
        let keys =
            ["ctrl", "alt", "delete"].map(|k| serde_json::json!({ "type": "qcode", "data": k }));
        self.execute_with("send-key", Some(serde_json::json!({ "keys": keys })))
            .map(drop)
    }

    /// Ends QEMU at once. QEMU may close the socket before its reply
    /// arrives; that is success too.
    pub fn quit(mut self) -> Result<(), QmpError> {
        match self.execute("quit") {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(QmpError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, message: &Value) -> Result<(), QmpError> {
        let line = format!("{message}\n");
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| self.io_error(source))
    }

    fn read_message(&mut self, deadline: Instant) -> Result<Message, QmpError> {
        if Instant::now() >= deadline {
            return Err(self.timed_out());
        }
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_MESSAGE + 1)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => Err(QmpError::Closed {
                path: self.path.clone(),
            }),
            Ok(_) if line.len() as u64 > MAX_MESSAGE => {
                Err(self.protocol(format!("a message longer than {MAX_MESSAGE} bytes")))
            }
            Ok(_) if !line.ends_with(b"\n") => Err(QmpError::Closed {
                path: self.path.clone(),
            }),
            Ok(_) => parse_message(&line).map_err(|detail| self.protocol(detail)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(self.timed_out())
            }
            Err(e) => Err(self.io_error(e)),
        }
    }

    fn io_error(&self, source: io::Error) -> QmpError {
        QmpError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn timed_out(&self) -> QmpError {
        QmpError::Timeout {
            path: self.path.clone(),
            timeout: self.timeout,
        }
    }

    fn protocol(&self, detail: String) -> QmpError {
        QmpError::Protocol {
            path: self.path.clone(),
            detail,
        }
    }
}

#[cfg(test)]
#[path = "qmp_tests.rs"]
mod tests;

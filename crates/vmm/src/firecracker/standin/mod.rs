//! Test support: a stand-in for the `firecracker` binary, for hosts without
//! Firecracker or a usable KVM (SPEC §13). It serves the API on
//! `--api-sock`, validates every request against the published API
//! description and refuses invalid ones with a 400 and a `fault_message`,
//! keeps the VM's state (`Not started` → `InstanceStart` → `Running`),
//! records every request next to the socket ([`record`]), serves the hybrid
//! vsock with a guest agent that answers `health`, `identity` and
//! `poweroff` ([`vsock`]), and exits 0 shortly after `SendCtrlAltDel` (or an
//! agent `poweroff` of a `banger.halt=reboot` guest), as Firecracker does
//! when a `reboot=k` guest reboots. It boots nothing.
//!
//! Knobs, from the environment: [`FAIL_ON_ENV`] refuses the requests under
//! one path (to test launch failures), [`VERSION_ENV`] changes the reported
//! version (to test version checks), [`HANG_ENV`] never opens the API socket
//! (to test the start-up timeout).

mod machine;
pub mod record;
mod sshd;
mod vsock;
mod wire;

use std::io::BufReader;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::http::HttpError;
use super::schema::{ApiSpec, SchemaError};
use machine::{Machine, Reply};
use record::{RecordedRequest, Recorder};

pub use record::{args_path, read_requests, requests_path};

/// Refuse (400) every request whose path, without the leading `/`, is this
/// value or starts with it followed by `/` (`boot-source`, `drives`, ...).
pub const FAIL_ON_ENV: &str = "FC_STANDIN_FAIL_ON";
/// The version to report (`--version`, `GET /`); default [`DEFAULT_VERSION`].
pub const VERSION_ENV: &str = "FC_STANDIN_VERSION";
pub const DEFAULT_VERSION: &str = "1.17.0";
/// When set (to anything), run but never open the API socket, like a VMM
/// stuck before its API server starts.
pub const HANG_ENV: &str = "FC_STANDIN_HANG";

/// How long after accepting `SendCtrlAltDel` the process exits; long enough
/// for the answer to reach the client first.
const EXIT_DELAY: Duration = Duration::from_millis(100);
/// An idle API connection is dropped after this long.
const CONNECTION_IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot load the Firecracker API description")]
    Spec(#[from] SchemaError),
    #[error("Failed to open the API socket at {path}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot record requests next to {path}")]
    Record {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The command line, Firecracker's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub api_sock: Option<PathBuf>,
    pub id: String,
    pub version: bool,
    /// Every argument, recorded for tests (`--config-file`, the jailer's
    /// `--start-time-us`, ...: accepted and otherwise ignored).
    pub argv: Vec<String>,
}

impl Args {
    pub fn parse(argv: Vec<String>) -> Result<Args, StandinError> {
        let mut args = Args {
            api_sock: None,
            id: "anonymous-instance".into(),
            version: false,
            argv: argv.clone(),
        };
        let mut iter = argv.into_iter();
        while let Some(arg) = iter.next() {
            let mut value = |name: &str| {
                iter.next()
                    .ok_or_else(|| StandinError::Usage(format!("{name} needs a value")))
            };
            match arg.as_str() {
                "--version" => args.version = true,
                "--api-sock" => args.api_sock = Some(value("--api-sock")?.into()),
                "--id" => args.id = value("--id")?,
                // Firecracker's flags that take a value; recorded, not used.
                "--config-file"
                | "--log-path"
                | "--level"
                | "--metrics-path"
                | "--seccomp-filter"
                | "--start-time-us"
                | "--start-time-cpu-us"
                | "--parent-cpu-time-us"
                | "--http-api-max-payload-size"
                | "--mmds-size-limit"
                | "--module" => {
                    value(&arg)?;
                }
                flag if flag.starts_with("--") => {}
                other => {
                    return Err(StandinError::Usage(format!(
                        "unexpected argument {other:?}"
                    )));
                }
            }
        }
        Ok(args)
    }
}

struct Shared {
    spec: ApiSpec,
    machine: Arc<Mutex<Machine>>,
    recorder: Mutex<Recorder>,
    boot_id: String,
}

/// Runs the stand-in; returns only for `--version` or on a start-up error.
pub fn run(argv: Vec<String>) -> Result<(), StandinError> {
    let args = Args::parse(argv)?;
    let version = std::env::var(VERSION_ENV).unwrap_or_else(|_| DEFAULT_VERSION.into());
    if args.version {
        println!("Firecracker v{version}\n");
        return Ok(());
    }
    let api_sock = args
        .api_sock
        .clone()
        .ok_or_else(|| StandinError::Usage("--api-sock PATH is required".into()))?;
    if std::env::var_os(HANG_ENV).is_some() {
        eprintln!(
            "fc-standin: {HANG_ENV} is set; never opening {}",
            api_sock.display()
        );
        loop {
            thread::sleep(Duration::from_secs(3600));
        }
    }
    let spec = ApiSpec::reference()?;
    // Firecracker refuses to bind over an existing socket file.
    if api_sock.exists() {
        return Err(StandinError::Bind {
            path: api_sock,
            source: std::io::ErrorKind::AddrInUse.into(),
        });
    }
    let recorder =
        Recorder::create(&api_sock, &args.argv).map_err(|source| StandinError::Record {
            path: api_sock.clone(),
            source,
        })?;
    let listener = UnixListener::bind(&api_sock).map_err(|source| StandinError::Bind {
        path: api_sock.clone(),
        source,
    })?;
    eprintln!(
        "fc-standin: {} serving the API on {}",
        args.id,
        api_sock.display()
    );
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let shared = Arc::new(Shared {
        spec,
        machine: Arc::new(Mutex::new(Machine::new(
            args.id,
            version,
            std::env::var(FAIL_ON_ENV).ok().filter(|v| !v.is_empty()),
        ))),
        recorder: Mutex::new(recorder),
        boot_id: format!("{nanos:x}-{}", std::process::id()),
    });
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let shared = Arc::clone(&shared);
                thread::spawn(move || serve_connection(stream, &shared));
            }
            Err(e) => eprintln!("fc-standin: accept: {e}"),
        }
    }
    Ok(())
}

/// Exits the process shortly, as Firecracker does when its `reboot=k`
/// guest reboots; the delay lets the answer that caused it reach the client.
fn exit_soon(why: &'static str) {
    thread::spawn(move || {
        thread::sleep(EXIT_DELAY);
        eprintln!("fc-standin: {why}; exiting");
        std::process::exit(0);
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Answers requests on one connection until the client closes it.
fn serve_connection(stream: UnixStream, shared: &Shared) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    if stream.set_read_timeout(Some(CONNECTION_IDLE)).is_err() {
        return;
    }
    let mut reader = BufReader::new(stream);
    loop {
        // After a malformed request the stream's framing is lost: answer,
        // then close.
        let (method, path, raw_body, reply, malformed) = match wire::read_request(&mut reader) {
            Ok(None) | Err(HttpError::Io(_)) => return,
            Ok(Some(request)) => {
                let reply = handle(shared, &request.method, &request.path, &request.body);
                (request.method, request.path, request.body, reply, false)
            }
            Err(HttpError::Malformed(reason)) => {
                let reply = Reply::fault(format!("Invalid HTTP request: {reason}"));
                (String::new(), String::new(), Vec::new(), reply, true)
            }
        };
        let record = RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            body: (!raw_body.is_empty()).then(|| {
                serde_json::from_slice(&raw_body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw_body).into()))
            }),
            status: reply.status,
            fault_message: reply.fault_message().map(str::to_owned),
        };
        if let Err(e) = lock(&shared.recorder).record(&record) {
            eprintln!("fc-standin: cannot record {method} {path}: {e}");
        }
        eprintln!("fc-standin: {method} {path} -> {}", reply.status);
        let body = reply
            .body
            .as_ref()
            .map(|b| serde_json::to_vec(b).expect("a JSON value always serializes"));
        let written = wire::write_response(&mut writer, reply.status, body.as_deref());
        if reply.exit {
            exit_soon("guest rebooted (Ctrl-Alt-Del)");
        }
        if written.is_err() || malformed {
            return;
        }
    }
}

/// One request against the machine, plus the vsock listener or guest
/// sshd it may need.
fn handle(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut machine = lock(&shared.machine);
    let reply = machine.handle(&shared.spec, method, path, body);
    if reply.guest_started {
        sshd::serve(&machine.boot_args);
    }
    let Some(uds) = &reply.bind_vsock else {
        return reply;
    };
    match UnixListener::bind(uds) {
        Ok(listener) => {
            vsock::serve(
                listener,
                Arc::clone(&shared.machine),
                shared.boot_id.clone(),
            );
            reply
        }
        Err(e) => Reply::fault(format!(
            "Cannot create vsock device at {}: {e}",
            uds.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, StandinError> {
        Args::parse(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_firecracker_and_jailer_arguments() {
        let args = parse(&[
            "--id",
            "vm-1",
            "--start-time-us",
            "123",
            "--api-sock",
            "/run/firecracker.socket",
            "--config-file",
            "/c.json",
            "--no-seccomp",
        ])
        .unwrap();
        assert_eq!(
            args.api_sock.as_deref(),
            Some(std::path::Path::new("/run/firecracker.socket"))
        );
        assert_eq!(args.id, "vm-1");
        assert!(!args.version);
        assert_eq!(args.argv.len(), 9);
        assert!(parse(&["--version"]).unwrap().version);
        assert!(matches!(
            parse(&["--api-sock"]),
            Err(StandinError::Usage(_))
        ));
        assert!(matches!(parse(&["stray"]), Err(StandinError::Usage(_))));
    }
}

//! The agent's end of its serial channel (`banger.channel=serial`, QEMU):
//! a virtio-serial port named [`PORT_NAME`] carrying the multiplexer of
//! `banger_agent_proto::mux`; each stream the host opens reaches the server
//! loop as one end of a socket pair, exactly like a vsock connection.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use banger_agent_proto::AGENT_PORT;
use banger_agent_proto::mux::{Mux, Parser};

use super::listener::Listener;

/// The port's name, as QEMU's `virtserialport,name=` gives it.
pub const PORT_NAME: &str = "org.banger.agent";
/// Where the kernel lists virtio-serial ports and their names.
pub const PORTS_DIR: &str = "/sys/class/virtio-ports";
/// How often a guest without a session asks the host for one.
const SYNC_REQUEST_EVERY: Duration = Duration::from_millis(500);
/// How long to wait before reading again after the host went away (the
/// port reads EOF, without blocking, until the host is back).
const HOST_GONE_BACKOFF: Duration = Duration::from_millis(20);

/// The device of the port named `name` under `ports_dir`, waiting up to
/// `timeout` for it to appear (ports show up shortly after the driver
/// loads).
pub fn find_port(ports_dir: &Path, name: &str, timeout: Duration) -> Option<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(entries) = std::fs::read_dir(ports_dir) {
            for entry in entries.flatten() {
                let named = std::fs::read_to_string(entry.path().join("name"))
                    .is_ok_and(|n| n.trim_end() == name);
                if named {
                    return Some(Path::new("/dev").join(entry.file_name()));
                }
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Streams opened by the host, handed out one per `accept`.
pub struct MuxListener {
    accepted: Mutex<Receiver<UnixStream>>,
    describe: String,
}

impl Listener for MuxListener {
    type Conn = UnixStream;

    fn accept(&self) -> io::Result<UnixStream> {
        let accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        accepted
            .recv()
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the serial channel is gone"))
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Serves the multiplexer on the virtio-serial port at `device`.
pub fn listen_port(device: &Path) -> io::Result<MuxListener> {
    let port = OpenOptions::new().read(true).write(true).open(device)?;
    let writer = port.try_clone()?;
    let (mux, accepted) = Mux::guest(Box::new(writer), vec![AGENT_PORT]);
    mux.request_sessions(SYNC_REQUEST_EVERY);
    let reader = mux.clone();
    thread::Builder::new()
        .name("serial-port".into())
        .spawn(move || read_port(&reader, port))?;
    Ok(MuxListener {
        accepted: Mutex::new(accepted),
        describe: format!("serial:{}:{AGENT_PORT}", device.display()),
    })
}

/// The port reads EOF while no host process is connected to QEMU's end:
/// every stream is gone then, and the next host starts a new session.
fn read_port(mux: &Mux, mut port: File) {
    let mut parser = Parser::new();
    loop {
        match mux.read_from(&mut port, &mut parser) {
            Ok(()) => {
                if !parser.is_hunting() {
                    crate::info!("the host end of the serial channel went away");
                }
                mux.lost(&mut parser);
                thread::sleep(HOST_GONE_BACKOFF);
            }
            Err(e) => {
                crate::warn!("reading the serial port failed: {e}");
                mux.lost(&mut parser);
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Serves the multiplexer over a Unix socket standing in for the port
/// (tests, debugging): connects to `path`, where the host's sidecar
/// listens as it does for QEMU. The channel ends with that connection.
pub fn listen_socket(path: &Path) -> io::Result<MuxListener> {
    let port = UnixStream::connect(path)?;
    let writer = port.try_clone()?;
    let (mux, accepted) = Mux::guest(Box::new(writer), vec![AGENT_PORT]);
    mux.request_sessions(SYNC_REQUEST_EVERY);
    let reader = mux.clone();
    thread::Builder::new()
        .name("serial-socket".into())
        .spawn(move || {
            let mut parser = Parser::new();
            let ended = reader.read_from(&mut &port, &mut parser);
            crate::warn!("the serial socket closed ({ended:?})");
            reader.lost(&mut parser);
        })?;
    Ok(MuxListener {
        accepted: Mutex::new(accepted),
        describe: format!("serial-socket:{}:{AGENT_PORT}", path.display()),
    })
}

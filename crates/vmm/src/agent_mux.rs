//! The host end of the agent's serial channel under QEMU
//! (`banger_agent_proto::mux`), as its own process beside QEMU: it listens
//! on the socket QEMU's virtio-serial chardev connects to, and serves the
//! hybrid-vsock socket the host's agent client uses with Firecracker
//! (`CONNECT <port>\n` → `OK <port>\n`, then the stream).
//!
//! A separate process, like the log cappers, so that it lives as long as
//! the VM rather than the daemon: `bangerd --agent-mux --port-socket P
//! --uds U`. It outlives QEMU reconnecting (`reconnect=1`): each new QEMU
//! connection starts a new session.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use banger_agent_proto::mux::{Mux, Parser};

/// The mode's flag on `bangerd` (and on the test binary `agent-mux`).
pub const AGENT_MUX_FLAG: &str = "--agent-mux";
/// How long a client gets to send its `CONNECT` line.
const CONNECT_LINE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `CONNECT <port>` line.
const MAX_CONNECT_LINE: usize = 64;
/// How long the guest gets to answer an OPEN.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The sidecar's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxArgs {
    /// Where QEMU's chardev connects.
    pub port_socket: PathBuf,
    /// The hybrid-vsock socket for the host's client.
    pub uds: PathBuf,
}

impl MuxArgs {
    /// Parses the arguments after the flag.
    pub fn parse(args: &[OsString]) -> Result<MuxArgs, String> {
        let mut port_socket = None;
        let mut uds = None;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let slot = match flag.to_str() {
                Some("--port-socket") => &mut port_socket,
                Some("--uds") => &mut uds,
                _ => return Err(format!("unknown argument {flag:?}")),
            };
            let value = it.next().ok_or_else(|| format!("{flag:?} needs a value"))?;
            *slot = Some(PathBuf::from(value));
        }
        Ok(MuxArgs {
            port_socket: port_socket.ok_or("--port-socket is required")?,
            uds: uds.ok_or("--uds is required")?,
        })
    }

    /// The argv after the program name.
    pub fn to_args(&self) -> Vec<OsString> {
        vec![
            AGENT_MUX_FLAG.into(),
            "--port-socket".into(),
            self.port_socket.clone().into(),
            "--uds".into(),
            self.uds.clone().into(),
        ]
    }
}

/// The mode's entry point; returns the exit code.
pub fn main(args: &[OsString]) -> i32 {
    let args = match MuxArgs::parse(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("agent-mux: {e}");
            return 2;
        }
    };
    match run(&args) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("agent-mux: {e}");
            1
        }
    }
}

fn bind(path: &PathBuf) -> io::Result<UnixListener> {
    // Only a leftover socket is ours to remove; anything else is an error.
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", path.display()),
        )
    })
}

fn run(args: &MuxArgs) -> io::Result<std::convert::Infallible> {
    // The client socket last: the launcher waits for it, and by then QEMU
    // can connect to the port socket.
    let port_listener = bind(&args.port_socket)?;
    let clients = bind(&args.uds)?;
    let current: Arc<Mutex<Option<Mux>>> = Arc::new(Mutex::new(None));
    let for_port = Arc::clone(&current);
    thread::Builder::new()
        .name("port".into())
        .spawn(move || serve_port(&port_listener, &for_port))?;
    eprintln!(
        "agent-mux: serving {} for the port at {}",
        args.uds.display(),
        args.port_socket.display()
    );
    loop {
        match clients.accept() {
            Ok((client, _)) => {
                let mux = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let _ = thread::Builder::new()
                    .name("client".into())
                    .spawn(move || serve_client(client, mux));
            }
            Err(e) => {
                eprintln!("agent-mux: accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One QEMU connection after another, each a new session.
fn serve_port(listener: &UnixListener, current: &Mutex<Option<Mux>>) -> ! {
    loop {
        let (port, _) = match listener.accept() {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("agent-mux: accepting QEMU's connection failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let writer = match port.try_clone() {
            Ok(w) => w,
            Err(e) => {
                eprintln!("agent-mux: {e}");
                continue;
            }
        };
        let mux = Mux::host(Box::new(writer));
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(mux.clone());
        let mut parser = Parser::new();
        let ended = mux
            .start_session()
            .and_then(|()| mux.read_from(&mut &port, &mut parser));
        eprintln!("agent-mux: QEMU's connection ended ({ended:?})");
        mux.lost(&mut parser);
        *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// One host client: its `CONNECT` line, then the stream.
fn serve_client(client: UnixStream, mux: Option<Mux>) {
    let port = match read_connect(&client) {
        Ok(port) => port,
        Err(e) => {
            eprintln!("agent-mux: {e}");
            return;
        }
    };
    // Closing without a reply is what a refused vsock connection looks
    // like to the client: it retries while the guest boots.
    let Some(mux) = mux else {
        return;
    };
    let id = match mux.open(port, OPEN_TIMEOUT) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("agent-mux: open port {port}: {e}");
            return;
        }
    };
    let _ = client.set_read_timeout(None);
    if let Err(e) = (&client).write_all(format!("OK {port}\n").as_bytes()) {
        // Attached all the same: the pumps find the client gone and end
        // the stream on both sides the usual way.
        eprintln!("agent-mux: {e}");
    }
    if let Err(e) = mux.attach(id, client) {
        eprintln!("agent-mux: stream {id}: {e}");
    }
}

/// Reads `CONNECT <port>\n`, bounded in size and time, without reading a
/// byte past the newline (what follows belongs to the stream).
fn read_connect(client: &UnixStream) -> Result<u32, String> {
    client
        .set_read_timeout(Some(CONNECT_LINE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    let mut reader = BufReader::with_capacity(1, client);
    loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| format!("reading CONNECT: {e}"))?;
        let Some(&byte) = buf.first() else {
            return Err("client closed before CONNECT".into());
        };
        reader.consume(1);
        if byte == b'\n' {
            break;
        }
        if line.len() >= MAX_CONNECT_LINE {
            return Err("CONNECT line too long".into());
        }
        line.push(byte);
    }
    let text = String::from_utf8_lossy(&line);
    text.strip_prefix("CONNECT ")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("bad CONNECT line {text:?}"))
}

//! What the server accepts connections from: AF_VSOCK in the guest, a Unix
//! socket in tests and for debugging.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};

use super::conn::{DuplexStream, VsockConn};

/// A listening socket handing out one stream per connection.
pub trait Listener: Send + 'static {
    type Conn: DuplexStream;

    fn accept(&self) -> io::Result<Self::Conn>;

    /// Where it listens, for the log.
    fn describe(&self) -> String;
}

impl Listener for UnixListener {
    type Conn = UnixStream;

    fn accept(&self) -> io::Result<UnixStream> {
        UnixListener::accept(self).map(|(stream, _)| stream)
    }

    fn describe(&self) -> String {
        match self
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
        {
            Some(path) => format!("unix:{}", path.display()),
            None => "unix:<unnamed>".into(),
        }
    }
}

impl Listener for vsock::VsockListener {
    type Conn = VsockConn;

    fn accept(&self) -> io::Result<VsockConn> {
        vsock::VsockListener::accept(self).map(|(stream, _)| VsockConn(stream))
    }

    fn describe(&self) -> String {
        match self.local_addr() {
            Ok(addr) => format!("vsock:{}:{}", addr.cid(), addr.port()),
            Err(_) => "vsock".into(),
        }
    }
}

//! The service's connections: a stream the server can split (one handle
//! reads an `exec`'s input and watches for a hang-up, another writes its
//! output and the response), over AF_VSOCK in the guest or a Unix socket
//! in tests.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::wire::TimeoutStream;

/// A connection that can be split: one handle reads (an `exec`'s streamed
/// stdin) while another writes (its output frames and the response).
pub trait DuplexStream: TimeoutStream + Send + Sized + 'static {
    /// A second handle on the same connection.
    fn try_clone(&self) -> io::Result<Self>;
    /// Ends one or both directions for every handle.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

impl DuplexStream for UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        UnixStream::try_clone(self)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
}

/// A guest vsock connection. A wrapper, since the stream type and the
/// framing's [`TimeoutStream`] both live in other crates.
pub struct VsockConn(pub vsock::VsockStream);

impl Read for VsockConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for VsockConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl TimeoutStream for VsockConn {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_write_timeout(timeout)
    }
}

impl DuplexStream for VsockConn {
    fn try_clone(&self) -> io::Result<Self> {
        self.0.try_clone().map(VsockConn)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.shutdown(how)
    }
}

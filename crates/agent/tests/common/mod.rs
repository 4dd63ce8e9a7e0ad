//! What the agent's host-side tests share: the stand-in VMM's splice.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;

/// Connects to the agent's socket and copies both ways between it and
/// `host` until both directions end, passing each EOF on: what a VMM's
/// hybrid-vsock socket does once the handshake is done.
pub fn splice_to_agent(host: UnixStream, agent: &Path) {
    let guest = UnixStream::connect(agent).unwrap();
    let (mut host_r, mut guest_w) = (host.try_clone().unwrap(), guest.try_clone().unwrap());
    let upstream = thread::spawn(move || {
        let _ = std::io::copy(&mut host_r, &mut guest_w);
        let _ = guest_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut guest_r, mut host_w) = (guest, host);
    let _ = std::io::copy(&mut guest_r, &mut host_w);
    let _ = host_w.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
}

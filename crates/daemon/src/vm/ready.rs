//! ssh readiness (SPEC §6: create waits for the agent, then ssh): a VM is
//! `running` once its sshd answers with an SSH banner on the guest address,
//! so `ssh NAME.vm` works the moment `vm create` returns.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use banger_api::protocol::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::check_cancel;
use crate::error::DaemonError;

/// sshd comes up ~1 s after the agent on the minimal image and a few seconds
/// later under systemd; a loaded TCG host can take many times that.
pub(super) const SSH_DEADLINE: Duration = Duration::from_secs(90);
const ATTEMPT: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(250);
/// RFC 4253 §4.2: the identification line is at most 255 bytes.
const BANNER_MAX: usize = 255;

/// The guest's sshd.
pub(super) fn ssh_addr(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, 22))
}

/// Waits until `addr` sends an SSH identification line, the client goes
/// away, or `deadline` passes.
pub(super) fn wait_for_ssh(
    addr: SocketAddr,
    deadline: Duration,
    cancel: &CancellationToken,
) -> Result<String, DaemonError> {
    let started = Instant::now();
    loop {
        check_cancel(cancel)?;
        let last = match banner(addr) {
            Ok(line) => return Ok(line),
            Err(e) => e,
        };
        if started.elapsed() > deadline {
            return Err(DaemonError::failed(
                ErrorCode::OperationFailed,
                format!(
                    "the guest's sshd did not answer on {addr} within {deadline:?} ({last}); \
                     `banger vm logs` shows the console"
                ),
            ));
        }
        std::thread::sleep(RETRY);
    }
}

/// One attempt: connect and read the server's identification line.
fn banner(addr: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, ATTEMPT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(ATTEMPT))
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < BANNER_MAX && !got.contains(&b'\n') {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let line = line.lines().next().unwrap_or_default().trim_end();
    if line.starts_with("SSH-") {
        Ok(line.to_owned())
    } else {
        Err(format!("no SSH banner: {line:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn serve_once(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(reply);
            }
        });
        addr
    }

    #[test]
    fn an_ssh_banner_counts_and_anything_else_does_not() {
        let addr = serve_once(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
        assert_eq!(banner(addr).unwrap(), "SSH-2.0-OpenSSH_9.2p1 Debian-2");
        let addr = serve_once(b"HTTP/1.0 400 Bad Request\r\n\r\n");
        assert!(banner(addr).unwrap_err().contains("no SSH banner"));
        let addr = serve_once(b"");
        assert!(banner(addr).is_err(), "a closed connection is no banner");
    }

    #[test]
    fn nothing_listening_times_out_with_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(banner(addr).is_err());
        let cancel = CancellationToken::new();
        let err = wait_for_ssh(addr, Duration::ZERO, &cancel).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&addr.to_string()) && text.contains("did not answer"),
            "{text}"
        );
        cancel.cancel();
        let err = wait_for_ssh(addr, Duration::ZERO, &cancel).unwrap_err();
        assert!(matches!(err, DaemonError::Cancelled), "{err:?}");
    }
}

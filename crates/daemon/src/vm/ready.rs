//! ssh readiness (SPEC §6: create waits for the agent, then ssh): a VM is
//! `running` once its sshd answers with an SSH banner on the guest address,
//! so `ssh NAME.vm` works the moment `vm create` returns.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use banger_api::protocol::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::record::check_cancel;
use crate::error::DaemonError;
use crate::guest::Guest;

/// sshd comes up ~1 s after the agent on the minimal image and a few seconds
/// later under systemd; a loaded TCG host can take many times that.
pub(super) const SSH_DEADLINE: Duration = Duration::from_secs(90);
/// Short: a restored guest's sshd answers within a fraction of a second.
const RETRY: Duration = Duration::from_millis(50);

/// The guest's sshd.
pub(super) fn ssh_addr(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, 22))
}

/// Waits until `addr` sends an SSH identification line, the client goes
/// away, or `deadline` passes.
pub(super) fn wait_for_ssh(
    guest: &dyn Guest,
    addr: SocketAddr,
    deadline: Duration,
    cancel: &CancellationToken,
) -> Result<String, DaemonError> {
    let started = Instant::now();
    loop {
        check_cancel(cancel)?;
        let last = match guest.ssh_banner(addr) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::AgentGuest;
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
        assert_eq!(
            AgentGuest.ssh_banner(addr).unwrap(),
            "SSH-2.0-OpenSSH_9.2p1 Debian-2"
        );
        let addr = serve_once(b"HTTP/1.0 400 Bad Request\r\n\r\n");
        assert!(
            AgentGuest
                .ssh_banner(addr)
                .unwrap_err()
                .contains("no SSH banner")
        );
        let addr = serve_once(b"");
        assert!(
            AgentGuest.ssh_banner(addr).is_err(),
            "a closed connection is no banner"
        );
    }

    #[test]
    fn nothing_listening_times_out_with_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(AgentGuest.ssh_banner(addr).is_err());
        let cancel = CancellationToken::new();
        let err = wait_for_ssh(&AgentGuest, addr, Duration::ZERO, &cancel).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&addr.to_string()) && text.contains("did not answer"),
            "{text}"
        );
        cancel.cancel();
        let err = wait_for_ssh(&AgentGuest, addr, Duration::ZERO, &cancel).unwrap_err();
        assert!(matches!(err, DaemonError::Cancelled), "{err:?}");
    }
}

//! The server: one UDP socket and one TCP listener on the same address, both
//! answering through [`answer`](super::answer).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{DnsError, Transport};
use super::limits::{ERROR_BACKOFF, Limits, MAX_QUERY_LEN};
use super::records::DnsRecords;
use super::tcp;
use super::zone::answer;

/// With port 0 the kernel picks a free UDP port, which may be taken for TCP;
/// a fresh pick is tried this many times.
const PORT_ZERO_ATTEMPTS: usize = 16;

/// A bound DNS server, ready to [`serve`](Self::serve).
#[derive(Debug)]
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    local_addr: SocketAddr,
    records: DnsRecords,
    limits: Limits,
}

impl DnsServer {
    /// Binds UDP and TCP on the same address. With port 0, UDP picks the port
    /// and TCP binds the same one.
    pub async fn bind(addr: SocketAddr, records: DnsRecords) -> Result<DnsServer, DnsError> {
        let mut attempt = 1;
        loop {
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(bind_error(addr, Transport::Udp))?;
            let local_addr = udp.local_addr().map_err(|source| DnsError::LocalAddr {
                transport: Transport::Udp,
                source,
            })?;
            match TcpListener::bind(local_addr).await {
                Ok(tcp) => {
                    return Ok(DnsServer {
                        udp,
                        tcp,
                        local_addr,
                        records,
                        limits: Limits::default(),
                    });
                }
                Err(e)
                    if addr.port() == 0
                        && e.kind() == io::ErrorKind::AddrInUse
                        && attempt < PORT_ZERO_ATTEMPTS =>
                {
                    tracing::debug!(%local_addr, "dns: TCP port taken, picking another");
                    attempt += 1;
                }
                Err(e) => return Err(bind_error(local_addr, Transport::Tcp)(e)),
            }
        }
    }

    /// The address both sockets are bound to (with the real port when bound
    /// with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    #[cfg(test)]
    pub(crate) fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves until `shutdown` is cancelled, then closes every TCP connection
    /// and returns once their tasks have ended.
    pub async fn serve(self, shutdown: CancellationToken) {
        tracing::info!(addr = %self.local_addr, "DNS server for the vm zone listening");
        let connections = TaskTracker::new();
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = serve_udp(&self.udp, &self.records) => {}
            () = tcp::accept_loop(&self.tcp, &self.records, self.limits, &connections, &shutdown) => {}
        }
        connections.close();
        connections.wait().await;
        tracing::info!(addr = %self.local_addr, "DNS server stopped");
    }
}

fn bind_error(addr: SocketAddr, transport: Transport) -> impl FnOnce(io::Error) -> DnsError {
    move |source| DnsError::Bind {
        addr,
        transport,
        source,
    }
}

/// Answers datagrams one at a time: `answer` is a few microseconds of CPU, so
/// a task per datagram would cost more than it saves.
async fn serve_udp(socket: &UdpSocket, records: &DnsRecords) {
    let mut buf = vec![0u8; MAX_QUERY_LEN];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                tracing::debug!(%error, "dns: UDP receive failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        let Some(response) = answer(&buf[..len], records) else {
            continue;
        };
        if let Err(error) = socket.send_to(&response, peer).await {
            // The client's problem (e.g. an unreachable source address), not ours.
            tracing::debug!(%error, %peer, "dns: UDP send failed");
        }
    }
}

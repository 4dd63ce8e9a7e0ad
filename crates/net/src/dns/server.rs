//! The server: one UDP socket and one TCP listener on the same address, both
//! answering through [`answer`](super::answer).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{DnsError, Transport};
use super::records::DnsRecords;
use super::tcp;
use super::zone::answer;

/// Largest query read. The UDP receive buffer has this size (longer datagrams
/// are cut, which is harmless: only the header and question are read), and a
/// TCP length prefix above it closes the connection, so a client can never make
/// the server allocate more than this per connection. Real queries, EDNS
/// options included, are a few hundred bytes at most.
pub(crate) const MAX_QUERY_LEN: usize = 4096;

/// A TCP client gets this long to send each query (and to read the answer);
/// idle connections are closed after it.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP connections served at once; more are closed on accept. Resolvers fall
/// back to TCP rarely (our answers never truncate), so this only bounds what a
/// misbehaving client can hold.
const MAX_TCP_CONNECTIONS: usize = 64;

/// TCP connections served at once from one source address; more from it are
/// closed on accept. Without it one peer (a guest, or a local process) could
/// hold all [`MAX_TCP_CONNECTIONS`] open and shut everyone else out of TCP.
/// A resolver needs one connection at a time (RFC 7766 lets it pipeline), so
/// 8 leaves room for a few resolvers behind one address, and 8 peers are
/// needed to fill the global cap.
const MAX_TCP_CONNECTIONS_PER_PEER: usize = 8;

/// With port 0 the kernel picks a free UDP port, which may be taken for TCP;
/// a fresh pick is tried this many times.
const PORT_ZERO_ATTEMPTS: usize = 16;

/// Pause after a failed `recv_from` or `accept` (e.g. out of file descriptors)
/// so a persistent error cannot spin a core.
pub(crate) const ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Resource limits of the TCP transport; tests shrink them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) tcp_idle_timeout: Duration,
    pub(crate) max_tcp_connections: usize,
    pub(crate) max_tcp_connections_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tcp_idle_timeout: TCP_IDLE_TIMEOUT,
            max_tcp_connections: MAX_TCP_CONNECTIONS,
            max_tcp_connections_per_peer: MAX_TCP_CONNECTIONS_PER_PEER,
        }
    }
}

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

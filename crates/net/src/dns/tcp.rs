//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message is preceded by its
//! length as two big-endian bytes, and a connection may carry several queries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::limits::{ERROR_BACKOFF, Limits, MAX_QUERY_LEN};
use super::records::DnsRecords;
use super::zone::answer;

/// Accepts connections forever, serving at most `limits.max_tcp_connections`
/// at once, and at most `limits.max_tcp_connections_per_peer` of them from one
/// source address; a connection beyond either is closed right away, so a
/// client holding many sockets open can neither exhaust the daemon's file
/// descriptors or memory nor keep other peers out.
pub(crate) async fn accept_loop(
    listener: &TcpListener,
    records: &DnsRecords,
    limits: Limits,
    connections: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_tcp_connections));
    let peers = PeerCounts::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "dns: TCP accept failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        let Some(peer_slot) = peers.try_take(peer.ip(), limits.max_tcp_connections_per_peer) else {
            tracing::debug!(
                %peer,
                max = limits.max_tcp_connections_per_peer,
                "dns: too many TCP connections from this address, closing a new one"
            );
            drop(stream);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "dns: too many TCP connections, closing a new one");
            drop(stream);
            continue; // `peer_slot` is released here
        };
        let (records, shutdown) = (records.clone(), shutdown.clone());
        connections.spawn(async move {
            serve_connection(stream, &records, limits, &shutdown).await;
            drop(permit);
            drop(peer_slot);
        });
    }
}

/// Open connections per source address. An address is present only while it
/// holds a connection, so the map never has more entries than the global cap
/// (plus the one being accepted).
#[derive(Default)]
struct PeerCounts(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PeerCounts {
    /// Counts a new connection from `ip`, unless it already holds `max`.
    fn try_take(&self, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        // An IPv4 client of a dual-stack listener is the same peer as over IPv4.
        let ip = ip.to_canonical();
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let held = counts.entry(ip).or_insert(0);
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(PeerSlot {
            counts: self.0.clone(),
            ip,
        })
    }
}

/// One connection counted against its peer's address; dropping it (when the
/// connection's task ends, however it ends) gives the slot back.
struct PeerSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = counts.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Why a connection ended, for the debug log.
enum Close {
    /// The client closed the connection between messages.
    Eof,
    /// A zero or over-long length prefix: not a query we will read.
    BadLength(usize),
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Eof => f.write_str("closed by the client"),
            Self::BadLength(len) => write!(
                f,
                "length prefix {len} is not between 1 and {MAX_QUERY_LEN}"
            ),
        }
    }
}

/// Serves queries on one connection until the client closes it, misbehaves,
/// stays idle past the timeout, or the server shuts down.
async fn serve_connection(
    mut stream: TcpStream,
    records: &DnsRecords,
    limits: Limits,
    shutdown: &CancellationToken,
) {
    let peer = stream.peer_addr().ok();
    let mut buf = Vec::new();
    loop {
        let exchanged = tokio::select! {
            () = shutdown.cancelled() => return,
            result = tokio::time::timeout(
                limits.tcp_idle_timeout,
                exchange(&mut stream, records, &mut buf),
            ) => result,
        };
        match exchanged {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(close))) => {
                tracing::debug!(?peer, reason = %close, "dns: TCP connection closed");
                return;
            }
            Ok(Err(error)) => {
                // Includes a message cut short by EOF.
                tracing::debug!(?peer, %error, "dns: TCP connection failed");
                return;
            }
            Err(_elapsed) => {
                tracing::debug!(?peer, "dns: TCP connection idle, closing");
                return;
            }
        }
    }
}

/// Reads one length-prefixed query and writes its answer, if any. `Some` says
/// the connection should end.
async fn exchange(
    stream: &mut TcpStream,
    records: &DnsRecords,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Close>> {
    let mut prefix = [0u8; 2];
    match stream.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Some(Close::Eof)),
        Err(e) => return Err(e),
    }
    let len = usize::from(u16::from_be_bytes(prefix));
    if len == 0 || len > MAX_QUERY_LEN {
        return Ok(Some(Close::BadLength(len)));
    }
    buf.resize(len, 0);
    stream.read_exact(buf).await?;
    // `None` means a packet that gets no answer (e.g. a response); the
    // connection stays usable for the next query, as on UDP.
    if let Some(response) = answer(buf, records) {
        let len = u16::try_from(response.len()).expect("responses are far below 64 KiB");
        let mut framed = Vec::with_capacity(2 + response.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&response);
        stream.write_all(&framed).await?;
    }
    Ok(None)
}

//! What the DNS server's transports allow a client: shared by the UDP
//! server and the TCP transport, below both.

use std::time::Duration;

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

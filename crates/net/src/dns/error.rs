//! Errors of the DNS server. Only start-up can fail: once bound, the server
//! answers or drops each packet and never stops on a client's behalf.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The two transports the server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(
        "cannot bind the DNS server to {addr} ({transport}): {}",
        bind_reason(.source, *.addr, *.transport)
    )]
    Bind {
        addr: SocketAddr,
        transport: Transport,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the local address of the DNS server's {transport} socket")]
    LocalAddr {
        transport: Transport,
        #[source]
        source: io::Error,
    },
}

/// What the user can do about a failed bind; the io error itself follows in
/// the cause chain.
fn bind_reason(source: &io::Error, addr: SocketAddr, transport: Transport) -> String {
    let ss_flag = match transport {
        Transport::Udp => "-ulpn",
        Transport::Tcp => "-tlpn",
    };
    match source.kind() {
        io::ErrorKind::AddrInUse => format!(
            "address in use; another program (or another bangerd) uses this port; \
             find it with `ss {ss_flag} 'sport = :{}'` and stop it",
            addr.port()
        ),
        io::ErrorKind::PermissionDenied => {
            "permission denied; ports below 1024 need privileges the daemon does not have, \
             use a higher port"
                .to_owned()
        }
        io::ErrorKind::AddrNotAvailable => format!("{} is not an address of this host", addr.ip()),
        _ => "the operating system refused the address".to_owned(),
    }
}

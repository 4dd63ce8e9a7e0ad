//! Binding: both transports share one port, and a taken address is reported
//! with the address, the transport and what to do about it.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use crate::dns::{DEFAULT_DNS_ADDR, DnsError, DnsRecords, DnsServer, Transport};

fn bind(addr: SocketAddr) -> Result<DnsServer, DnsError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(DnsServer::bind(addr, DnsRecords::new()))
}

#[test]
fn the_default_address_is_loopback_port_42069() {
    let addr: SocketAddr = DEFAULT_DNS_ADDR.parse().unwrap();
    assert!(addr.ip().is_loopback());
    assert_eq!(addr.port(), 42069);
}

#[test]
fn port_zero_binds_udp_and_tcp_on_one_port() {
    let server = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    assert!(UdpSocket::bind(addr).is_err(), "UDP {addr} is held");
    assert!(TcpListener::bind(addr).is_err(), "TCP {addr} is held");
}

#[test]
fn a_used_udp_port_is_reported_with_the_address() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = bind(addr).unwrap_err();
    assert!(
        matches!(err, DnsError::Bind { transport: Transport::Udp, addr: a, .. } if a == addr),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot bind the DNS server to {addr} (UDP): address in use"
        )),
        "{message}"
    );
    assert!(message.contains("another bangerd"), "{message}");
    assert!(
        message.contains(&format!("sport = :{}", addr.port())),
        "{message}"
    );
}

#[test]
fn a_used_tcp_port_is_reported_as_tcp() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = bind(addr).unwrap_err();
    assert!(
        matches!(err, DnsError::Bind { transport: Transport::Tcp, addr: a, .. } if a == addr),
        "{err:?}"
    );
    assert!(err.to_string().contains("(TCP): address in use"), "{err}");
    // The UDP socket bound first was released with the failed server.
    assert!(UdpSocket::bind(addr).is_ok());
}

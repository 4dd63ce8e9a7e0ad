//! The server under hostile or unusual clients, over raw sockets: pipelined
//! TCP queries, bad length prefixes, connection caps, idle clients, a flood of
//! garbage datagrams, and shutdown.

use std::io::Write;
use std::net::{IpAddr, Shutdown, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::harness::{
    DEV_IP, IO_TIMEOUT, Rng, TestServer, is_closed, tcp_receive, tcp_send, udp_exchange,
};
use super::message::{Rdata, parse, query};
use crate::dns::limits::Limits;
use crate::dns::wire::rtype;

fn assert_answers_dev(server: &TestServer) {
    let raw = server
        .udp(&query("dev.vm", rtype::A).id(99).build())
        .expect("a UDP answer");
    let msg = parse(&raw).unwrap();
    assert_eq!(msg.header.id, 99);
    assert_eq!(msg.answers[0].data, Rdata::A(DEV_IP));
}

#[test]
fn udp_answers_a_query() {
    let server = TestServer::start();
    assert_answers_dev(&server);
}

#[test]
fn tcp_serves_several_queries_on_one_connection() {
    let server = TestServer::start();
    let mut stream = server.tcp();
    // Pipelined in one write, then one more after the answers.
    let first = query("dev.vm", rtype::A).id(1).build();
    let second = query("nope.vm", rtype::A).id(2).build();
    let mut both = Vec::new();
    for q in [&first, &second] {
        both.extend_from_slice(&u16::try_from(q.len()).unwrap().to_be_bytes());
        both.extend_from_slice(q);
    }
    stream.write_all(&both).unwrap();
    let a = tcp_receive(&mut stream);
    let b = tcp_receive(&mut stream);
    assert_eq!((a.header.id, b.header.id), (1, 2));
    assert_eq!(a.answers[0].data, Rdata::A(DEV_IP));
    assert_eq!(b.header.rcode(), 3);
    tcp_send(&mut stream, &query("DEV.vm", rtype::A).id(3).build());
    assert_eq!(tcp_receive(&mut stream).header.id, 3);
}

#[test]
fn tcp_skips_packets_that_get_no_answer_and_keeps_the_connection() {
    let server = TestServer::start();
    let mut stream = server.tcp();
    tcp_send(
        &mut stream,
        &query("dev.vm", rtype::A).qr(true).id(10).build(),
    );
    tcp_send(&mut stream, b"short");
    tcp_send(&mut stream, &query("dev.vm", rtype::A).id(11).build());
    assert_eq!(tcp_receive(&mut stream).header.id, 11);
}

#[test]
fn tcp_bad_length_prefixes_close_only_that_connection() {
    let server = TestServer::start();
    let mut healthy = server.tcp();
    tcp_send(&mut healthy, &query("dev.vm", rtype::A).id(1).build());
    assert_eq!(tcp_receive(&mut healthy).header.id, 1);

    let mut zero = server.tcp();
    zero.write_all(&[0, 0]).unwrap();
    assert!(
        is_closed(&mut zero),
        "a zero length prefix closes the connection"
    );

    let mut oversized = server.tcp();
    oversized.write_all(&[0xFF, 0xFF, 1, 2, 3]).unwrap();
    assert!(
        is_closed(&mut oversized),
        "a 64 KiB length prefix closes the connection"
    );

    let mut truncated = server.tcp();
    truncated.write_all(&[0, 100]).unwrap();
    truncated.write_all(&[0u8; 10]).unwrap();
    truncated.shutdown(Shutdown::Write).unwrap();
    assert!(
        is_closed(&mut truncated),
        "a message cut by EOF closes the connection"
    );

    tcp_send(&mut healthy, &query("dev.vm", rtype::A).id(2).build());
    assert_eq!(tcp_receive(&mut healthy).header.id, 2);
    assert_answers_dev(&server);
}

#[test]
fn tcp_connections_beyond_the_cap_are_closed() {
    let server = TestServer::start_with(Limits {
        max_tcp_connections: 3,
        ..Limits::default()
    });
    // An answer on each proves the server holds it as a served connection.
    let mut held: Vec<TcpStream> = (0..3u16)
        .map(|i| {
            let mut stream = server.tcp();
            tcp_send(&mut stream, &query("dev.vm", rtype::A).id(i).build());
            assert_eq!(tcp_receive(&mut stream).header.id, i);
            stream
        })
        .collect();
    let mut excess = server.tcp();
    assert!(is_closed(&mut excess), "the fourth connection is closed");
    assert_answers_dev(&server);

    // Closing one frees its slot (once the server has seen the EOF).
    drop(held.pop());
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let mut stream = server.tcp();
        tcp_send(&mut stream, &query("dev.vm", rtype::A).id(7).build());
        let mut len = [0u8; 2];
        if std::io::Read::read_exact(&mut stream, &mut len).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks `dev.vm` on `stream` and says whether an answer came.
fn served(stream: &mut TcpStream, id: u16) -> bool {
    tcp_send(stream, &query("dev.vm", rtype::A).id(id).build());
    let mut len = [0u8; 2];
    std::io::Read::read_exact(stream, &mut len).is_ok()
}

#[test]
fn one_peer_cannot_hold_every_tcp_slot() {
    // By default, too, one address cannot fill the global cap.
    let defaults = Limits::default();
    assert!(defaults.max_tcp_connections_per_peer < defaults.max_tcp_connections);
    const PER_PEER: usize = 3;
    let server = TestServer::start_with(Limits {
        max_tcp_connections_per_peer: PER_PEER,
        ..Limits::default()
    });
    let first = IpAddr::from([127, 0, 0, 1]);
    let second = IpAddr::from([127, 0, 0, 2]);
    // An answer on each proves the server holds it as a served connection.
    let mut held: Vec<TcpStream> = (0..PER_PEER)
        .map(|i| {
            let mut stream = server.tcp_from(first);
            let id = u16::try_from(i).unwrap();
            tcp_send(&mut stream, &query("dev.vm", rtype::A).id(id).build());
            assert_eq!(tcp_receive(&mut stream).header.id, id);
            stream
        })
        .collect();
    let mut excess = server.tcp_from(first);
    assert!(
        is_closed(&mut excess),
        "a connection beyond the per-peer cap is closed"
    );

    // Far below the global cap, another address is still served, while the
    // first peer's connections stay open and usable.
    let mut other = server.tcp_from(second);
    assert!(served(&mut other, 100), "another peer is served");
    assert!(served(&mut held[0], 101), "held connections stay usable");

    // Closing one of the first peer's connections frees its slot (once the
    // server has seen the EOF).
    drop(held.pop());
    let deadline = Instant::now() + IO_TIMEOUT;
    while !served(&mut server.tcp_from(first), 102) {
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tcp_idle_connections_are_closed() {
    let idle = Duration::from_millis(300);
    let server = TestServer::start_with(Limits {
        tcp_idle_timeout: idle,
        ..Limits::default()
    });
    let started = Instant::now();
    let mut silent = server.tcp();
    assert!(is_closed(&mut silent));
    let waited = started.elapsed();
    assert!(
        waited >= idle - Duration::from_millis(50),
        "closed too early: {waited:?}"
    );
    assert!(waited < IO_TIMEOUT, "closed by the timeout: {waited:?}");

    // A client that stalls mid-message is closed the same way.
    let mut stalled = server.tcp();
    stalled.write_all(&[0, 40, 1, 2, 3]).unwrap();
    assert!(is_closed(&mut stalled));
}

#[test]
fn udp_garbage_flood_leaves_the_server_answering() {
    let server = TestServer::start();
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = Rng::new(0x5EED);
    let valid = query("dev.vm", rtype::A).build();
    let started = Instant::now();
    for i in 0..2000 {
        let datagram = match i % 4 {
            // Mutated valid queries reach deeper into the parser than noise.
            0 => {
                let mut q = valid.clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(q.len());
                    q[at] ^= rng.bytes(1)[0] | 1;
                }
                q
            }
            _ => {
                let len = rng.below(600);
                rng.bytes(len)
            }
        };
        // The send buffer may fill; a dropped datagram is part of a flood.
        let _ = flood.send_to(&datagram, server.addr);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "flood too slow"
    );

    // UDP may lose a query under load: retry a few times before failing.
    let probe = query("dev.vm", rtype::A).id(4242).build();
    let answered = (0..5).any(|_| {
        udp_exchange(server.addr, &probe, Duration::from_secs(1))
            .and_then(|raw| parse(&raw).ok())
            .is_some_and(|msg| msg.header.id == 4242 && msg.answers.len() == 1)
    });
    assert!(answered, "no answer after the flood");
    let mut stream = server.tcp();
    tcp_send(&mut stream, &probe);
    assert_eq!(tcp_receive(&mut stream).header.id, 4242);
}

#[test]
fn shutdown_ends_serve_and_closes_connections() {
    let mut server = TestServer::start();
    let mut open = server.tcp();
    tcp_send(&mut open, &query("dev.vm", rtype::A).build());
    tcp_receive(&mut open);
    assert!(
        server.stop_within(Duration::from_secs(2)),
        "serve did not return"
    );
    assert!(
        is_closed(&mut open),
        "open connections are closed at shutdown"
    );
    let unanswered = udp_exchange(
        server.addr,
        &query("dev.vm", rtype::A).build(),
        Duration::from_millis(300),
    );
    assert_eq!(unanswered, None);
}

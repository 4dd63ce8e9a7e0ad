use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::*;

fn all_frames() -> Vec<Frame> {
    vec![
        Frame::Sync { nonce: 7 },
        Frame::SyncAck { nonce: u64::MAX },
        Frame::SyncReq,
        Frame::Open {
            stream: 3,
            port: 1024,
        },
        Frame::OpenOk { stream: 3 },
        Frame::OpenErr {
            stream: 3,
            reason: "no".into(),
        },
        Frame::Data {
            stream: 9,
            bytes: vec![0, 1, 2],
        },
        Frame::Credit {
            stream: 9,
            bytes: 4096,
        },
        Frame::Eof { stream: 9 },
        Frame::Rst { stream: 9 },
    ]
}

fn frames(events: Vec<Event>) -> Vec<Frame> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f),
            Event::Lost => None,
        })
        .collect()
}

#[test]
fn every_frame_survives_the_wire_even_a_byte_at_a_time() {
    let mut bytes = Frame::Sync { nonce: 1 }.encode();
    for frame in all_frames() {
        bytes.extend(frame.encode());
    }
    let mut parser = Parser::new();
    let mut got = Vec::new();
    for byte in &bytes {
        got.extend(parser.push(std::slice::from_ref(byte)));
    }
    assert!(!got.contains(&Event::Lost));
    let mut want = vec![Frame::Sync { nonce: 1 }];
    want.extend(all_frames());
    assert_eq!(frames(got), want);
}

#[test]
fn nothing_before_the_first_sync_frame_is_taken() {
    let mut bytes = b"garbage".to_vec();
    bytes.extend(
        Frame::Data {
            stream: 1,
            bytes: vec![1],
        }
        .encode(),
    );
    bytes.extend(Frame::Sync { nonce: 5 }.encode());
    bytes.extend(Frame::Eof { stream: 1 }.encode());
    let got = Parser::new().push(&bytes);
    assert_eq!(
        got,
        vec![
            Event::Frame(Frame::Sync { nonce: 5 }),
            Event::Frame(Frame::Eof { stream: 1 })
        ]
    );
}

#[test]
fn a_frame_cut_short_is_left_behind_by_the_pad_and_the_next_sync() {
    // What a snapshot leaves: the head of a frame whose tail is gone.
    let mut parser = Parser::new();
    parser.push(&Frame::Sync { nonce: 1 }.encode());
    let data = Frame::Data {
        stream: 2,
        bytes: vec![7u8; MAX_PAYLOAD],
    }
    .encode();
    assert!(parser.push(&data[..100]).is_empty());
    let mut next = vec![0u8; PAD];
    next.extend(Frame::Sync { nonce: 2 }.encode());
    let got = parser.push(&next);
    assert_eq!(got.last(), Some(&Event::Frame(Frame::Sync { nonce: 2 })));
    assert!(got.contains(&Event::Lost), "{got:?}");
    assert!(!parser.is_hunting());
}

#[test]
fn a_hunting_parser_keeps_a_sync_frame_split_across_reads() {
    let mut parser = Parser::new();
    let sync = Frame::SyncReq.encode();
    let mut first = vec![0xAAu8; 5000];
    first.extend_from_slice(&sync[..10]);
    assert!(parser.push(&first).is_empty());
    assert_eq!(parser.push(&sync[10..]), vec![Event::Frame(Frame::SyncReq)]);
}

#[test]
fn impossible_headers_are_lost_not_trusted() {
    for bad in [
        vec![0u8; 9],                     // kind 0
        vec![42, 0, 0, 0, 1, 0, 0, 0, 0], // unknown kind
        vec![7, 0, 0, 0, 1, 0, 0, 0, 0],  // empty DATA
        vec![7, 0, 0, 0, 1, 0, 1, 0, 0],  // DATA over the limit
        vec![8, 0, 0, 0, 1, 0, 0, 0, 9],  // CREDIT of the wrong size
    ] {
        let mut parser = Parser::new();
        parser.push(&Frame::Sync { nonce: 1 }.encode());
        let got = parser.push(&bad);
        assert_eq!(got.first(), Some(&Event::Lost), "{bad:?}");
        assert!(parser.is_hunting());
    }
}

/// A host and a guest over a socket pair standing in for the port; the
/// guest echoes every stream it accepts.
struct Pair {
    host: Mux,
    guest: Mux,
    _host_port: UnixStream,
}

fn echo_guest(guest_port: UnixStream) -> Mux {
    let (guest, accepted) = Mux::guest(Box::new(guest_port.try_clone().unwrap()), vec![1024]);
    guest.request_sessions(Duration::from_millis(50));
    let reader = guest.clone();
    thread::spawn(move || {
        let mut port = guest_port;
        let mut parser = Parser::new();
        let _ = reader.read_from(&mut port, &mut parser);
    });
    thread::spawn(move || {
        for conn in accepted {
            thread::spawn(move || {
                let mut reader = conn.try_clone().unwrap();
                let mut writer = conn;
                let _ = std::io::copy(&mut reader, &mut writer);
                let _ = writer.shutdown(Shutdown::Write);
            });
        }
    });
    guest
}

fn pair() -> Pair {
    let (host_port, guest_port) = UnixStream::pair().unwrap();
    let guest = echo_guest(guest_port);
    let host = reading_host(&host_port);
    host.start_session().unwrap();
    wait_for(|| host.is_synced());
    Pair {
        host,
        guest,
        _host_port: host_port,
    }
}

fn wait_for(mut what: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !what() {
        assert!(Instant::now() < deadline, "timed out");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A host end on `port` with its reader running.
fn reading_host(port: &UnixStream) -> Mux {
    let host = Mux::host(Box::new(port.try_clone().unwrap()));
    let reader = host.clone();
    let mut port = port.try_clone().unwrap();
    thread::spawn(move || {
        let mut parser = Parser::new();
        let _ = reader.read_from(&mut port, &mut parser);
    });
    host
}

/// Sends `bytes` on an echoing stream, ends it, and returns what came back.
fn echoed(stream: &UnixStream, bytes: &[u8]) -> Vec<u8> {
    let mut writer = stream;
    writer.write_all(bytes).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    let mut reader = stream;
    reader.read_to_end(&mut back).unwrap();
    back
}

/// Opens a stream and returns the host-side end a client would hold.
fn connect(host: &Mux) -> UnixStream {
    let id = host.open(1024, Duration::from_secs(5)).unwrap();
    let (client, ours) = UnixStream::pair().unwrap();
    host.attach(id, ours).unwrap();
    client
}

#[test]
fn megabytes_go_through_a_stream_and_come_back_intact() {
    let p = pair();
    let client = connect(&p.host);
    let sent: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut writer = client.try_clone().unwrap();
    let to_send = sent.clone();
    let feeder = thread::spawn(move || {
        writer.write_all(&to_send).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    (&client).read_to_end(&mut back).unwrap();
    feeder.join().unwrap();
    assert_eq!(back.len(), sent.len());
    assert!(back == sent);
    // Both directions ended: the stream is gone on both sides.
    wait_for(|| p.host.shared_streams() == 0 && p.guest.shared_streams() == 0);
}

#[test]
fn a_stalled_stream_does_not_stall_the_others() {
    let p = pair();
    // Fill one stream and never read its echo: its credit runs out.
    let stalled = connect(&p.host);
    let mut w = stalled.try_clone().unwrap();
    thread::spawn(move || {
        let _ = w.write_all(&vec![1u8; 4 * WINDOW]);
    });
    thread::sleep(Duration::from_millis(200));
    let other = connect(&p.host);
    assert_eq!(echoed(&other, b"ping"), b"ping");
    drop(stalled);
}

#[test]
fn a_refused_port_is_an_error_with_the_reason() {
    let p = pair();
    let err = p.host.open(22, Duration::from_secs(5)).unwrap_err();
    assert!(
        matches!(err, OpenError::Refused(ref r) if r.contains("port 22")),
        "{err}"
    );
}

#[test]
fn a_new_session_ends_the_old_streams_on_both_sides() {
    let p = pair();
    let client = connect(&p.host);
    p.host.start_session().unwrap();
    let mut buf = [0u8; 1];
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        (&client).read(&mut buf).unwrap(),
        0,
        "old stream still open"
    );
    wait_for(|| p.host.is_synced());
    wait_for(|| p.guest.shared_streams() == 0);
    // And the new session works.
    let again = connect(&p.host);
    assert_eq!(echoed(&again, b"x"), b"x");
}

#[test]
fn a_restarted_guest_asks_for_and_gets_a_session() {
    let (host_port, guest_port) = UnixStream::pair().unwrap();
    let host = reading_host(&host_port);
    // The host's first SYNC went to nobody: the guest starts later, with
    // half a frame of an earlier life in front of its request.
    host.start_session().unwrap();
    let mut junk = guest_port.try_clone().unwrap();
    junk.write_all(
        &Frame::Data {
            stream: 1,
            bytes: vec![0; 100],
        }
        .encode()[..50],
    )
    .unwrap();
    let mut drain = guest_port.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // Swallow what the host sent before the guest existed.
        let mut buf = vec![0u8; PAD + 100];
        let _ = drain.read_exact(&mut buf[..PAD + Frame::Sync { nonce: 0 }.encode().len()]);
        tx.send(drain).unwrap();
    });
    let guest_port = rx.recv().unwrap();
    let _guest = echo_guest(guest_port);
    wait_for(|| host.is_synced());
    let client = connect(&host);
    assert_eq!(echoed(&client, b"hello"), b"hello");
}

#[test]
fn a_peer_that_ignores_credit_loses_the_stream_not_the_session() {
    let p = pair();
    let client = connect(&p.host);
    // Play a hostile guest on the host's port: more DATA than the window.
    // Its frames go straight to the host's handler, as its reader would
    // hand them over.
    for _ in 0..(WINDOW / MAX_PAYLOAD + 2) {
        p.host.inject_for_test(Frame::Data {
            stream: 1,
            bytes: vec![9u8; MAX_PAYLOAD],
        });
    }
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = (&client).read_to_end(&mut sink);
    assert!(sink.len() <= WINDOW, "read {} bytes", sink.len());
    assert!(p.host.is_synced());
    let other = connect(&p.host);
    drop(other);
}

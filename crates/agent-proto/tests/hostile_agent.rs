//! The client against a hostile guest: a fake agent behind a stand-in for
//! the VMM's hybrid vsock socket (`CONNECT <port>` → `OK <n>`, then the
//! agent's bytes), answering with whatever a test scripts. Every read is
//! bounded by the call's own answer, while it is read (SPEC §12).
//!
//! These tests use only the client's public API as it was before the
//! per-call limits, so they also run against the old client (one limit of
//! 193 MiB for every answer, parsed into a `serde_json::Value`), where nine
//! of them fail: every `a_300_mib_answer_to_*` (the fake wrote 193 MiB
//! before the old client gave up), `a_100k_entry_ports_answer_is_refused`
//! and `more_than_4096_ports_are_refused` (accepted),
//! `an_overlong_hostname_is_refused` (accepted) and
//! `a_huge_agent_error_message_is_cut` (kept whole). The streamed-exec
//! flood and the well-formed answers pass on both: streamed lines were
//! already bounded, and nothing legitimate was lost.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use banger_agent_proto::protocol::{
    AGENT_PORT, ExecRequest, HealthResult, IdentityRequest, IdentityResult, ListeningPort,
    OutputFrame, OutputStream, Proto, Response,
};
use banger_agent_proto::{AgentClient, ClientError};

const TIMEOUT: Duration = Duration::from_secs(30);

/// What the fake agent does once it has read the request line: writes to
/// the connection, and may report how many bytes it managed to write.
type Script = Box<dyn FnOnce(&mut UnixStream, &AtomicU64) + Send>;

struct FakeAgent {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    /// Bytes of the answer the fake wrote before the client stopped reading.
    written: Arc<AtomicU64>,
    /// The request line it received.
    request: thread::JoinHandle<String>,
}

impl FakeAgent {
    /// Serves one connection: the hybrid vsock handshake, one request
    /// line, then `script`.
    fn start(script: Script) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("v.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let written = Arc::new(AtomicU64::new(0));
        let counter = written.clone();
        let request = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut connect = String::new();
            reader.read_line(&mut connect).unwrap();
            assert_eq!(connect, format!("CONNECT {AGENT_PORT}\n"));
            conn.write_all(format!("OK {AGENT_PORT}\n").as_bytes())
                .unwrap();
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            script(&mut conn, &counter);
            request
        });
        FakeAgent {
            _dir: dir,
            sock,
            written,
            request,
        }
    }

    /// Answers with one line.
    fn answering(line: Vec<u8>) -> FakeAgent {
        FakeAgent::start(Box::new(move |conn, counter| {
            let _ = conn.write_all(&line).and_then(|()| conn.write_all(b"\n"));
            counter.store(line.len() as u64 + 1, Ordering::SeqCst);
            // Hold the connection until the client is done with it.
            let _ = conn.read(&mut [0u8; 1]);
        }))
    }

    /// Answers with `total` bytes of garbage and no newline, slowly (256
    /// KiB writes, a millisecond apart), counting what the client took
    /// before it hung up.
    fn flooding(total: u64) -> FakeAgent {
        FakeAgent::start(Box::new(move |conn, counter| {
            let chunk = vec![b'A'; 256 << 10];
            conn.set_write_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut sent = 0u64;
            while sent < total {
                match conn.write(&chunk) {
                    Ok(n) => {
                        sent += n as u64;
                        counter.store(sent, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => break,
                }
            }
        }))
    }

    fn client(&self) -> AgentClient {
        AgentClient::connect_hybrid(&self.sock, AGENT_PORT, TIMEOUT).unwrap()
    }

    /// Waits for the fake to finish and returns (request line, bytes
    /// written).
    fn finish(self) -> (String, u64) {
        let request = self.request.join().unwrap();
        (request, self.written.load(Ordering::SeqCst))
    }
}

/// The error of a call that must fail, without printing a huge success.
fn refused<T>(result: Result<Vec<T>, ClientError>) -> ClientError {
    match result {
        Ok(accepted) => panic!("accepted an answer of {} entries", accepted.len()),
        Err(e) => e,
    }
}

fn bad_response(err: &ClientError) -> &str {
    match err {
        ClientError::BadResponse { reason } => reason,
        other => panic!("expected a bad response, got: {other}"),
    }
}

/// A 300 MiB answer without a newline: the call fails soon after its limit
/// having taken only about that limit off the socket (the old client read
/// up to 193 MiB for every call, and held it all).
fn flood(call: impl FnOnce(AgentClient) -> Result<(), ClientError>, limit: u64) {
    let fake = FakeAgent::flooding(300 << 20);
    let started = Instant::now();
    let err = call(fake.client()).unwrap_err();
    let took = started.elapsed();
    let reason = bad_response(&err).to_owned();
    assert!(reason.contains("longer than"), "{reason}");
    let (_, written) = fake.finish();
    eprintln!("limit {limit}: the fake agent wrote {written} bytes in {took:?}");
    // What the client read (at most the limit and one 64 KiB read) plus
    // what the two socket buffers held when it hung up.
    assert!(
        written <= limit + (2 << 20),
        "the fake agent wrote {written} bytes for a {limit}-byte limit"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_300_mib_answer_to_health_is_cut_at_its_limit() {
    flood(|c| c.health().map(drop), 64 << 10);
}

#[test]
fn a_300_mib_answer_to_poweroff_is_cut_at_its_limit() {
    flood(|c| c.poweroff(), 64 << 10);
}

#[test]
fn a_300_mib_answer_to_freeze_or_thaw_is_cut_at_its_limit() {
    flood(|c| c.freeze(), 64 << 10);
    flood(|c| c.thaw(), 64 << 10);
}

#[test]
fn a_300_mib_answer_to_identity_is_cut_at_its_limit() {
    flood(
        |c| {
            c.identity(IdentityRequest {
                hostname: Some("dev".into()),
                ..IdentityRequest::default()
            })
            .map(drop)
        },
        64 << 10,
    );
}

#[test]
fn a_300_mib_answer_to_ports_is_cut_at_its_limit() {
    flood(|c| c.ports().map(drop), 576 << 10);
}

#[test]
fn a_300_mib_answer_to_a_capped_exec_is_cut_at_its_limit() {
    let mut request = ExecRequest::new(["cat", "/etc/os-release"]);
    request.max_output_bytes = Some(4096);
    // 2 × 6 × 4 KiB of output at most, plus 64 KiB of envelope.
    flood(|c| c.exec(request).map(drop), 112 << 10);
}

#[test]
fn a_300_mib_streamed_exec_line_is_cut_at_the_frame_limit() {
    flood(
        |c| {
            c.exec_streaming(ExecRequest::new(["true"]), &mut |_, _| {})
                .map(drop)
        },
        128 << 10,
    );
}

fn ports_answer(n: usize) -> Vec<u8> {
    let mut line = br#"{"ok":true,"result":["#.to_vec();
    for i in 0..n {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(
            format!(
                r#"{{"proto":"tcp","addr":"::","port":{},"inode":1}}"#,
                i % 65536
            )
            .as_bytes(),
        );
    }
    line.extend_from_slice(b"]}");
    line
}

#[test]
fn a_100k_entry_ports_answer_is_refused() {
    let fake = FakeAgent::answering(ports_answer(100_000));
    let err = refused(fake.client().ports());
    let reason = bad_response(&err);
    assert!(
        reason.contains("more than 4096 listening sockets"),
        "{reason}"
    );
    fake.finish();
}

#[test]
fn more_than_4096_ports_are_refused() {
    // Short entries: 5000 of them fit the answer's byte limit, so the
    // count is what refuses them.
    let fake = FakeAgent::answering(ports_answer(5000));
    let err = refused(fake.client().ports());
    let reason = bad_response(&err);
    assert!(
        reason.contains("the guest reported more than 4096 listening sockets"),
        "{reason}"
    );
    fake.finish();
    // 4096 are fine.
    let fake = FakeAgent::answering(ports_answer(4096));
    assert_eq!(fake.client().ports().unwrap().len(), 4096);
    fake.finish();
}

fn health() -> HealthResult {
    HealthResult {
        agent: "0.1.0".into(),
        protocol: 1,
        hostname: "dev".into(),
        uptime_s: 3.5,
        boot_id: "c45bd7e9-d0cf-488f-9b8c-c9043786dbe8".into(),
        frozen: false,
    }
}

#[test]
fn an_overlong_hostname_is_refused() {
    let mut h = health();
    h.hostname = "x".repeat(10_000);
    let fake = FakeAgent::answering(Response::success(&h).encode());
    let err = fake.client().health().unwrap_err();
    assert!(bad_response(&err).contains("hostname"), "{err}");
    fake.finish();
}

#[test]
fn a_huge_agent_error_message_is_cut() {
    let message = "e".repeat(50_000);
    let line = format!(r#"{{"ok":false,"error":{{"code":"failed","message":"{message}"}}}}"#);
    let fake = FakeAgent::answering(line.into_bytes());
    let err = fake.client().health().unwrap_err();
    match &err {
        ClientError::Agent { message, .. } => {
            assert!(message.len() < 5000, "{} bytes", message.len());
            assert!(message.ends_with("more bytes]"), "{message}");
        }
        other => panic!("{other}"),
    }
    fake.finish();
}

#[test]
fn well_formed_answers_of_every_call_still_work() {
    let fake = FakeAgent::answering(Response::success(&health()).encode());
    assert_eq!(fake.client().health().unwrap(), health());
    let (request, _) = fake.finish();
    assert!(request.contains(r#""method":"health""#), "{request}");

    let ports = vec![ListeningPort {
        proto: Proto::Tcp,
        addr: "0.0.0.0".parse().unwrap(),
        port: 22,
        inode: 15001,
    }];
    let fake = FakeAgent::answering(Response::success(&ports).encode());
    assert_eq!(fake.client().ports().unwrap(), ports);
    fake.finish();

    let identity = IdentityResult {
        written: vec!["/etc/hostname".into()],
        hostname_set: true,
        ..IdentityResult::default()
    };
    let fake = FakeAgent::answering(Response::success(&identity).encode());
    let got = fake
        .client()
        .identity(IdentityRequest {
            hostname: Some("dev".into()),
            ..IdentityRequest::default()
        })
        .unwrap();
    assert_eq!(got, identity);
    fake.finish();

    let fake = FakeAgent::answering(br#"{"ok":true,"result":{}}"#.to_vec());
    fake.client().poweroff().unwrap();
    fake.finish();

    for (call, method) in [
        (
            AgentClient::freeze as fn(AgentClient) -> Result<(), ClientError>,
            "freeze",
        ),
        (AgentClient::thaw, "thaw"),
    ] {
        let fake = FakeAgent::answering(br#"{"ok":true,"result":{}}"#.to_vec());
        call(fake.client()).unwrap();
        let (request, _) = fake.finish();
        assert!(
            request.contains(&format!(r#""method":"{method}""#)),
            "{request}"
        );
    }

    // An exec answer at its cap, every byte a control byte (six on the
    // wire), in both streams: the largest legitimate answer still fits.
    let cap = 4096;
    let output = "\u{1}".repeat(cap);
    let line = format!(
        r#"{{"ok":true,"result":{{"status":0,"signal":null,"timed_out":false,"stdout":{0},"stderr":{0},"stdout_truncated":true,"stderr_truncated":true,"encoding":"utf8","duration_s":0.1}}}}"#,
        serde_json::to_string(&output).unwrap()
    );
    let fake = FakeAgent::answering(line.into_bytes());
    let mut request = ExecRequest::new(["yes"]);
    request.max_output_bytes = Some(cap as u64);
    let result = fake.client().exec(request).unwrap();
    assert_eq!(result.stdout, output);
    assert!(result.stdout_truncated);
    fake.finish();

    // Streaming: frames, then the result.
    let result_line = line_of_empty_exec_result();
    let fake = FakeAgent::start(Box::new(move |conn, _| {
        for line in [
            OutputFrame::new(OutputStream::Stdout, b"hi\n").encode(),
            result_line,
        ] {
            conn.write_all(&line).unwrap();
            conn.write_all(b"\n").unwrap();
        }
        let _ = conn.read(&mut [0u8; 1]);
    }));
    let mut got = Vec::new();
    let result = fake
        .client()
        .exec_streaming(ExecRequest::new(["echo", "hi"]), &mut |s, d| {
            got.push((s, d.to_vec()))
        })
        .unwrap();
    assert_eq!(result.status, Some(0));
    assert_eq!(got, [(OutputStream::Stdout, b"hi\n".to_vec())]);
    fake.finish();
}

fn line_of_empty_exec_result() -> Vec<u8> {
    br#"{"ok":true,"result":{"status":0,"signal":null,"timed_out":false,"stdout":"","stderr":"","stdout_truncated":false,"stderr_truncated":false,"encoding":"utf8","duration_s":0.1}}"#.to_vec()
}

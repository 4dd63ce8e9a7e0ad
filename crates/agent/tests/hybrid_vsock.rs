//! End to end on the host: the real service loop on a Unix socket, reached
//! by the real client through a stand-in for the VMM's hybrid vsock socket
//! (what Firecracker and the agent-mux sidecar do: read `CONNECT <port>\n`,
//! answer `OK <n>\n`, then splice the bytes to the guest's listener).
#![forbid(unsafe_code)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use banger_agent::protocol::{
    AGENT_PORT, ErrorCode, ExecRequest, ExecResult, HostKey, IdentityRequest, InputFrame,
    MAX_REQUEST_BYTES, OutputStream, Proto,
};
use banger_agent::service::{PowerControl, PowerError, ServiceConfig, serve};
use banger_agent::{AgentClient, ClientError};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Counts power-off requests instead of stopping the machine.
#[derive(Default)]
struct RecordingPower(AtomicUsize);

impl PowerControl for RecordingPower {
    fn power_off(&self) -> Result<(), PowerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// What the stand-in VMM answers to `CONNECT`.
#[derive(Clone)]
enum ShimReply {
    /// `OK <n>` and splice (the number is the VMM's host-side port).
    Accept(u32),
    /// Send this line and close.
    Refuse(&'static str),
    /// Close without a word (nothing listens on the guest port).
    Close,
    /// Close without even reading the request (what a VMM's vsock socket
    /// can do before the guest's device is up): the client sees a reset or
    /// EPIPE rather than EOF.
    Drop,
}

struct Harness {
    _dir: tempfile::TempDir,
    root: PathBuf,
    agent_sock: PathBuf,
    vmm_sock: PathBuf,
    power: Arc<RecordingPower>,
}

impl Harness {
    fn start() -> Harness {
        Harness::start_with(ShimReply::Accept(AGENT_PORT), |_| {})
    }

    fn start_with(reply: ShimReply, tweak: impl FnOnce(&mut ServiceConfig)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let agent_sock = dir.path().join("agent.sock");
        let vmm_sock = dir.path().join("v.sock");
        let power = Arc::new(RecordingPower::default());

        let mut config = ServiceConfig::guest(power.clone());
        config.fs_root = root.clone();
        config.apply_live = false;
        config.request_timeout = Duration::from_secs(2);
        tweak(&mut config);
        let listener = UnixListener::bind(&agent_sock).unwrap();
        let config = Arc::new(config);
        thread::spawn(move || serve(listener, config));

        let vmm = UnixListener::bind(&vmm_sock).unwrap();
        let target = agent_sock.clone();
        thread::spawn(move || {
            for conn in vmm.incoming() {
                let conn = conn.unwrap();
                let target = target.clone();
                let reply = reply.clone();
                thread::spawn(move || hybrid_vsock(conn, &target, reply));
            }
        });
        Harness {
            _dir: dir,
            root,
            agent_sock,
            vmm_sock,
            power,
        }
    }

    fn client(&self) -> AgentClient {
        AgentClient::connect_hybrid(&self.vmm_sock, AGENT_PORT, TIMEOUT).unwrap()
    }

    /// Sends raw bytes after a manual handshake; returns the response line.
    fn raw(&self, payload: Vec<u8>) -> serde_json::Value {
        let mut conn = UnixStream::connect(&self.vmm_sock).unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        conn.write_all(format!("CONNECT {AGENT_PORT}\n").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut handshake = String::new();
        reader.read_line(&mut handshake).unwrap();
        assert_eq!(handshake, format!("OK {AGENT_PORT}\n"));
        // Written from a thread: an oversized payload is not read to the
        // end, so this write may block or fail, and that must not matter.
        let writer = thread::spawn(move || {
            let _ = conn.write_all(&payload);
        });
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        drop(reader);
        let _ = writer.join();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

/// The stand-in VMM side of one connection.
fn hybrid_vsock(mut host: UnixStream, agent: &Path, reply: ShimReply) {
    if let ShimReply::Drop = reply {
        return;
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while host.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let port: u32 = match std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix("CONNECT "))
        .and_then(|p| p.parse().ok())
    {
        Some(port) => port,
        None => return,
    };
    match reply {
        ShimReply::Close | ShimReply::Drop => return,
        ShimReply::Refuse(text) => {
            let _ = host.write_all(text.as_bytes());
            return;
        }
        ShimReply::Accept(n) => {
            assert_eq!(port, AGENT_PORT);
            host.write_all(format!("OK {n}\n").as_bytes()).unwrap();
        }
    }
    common::splice_to_agent(host, agent);
}

#[test]
fn health_reports_version_host_and_boot() {
    let h = Harness::start();
    let health = h.client().health().unwrap();
    assert_eq!(health.agent, banger_agent::AGENT_VERSION);
    assert_eq!(health.protocol, 1);
    assert_eq!(
        health.hostname,
        nix::unistd::gethostname().unwrap().to_string_lossy()
    );
    assert!(health.uptime_s > 0.0);
    assert_eq!(
        health.boot_id,
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
    );
}

#[test]
fn ports_include_a_socket_listening_now() {
    let h = Harness::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ports = h.client().ports().unwrap();
    assert!(
        ports.iter().any(|p| p.proto == Proto::Tcp
            && p.port == port
            && p.addr == std::net::IpAddr::from([127, 0, 0, 1])),
        "{port} not in {ports:?}"
    );
}

#[test]
fn exec_reports_status_and_output() {
    let h = Harness::start();
    let result = h
        .client()
        .exec(ExecRequest::new(["sh", "-c", "echo hi; exit 7"]))
        .unwrap();
    assert_eq!(result.status, Some(7));
    assert_eq!(result.signal, None);
    assert_eq!(result.stdout, "hi\n");
    assert_eq!(result.stderr, "");
    assert!(!result.timed_out);
}

#[test]
fn exec_streams_output_before_the_command_ends() {
    let h = Harness::start();
    let started = Instant::now();
    let mut frames = Vec::new();
    let result = h
        .client()
        .exec_streaming(
            ExecRequest::new([
                "sh",
                "-c",
                "echo first; echo oops >&2; sleep 2; echo second",
            ]),
            &mut |stream, data| frames.push((started.elapsed(), stream, data.to_vec())),
        )
        .unwrap();
    assert_eq!(result.status, Some(0));
    assert_eq!((result.stdout.as_str(), result.stderr.as_str()), ("", ""));
    let joined = |which| -> Vec<u8> {
        frames
            .iter()
            .filter(|(_, s, _)| *s == which)
            .flat_map(|(_, _, d)| d.clone())
            .collect()
    };
    assert_eq!(joined(OutputStream::Stdout), b"first\nsecond\n");
    assert_eq!(joined(OutputStream::Stderr), b"oops\n");
    // The first line left the guest while the 2 s command was still running.
    assert!(
        frames[0].0.as_secs_f64() < result.duration_s - 1.0,
        "{frames:?}"
    );
}

#[test]
fn exec_pipes_a_large_input_stream_into_the_command() {
    let h = Harness::start();
    let data: Vec<u8> = (0..3 << 20).map(|i: usize| (i % 251) as u8).collect();
    let result = h
        .client()
        .exec_with_input(
            ExecRequest::new(["wc", "-c"]),
            &mut std::io::Cursor::new(data.clone()),
            None,
        )
        .unwrap();
    assert_eq!(result.status, Some(0), "{result:?}");
    assert_eq!(result.stdout.trim(), (3 << 20).to_string());

    // Echoed back while it goes in: output frames and input frames share
    // the connection in both directions at once.
    let mut echoed = Vec::new();
    let result = h
        .client()
        .exec_with_input(
            ExecRequest::new(["cat"]),
            &mut std::io::Cursor::new(data.clone()),
            Some(&mut |stream, piece: &[u8]| {
                assert_eq!(stream, OutputStream::Stdout);
                echoed.extend_from_slice(piece);
            }),
        )
        .unwrap();
    assert_eq!(result.status, Some(0), "{result:?}");
    assert!(echoed == data);
}

/// Yields some bytes, then fails, like a producer dying mid-archive.
struct FailingInput(usize);

impl Read for FailingInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("producer died"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn exec_input_cut_short_kills_the_command_before_it_acts() {
    assert_cut_short_input_is_never_acted_on(|client, request| {
        client.exec_with_input(request, &mut FailingInput(200_000), None)
    });
}

/// `send` runs a command that would act once its input ends, with input
/// that breaks off: the call fails as incomplete input, at once, and the
/// command never acts.
fn assert_cut_short_input_is_never_acted_on(
    send: impl FnOnce(AgentClient, ExecRequest) -> Result<ExecResult, ClientError>,
) {
    let h = Harness::start();
    let dir = tempfile::tempdir().unwrap();
    let acted = dir.path().join("acted");
    let script = format!("cat > /dev/null; touch {}", acted.display());
    let started = Instant::now();
    let err = send(h.client(), ExecRequest::new(["sh", "-c", &script])).unwrap_err();
    assert!(matches!(err, ClientError::Input { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    thread::sleep(Duration::from_millis(200));
    assert!(!acted.exists(), "the command acted on partial input");
}

#[test]
fn input_frames_sent_with_the_request_line_are_not_lost() {
    let h = Harness::start();
    // One write: the agent reads the frames along with the request.
    let mut payload =
        br#"{"version":1,"method":"exec","params":{"argv":["cat"],"stdin_stream":true}}"#.to_vec();
    for frame in [
        InputFrame::data(b"hello "),
        InputFrame::data(b"there"),
        InputFrame::end(),
    ] {
        payload.push(b'\n');
        payload.extend_from_slice(&frame.encode());
    }
    payload.push(b'\n');
    let answer = h.raw(payload);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["stdout"], "hello there");

    let both = br#"{"version":1,"method":"exec","params":{"argv":["cat"],"stdin":"aGk=","stdin_stream":true}}
"#;
    let answer = h.raw(both.to_vec());
    assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
}

#[test]
fn exec_timeout_kills_and_reports() {
    let h = Harness::start();
    let started = Instant::now();
    let result = h
        .client()
        .exec(ExecRequest::new(["sleep", "30"]).timeout(Duration::from_millis(300)))
        .unwrap();
    assert!(result.timed_out);
    assert_eq!(result.signal, Some(9));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn exec_failures_are_typed_agent_errors() {
    let h = Harness::start();
    let err = h
        .client()
        .exec(ExecRequest::new(["/nonexistent/banger-program"]))
        .unwrap_err();
    assert_eq!(err.agent_code(), Some(ErrorCode::Failed), "{err}");
    assert!(err.to_string().contains("banger-program"), "{err}");

    let err = h
        .client()
        .exec(ExecRequest::new(Vec::<String>::new()))
        .unwrap_err();
    assert_eq!(err.agent_code(), Some(ErrorCode::BadRequest), "{err}");
}

#[test]
fn identity_writes_keys_with_their_modes() {
    let h = Harness::start();
    let result = h
        .client()
        .identity(IdentityRequest {
            hostname: Some("dev".into()),
            authorized_keys: Some("ssh-ed25519 AAAA me@host\n".into()),
            host_key: Some(HostKey {
                private:
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"
                        .into(),
                public: "ssh-ed25519 BBBB root@dev".into(),
            }),
            ..IdentityRequest::default()
        })
        .unwrap();
    assert_eq!(result.written.len(), 4);
    let mode = |p: &str| {
        std::fs::metadata(h.root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("root/.ssh"), 0o700);
    assert_eq!(mode("root/.ssh/authorized_keys"), 0o600);
    assert_eq!(mode("etc/ssh/ssh_host_ed25519_key"), 0o600);
    assert_eq!(mode("etc/ssh/ssh_host_ed25519_key.pub"), 0o644);
    assert_eq!(
        std::fs::read_to_string(h.root.join("etc/hostname")).unwrap(),
        "dev\n"
    );
}

#[test]
fn poweroff_replies_first_then_powers_off() {
    let h = Harness::start();
    assert_eq!(h.power.0.load(Ordering::SeqCst), 0);
    h.client().poweroff().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.power.0.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(h.power.0.load(Ordering::SeqCst), 1);
}

#[test]
fn bad_version_and_unknown_method_get_their_codes() {
    let h = Harness::start();
    let answer = h.raw(b"{\"version\":2,\"method\":\"health\"}\n".to_vec());
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["error"]["code"], "bad_version");

    let answer = h.raw(b"{\"version\":1,\"method\":\"reboot\"}\n".to_vec());
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["error"]["code"], "unknown_method");

    let answer = h.raw(b"{\"version\":1,\"method\":\"health\"}\n".to_vec());
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["result"]["agent"], banger_agent::AGENT_VERSION);
}

#[test]
fn oversized_request_is_bad_request() {
    let h = Harness::start();
    let mut payload = vec![b' '; MAX_REQUEST_BYTES + 1];
    payload.push(b'\n');
    let answer = h.raw(payload);
    assert_eq!(answer["error"]["code"], "bad_request");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{answer}"
    );
    // A request of exactly the limit is still read (and then judged on
    // its content).
    let health = b"{\"version\":1,\"method\":\"health\"}";
    let mut at_limit = vec![b' '; MAX_REQUEST_BYTES - health.len()];
    at_limit.extend_from_slice(health);
    at_limit.push(b'\n');
    assert_eq!(at_limit.len(), MAX_REQUEST_BYTES + 1);
    assert_eq!(h.raw(at_limit)["ok"], true);
}

#[test]
fn a_request_that_never_ends_times_out() {
    let h = Harness::start_with(ShimReply::Accept(AGENT_PORT), |c| {
        c.request_timeout = Duration::from_millis(300)
    });
    let started = Instant::now();
    let answer = h.raw(b"{\"version\":1,".to_vec());
    assert_eq!(answer["error"]["code"], "bad_request");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn connections_beyond_the_limit_are_refused_busy() {
    let h = Harness::start_with(ShimReply::Accept(AGENT_PORT), |c| c.max_connections = 1);
    // Occupies the only slot: connected, no request yet.
    let holder = UnixStream::connect(&h.agent_sock).unwrap();
    thread::sleep(Duration::from_millis(100));
    let answer = h.raw(b"{\"version\":1,\"method\":\"health\"}\n".to_vec());
    assert_eq!(answer["error"]["code"], "failed");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("busy")
    );
    drop(holder);
    // The slot frees once the holder's connection is done.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match h.client().health() {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.agent_code(), Some(ErrorCode::Failed), "{e}");
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("slot never freed: {e}"),
        }
    }
}

#[test]
fn any_numeric_ok_is_accepted() {
    // Firecracker answers with its own host-side port number.
    let h = Harness::start_with(ShimReply::Accept(1_073_741_824), |_| {});
    assert!(h.client().health().is_ok());
}

#[test]
fn handshake_refusal_is_a_typed_error() {
    let h = Harness::start_with(ShimReply::Refuse("NOPE\n"), |_| {});
    let err = AgentClient::connect_hybrid(&h.vmm_sock, AGENT_PORT, TIMEOUT).unwrap_err();
    match &err {
        ClientError::HandshakeRefused { reply, port, .. } => {
            assert_eq!(reply, "NOPE");
            assert_eq!(*port, AGENT_PORT);
        }
        other => panic!("{other}"),
    }
    assert!(err.is_retryable());

    let h = Harness::start_with(ShimReply::Close, |_| {});
    let err = AgentClient::connect_hybrid(&h.vmm_sock, AGENT_PORT, TIMEOUT).unwrap_err();
    assert!(
        matches!(&err, ClientError::HandshakeRefused { reply, .. } if reply.is_empty()),
        "{err}"
    );
}

#[test]
fn a_vmm_dropping_the_connection_is_a_retryable_refusal() {
    let h = Harness::start_with(ShimReply::Drop, |_| {});
    for _ in 0..20 {
        let err = AgentClient::connect_hybrid(&h.vmm_sock, AGENT_PORT, TIMEOUT).unwrap_err();
        assert!(
            matches!(&err, ClientError::HandshakeRefused { reply, .. } if reply.is_empty()),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }
}

#[test]
fn a_silent_vmm_times_out_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accepts and holds connections, never answers.
    thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let started = Instant::now();
    let err =
        AgentClient::connect_hybrid(&path, AGENT_PORT, Duration::from_millis(300)).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                stage: banger_agent::client::Stage::Handshake,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn exec_takes_raw_input_of_the_announced_length() {
    let h = Harness::start();
    let data: Vec<u8> = (0..5 << 20).map(|i: usize| (i % 253) as u8).collect();
    let mut echoed = Vec::new();
    let result = h
        .client()
        .exec_with_raw_input(
            ExecRequest::new(["cat"]),
            &mut std::io::Cursor::new(data.clone()),
            data.len() as u64,
            Some(&mut |stream, piece: &[u8]| {
                assert_eq!(stream, OutputStream::Stdout);
                echoed.extend_from_slice(piece);
            }),
        )
        .unwrap();
    assert_eq!(result.status, Some(0), "{result:?}");
    assert!(echoed == data, "the bytes came back changed");
    // Only the announced length reaches the command.
    let result = h
        .client()
        .exec_with_raw_input(
            ExecRequest::new(["wc", "-c"]),
            &mut std::io::Cursor::new(data.clone()),
            1000,
            None,
        )
        .unwrap();
    assert_eq!(result.stdout.trim(), "1000");
}

#[test]
fn raw_input_cut_short_kills_the_command_before_it_acts() {
    assert_cut_short_input_is_never_acted_on(|client, request| {
        client.exec_with_raw_input(
            request,
            &mut std::io::Cursor::new(vec![b'x'; 1000]),
            1_000_000,
            None,
        )
    });
}

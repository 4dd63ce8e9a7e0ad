//! The freeze around a snapshot, end to end on the host: the real service
//! loop on a Unix socket, reached by the real client through a stand-in
//! for the VMM's hybrid vsock socket (as in `hybrid_vsock.rs`). A frozen
//! agent refuses `exec` until the copy's identity refresh (a new RNG seed
//! and clock) or, on the snapshot's own guest, `thaw`.
#![forbid(unsafe_code)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use banger_agent::protocol::{
    AGENT_PORT, ErrorCode, ExecRequest, FROZEN_REFUSAL, IdentityRequest, NetworkIdentity,
};
use banger_agent::service::{PowerControl, PowerError, ServiceConfig, serve};
use banger_agent::{AgentClient, base64};

const TIMEOUT: Duration = Duration::from_secs(10);

struct NoPower;

impl PowerControl for NoPower {
    fn power_off(&self) -> Result<(), PowerError> {
        Ok(())
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    root: PathBuf,
    vmm_sock: PathBuf,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl Harness {
    fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let agent_sock = dir.path().join("agent.sock");
        let vmm_sock = dir.path().join("v.sock");

        let mut config = ServiceConfig::guest(Arc::new(NoPower));
        config.fs_root = root.clone();
        // The seed, clock, NIC and hostname would otherwise be this
        // machine's.
        config.apply_live = false;
        let frozen = Arc::clone(&config.frozen);
        let listener = UnixListener::bind(&agent_sock).unwrap();
        let config = Arc::new(config);
        thread::spawn(move || serve(listener, config));

        let vmm = UnixListener::bind(&vmm_sock).unwrap();
        thread::spawn(move || {
            for conn in vmm.incoming() {
                let conn = conn.unwrap();
                let target = agent_sock.clone();
                thread::spawn(move || hybrid_vsock(conn, &target));
            }
        });
        Harness {
            _dir: dir,
            root,
            vmm_sock,
            frozen,
        }
    }

    fn client(&self) -> AgentClient {
        AgentClient::connect_hybrid(&self.vmm_sock, AGENT_PORT, TIMEOUT).unwrap()
    }

    fn exec_echo(&self) -> Result<String, banger_agent::ClientError> {
        self.client()
            .exec(ExecRequest::new(["echo", "ran"]))
            .map(|result| result.stdout)
    }
}

/// The stand-in VMM side of one connection: `CONNECT <port>` → `OK <port>`,
/// then splice both ways.
fn hybrid_vsock(mut host: UnixStream, agent: &Path) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while host.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    assert_eq!(line, format!("CONNECT {AGENT_PORT}").into_bytes());
    host.write_all(format!("OK {AGENT_PORT}\n").as_bytes())
        .unwrap();
    common::splice_to_agent(host, agent);
}

/// Refused while frozen, with the message that says why.
fn assert_refused_as_frozen(h: &Harness) {
    let err = h.exec_echo().unwrap_err();
    assert!(err.is_frozen(), "{err}");
    assert_eq!(err.agent_code(), Some(ErrorCode::Failed));
    let text = err.to_string();
    assert!(text.contains(FROZEN_REFUSAL), "{text}");
    assert!(
        text.contains("restored from a snapshot") && text.contains("a new RNG seed and clock"),
        "{text}"
    );
    let err = h.client().ports().unwrap_err();
    assert!(err.is_frozen(), "{err}");
}

#[test]
fn a_copy_runs_nothing_until_its_seed_and_clock_are_refreshed() {
    let h = Harness::start();
    assert_eq!(h.exec_echo().unwrap(), "ran\n");
    h.client().freeze().unwrap();
    assert!(h.frozen.load(Ordering::SeqCst));
    assert!(h.client().health().unwrap().frozen);
    assert_refused_as_frozen(&h);

    // Refreshing only the names leaves it frozen.
    h.client()
        .identity(IdentityRequest {
            hostname: Some("copy-1".into()),
            ..IdentityRequest::default()
        })
        .unwrap();
    assert_refused_as_frozen(&h);

    // The copy's own identity, with a new seed and clock: it runs again.
    let result = h
        .client()
        .identity(IdentityRequest {
            machine_id: Some("00112233445566778899aabbccddeeff".into()),
            network: Some(NetworkIdentity {
                iface: "eth0".into(),
                mac: "06:00:ac:10:00:07".into(),
                address: "172.16.0.7/24".into(),
                gateway: "172.16.0.1".into(),
            }),
            entropy: Some(base64::encode(&[0xa5; 64])),
            realtime_ns: Some(1_767_225_600_000_000_000),
            ..IdentityRequest::default()
        })
        .unwrap();
    assert_eq!(result.written, ["/etc/machine-id"]);
    assert!(result.machine_id_set);
    // Nothing live under a test configuration, and the result says so.
    assert!(!result.network_set && !result.reseeded && !result.clock_stepped);
    let machine_id = h.root.join("etc/machine-id");
    assert_eq!(
        std::fs::read_to_string(&machine_id).unwrap(),
        "00112233445566778899aabbccddeeff\n"
    );
    assert_eq!(
        std::fs::metadata(&machine_id).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert!(!h.client().health().unwrap().frozen);
    assert_eq!(h.exec_echo().unwrap(), "ran\n");
}

#[test]
fn the_snapshots_own_guest_thaws_after_it() {
    let h = Harness::start();
    h.client().freeze().unwrap();
    assert_refused_as_frozen(&h);
    h.client().thaw().unwrap();
    assert!(!h.client().health().unwrap().frozen);
    assert_eq!(h.exec_echo().unwrap(), "ran\n");
    assert!(h.client().ports().is_ok());
}

#[test]
fn a_bad_refresh_leaves_it_frozen() {
    let h = Harness::start();
    h.client().freeze().unwrap();
    let err = h
        .client()
        .identity(IdentityRequest {
            entropy: Some(base64::encode(&[1; 16])),
            realtime_ns: Some(1_767_225_600_000_000_000),
            ..IdentityRequest::default()
        })
        .unwrap_err();
    assert_eq!(err.agent_code(), Some(ErrorCode::BadRequest), "{err}");
    assert!(err.to_string().contains("entropy is 16 bytes"), "{err}");
    assert_refused_as_frozen(&h);
}

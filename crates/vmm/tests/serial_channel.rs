//! The agent's serial channel end to end on the host, without a VM: the
//! real agent-mux sidecar (the `agent-mux` binary, QEMU's chardev played by
//! the agent connecting to its port socket), the real service loop on the
//! guest end of the multiplexer, and the real host client on the sidecar's
//! hybrid-vsock socket. No root needed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use banger_agent::protocol::{AGENT_PORT, ExecRequest};
use banger_agent::service::{PowerControl, PowerError, ServiceConfig, serial, serve};
use banger_agent::{AgentClient, ClientError};
use std::io::Read;

const MUX: &str = env!("CARGO_BIN_EXE_agent-mux");
const TIMEOUT: Duration = Duration::from_secs(10);

struct NoPower;

impl PowerControl for NoPower {
    fn power_off(&self) -> Result<(), PowerError> {
        Ok(())
    }
}

struct Sidecar(Child);

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Channel {
    dir: tempfile::TempDir,
    _sidecar: Sidecar,
}

impl Channel {
    fn uds(&self) -> PathBuf {
        self.dir.path().join("vsock.sock")
    }

    fn client(&self) -> Result<AgentClient, ClientError> {
        AgentClient::connect_hybrid(&self.uds(), AGENT_PORT, TIMEOUT)
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn start_sidecar(dir: &Path) -> Sidecar {
    let child = Command::new(MUX)
        .args(["--agent-mux", "--port-socket"])
        .arg(dir.join("port.sock"))
        .arg("--uds")
        .arg(dir.join("vsock.sock"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the sidecar's sockets", || dir.join("vsock.sock").exists());
    Sidecar(child)
}

/// A sidecar, and an agent service on the guest end of its port.
fn channel() -> Channel {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = start_sidecar(dir.path());
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let mut config = ServiceConfig::guest(Arc::new(NoPower));
    config.fs_root = root;
    config.apply_live = false;
    let listener = serial::listen_socket(&dir.path().join("port.sock")).unwrap();
    thread::spawn(move || serve(listener, Arc::new(config)));
    let channel = Channel {
        dir,
        _sidecar: sidecar,
    };
    // Until the agent has taken a session, a CONNECT is refused, as a vsock
    // connect is before the guest listens.
    wait_for("a session", || {
        channel.client().and_then(AgentClient::health).is_ok()
    });
    channel
}

#[test]
fn the_client_reaches_the_agent_through_the_sidecar() {
    let channel = channel();
    let health = channel.client().unwrap().health().unwrap();
    assert!(!health.agent.is_empty());
    let result = channel
        .client()
        .unwrap()
        .exec(ExecRequest::new([
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]))
        .unwrap();
    assert_eq!(result.status, Some(3));
    assert_eq!(result.stdout, "out\n");
    assert_eq!(result.stderr, "err\n");
}

#[test]
fn raw_input_of_megabytes_arrives_whole() {
    let channel = channel();
    let len = 24 * 1024 * 1024u64;
    let mut input = std::io::repeat(b'z').take(len);
    let result = channel
        .client()
        .unwrap()
        .exec_with_raw_input(ExecRequest::new(["wc", "-c"]), &mut input, len, None)
        .unwrap();
    assert_eq!(result.status, Some(0), "{result:?}");
    assert_eq!(result.stdout.trim(), len.to_string());
}

#[test]
fn concurrent_requests_each_get_their_own_answer() {
    let channel = Arc::new(channel());
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let channel = Arc::clone(&channel);
            thread::spawn(move || {
                let result = channel
                    .client()
                    .unwrap()
                    .exec(ExecRequest::new([
                        "sh",
                        "-c",
                        &format!("sleep 0.2; echo {i}"),
                    ]))
                    .unwrap();
                assert_eq!(result.stdout, format!("{i}\n"));
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

#[test]
fn a_connect_to_another_port_is_refused_and_the_channel_stays_up() {
    let channel = channel();
    let refused =
        AgentClient::connect_hybrid(&channel.uds(), 22, TIMEOUT).and_then(AgentClient::health);
    assert!(refused.is_err());
    assert!(channel.client().unwrap().health().is_ok());
}

//! `AgentGuest` against the real agent service on a Unix socket, behind a
//! stand-in for the VMM's hybrid-vsock handshake.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use banger_agent::service::{PowerControl, PowerError, ServiceConfig, serve};

use super::*;

struct NoPower;

impl PowerControl for NoPower {
    fn power_off(&self) -> Result<(), PowerError> {
        Ok(())
    }
}

/// Serves the agent in this process; returns the "VMM" socket to call.
fn agent(dir: &Path) -> PathBuf {
    let (agent_sock, vmm_sock) = (dir.join("agent.sock"), dir.join("vsock.sock"));
    let mut config = ServiceConfig::guest(Arc::new(NoPower));
    config.fs_root = dir.to_path_buf();
    config.apply_live = false;
    let listener = UnixListener::bind(&agent_sock).unwrap();
    let config = Arc::new(config);
    thread::spawn(move || serve(listener, config));
    let vmm = UnixListener::bind(&vmm_sock).unwrap();
    thread::spawn(move || {
        for host in vmm.incoming() {
            let (host, agent_sock) = (host.unwrap(), agent_sock.clone());
            thread::spawn(move || splice(host, &agent_sock));
        }
    });
    vmm_sock
}

/// `CONNECT n` → `OK n`, then bytes both ways; each side's end of input
/// becomes a shutdown of the other's write half, as a VMM does.
fn splice(host: UnixStream, agent_sock: &Path) {
    let mut line = String::new();
    let mut reader = BufReader::new(host.try_clone().unwrap());
    reader.read_line(&mut line).unwrap();
    (&host).write_all(b"OK 1024\n").unwrap();
    let guest = UnixStream::connect(agent_sock).unwrap();
    let (mut host_r, mut guest_w) = (host.try_clone().unwrap(), guest.try_clone().unwrap());
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut host_r, &mut guest_w);
        let _ = guest_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut guest_r, mut host_w) = (guest, host);
    let _ = std::io::copy(&mut guest_r, &mut host_w);
    let _ = host_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.starts_with(" Z"))
    })
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_exec_is_aborted_and_its_command_killed() {
    let dir = tempfile::tempdir().unwrap();
    let uds = agent(dir.path());
    let (pid_file, marker) = (dir.path().join("pid"), dir.path().join("marker"));
    let script = format!(
        "echo $$ > {}; sleep 3; touch {}",
        pid_file.display(),
        marker.display()
    );
    let cancel = CancellationToken::new();
    for streaming in [false, true] {
        let _ = std::fs::remove_file(&pid_file);
        let cancel = cancel.child_token();
        let call = {
            let (uds, cancel) = (uds.clone(), cancel.clone());
            let request = ExecRequest::new(["sh", "-c", &script]);
            tokio::task::spawn_blocking(move || {
                if streaming {
                    AgentGuest.exec_streaming(&uds, request, &mut |_, _| {}, &cancel)
                } else {
                    AgentGuest.exec(&uds, request, &cancel)
                }
            })
        };
        let pid_file = pid_file.clone();
        let pid: u32 = tokio::task::spawn_blocking(move || {
            assert!(wait_until(Duration::from_secs(5), || {
                std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
            }));
            std::fs::read_to_string(&pid_file)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .await
        .unwrap();
        let cancelled = Instant::now();
        cancel.cancel();
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, ClientError::Aborted), "{err}");
        assert!(cancelled.elapsed() < Duration::from_secs(1));
        let gone = tokio::task::spawn_blocking(move || {
            wait_until(Duration::from_secs(2), || !running(pid))
        });
        assert!(gone.await.unwrap(), "the command outlived the cancellation");
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!marker.exists(), "a command went on after its cancellation");
}

#[test]
fn an_exec_already_cancelled_is_not_sent() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = AgentGuest
        .exec(
            Path::new("/nonexistent/v.sock"),
            ExecRequest::new(["true"]),
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(err, ClientError::Aborted), "{err}");
}

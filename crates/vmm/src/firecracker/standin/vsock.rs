//! The stand-in's hybrid vsock: a Unix socket at `uds_path` that answers
//! `CONNECT <port>\n` with `OK <port>\n` once the VM runs, then plays the
//! guest agent (protocol v1, `banger_agent::protocol`) as far as a VM that
//! boots nothing can: `health`; `identity`, validated like the agent does,
//! whose host name later health answers report; `poweroff`, after which the
//! process exits as Firecracker does when its guest reboots (banger's init
//! reboots instead of powering off when the boot arguments say
//! `banger.halt=reboot`; without that the "guest" halts and the VMM stays,
//! as a real one would); `exec` and `ports` are refused, there being no
//! guest to run anything. As with Firecracker, a connection to a port
//! nobody listens on (or before the guest runs) is simply closed.

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use banger_agent::boot_config::{BootConfig, HaltAction};
use banger_agent::cmdline::Cmdline;
use banger_agent::protocol::{
    AGENT_PORT, Call, Empty, ErrorBody, ErrorCode, HealthResult, IdentityRequest, IdentityResult,
    MAX_REQUEST_BYTES, PROTOCOL_VERSION, Request, Response,
};
use banger_agent::service::identity::validate;
use banger_agent::wire::{self, ReadChunk};

use super::machine::Machine;

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` on a thread for as long as the process lives.
pub fn serve(listener: UnixListener, machine: Arc<Mutex<Machine>>, boot_id: String) {
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let machine = Arc::clone(&machine);
            let boot_id = boot_id.clone();
            thread::spawn(move || {
                if let Err(e) = connection(stream, &machine, &boot_id) {
                    eprintln!("fc-standin: vsock connection: {e}");
                }
            });
        }
    });
}

fn connection(
    mut stream: UnixStream,
    machine: &Mutex<Machine>,
    boot_id: &str,
) -> std::io::Result<()> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let line = match wire::read_line(&mut stream, 64, deadline, ReadChunk::Exact) {
        Ok(line) => line,
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    let port = std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix("CONNECT "))
        .and_then(|p| p.trim().parse::<u32>().ok());
    let started = lock(machine).started;
    let (Some(AGENT_PORT), Some(started)) = (port, started) else {
        // Dropping the stream closes it: what the client sees when no guest
        // listens on the port.
        return Ok(());
    };
    wire::write_line(
        &mut stream,
        format!("OK {AGENT_PORT}").as_bytes(),
        IO_TIMEOUT,
    )?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let response = match wire::read_line(
        &mut stream,
        MAX_REQUEST_BYTES,
        deadline,
        ReadChunk::Buffered,
    ) {
        Ok(line) => answer(&line, started, machine, boot_id),
        Err(e) => Answer::Reply(Response::failure(ErrorBody::new(
            ErrorCode::BadRequest,
            e.to_string(),
        ))),
    };
    match response {
        Answer::Reply(response) => wire::write_line(&mut stream, &response.encode(), IO_TIMEOUT),
        Answer::ReplyThenExit(response) => {
            // The agent answers first, then the guest goes down.
            let written = wire::write_line(&mut stream, &response.encode(), IO_TIMEOUT);
            super::exit_soon("the guest powered off by rebooting (banger.halt=reboot)");
            written
        }
    }
}

enum Answer {
    Reply(Response),
    ReplyThenExit(Response),
}

fn lock(machine: &Mutex<Machine>) -> std::sync::MutexGuard<'_, Machine> {
    machine.lock().unwrap_or_else(|p| p.into_inner())
}

fn answer(line: &[u8], started: Instant, machine: &Mutex<Machine>, boot_id: &str) -> Answer {
    let request = match Request::decode(line) {
        Ok(request) => request,
        Err(error) => return Answer::Reply(Response::failure(error)),
    };
    let mut m = lock(machine);
    match request.call {
        Call::Health => Answer::Reply(Response::success(&HealthResult {
            agent: format!("fc-standin {}", env!("CARGO_PKG_VERSION")),
            protocol: PROTOCOL_VERSION,
            hostname: m.hostname.clone().unwrap_or_else(|| m.id.clone()),
            uptime_s: started.elapsed().as_secs_f64(),
            boot_id: boot_id.to_owned(),
            frozen: false,
        })),
        Call::Identity(identity) => Answer::Reply(match validate(&identity) {
            Ok(()) => {
                let result = identity_result(&identity);
                if let Some(name) = identity.hostname {
                    m.hostname = Some(name);
                }
                Response::success(&result)
            }
            Err(invalid) => {
                Response::failure(ErrorBody::new(ErrorCode::BadRequest, invalid.to_string()))
            }
        }),
        Call::Poweroff => {
            let halt = BootConfig::halt_from_cmdline(&Cmdline::parse(&m.boot_args));
            let reply = Response::success(&Empty {});
            if halt == HaltAction::Reboot {
                Answer::ReplyThenExit(reply)
            } else {
                Answer::Reply(reply)
            }
        }
        other => Answer::Reply(Response::failure(ErrorBody::new(
            ErrorCode::Failed,
            format!(
                "fc-standin boots no guest: there is nothing to answer {} with",
                other.method()
            ),
        ))),
    }
}

/// The files the agent would have written for `request`, in its order.
fn identity_result(request: &IdentityRequest) -> IdentityResult {
    let mut written = Vec::new();
    if request.hostname.is_some() {
        written.push("/etc/hostname".to_owned());
    }
    if request.authorized_keys.is_some() {
        written.push("/root/.ssh/authorized_keys".to_owned());
    }
    if request.host_key.is_some() {
        written.push("/etc/ssh/ssh_host_ed25519_key".to_owned());
        written.push("/etc/ssh/ssh_host_ed25519_key.pub".to_owned());
    }
    IdentityResult {
        written,
        hostname_set: request.hostname.is_some(),
        ..IdentityResult::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use banger_agent::ClientError;
    use banger_agent::client::AgentClient;

    fn serve_at(machine: Machine) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        serve(
            UnixListener::bind(&uds).unwrap(),
            Arc::new(Mutex::new(machine)),
            "boot-1".into(),
        );
        (dir, uds)
    }

    fn running() -> Machine {
        let mut m = Machine::new("vm-1".into(), "1.17.0".into(), None);
        m.started = Some(Instant::now());
        m
    }

    #[test]
    fn health_answers_through_the_real_client() {
        let (_dir, uds) = serve_at(running());
        let health = AgentClient::connect_hybrid(&uds, AGENT_PORT, IO_TIMEOUT)
            .unwrap()
            .health()
            .unwrap();
        assert_eq!(health.hostname, "vm-1");
        assert_eq!(health.boot_id, "boot-1");
        assert_eq!(health.protocol, PROTOCOL_VERSION);
        let err = AgentClient::connect_hybrid(&uds, AGENT_PORT, IO_TIMEOUT)
            .unwrap()
            .ports()
            .unwrap_err();
        assert!(err.to_string().contains("boots no guest"), "{err}");
        let err = AgentClient::connect_hybrid(&uds, AGENT_PORT, IO_TIMEOUT)
            .unwrap()
            .exec(banger_agent::protocol::ExecRequest::new(["true"]))
            .unwrap_err();
        assert!(err.to_string().contains("boots no guest"), "{err}");
    }

    #[test]
    fn identity_is_validated_like_the_agent_and_renames_the_guest() {
        let (_dir, uds) = serve_at(running());
        let call = |request: IdentityRequest| {
            AgentClient::connect_hybrid(&uds, AGENT_PORT, IO_TIMEOUT)
                .unwrap()
                .identity(request)
        };
        let err = call(IdentityRequest::default()).unwrap_err();
        assert!(err.to_string().contains("nothing to change"), "{err}");
        let err = call(IdentityRequest {
            hostname: Some("-bad-".into()),
            ..IdentityRequest::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("-bad-"), "{err}");
        let result = call(IdentityRequest {
            hostname: Some("dev".into()),
            authorized_keys: Some("ssh-ed25519 AAAA user\n".into()),
            ..IdentityRequest::default()
        })
        .unwrap();
        assert_eq!(
            result.written,
            ["/etc/hostname", "/root/.ssh/authorized_keys"]
        );
        assert!(result.hostname_set);
        let health = AgentClient::connect_hybrid(&uds, AGENT_PORT, IO_TIMEOUT)
            .unwrap()
            .health()
            .unwrap();
        assert_eq!(health.hostname, "dev");
    }

    #[test]
    fn poweroff_ends_the_vmm_only_for_a_guest_told_to_reboot() {
        let poweroff = Request::new(Call::Poweroff).encode();
        let exits = |boot_args: &str| {
            let mut m = running();
            m.boot_args = boot_args.into();
            let answer = answer(&poweroff, Instant::now(), &Mutex::new(m), "boot-1");
            let (Answer::ReplyThenExit(r) | Answer::Reply(r)) = &answer;
            assert!(r.ok, "{r:?}");
            matches!(answer, Answer::ReplyThenExit(_))
        };
        assert!(exits(
            "console=ttyS0 reboot=k banger.halt=reboot banger.root=/dev/vda"
        ));
        assert!(!exits("console=ttyS0 reboot=k banger.root=/dev/vda"));
    }

    #[test]
    fn other_ports_and_a_guest_not_started_are_refused() {
        let (_dir, uds) = serve_at(running());
        let err = AgentClient::connect_hybrid(&uds, 22, IO_TIMEOUT).unwrap_err();
        assert!(
            matches!(err, ClientError::HandshakeRefused { .. }),
            "{err:?}"
        );
        let (_dir, uds) = serve_at(Machine::new("vm-1".into(), "1.17.0".into(), None));
        let err = AgentClient::connect_hybrid(&uds, AGENT_PORT, IO_TIMEOUT).unwrap_err();
        assert!(
            matches!(err, ClientError::HandshakeRefused { .. }),
            "{err:?}"
        );
    }
}

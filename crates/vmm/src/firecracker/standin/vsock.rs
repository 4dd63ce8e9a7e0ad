//! The stand-in's hybrid vsock: a Unix socket at `uds_path` that answers
//! `CONNECT <port>\n` with `OK <port>\n` once the VM runs, then plays a
//! guest agent that knows `health`. As with Firecracker, a connection to a
//! port nobody listens on (or before the guest runs) is simply closed.

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use banger_agent::protocol::{
    AGENT_PORT, Call, ErrorBody, ErrorCode, HealthResult, MAX_REQUEST_BYTES, PROTOCOL_VERSION,
    Request, Response,
};
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
    let (started, hostname) = {
        let m = machine.lock().unwrap_or_else(|p| p.into_inner());
        (m.started, m.id.clone())
    };
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
        Ok(line) => answer(&line, started, hostname, boot_id),
        Err(e) => Response::failure(ErrorBody::new(ErrorCode::BadRequest, e.to_string())),
    };
    wire::write_line(&mut stream, &response.encode(), IO_TIMEOUT)
}

fn answer(line: &[u8], started: Instant, hostname: String, boot_id: &str) -> Response {
    match Request::decode(line) {
        Ok(Request {
            call: Call::Health, ..
        }) => Response::success(&HealthResult {
            agent: format!("fc-standin {}", env!("CARGO_PKG_VERSION")),
            protocol: PROTOCOL_VERSION,
            hostname,
            uptime_s: started.elapsed().as_secs_f64(),
            boot_id: boot_id.to_owned(),
        }),
        Ok(request) => Response::failure(ErrorBody::new(
            ErrorCode::Failed,
            format!(
                "fc-standin answers health only, not {}",
                request.call.method()
            ),
        )),
        Err(error) => Response::failure(error),
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
        assert!(err.to_string().contains("health only"), "{err}");
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

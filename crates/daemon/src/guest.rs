//! The one way the daemon reaches into a guest: its agent, over the VMM's
//! hybrid-vsock socket, and its sshd's banner. Every call's connect,
//! handshake and answer are bounded by the timeouts named here, so no
//! handler picks its own; tests swap the whole interface for a fake (the
//! composition root chooses, see [`crate::machinery::Machinery`]).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use banger_agent_proto::client::{AgentClient, ClientError, OutputSink};
use banger_agent_proto::protocol::{
    AGENT_PORT, ExecRequest, ExecResult, HealthResult, IdentityRequest, IdentityResult,
    ListeningPort,
};
use tokio_util::sync::CancellationToken;

/// A short question while the guest boots or is observed: one attempt of
/// the health poll, `vm stats`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Connect, handshake and (for calls other than `exec`, which add the
/// command's own timeout) the answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// One attempt at reading the guest sshd's banner.
pub const SSH_ATTEMPT: Duration = Duration::from_secs(2);
/// RFC 4253 §4.2: the identification line is at most 255 bytes.
const BANNER_MAX: usize = 255;

/// Calls into a guest. `agent` is the VM's hybrid-vsock socket
/// ([`banger_vmm::VmHandle::vsock_uds`]).
pub trait Guest: Send + Sync {
    fn health(&self, agent: &Path) -> Result<HealthResult, ClientError>;
    fn identity(
        &self,
        agent: &Path,
        request: IdentityRequest,
    ) -> Result<IdentityResult, ClientError>;
    fn poweroff(&self, agent: &Path) -> Result<(), ClientError>;
    /// Before a snapshot: the agent serves no command until it is thawed
    /// or (in a copy) given a new identity with a fresh RNG seed and clock.
    fn freeze(&self, agent: &Path) -> Result<(), ClientError>;
    fn thaw(&self, agent: &Path) -> Result<(), ClientError>;
    fn ports(&self, agent: &Path) -> Result<Vec<ListeningPort>, ClientError>;
    /// `exec`, its output captured in the result. Every `exec` ends when
    /// `cancel` fires: the call fails with [`ClientError::Aborted`] and the
    /// agent, seeing the connection close, kills the command.
    fn exec(
        &self,
        agent: &Path,
        request: ExecRequest,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError>;
    /// `exec` with its output handed to `sink` as it comes.
    fn exec_streaming(
        &self,
        agent: &Path,
        request: ExecRequest,
        sink: OutputSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError>;
    /// `exec` with `input` streamed to the command's stdin.
    fn exec_with_input(
        &self,
        agent: &Path,
        request: ExecRequest,
        input: &mut (dyn Read + Send),
        sink: Option<OutputSink<'_>>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError>;
    /// `exec` with the first `len` bytes of `input` sent raw to the
    /// command's stdin. Fakes that only care about the bytes get them the
    /// framed way.
    fn exec_with_raw_input(
        &self,
        agent: &Path,
        request: ExecRequest,
        input: &mut (dyn Read + Send),
        len: u64,
        sink: Option<OutputSink<'_>>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        let _ = len;
        self.exec_with_input(agent, request, input, sink, cancel)
    }
    /// Connects to `addr` and reads the SSH identification line.
    fn ssh_banner(&self, addr: SocketAddr) -> Result<String, String>;
}

/// The real guest: banger's agent over hybrid vsock, sshd over TCP.
pub struct AgentGuest;

fn connect(agent: &Path, timeout: Duration) -> Result<AgentClient, ClientError> {
    AgentClient::connect_hybrid(agent, AGENT_PORT, timeout)
}

/// Connects and makes `call`, which blocks; when `cancel` fires meanwhile,
/// the connection is shut down from a task on the daemon's runtime, so the
/// call returns [`ClientError::Aborted`] at once and the agent kills the
/// command (SPEC §4: a client's Ctrl-C stops the work done for it).
fn abortable<T>(
    agent: &Path,
    cancel: &CancellationToken,
    call: impl FnOnce(AgentClient) -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    if cancel.is_cancelled() {
        return Err(ClientError::Aborted);
    }
    let client = connect(agent, CALL_TIMEOUT)?;
    let aborter = client.aborter()?;
    let done = CancellationToken::new();
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let (cancel, done) = (cancel.clone(), done.clone());
            runtime.spawn(async move {
                tokio::select! {
                    () = cancel.cancelled() => aborter.abort(),
                    () = done.cancelled() => {}
                }
            });
        }
        // Only a caller outside the daemon's runtime (a test) gets here.
        Err(_) => tracing::debug!("no runtime: this exec cannot be cancelled"),
    }
    let result = call(client);
    done.cancel();
    result
}

impl Guest for AgentGuest {
    fn health(&self, agent: &Path) -> Result<HealthResult, ClientError> {
        connect(agent, PROBE_TIMEOUT)?.health()
    }

    fn identity(
        &self,
        agent: &Path,
        request: IdentityRequest,
    ) -> Result<IdentityResult, ClientError> {
        connect(agent, CALL_TIMEOUT)?.identity(request)
    }

    fn poweroff(&self, agent: &Path) -> Result<(), ClientError> {
        connect(agent, PROBE_TIMEOUT)?.poweroff()
    }

    fn freeze(&self, agent: &Path) -> Result<(), ClientError> {
        connect(agent, CALL_TIMEOUT)?.freeze()
    }

    fn thaw(&self, agent: &Path) -> Result<(), ClientError> {
        connect(agent, CALL_TIMEOUT)?.thaw()
    }

    fn ports(&self, agent: &Path) -> Result<Vec<ListeningPort>, ClientError> {
        connect(agent, CALL_TIMEOUT)?.ports()
    }

    fn exec(
        &self,
        agent: &Path,
        request: ExecRequest,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        abortable(agent, cancel, |client| client.exec(request))
    }

    fn exec_streaming(
        &self,
        agent: &Path,
        request: ExecRequest,
        sink: OutputSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        abortable(agent, cancel, |client| client.exec_streaming(request, sink))
    }

    fn exec_with_input(
        &self,
        agent: &Path,
        request: ExecRequest,
        input: &mut (dyn Read + Send),
        sink: Option<OutputSink<'_>>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        abortable(agent, cancel, |client| {
            client.exec_with_input(request, input, sink)
        })
    }

    fn exec_with_raw_input(
        &self,
        agent: &Path,
        request: ExecRequest,
        input: &mut (dyn Read + Send),
        len: u64,
        sink: Option<OutputSink<'_>>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        abortable(agent, cancel, |client| {
            client.exec_with_raw_input(request, input, len, sink)
        })
    }

    fn ssh_banner(&self, addr: SocketAddr) -> Result<String, String> {
        let mut stream =
            TcpStream::connect_timeout(&addr, SSH_ATTEMPT).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(SSH_ATTEMPT))
            .map_err(|e| e.to_string())?;
        read_banner(&mut stream)
    }
}

/// Reads the identification line, at most [`BANNER_MAX`] bytes: a guest
/// that sends more (or something else) is not an sshd. Control characters
/// are dropped: the banner is guest text that reaches logs.
pub fn read_banner(stream: &mut impl Read) -> Result<String, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < BANNER_MAX && !got.contains(&b'\n') {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let line = line.lines().next().unwrap_or_default().trim_end();
    let line: String = line.chars().filter(|c| !c.is_control()).collect();
    if line.starts_with("SSH-") {
        Ok(line)
    } else {
        Err(format!("no SSH banner: {line:?}"))
    }
}

#[cfg(test)]
pub(crate) mod scripted;
#[cfg(test)]
mod tests;

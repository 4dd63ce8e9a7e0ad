//! A guest whose `exec` answers from a script, for handler tests that need
//! no VM: the output frames it sends, then the result or an error.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use banger_agent_proto::client::{ClientError, OutputSink};
use banger_agent_proto::protocol::{
    ExecRequest, ExecResult, HealthResult, IdentityRequest, IdentityResult, ListeningPort,
    OutputEncoding, OutputStream,
};
use tokio_util::sync::CancellationToken;

use super::Guest;

/// Output frames, then `result`. Every request is kept for inspection.
pub struct ScriptedGuest {
    pub frames: Vec<(OutputStream, Vec<u8>)>,
    pub result: ExecResult,
    pub requests: Mutex<Vec<ExecRequest>>,
}

impl ScriptedGuest {
    pub fn new(frames: Vec<(OutputStream, Vec<u8>)>, result: ExecResult) -> ScriptedGuest {
        ScriptedGuest {
            frames,
            result,
            requests: Mutex::new(Vec::new()),
        }
    }
}

/// A result that exited 0 with nothing cut or dropped.
pub fn success() -> ExecResult {
    ExecResult {
        status: Some(0),
        signal: None,
        timed_out: false,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        output_dropped: false,
        encoding: OutputEncoding::Utf8,
        duration_s: 0.1,
    }
}

fn none<T>() -> Result<T, ClientError> {
    Err(ClientError::BadResponse {
        reason: "the scripted guest only runs commands".into(),
    })
}

impl Guest for ScriptedGuest {
    fn health(&self, _: &Path) -> Result<HealthResult, ClientError> {
        none()
    }
    fn identity(&self, _: &Path, _: IdentityRequest) -> Result<IdentityResult, ClientError> {
        none()
    }
    fn poweroff(&self, _: &Path) -> Result<(), ClientError> {
        none()
    }
    fn freeze(&self, _: &Path) -> Result<(), ClientError> {
        none()
    }
    fn thaw(&self, _: &Path) -> Result<(), ClientError> {
        none()
    }
    fn ports(&self, _: &Path) -> Result<Vec<ListeningPort>, ClientError> {
        none()
    }
    fn exec(
        &self,
        _: &Path,
        request: ExecRequest,
        _: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        self.requests.lock().unwrap().push(request);
        Ok(self.result.clone())
    }
    /// Sends the frames until `cancel` fires (an aborted call), then the
    /// result.
    fn exec_streaming(
        &self,
        _: &Path,
        request: ExecRequest,
        sink: OutputSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        self.requests.lock().unwrap().push(request);
        for (stream, data) in &self.frames {
            if cancel.is_cancelled() {
                return Err(ClientError::Aborted);
            }
            sink(*stream, data);
        }
        Ok(self.result.clone())
    }
    fn exec_with_input(
        &self,
        agent: &Path,
        request: ExecRequest,
        _: &mut (dyn Read + Send),
        _: Option<OutputSink<'_>>,
        cancel: &CancellationToken,
    ) -> Result<ExecResult, ClientError> {
        self.exec(agent, request, cancel)
    }
    fn ssh_banner(&self, _: SocketAddr) -> Result<String, String> {
        Err("no sshd".into())
    }
}

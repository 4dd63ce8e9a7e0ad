//! `vm.exec`: one command in the guest through the agent, its output either
//! in the result or, with `stream`, relayed to the client as it comes.

use std::path::PathBuf;
use std::time::Duration;

use banger_agent::base64;
use banger_agent::client::{AgentClient, ClientError};
use banger_agent::protocol::{
    AGENT_PORT, ExecRequest, ExecResult, MAX_FRAME_DATA, OutputStream as GuestStream,
};
use banger_api::model::VmState;
use banger_api::protocol::{ErrorCode, OutputChunk, OutputStream, Vm, VmExecParams, VmExecResult};

use super::{find, read_handles};
use crate::daemon::Daemon;
use crate::dispatch::RequestCtx;
use crate::dispatch::blocking::run;
use crate::error::DaemonError;

/// How long connecting to the agent may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one command in the guest through the agent.
pub async fn exec(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: VmExecParams,
) -> Result<VmExecResult, DaemonError> {
    if p.argv.is_empty() {
        return Err(DaemonError::failed(
            ErrorCode::BadRequest,
            "no command given: use `banger vm exec VM -- CMD...`",
        ));
    }
    let vm = find(daemon, &p.vm).await?;
    let uds = running_agent(daemon, &vm)?;
    // In a VM with a workspace, commands run there by default, through a
    // login shell so tools set up by profile scripts are on PATH.
    let (argv, cwd) = match (&vm.workspace, p.cwd) {
        (Some(ws), None) => {
            let cwd = Some(ws.guest_path.clone());
            let ws = ws.clone();
            if let Some(warning) = run(move || super::workspace::head_moved(&ws)).await? {
                let _ = ctx.progress.send(warning);
            }
            (banger_workspace::guest::login_argv(&p.argv), cwd)
        }
        (_, cwd) => (p.argv, cwd),
    };
    let mut request = ExecRequest::new(argv);
    request.cwd = Some(cwd.unwrap_or_else(|| "/root".into()));
    request.timeout_s = p.timeout_s;
    let connect = move || AgentClient::connect_hybrid(&uds, AGENT_PORT, CONNECT_TIMEOUT);
    let result = if p.stream {
        let output = ctx.output.clone();
        run(move || streamed(&connect, request, &output)).await??
    } else {
        run(move || connect().and_then(|c| c.exec(request))).await??
    };
    Ok(VmExecResult {
        status: result.status,
        signal: result.signal,
        timed_out: result.timed_out,
        stdout: result.stdout,
        stderr: result.stderr,
        duration_s: result.duration_s,
    })
}

/// The agent socket of a running VM, or why there is none.
pub(super) fn running_agent(daemon: &Daemon, vm: &Vm) -> Result<PathBuf, DaemonError> {
    if vm.state != VmState::Running {
        return Err(DaemonError::failed(
            ErrorCode::OperationFailed,
            format!(
                "VM {} is {}; start it first with `banger vm start {}`",
                vm.name, vm.state, vm.name
            ),
        ));
    }
    let handles = read_handles(&daemon.paths.vm_dir(&vm.id)).ok_or_else(|| {
        DaemonError::failed(
            ErrorCode::OperationFailed,
            format!("VM {} has no running VMM on record", vm.name),
        )
    })?;
    Ok(handles.handle.vsock_uds)
}

/// Runs `request` with streaming, relaying each piece of output to the
/// client. An agent older than streaming (a VM created before it) refuses
/// the request without running anything; it is then asked the old way and
/// its captured output relayed at the end, so the client sees the same
/// kind of answer either way.
fn streamed(
    connect: &dyn Fn() -> Result<AgentClient, ClientError>,
    request: ExecRequest,
    output: &tokio::sync::mpsc::Sender<OutputChunk>,
) -> Result<ExecResult, ClientError> {
    let mut relay = |stream: GuestStream, data: &[u8]| {
        let stream = match stream {
            GuestStream::Stdout => OutputStream::Stdout,
            GuestStream::Stderr => OutputStream::Stderr,
        };
        let chunk = OutputChunk {
            stream,
            data: base64::encode(data),
        };
        // Fails only when the client went away: the command still runs to
        // its end, as it would without streaming.
        let _ = output.blocking_send(chunk);
    };
    match connect().and_then(|c| c.exec_streaming(request.clone(), &mut relay)) {
        Err(e) if e.is_streaming_unsupported() => {
            tracing::info!("the guest agent predates streamed output; relaying it at the end");
            let mut result = connect()?.exec(request)?;
            let stdout = std::mem::take(&mut result.stdout);
            let stderr = std::mem::take(&mut result.stderr);
            for (stream, text) in [(GuestStream::Stdout, stdout), (GuestStream::Stderr, stderr)] {
                for piece in text.as_bytes().chunks(MAX_FRAME_DATA) {
                    relay(stream, piece);
                }
            }
            Ok(result)
        }
        other => other,
    }
}

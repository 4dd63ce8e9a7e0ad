//! `vm.exec`: one command in the guest through the agent, its output either
//! in the result or, with `stream`, relayed to the client as it comes.

use std::path::Path;

use banger_agent_proto::base64;
use banger_agent_proto::client::ClientError;
use banger_agent_proto::protocol::{
    ExecRequest, ExecResult, MAX_FRAME_DATA, OutputStream as GuestStream,
};
use banger_api::protocol::{ErrorCode, OutputChunk, OutputStream, VmExecParams, VmExecResult};
use tokio_util::sync::CancellationToken;

use super::handles::running_agent;
use super::record::find;
use crate::blocking::run;
use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::guest::Guest;
use crate::state::Daemon;

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
    let guest = daemon.vms.guest();
    // The client going away (Ctrl-C) cancels the call, and the agent then
    // kills the command.
    let cancel = ctx.cancel.clone();
    let cap = request.effective_max_output();
    let (result, cut) = if p.stream {
        let output = ctx.output.clone();
        run(move || streamed(guest.as_ref(), &uds, request, &output, &cancel)).await??
    } else {
        (
            run(move || guest.exec(&uds, request, &cancel)).await??,
            [false; 2],
        )
    };
    Ok(exec_result(result, cap, cut))
}

/// The client's answer: the guest's, and where its output was cut (by the
/// agent, or by the relay for an agent that ignored its cap: `cut`).
fn exec_result(result: ExecResult, cap: u64, cut: [bool; 2]) -> VmExecResult {
    VmExecResult {
        status: result.status,
        signal: result.signal,
        timed_out: result.timed_out,
        stdout_cut_at: (result.stdout_truncated || cut[0]).then_some(cap),
        stderr_cut_at: (result.stderr_truncated || cut[1]).then_some(cap),
        output_dropped: result.output_dropped,
        stdout: result.stdout,
        stderr: result.stderr,
        duration_s: result.duration_s,
    }
}

/// Output on its way to the client, held to the request's cap per stream:
/// an agent that ignores its cap (the guest is not trusted) is cut here.
struct Relay<'a> {
    output: &'a tokio::sync::mpsc::Sender<OutputChunk>,
    cap: u64,
    sent: [u64; 2],
    cut: [bool; 2],
}

impl Relay<'_> {
    fn pass(&mut self, stream: GuestStream, data: &[u8]) {
        let (i, stream) = match stream {
            GuestStream::Stdout => (0, OutputStream::Stdout),
            GuestStream::Stderr => (1, OutputStream::Stderr),
        };
        let room = self.cap.saturating_sub(self.sent[i]);
        let keep = &data[..data.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        if keep.len() < data.len() {
            self.cut[i] = true;
        }
        if keep.is_empty() {
            return;
        }
        self.sent[i] += keep.len() as u64;
        let chunk = OutputChunk {
            stream,
            data: base64::encode(keep),
        };
        // Fails only when the client went away, which cancels the call.
        let _ = self.output.blocking_send(chunk);
    }
}

/// Runs `request` with streaming, relaying each piece of output to the
/// client; returns the result and which streams the relay cut. An agent
/// older than streaming (a VM created before it) refuses the request
/// without running anything; it is then asked the old way and its captured
/// output relayed at the end, so the client sees the same kind of answer
/// either way.
fn streamed(
    guest: &dyn Guest,
    uds: &Path,
    request: ExecRequest,
    output: &tokio::sync::mpsc::Sender<OutputChunk>,
    cancel: &CancellationToken,
) -> Result<(ExecResult, [bool; 2]), ClientError> {
    let mut relay = Relay {
        output,
        cap: request.effective_max_output(),
        sent: [0; 2],
        cut: [false; 2],
    };
    let answer = guest.exec_streaming(
        uds,
        request.clone(),
        &mut |stream, data| relay.pass(stream, data),
        cancel,
    );
    let result = match answer {
        Err(e) if e.is_streaming_unsupported() => {
            tracing::info!("the guest agent predates streamed output; relaying it at the end");
            let mut result = guest.exec(uds, request, cancel)?;
            let stdout = std::mem::take(&mut result.stdout);
            let stderr = std::mem::take(&mut result.stderr);
            for (stream, text) in [(GuestStream::Stdout, stdout), (GuestStream::Stderr, stderr)] {
                for piece in text.as_bytes().chunks(MAX_FRAME_DATA) {
                    relay.pass(stream, piece);
                }
            }
            result
        }
        other => other?,
    };
    Ok((result, relay.cut))
}

#[cfg(test)]
mod tests;

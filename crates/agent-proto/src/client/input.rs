//! `exec` with streamed stdin: input frames follow the request while the
//! answer (output frames when streaming, then the response) comes back on
//! the same connection.

use std::io::{self, Read};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use super::{AgentClient, ClientError, OutputSink, Stage, is_disconnect};
use crate::protocol::{
    Call, ExecRequest, ExecResult, InputFrame, MAX_FRAME_DATA, Request, exec_answer_limit,
};
use crate::wire;

/// Why the input was not sent to its end.
enum Unsent {
    /// Reading the caller's input failed.
    Input(io::Error),
    /// Writing to the agent failed.
    Write(io::Error),
}

impl AgentClient {
    /// `exec` with `stdin_stream` set: the command's standard input is all
    /// of `input`, sent as input frames while the command runs, so it can
    /// be far larger than a request line (an archive to unpack, say).
    /// With `on_output` the output streams too (`stream` is set and each
    /// piece goes to `on_output`, as with [`AgentClient::exec_streaming`]);
    /// without it the result carries the output.
    ///
    /// The input is sent from another thread while this one reads the
    /// answer, so a command echoing its input back cannot deadlock. A
    /// command that ends without reading all of it still gets its result
    /// returned: the agent closes the connection and the rest is not sent.
    /// When reading `input` fails, the agent gets no end of input and kills
    /// the command rather than let it act on part of it; the call then
    /// fails with [`ClientError::Input`].
    ///
    /// An agent older than streamed stdin refuses the request before
    /// running anything; [`ClientError::is_stdin_stream_unsupported`] says
    /// so.
    pub fn exec_with_input(
        self,
        mut request: ExecRequest,
        input: &mut (dyn Read + Send),
        on_output: Option<OutputSink<'_>>,
    ) -> Result<ExecResult, ClientError> {
        request.stdin_stream = true;
        self.exec_sending(request, on_output, |stream, timeout| {
            send_input(stream, input, timeout)
        })
    }

    /// `exec` with `stdin_raw_bytes`: the command's standard input is the
    /// first `len` bytes of `input`, sent raw right after the request (no
    /// frames, no base64), so the guest only copies them. For large input
    /// such as a workspace's archive. Otherwise as
    /// [`AgentClient::exec_with_input`]; `input` ending before `len` bytes
    /// fails the call and the agent kills the command.
    pub fn exec_with_raw_input(
        self,
        mut request: ExecRequest,
        input: &mut (dyn Read + Send),
        len: u64,
        on_output: Option<OutputSink<'_>>,
    ) -> Result<ExecResult, ClientError> {
        request.stdin_raw_bytes = Some(len);
        self.exec_sending(request, on_output, move |stream, timeout| {
            send_raw(stream, input, len, timeout)
        })
    }

    /// Sends `request`, then the input with `send` from another thread
    /// while this one reads the answer.
    fn exec_sending(
        mut self,
        mut request: ExecRequest,
        on_output: Option<OutputSink<'_>>,
        send: impl FnOnce(&UnixStream, Duration) -> Result<(), Unsent> + Send,
    ) -> Result<ExecResult, ClientError> {
        // Frames without a callback would have nowhere to go.
        request.stream = on_output.is_some();
        let answer_within = self.exec_answer_within(&request);
        let limit = exec_answer_limit(&request);
        let line = Request::new(Call::Exec(request)).encode();
        wire::write_line(&mut self.stream, &line, self.timeout)
            .map_err(|e| self.io_error(Stage::SendingRequest, e))?;
        let this = &self;
        let (answer, sent) = thread::scope(|scope| {
            let writer = thread::Builder::new()
                .name("agent-input".into())
                // A command reading slowly is no failure: each write may
                // wait as long as the whole answer may.
                .spawn_scoped(scope, move || send(&this.stream, answer_within));
            let writer = match writer {
                Ok(writer) => writer,
                Err(e) => {
                    // No input will come: tell the agent now.
                    let _ = this.stream.shutdown(Shutdown::Both);
                    return (Err(this.io_error(Stage::SendingRequest, e)), Ok(()));
                }
            };
            let answer = this.read_exec_answer(answer_within, limit, on_output);
            // The answer is in, or will never be: input still unsent has
            // no reader. Shutting down also wakes a writer blocked on a
            // full socket.
            let _ = this.stream.shutdown(Shutdown::Both);
            let sent = match writer.join() {
                Ok(sent) => sent,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (answer, sent)
        });
        match sent {
            Err(Unsent::Input(source)) => Err(ClientError::Input { source }),
            // The agent closing first (the command ended without reading
            // everything) is how an early answer looks from here.
            Err(Unsent::Write(e)) if !is_disconnect(&e) => Err(if wire::is_timeout(&e) {
                ClientError::Timeout {
                    path: self.path.clone(),
                    stage: Stage::SendingRequest,
                    timeout: answer_within,
                }
            } else {
                self.io_error(Stage::SendingRequest, e)
            }),
            _ => answer,
        }
    }
}

/// Sends all of `input` as data frames, then the end frame.
fn send_input(
    stream: &UnixStream,
    input: &mut (dyn Read + Send),
    timeout: Duration,
) -> Result<(), Unsent> {
    let mut conn = stream;
    let abandon = |why| abandon(stream, why);
    let mut buf = vec![0u8; MAX_FRAME_DATA];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(abandon(Unsent::Input(e))),
        };
        wire::write_line(&mut conn, &InputFrame::data(&buf[..n]).encode(), timeout)
            .map_err(|e| abandon(Unsent::Write(e)))?;
    }
    wire::write_line(&mut conn, &InputFrame::end().encode(), timeout)
        .map_err(|e| abandon(Unsent::Write(e)))
}

/// Input that stops short (no end frame, fewer raw bytes than announced)
/// makes the agent kill the command as incomplete; shutting the write half
/// down tells it at once rather than at the command's timeout.
fn abandon(stream: &UnixStream, why: Unsent) -> Unsent {
    let _ = stream.shutdown(Shutdown::Write);
    why
}

/// Sends exactly `len` bytes of `input`, raw.
fn send_raw(
    stream: &UnixStream,
    input: &mut (dyn Read + Send),
    len: u64,
    timeout: Duration,
) -> Result<(), Unsent> {
    use std::io::Write;
    let mut conn = stream;
    let abandon = |why| abandon(stream, why);
    conn.set_write_timeout(Some(timeout))
        .map_err(|e| abandon(Unsent::Write(e)))?;
    let mut left = len;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(abandon(Unsent::Input(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the input ended {left} bytes short of the {len} announced"),
                ))));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(abandon(Unsent::Input(e))),
        };
        conn.write_all(&buf[..n])
            .map_err(|e| abandon(Unsent::Write(e)))?;
        left -= n as u64;
    }
    conn.flush().map_err(|e| abandon(Unsent::Write(e)))
}

#[cfg(test)]
pub(super) mod tests;

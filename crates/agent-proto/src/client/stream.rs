//! `exec` with streamed output: output frames while the command runs, then
//! the usual response line.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{AgentClient, Answer, ClientError, OutputSink, Stage, from_response_error};
use crate::base64;
use crate::protocol::{
    Call, ErrorBody, ExecRequest, ExecResult, MAX_FRAME_DATA, MAX_FRAME_LINE_BYTES, OutputChunk,
    OutputStream, Request, exec_answer_limit,
};
use crate::wire::{self, LineReader};

/// One line of an `exec` answer, decoded straight into its typed parts:
/// an output frame (`output` alone) or the response envelope (`ok` with
/// `result` or `error`). No intermediate `serde_json::Value`.
#[derive(Deserialize)]
struct AnswerLine {
    #[serde(default)]
    output: Option<OutputChunk>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    result: Option<ExecResult>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

/// One line of a streaming answer.
enum Line {
    Output(OutputStream, Vec<u8>),
    Final(Result<ExecResult, ClientError>),
}

impl AgentClient {
    /// `exec` with `stream` set: hands each piece of output to `on_output`
    /// as the guest sends it, then returns the result (whose `stdout` and
    /// `stderr` are empty). The guest is not trusted: any line longer than
    /// [`MAX_FRAME_LINE_BYTES`] ends the call with
    /// [`ClientError::BadResponse`].
    ///
    /// An agent older than streaming refuses the request before running
    /// anything; [`ClientError::is_streaming_unsupported`] says so, and
    /// [`AgentClient::exec`] on a new connection still works there.
    pub fn exec_streaming(
        mut self,
        mut request: ExecRequest,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<ExecResult, ClientError> {
        request.stream = true;
        let answer_within = self.exec_answer_within(&request);
        let limit = exec_answer_limit(&request);
        let line = Request::new(Call::Exec(request)).encode();
        wire::write_line(&mut self.stream, &line, self.timeout)
            .map_err(|e| self.io_error(Stage::SendingRequest, e))?;
        self.read_exec_answer(answer_within, limit, Some(on_output))
    }

    /// Reads an `exec` answer, starting now and ending `answer_within`
    /// later at most: output frames (handed to `on_output`; only a
    /// streaming request, one with `on_output`, gets them), then the
    /// response. Without `on_output` the answer is one line of at most
    /// `limit` bytes (the request's [`exec_answer_limit`]); with it every
    /// line is at most [`MAX_FRAME_LINE_BYTES`]. Reads through
    /// `&self.stream`, so another thread may write input frames on the same
    /// connection meanwhile.
    pub(super) fn read_exec_answer(
        &self,
        answer_within: Duration,
        limit: usize,
        mut on_output: Option<OutputSink<'_>>,
    ) -> Result<ExecResult, ClientError> {
        let (limit, what) = if on_output.is_some() {
            (MAX_FRAME_LINE_BYTES, Answer::StreamLine)
        } else {
            (limit, Answer::Method("exec"))
        };
        let deadline = Instant::now() + answer_within;
        let mut lines = LineReader::new(&self.stream);
        loop {
            let line = lines
                .next_line(limit, deadline)
                .map_err(|e| self.line_error(e, answer_within, what))?;
            match (parse(&line)?, on_output.as_mut()) {
                (Line::Output(stream, data), Some(on_output)) => on_output(stream, &data),
                (Line::Output(..), None) => {
                    return Err(ClientError::BadResponse {
                        reason: "an output frame in the answer to an exec that does not stream"
                            .into(),
                    });
                }
                (Line::Final(result), _) => return result,
            }
        }
    }
}

/// A frame (an object with `output` and nothing else) or the final
/// response.
fn parse(line: &[u8]) -> Result<Line, ClientError> {
    let bad = |reason: String| ClientError::BadResponse { reason };
    let answer: AnswerLine = serde_json::from_slice(line)
        .map_err(|e| bad(format!("bad output frame or response: {e}")))?;
    let Some(chunk) = answer.output else {
        let Some(ok) = answer.ok else {
            return Err(bad("not a response: missing \"ok\"".into()));
        };
        let envelope = crate::protocol::Envelope {
            ok,
            result: answer.result,
            error: answer.error,
        };
        return Ok(Line::Final(
            envelope.into_result().map_err(from_response_error),
        ));
    };
    if answer.ok.is_some() || answer.result.is_some() || answer.error.is_some() {
        return Err(bad(
            "bad output frame: \"output\" together with a response".into()
        ));
    }
    let data = base64::decode(&chunk.data).map_err(|e| bad(format!("bad output frame: {e}")))?;
    if data.len() > MAX_FRAME_DATA {
        return Err(bad(format!(
            "bad output frame: {} bytes of output (at most {MAX_FRAME_DATA})",
            data.len()
        )));
    }
    Ok(Line::Output(chunk.stream, data))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;
    use std::thread;

    use super::*;
    use crate::protocol::{ErrorCode, OutputFrame};

    fn result_line() -> Vec<u8> {
        super::super::input::tests::result_line(None)
    }

    /// A client whose agent is a thread that checks the request asks for
    /// streaming, then writes `answer` and closes.
    fn scripted(answer: Vec<Vec<u8>>) -> (AgentClient, thread::JoinHandle<()>) {
        let (host, mut agent) = UnixStream::pair().unwrap();
        let script = thread::spawn(move || {
            let mut request = String::new();
            BufReader::new(&agent).read_line(&mut request).unwrap();
            let request = Request::decode(request.trim_end().as_bytes()).unwrap();
            assert!(matches!(
                request.call,
                Call::Exec(ExecRequest { stream: true, .. })
            ));
            for line in answer {
                // The host may already have given up on an overlong line.
                let _ = agent.write_all(&line).and_then(|()| agent.write_all(b"\n"));
            }
        });
        let client = AgentClient::over(
            host,
            PathBuf::from("/scripted.sock"),
            Duration::from_secs(5),
        );
        (client, script)
    }

    /// What the call returned and the output it handed over.
    type Outcome = (
        Result<ExecResult, ClientError>,
        Vec<(OutputStream, Vec<u8>)>,
    );

    fn run(answer: Vec<Vec<u8>>) -> Outcome {
        let (client, script) = scripted(answer);
        let mut got = Vec::new();
        let result = client.exec_streaming(ExecRequest::new(["make"]), &mut |s, d| {
            got.push((s, d.to_vec()))
        });
        script.join().unwrap();
        (result, got)
    }

    #[test]
    fn frames_reach_the_callback_in_order_then_the_result() {
        let (result, got) = run(vec![
            OutputFrame::new(OutputStream::Stdout, b"a\n").encode(),
            OutputFrame::new(OutputStream::Stderr, b"b\n").encode(),
            OutputFrame::new(OutputStream::Stdout, &[0xff, 0]).encode(),
            result_line(),
        ]);
        assert_eq!(result.unwrap().status, Some(0));
        assert_eq!(
            got,
            [
                (OutputStream::Stdout, b"a\n".to_vec()),
                (OutputStream::Stderr, b"b\n".to_vec()),
                (OutputStream::Stdout, vec![0xff, 0]),
            ]
        );
    }

    #[test]
    fn an_overlong_line_is_refused() {
        let mut huge = br#"{"output":{"stream":"stdout","data":""#.to_vec();
        huge.extend(std::iter::repeat_n(b'A', MAX_FRAME_LINE_BYTES));
        huge.extend_from_slice(br#""}}"#);
        let (result, got) = run(vec![
            OutputFrame::new(OutputStream::Stdout, b"ok\n").encode(),
            huge,
            result_line(),
        ]);
        let err = result.unwrap_err();
        assert!(matches!(err, ClientError::BadResponse { .. }), "{err}");
        assert!(
            err.to_string().contains("longer than 131072 bytes"),
            "{err}"
        );
        assert_eq!(got, [(OutputStream::Stdout, b"ok\n".to_vec())]);
    }

    #[test]
    fn malformed_frames_and_agent_errors_are_typed() {
        let (result, _) = run(vec![br#"{"output":{"stream":"tty","data":""}}"#.to_vec()]);
        let err = result.unwrap_err();
        assert!(err.to_string().contains("bad output frame"), "{err}");
        let (result, _) = run(vec![
            br#"{"output":{"stream":"stdout","data":"!"}}"#.to_vec(),
        ]);
        assert!(matches!(result, Err(ClientError::BadResponse { .. })));
        let refusal = br#"{"ok":false,"error":{"code":"failed","message":"no such program"}}"#;
        let (result, _) = run(vec![refusal.to_vec()]);
        assert_eq!(result.unwrap_err().agent_code(), Some(ErrorCode::Failed));
        let (result, _) = run(vec![]);
        assert!(matches!(result, Err(ClientError::BadResponse { .. })));
    }
}

use std::io::Cursor;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;

use super::*;
use crate::protocol::{
    ErrorCode, InputEvent, MAX_FRAME_LINE_BYTES, OutputEncoding, OutputFrame, OutputStream,
    Response,
};
use crate::wire::LineReader;

/// The final answer of a scripted exec: success, or killed by `signal`.
pub(in crate::client) fn result_line(signal: Option<i32>) -> Vec<u8> {
    Response::success(&ExecResult {
        status: if signal.is_some() { None } else { Some(0) },
        signal,
        timed_out: false,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        output_dropped: false,
        encoding: OutputEncoding::Utf8,
        duration_s: 0.5,
    })
    .encode()
}

/// What the scripted agent saw: the request, the input bytes, and whether
/// the end frame came.
type Seen = (ExecRequest, Vec<u8>, bool);

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// A client whose agent is a thread: it reads the request, then input
/// frames until the end frame or EOF when `read_input`, sending an output
/// frame echoing each piece when the request streams; then it writes
/// `answer` and closes.
fn scripted(read_input: bool, answer: Vec<u8>) -> (AgentClient, JoinHandle<Seen>) {
    let (host, agent) = UnixStream::pair().unwrap();
    let script = thread::spawn(move || {
        let mut writer = agent.try_clone().unwrap();
        let mut lines = LineReader::new(agent);
        let request = Request::decode(&lines.next_line(1 << 20, soon()).unwrap()).unwrap();
        let Call::Exec(request) = request.call else {
            panic!("not exec")
        };
        let (mut data, mut ended) = (Vec::new(), false);
        while read_input && !ended {
            let Ok(line) = lines.next_line(MAX_FRAME_LINE_BYTES, soon()) else {
                break;
            };
            match InputFrame::decode(&line).unwrap() {
                InputEvent::End => ended = true,
                InputEvent::Data(piece) => {
                    assert!(!piece.is_empty() && piece.len() <= MAX_FRAME_DATA);
                    if request.stream {
                        let frame = OutputFrame::new(OutputStream::Stdout, &piece).encode();
                        wire::write_line(&mut writer, &frame, Duration::from_secs(10)).unwrap();
                    }
                    data.extend_from_slice(&piece);
                }
            }
        }
        // The host may have stopped reading after an error of its own.
        let _ = wire::write_line(&mut writer, &answer, Duration::from_secs(10));
        (request, data, ended)
    });
    let client = AgentClient::over(
        host,
        PathBuf::from("/scripted.sock"),
        Duration::from_secs(5),
    );
    (client, script)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

#[test]
fn input_goes_out_in_frames_then_the_end_and_output_comes_back() {
    let data = pattern(1_000_000);
    let (client, script) = scripted(true, result_line(None));
    let mut echoed = Vec::new();
    let mut on_output = |stream, piece: &[u8]| {
        assert_eq!(stream, OutputStream::Stdout);
        echoed.extend_from_slice(piece);
    };
    let result = client
        .exec_with_input(
            ExecRequest::new(["cat"]),
            &mut Cursor::new(data.clone()),
            Some(&mut on_output),
        )
        .unwrap();
    assert_eq!(result.status, Some(0));
    let (request, got, ended) = script.join().unwrap();
    assert!(request.stdin_stream && request.stream);
    assert!(got == data && ended);
    assert!(echoed == data);
}

#[test]
fn without_a_callback_the_result_carries_the_output() {
    let (client, script) = scripted(true, result_line(None));
    let mut request = ExecRequest::new(["tar", "-x"]);
    // A callback-less call never asks for frames it could not hand over.
    request.stream = true;
    let result = client
        .exec_with_input(request, &mut Cursor::new(b"archive".to_vec()), None)
        .unwrap();
    assert_eq!(result.status, Some(0));
    let (request, got, ended) = script.join().unwrap();
    assert!(request.stdin_stream && !request.stream);
    assert_eq!(got, b"archive");
    assert!(ended);
}

#[test]
fn empty_input_is_just_the_end_frame() {
    let (client, script) = scripted(true, result_line(None));
    let result = client.exec_with_input(ExecRequest::new(["cat"]), &mut io::empty(), None);
    assert_eq!(result.unwrap().status, Some(0));
    let (_, got, ended) = script.join().unwrap();
    assert!(got.is_empty() && ended);
}

/// Yields `good` bytes, then fails.
struct Failing {
    good: Cursor<Vec<u8>>,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.good.read(buf)? {
            0 => Err(io::Error::other("disk on fire")),
            n => Ok(n),
        }
    }
}

#[test]
fn an_input_read_error_sends_no_end_and_is_typed() {
    // The agent reads frames until EOF (no end frame), then answers as a
    // real one would: the command was killed.
    let (client, script) = scripted(true, result_line(Some(9)));
    let mut input = Failing {
        good: Cursor::new(pattern(100_000)),
    };
    let err = client
        .exec_with_input(ExecRequest::new(["tar", "-x"]), &mut input, None)
        .unwrap_err();
    assert!(matches!(&err, ClientError::Input { .. }), "{err}");
    assert!(err.to_string().contains("disk on fire"), "{err}");
    let (_, got, ended) = script.join().unwrap();
    assert!(!ended, "the agent saw an end frame after a failed read");
    assert_eq!(got, pattern(100_000));
}

#[test]
fn an_agent_answering_before_taking_all_input_is_no_error() {
    // What a command that exits without reading its stdin looks like: the
    // answer, then the connection closes while input is still going out.
    let (client, script) = scripted(false, result_line(None));
    let started = Instant::now();
    let mut endless = io::repeat(7).take(1 << 30);
    let result = client
        .exec_with_input(ExecRequest::new(["true"]), &mut endless, None)
        .unwrap();
    assert_eq!(result.status, Some(0));
    assert!(started.elapsed() < Duration::from_secs(5));
    script.join().unwrap();
}

#[test]
fn an_older_agents_refusal_is_recognised() {
    let refusal = Response::failure(crate::protocol::ErrorBody::new(
        ErrorCode::BadRequest,
        "bad params for exec: unknown field `stdin_stream`, expected one of `argv`, `cwd`",
    ))
    .encode();
    let (client, script) = scripted(false, refusal);
    let err = client
        .exec_with_input(
            ExecRequest::new(["tar", "-x"]),
            &mut io::repeat(0).take(10 << 20),
            None,
        )
        .unwrap_err();
    assert!(err.is_stdin_stream_unsupported(), "{err}");
    assert_eq!(err.agent_code(), Some(ErrorCode::BadRequest));
    script.join().unwrap();
}

#[test]
fn an_output_frame_without_streaming_is_a_bad_response() {
    let frame = OutputFrame::new(OutputStream::Stdout, b"x").encode();
    let (client, script) = scripted(false, frame);
    let err = client
        .exec_with_input(ExecRequest::new(["cat"]), &mut io::empty(), None)
        .unwrap_err();
    assert!(matches!(err, ClientError::BadResponse { .. }), "{err}");
    script.join().unwrap();
}

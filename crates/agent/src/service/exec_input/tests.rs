use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use super::*;
use crate::protocol::{ExecRequest, ExecResult, MAX_FRAME_DATA, OutputStream};
use crate::service::exec::{self, validate};
use crate::service::exec_stream;
use crate::wire;

const WRITE_TIMEOUT: Duration = Duration::from_secs(20);

/// An `exec` of `argv` reading its stdin from input frames.
fn piped(argv: &[&str], stream: bool) -> ExecSpec {
    let mut request = ExecRequest::new(argv.iter().copied()).binary_output();
    request.stdin_stream = true;
    request.stream = stream;
    validate(request).unwrap()
}

/// Bytes that are not all alike, so a lost or reordered chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

/// A connection: the host's end, and the agent's read side.
fn connection() -> (UnixStream, InputSource) {
    let (host, agent) = UnixStream::pair().unwrap();
    (host, InputSource::new(agent, Vec::new()))
}

/// The lines of `data` as input frames, then the end frame when `end`.
fn frames(data: &[u8], end: bool) -> Vec<Vec<u8>> {
    let mut lines: Vec<_> = data
        .chunks(MAX_FRAME_DATA)
        .map(|c| InputFrame::data(c).encode())
        .collect();
    if end {
        lines.push(InputFrame::end().encode());
    }
    lines
}

/// Writes `lines` from a thread, then closes the connection; the thread
/// returns whether every line was written.
fn send(mut host: UnixStream, lines: Vec<Vec<u8>>) -> JoinHandle<bool> {
    thread::spawn(move || {
        lines
            .iter()
            .all(|line| wire::write_line(&mut host, line, WRITE_TIMEOUT).is_ok())
    })
}

/// [`send`], the host staying connected until the caller drops the
/// returned handle: a host that hangs up gets its command killed.
fn send_and_stay(host: UnixStream, lines: Vec<Vec<u8>>) -> (JoinHandle<bool>, UnixStream) {
    let stays = host.try_clone().unwrap();
    (send(host, lines), stays)
}

/// Runs `spec` (streaming or not, as it says) with `input`; for a streaming
/// run, the stdout frames are put into the result as base64.
fn run(spec: &ExecSpec, input: InputSource) -> ExecResult {
    if !spec.stream {
        return exec::run_with_input(spec, Some(input)).unwrap();
    }
    let mut stdout = Vec::new();
    let mut result = exec_stream::run_with_input(spec, Some(input), &mut |stream, data| {
        if stream == OutputStream::Stdout {
            stdout.extend_from_slice(data);
        }
        true
    })
    .unwrap();
    result.stdout = crate::base64::encode(&stdout);
    result
}

#[test]
fn a_megabyte_arrives_intact_with_and_without_streaming() {
    let data = pattern(1 << 20);
    for stream in [false, true] {
        let (host, input) = connection();
        let (sender, _stays) = send_and_stay(host, frames(&data, true));
        let result = run(&piped(&["wc", "-c"], stream), input);
        assert!(sender.join().unwrap());
        assert_eq!(result.status, Some(0), "{result:?}");
        let count = String::from_utf8(result.stdout_bytes().unwrap()).unwrap();
        assert_eq!(count.trim(), (1 << 20).to_string(), "stream: {stream}");

        let (host, input) = connection();
        let (sender, _stays) = send_and_stay(host, frames(&data, true));
        let result = run(&piped(&["cat"], stream), input);
        assert!(sender.join().unwrap());
        assert_eq!(result.status, Some(0), "{result:?}");
        assert!(result.stdout_bytes().unwrap() == data, "stream: {stream}");
    }
}

#[test]
fn input_echoed_back_larger_than_every_buffer_does_not_deadlock() {
    // Far more than a pipe (64 KiB) plus the socket buffers hold: the
    // command blocks writing output unless it is relayed while input flows.
    let data = pattern(6 << 20);
    let (host, input) = connection();
    let (sender, _stays) = send_and_stay(host, frames(&data, true));
    let result = run(&piped(&["cat"], true), input);
    assert!(sender.join().unwrap());
    assert_eq!(result.status, Some(0), "{result:?}");
    assert!(result.stdout_bytes().unwrap() == data);
}

#[test]
fn frames_read_along_with_the_request_are_not_lost() {
    // The server's request reader may have read these already; they come
    // in as the source's buffered bytes, and the host sends nothing more.
    let data = pattern(200_000);
    let (host, agent) = UnixStream::pair().unwrap();
    let buffered = frames(&data, true).join(&b"\n"[..]);
    let input = InputSource::new(agent, [buffered, b"\n".to_vec()].concat());
    let result = run(&piped(&["cat"], false), input);
    drop(host);
    assert_eq!(result.status, Some(0), "{result:?}");
    assert!(result.stdout_bytes().unwrap() == data);
}

#[test]
fn a_command_that_does_not_read_its_input_still_answers() {
    for stream in [false, true] {
        let (host, input) = connection();
        // More than the socket holds, so the sender needs the agent either
        // to read or to close.
        let (sender, stays) = send_and_stay(host, frames(&pattern(8 << 20), true));
        let started = Instant::now();
        let result = run(&piped(&["true"], stream), input);
        drop(stays);
        assert_eq!(result.status, Some(0), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // The agent closed its side: the sender is not left blocked.
        sender.join().unwrap();
    }
}

#[test]
fn a_command_that_closes_its_stdin_leaves_the_host_writer_unblocked() {
    let (host, input) = connection();
    let (sender, stays) = send_and_stay(host, frames(&pattern(4 << 20), true));
    let spec = piped(&["sh", "-c", "exec 0<&-; sleep 1; echo done"], false);
    let result = run(&spec, input);
    drop(stays);
    // Every frame was taken (and dropped) while the command still ran.
    assert!(sender.join().unwrap());
    assert_eq!(result.status, Some(0), "{result:?}");
    assert_eq!(result.stdout_bytes().unwrap(), b"done\n");
}

#[test]
fn a_connection_closed_before_the_end_kills_the_command() {
    for stream in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let got = dir.path().join("got");
        let acted = dir.path().join("acted");
        // `touch` would run if `cat` saw end of file on the partial input.
        let script = format!("cat > {}; touch {}", got.display(), acted.display());
        let (host, input) = connection();
        let sender = send(host, frames(&pattern(300_000), false));
        let result = run(&piped(&["sh", "-c", &script], stream), input);
        assert!(sender.join().unwrap());
        assert_eq!(result.signal, Some(9), "{result:?}");
        assert_eq!(result.status, None);
        assert!(!result.timed_out);
        assert!(!acted.exists(), "the command acted on partial input");
    }
}

#[test]
fn malformed_or_oversized_frames_kill_the_command() {
    let mut long = br#"{"input":{"data":""#.to_vec();
    long.extend(std::iter::repeat_n(b'A', MAX_FRAME_LINE_BYTES));
    long.extend_from_slice(br#""}}"#);
    let bad_lines = [
        br#"{"input":{"data":"!!"}}"#.to_vec(),
        br#"{"input":{"data":"aGk=","more":1}}"#.to_vec(),
        br#"{"output":{"stream":"stdout","data":""}}"#.to_vec(),
        br#"{"input":{}}"#.to_vec(),
        b"not json".to_vec(),
        InputFrame::data(&[0; MAX_FRAME_DATA + 1]).encode(),
        long,
    ];
    for bad in bad_lines {
        for stream in [false, true] {
            let (host, input) = connection();
            let mut lines = frames(b"fine so far\n", false);
            lines.push(bad.clone());
            lines.extend(frames(b"never seen\n", true));
            // The host keeps the connection open: the frame alone decides.
            let keep = host.try_clone().unwrap();
            let sender = send(host, lines);
            let started = Instant::now();
            let result = run(&piped(&["cat"], stream), input);
            assert_eq!(result.signal, Some(9), "{result:?}");
            assert!(started.elapsed() < Duration::from_secs(5));
            drop(keep);
            let _ = sender.join();
        }
    }
}

#[test]
fn input_that_stalls_past_the_timeout_is_killed() {
    let (host, input) = connection();
    let mut spec = piped(&["cat"], false);
    spec.timeout = Duration::from_millis(300);
    let sender = send(host.try_clone().unwrap(), frames(b"partial", false));
    let started = Instant::now();
    let result = run(&spec, input);
    assert_eq!(result.signal, Some(9), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(sender.join().unwrap());
    drop(host);
}

#[test]
fn stdin_stream_needs_an_input_source() {
    let err = exec::run(&piped(&["cat"], false)).unwrap_err();
    assert!(matches!(err, ExecError::NoInput), "{err}");
}

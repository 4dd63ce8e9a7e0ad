//! `exec` with `stream`: the command's output goes to the host as frames
//! while it runs, instead of in the result.
//!
//! One reader thread per pipe hands chunks of at most [`MAX_FRAME_DATA`]
//! through a small bounded channel to the connection's thread, which writes
//! them. A host that reads slowly therefore slows the command down (its
//! pipes fill) instead of growing the agent's memory.

use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use super::exec_input::{self, InputSource, StdinFeed};
use super::exec_spec::ExecSpec;
use super::process::{DRAIN_GRACE, ExecError, MAX_POLL, abandon, kill_group, spawn};
use crate::protocol::{ExecResult, MAX_FRAME_DATA, OutputStream};

/// Chunks queued for the connection's thread. With one more held by each
/// reader, at most six frames of output sit in the agent's memory.
const QUEUED_CHUNKS: usize = 4;

enum Event {
    Data(OutputStream, Vec<u8>),
    Eof,
}

/// How the command ended: status, timed out, run time.
type Ended = (ExitStatus, bool, Duration);

/// How the relay ended: the command's end, and whether output had to be
/// dropped because the host stopped taking it.
type Relayed = (Ended, bool);

/// Runs a validated request, handing each chunk of output to `emit` as it
/// arrives. `emit` returns false once the host is gone: later output is
/// read and dropped, and the command still runs to its end, as it would
/// without streaming.
pub fn run(
    spec: &ExecSpec,
    emit: &mut dyn FnMut(OutputStream, &[u8]) -> bool,
) -> Result<ExecResult, ExecError> {
    run_with_input(spec, None, emit)
}

/// [`run`], the command's stdin read from `input` when the request has
/// `stdin_stream`. The input is read on its own thread while this one
/// relays output, so a command echoing its input back cannot deadlock.
pub fn run_with_input(
    spec: &ExecSpec,
    input: Option<InputSource>,
    emit: &mut dyn FnMut(OutputStream, &[u8]) -> bool,
) -> Result<ExecResult, ExecError> {
    let (mut child, started) = spawn(spec)?;
    let (tx, rx) = mpsc::sync_channel(QUEUED_CHUNKS);
    let truncated = start_pumps(&mut child, spec.cap, tx)
        .map_err(|e| abandon(&mut child, ExecError::Thread(e)))?;
    let feed = exec_input::start(&mut child, spec, input, started + spec.timeout)
        .map_err(|e| abandon(&mut child, e))?;
    let ended = relay(&mut child, spec.timeout, started, &rx, emit, feed.as_ref());
    // The answer goes out now; the input thread stops reading.
    drop(feed);
    let ((status, timed_out, duration), output_dropped) =
        ended.map_err(|source| ExecError::Wait {
            program: spec.argv[0].clone(),
            source,
        })?;
    Ok(ExecResult {
        status: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: truncated[0].load(Ordering::SeqCst),
        stderr_truncated: truncated[1].load(Ordering::SeqCst),
        output_dropped,
        encoding: spec.encoding,
        duration_s: duration.as_secs_f64(),
    })
}

/// Passes output on until the command has ended and both pipes reached EOF,
/// or [`DRAIN_GRACE`] after the end (background processes it left may hold
/// the pipes open for ever). Kills the process group at the deadline, or
/// once its streamed input is known to be incomplete.
fn relay(
    child: &mut Child,
    timeout: Duration,
    started: Instant,
    rx: &Receiver<Event>,
    emit: &mut dyn FnMut(OutputStream, &[u8]) -> bool,
    feed: Option<&StdinFeed>,
) -> io::Result<Relayed> {
    let deadline = started + timeout;
    let mut ended: Option<(Ended, Instant)> = None;
    let mut open = 2;
    let mut sending = true;
    let mut pause = Duration::from_millis(1);
    loop {
        if ended.is_none() {
            if let Some(feed) = feed {
                feed.kill_if_doomed(child);
            }
            let status = match child.try_wait()? {
                Some(status) => Some((status, false)),
                None if Instant::now() >= deadline => {
                    kill_group(child);
                    Some((child.wait()?, true))
                }
                None => None,
            };
            if let Some((status, timed_out)) = status {
                let done = (status, timed_out, started.elapsed());
                ended = Some((done, Instant::now() + DRAIN_GRACE));
            }
        }
        let now = Instant::now();
        let wait = match ended {
            Some((done, drain_until)) if open == 0 || now >= drain_until => {
                return Ok((done, !sending));
            }
            Some((_, drain_until)) => drain_until - now,
            None => pause.min(deadline.saturating_duration_since(now)),
        };
        if open == 0 {
            // Both pipes are closed but the command still runs.
            thread::sleep(wait);
            pause = (pause * 2).min(MAX_POLL);
            continue;
        }
        match rx.recv_timeout(wait) {
            Ok(Event::Data(stream, bytes)) => {
                if sending {
                    sending = emit(stream, &bytes);
                }
            }
            Ok(Event::Eof) => open -= 1,
            Err(RecvTimeoutError::Timeout) => pause = (pause * 2).min(MAX_POLL),
            Err(RecvTimeoutError::Disconnected) => open = 0,
        }
    }
}

/// Starts the stdout and stderr readers; returns their "truncated" flags.
fn start_pumps(
    child: &mut Child,
    cap: usize,
    tx: SyncSender<Event>,
) -> io::Result<[Arc<AtomicBool>; 2]> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let flags: [Arc<AtomicBool>; 2] = Default::default();
    pump(
        stdout,
        OutputStream::Stdout,
        cap,
        tx.clone(),
        flags[0].clone(),
    )?;
    pump(stderr, OutputStream::Stderr, cap, tx, flags[1].clone())?;
    Ok(flags)
}

/// Reads `reader` to EOF, sending at most `cap` bytes in all; the rest is
/// read and dropped so the command never blocks on a full pipe for it.
fn pump<R: Read + Send + 'static>(
    mut reader: R,
    stream: OutputStream,
    cap: usize,
    tx: SyncSender<Event>,
    truncated: Arc<AtomicBool>,
) -> io::Result<()> {
    let name = match stream {
        OutputStream::Stdout => "exec-stdout",
        OutputStream::Stderr => "exec-stderr",
    };
    thread::Builder::new().name(name.into()).spawn(move || {
        let mut sent = 0usize;
        let mut buf = vec![0u8; MAX_FRAME_DATA];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let keep = n.min(cap.saturating_sub(sent));
            if keep < n {
                truncated.store(true, Ordering::SeqCst);
            }
            sent += keep;
            // A failed send means the answer went out already (the drain
            // grace passed); keep reading so the writer is not blocked.
            if keep > 0 {
                let _ = tx.send(Event::Data(stream, buf[..keep].to_vec()));
            }
        }
        let _ = tx.send(Event::Eof);
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ExecRequest;
    use crate::service::exec::validate;

    fn streaming(script: &str) -> ExecSpec {
        let mut request = ExecRequest::new(["sh", "-c", script]);
        request.stream = true;
        validate(request).unwrap()
    }

    /// Runs `spec`, recording each frame with the time it arrived.
    fn collect(spec: &ExecSpec) -> (ExecResult, Vec<(Instant, OutputStream, Vec<u8>)>) {
        let mut frames = Vec::new();
        let result = run(spec, &mut |stream, data| {
            frames.push((Instant::now(), stream, data.to_vec()));
            true
        })
        .unwrap();
        (result, frames)
    }

    fn joined(frames: &[(Instant, OutputStream, Vec<u8>)], which: OutputStream) -> Vec<u8> {
        frames
            .iter()
            .filter(|(_, s, _)| *s == which)
            .flat_map(|(_, _, d)| d.clone())
            .collect()
    }

    #[test]
    fn frames_carry_each_stream_in_order_and_the_result_none() {
        let (result, frames) = collect(&streaming("echo a; echo b >&2; echo c; exit 3"));
        assert_eq!(joined(&frames, OutputStream::Stdout), b"a\nc\n");
        assert_eq!(joined(&frames, OutputStream::Stderr), b"b\n");
        assert_eq!(result.status, Some(3));
        assert!(!result.timed_out && !result.output_dropped);
        assert_eq!((result.stdout.as_str(), result.stderr.as_str()), ("", ""));
        assert!(frames.iter().all(|(_, _, d)| d.len() <= MAX_FRAME_DATA));
    }

    #[test]
    fn the_first_frame_arrives_while_the_command_still_runs() {
        let started = Instant::now();
        let (result, frames) = collect(&streaming("echo first; sleep 2; echo second"));
        assert_eq!(result.status, Some(0));
        assert!(result.duration_s >= 1.9, "{result:?}");
        let (first_at, stream, data) = &frames[0];
        assert_eq!(
            (*stream, data.as_slice()),
            (OutputStream::Stdout, &b"first\n"[..])
        );
        // The command took 2 s; buffered output would arrive at its end.
        let first_after = first_at.duration_since(started).as_secs_f64();
        assert!(first_after < result.duration_s - 1.0, "{first_after} s");
        assert_eq!(joined(&frames, OutputStream::Stdout), b"first\nsecond\n");
    }

    #[test]
    fn large_output_is_split_into_frames_and_capped() {
        let mut spec = streaming("head -c 300000 /dev/zero");
        let (result, frames) = collect(&spec);
        assert_eq!(joined(&frames, OutputStream::Stdout).len(), 300_000);
        assert!(frames.len() >= 5 && !result.stdout_truncated);
        spec.cap = 1000;
        let (result, frames) = collect(&spec);
        assert_eq!(joined(&frames, OutputStream::Stdout).len(), 1000);
        assert!(result.stdout_truncated);
    }

    /// A frame that cannot be written (a host that stopped reading for the
    /// write timeout) ends the frames, and the result says output was
    /// dropped, so the host never takes what it got for all of it; a host
    /// that hung up is noticed on the connection instead, and its command
    /// killed (tests/hangup.rs).
    #[test]
    fn an_unwritable_frame_stops_the_frames_and_the_result_says_so() {
        let mut calls = 0;
        let result = run(
            &streaming("echo one; sleep 0.2; echo two >&2; exit 4"),
            &mut |_, _| {
                calls += 1;
                false
            },
        )
        .unwrap();
        assert_eq!(calls, 1);
        assert_eq!(result.status, Some(4));
        assert!(result.output_dropped, "{result:?}");
    }

    #[test]
    fn timeout_kills_and_background_children_do_not_hold_the_answer() {
        let mut spec = streaming("echo started; sleep 30");
        spec.timeout = Duration::from_millis(300);
        let (result, frames) = collect(&spec);
        assert!(result.timed_out && result.signal == Some(9), "{result:?}");
        assert_eq!(joined(&frames, OutputStream::Stdout), b"started\n");
        let started = Instant::now();
        let (result, _) = collect(&streaming("sleep 8 & echo bg"));
        assert_eq!(result.status, Some(0));
        assert!(started.elapsed() < Duration::from_secs(6));
    }
}

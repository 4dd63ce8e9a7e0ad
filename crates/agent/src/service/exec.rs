//! `exec`: run a program by argv, capture its output, enforce its timeout.
//!
//! The program runs in its own process group so that a timeout kills
//! everything it started, not just the direct child (whose descendants would
//! otherwise keep running and keep the output pipes open).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::capture::{self, Capture};
use super::exec_input::{self, InputSource, StdinFeed};
pub use super::exec_spec::{ExecSpec, InvalidExec, validate};
pub use super::process::ExecError;
use super::process::{DRAIN_GRACE, MAX_POLL, abandon, kill_group, spawn};
use crate::base64;
use crate::protocol::{ExecResult, OutputEncoding};

/// Runs a validated request to completion (or its timeout), its output
/// collected into the result.
pub fn run(spec: &ExecSpec) -> Result<ExecResult, ExecError> {
    run_with_input(spec, None)
}

/// [`run`], the command's stdin read from `input` when the request has
/// `stdin_stream`.
pub fn run_with_input(
    spec: &ExecSpec,
    input: Option<InputSource>,
) -> Result<ExecResult, ExecError> {
    let (mut child, started) = spawn(spec)?;
    let program = &spec.argv[0];
    let (done_tx, done_rx) = mpsc::channel();
    let captures = start_captures(&mut child, spec.cap, done_tx);
    let captures = captures.map_err(|e| abandon(&mut child, ExecError::Thread(e)))?;
    let feed = exec_input::start(&mut child, spec, input, started + spec.timeout)
        .map_err(|e| abandon(&mut child, e))?;

    let (status, timed_out) =
        wait_with_timeout(&mut child, spec.timeout, feed.as_ref()).map_err(|source| {
            ExecError::Wait {
                program: program.clone(),
                source,
            }
        })?;
    let duration = started.elapsed();
    capture::wait_for_eof(&done_rx, 2, DRAIN_GRACE);
    // The answer goes out now; the input thread stops reading.
    drop(feed);
    let (stdout, stderr) = (captures.0.take(), captures.1.take());
    Ok(ExecResult {
        status: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: encode(&stdout.bytes, spec.encoding),
        stderr: encode(&stderr.bytes, spec.encoding),
        stdout_truncated: stdout.truncated,
        stderr_truncated: stderr.truncated,
        output_dropped: false,
        encoding: spec.encoding,
        duration_s: duration.as_secs_f64(),
    })
}

fn start_captures(
    child: &mut Child,
    cap: usize,
    done: mpsc::Sender<()>,
) -> io::Result<(Capture, Capture)> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let out = Capture::start(stdout, cap, "stdout", done.clone())?;
    let err = Capture::start(stderr, cap, "stderr", done)?;
    Ok((out, err))
}

/// Polls for the child's exit with a growing pause; on timeout, or once its
/// streamed input is known to be incomplete, kills its process group and
/// reaps it.
fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
    feed: Option<&StdinFeed>,
) -> io::Result<(ExitStatus, bool)> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(feed) = feed {
            feed.kill_if_doomed(child);
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            kill_group(child);
            return Ok((child.wait()?, true));
        }
        thread::sleep(pause.min(remaining));
        pause = (pause * 2).min(MAX_POLL);
    }
}

fn encode(bytes: &[u8], encoding: OutputEncoding) -> String {
    match encoding {
        OutputEncoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        OutputEncoding::Base64 => base64::encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ExecRequest;

    fn spec(argv: &[&str]) -> ExecSpec {
        validate(ExecRequest::new(argv.iter().copied())).unwrap()
    }

    fn sh(script: &str) -> ExecSpec {
        spec(&["sh", "-c", script])
    }

    #[test]
    fn reports_exit_status_and_output() {
        let result = run(&sh("echo hi; echo err >&2; exit 7")).unwrap();
        assert_eq!(result.status, Some(7));
        assert_eq!(result.signal, None);
        assert!(!result.timed_out);
        assert_eq!(result.stdout, "hi\n");
        assert_eq!(result.stderr, "err\n");
        assert!(!result.stdout_truncated && !result.stderr_truncated);
    }

    #[test]
    fn argv_is_not_interpreted_by_a_shell() {
        let result = run(&spec(&["echo", "$HOME;", "`id`", "*"])).unwrap();
        assert_eq!(result.stdout, "$HOME; `id` *\n");
    }

    #[test]
    fn reports_the_killing_signal() {
        let result = run(&sh("kill -TERM $$")).unwrap();
        assert_eq!(result.status, None);
        assert_eq!(result.signal, Some(15));
        assert!(!result.timed_out);
    }

    #[test]
    fn children_get_the_default_sigpipe_action() {
        // The agent, like every Rust program, ignores SIGPIPE; its children
        // must not (`yes | head` would spin on EPIPE otherwise).
        let result = run(&sh("kill -PIPE $$; echo survived")).unwrap();
        assert_eq!(result.signal, Some(13), "{result:?}");
        assert_eq!(result.stdout, "");
    }

    #[test]
    fn caps_output_and_says_so() {
        let mut s = sh("head -c 100000 /dev/zero; head -c 10 /dev/zero >&2");
        s.cap = 1000;
        let result = run(&s).unwrap();
        assert_eq!(result.stdout.len(), 1000);
        assert!(result.stdout_truncated);
        assert_eq!(result.stderr.len(), 10);
        assert!(!result.stderr_truncated);
        assert_eq!(result.status, Some(0));
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The grandchild would create the marker if it outlived the kill.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let mut s = sh(&script);
        s.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let result = run(&s).unwrap();
        assert!(result.timed_out);
        assert_eq!(result.signal, Some(9));
        assert_eq!(result.status, None);
        assert!(started.elapsed() < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "a grandchild survived the timeout");
    }

    #[test]
    fn background_children_do_not_hold_the_answer() {
        let started = Instant::now();
        let result = run(&sh("sleep 8 & echo started")).unwrap();
        assert_eq!(result.status, Some(0));
        assert_eq!(result.stdout, "started\n");
        // The drain grace is 1 s; the background sleep holds stdout for 8.
        assert!(started.elapsed() < Duration::from_secs(6));
    }

    #[test]
    fn runs_in_cwd_with_env_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let request = ExecRequest::new(["sh", "-c", "pwd; echo \"$GREETING\"; cat"])
            .cwd(dir.path().to_str().unwrap())
            .env("GREETING", "hello there")
            .stdin_bytes(b"from stdin");
        let result = run(&validate(request).unwrap()).unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(
            result.stdout,
            format!("{}\nhello there\nfrom stdin", canonical.display())
        );
    }

    #[test]
    fn stdin_defaults_to_dev_null() {
        let result = run(&spec(&["cat"])).unwrap();
        assert_eq!(result.status, Some(0));
        assert_eq!(result.stdout, "");
    }

    #[test]
    fn base64_output_keeps_exact_bytes() {
        let request = ExecRequest::new(["printf", "\\377\\000a"]).binary_output();
        let result = run(&validate(request).unwrap()).unwrap();
        assert_eq!(result.encoding, OutputEncoding::Base64);
        assert_eq!(result.stdout_bytes().unwrap(), [0xff, 0x00, b'a']);
    }

    #[test]
    fn missing_program_and_cwd_are_errors() {
        let err = run(&spec(&["/nonexistent/banger-prog"])).unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }), "{err}");
        let request = ExecRequest::new(["true"]).cwd("/nonexistent/banger-dir");
        let err = run(&validate(request).unwrap()).unwrap_err();
        assert!(matches!(err, ExecError::Cwd { .. }), "{err}");
    }
}

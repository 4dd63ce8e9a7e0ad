//! The accept loop and one connection's life: read one request line (capped
//! in size and time), answer it, and run what must happen after the answer
//! (power-off).

use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::config::ServiceConfig;
use super::conn::DuplexStream;
use super::dispatch::{self, AfterReply};
use super::exec_input::InputSource;
use super::listener::Listener;
use crate::protocol::{Call, ErrorBody, ErrorCode, MAX_REQUEST_BYTES, Request, Response};
use crate::wire::{self, LineError, LineReader, TimeoutStream};

/// Serves `listener` forever, one thread per connection.
pub fn serve<L: Listener>(listener: L, config: Arc<ServiceConfig>) -> ! {
    crate::info!(
        "agent {} serving protocol v{} on {}",
        crate::AGENT_VERSION,
        crate::PROTOCOL_VERSION,
        listener.describe()
    );
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let conn = match listener.accept() {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE, ECONNABORTED and the like pass; back off a little
                // so a persistent error does not spin.
                crate::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= config.max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            refuse_busy(conn, &config);
            continue;
        }
        let config = Arc::clone(&config);
        let active_for_thread = Arc::clone(&active);
        let spawned = thread::Builder::new()
            .name("agent-conn".into())
            .spawn(move || {
                handle_connection(conn, &config);
                active_for_thread.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            crate::error!("cannot start a connection thread: {e}");
        }
    }
}

fn bad_request(message: String) -> Response {
    Response::failure(ErrorBody::new(ErrorCode::BadRequest, message))
}

fn refuse_busy<C: TimeoutStream>(mut conn: C, config: &ServiceConfig) {
    let response = Response::failure(ErrorBody::new(
        ErrorCode::Failed,
        format!(
            "agent busy: {} requests in progress",
            config.max_connections
        ),
    ));
    let _ = wire::write_line(&mut conn, &response.encode(), config.write_timeout);
}

/// Serves one connection: exactly one request, exactly one response (for a
/// streaming `exec`, preceded by its output frames).
pub(crate) fn handle_connection<C: DuplexStream>(conn: C, config: &ServiceConfig) {
    let deadline = Instant::now() + config.request_timeout;
    // A line reader rather than one buffered read: with `stdin_stream` the
    // host's first input frames may arrive in the same read as the request,
    // and they must reach the input thread.
    let mut lines = LineReader::new(conn);
    let read = lines.next_line(MAX_REQUEST_BYTES, deadline);
    let (mut conn, buffered) = lines.into_parts();
    let mut split = false;
    let (response, after) = match read {
        Ok(line) => match Request::decode(&line) {
            Ok(request) => {
                let (outcome, input_split) = answer(request, &mut conn, buffered, config);
                split = input_split;
                (outcome.response, outcome.after)
            }
            Err(error) => (Response::failure(error), None),
        },
        Err(LineError::Io(e)) => {
            crate::warn!("reading a request failed: {e}");
            return;
        }
        Err(LineError::TooLong { limit }) => (
            bad_request(format!("request longer than {limit} bytes")),
            None,
        ),
        Err(LineError::TimedOut) => (
            bad_request(format!(
                "no complete request line within {} s",
                config.request_timeout.as_secs_f64()
            )),
            None,
        ),
        Err(LineError::Closed { received }) => (
            bad_request(format!(
                "connection closed after {received} bytes, before a newline"
            )),
            None,
        ),
    };
    if let Err(e) = wire::write_line(&mut conn, &response.encode(), config.write_timeout) {
        crate::warn!("writing a response failed: {e}");
    }
    if split {
        // An input thread still blocked writing to a pipe nobody reads
        // holds a second handle; shutting down closes the connection for
        // the host regardless, and ends any input it is still sending.
        let _ = conn.shutdown(Shutdown::Both);
    }
    if after.is_some() {
        // The answer must leave the guest before the action ends it: over
        // the serial channel a pump thread carries it out, which a
        // power-off would cut short. So the host sees EOF after the answer,
        // and the guest waits (a bounded time) for the host to hang up,
        // which it does once it has read it.
        let _ = conn.shutdown(Shutdown::Write);
        wait_for_hangup(&mut conn, HANGUP_WAIT);
    }
    // The host has its answer; close before acting so it sees EOF even if
    // the guest goes away mid-action.
    drop(conn);
    if let Some(AfterReply::PowerOff) = after {
        crate::info!("powering off as requested");
        if let Err(e) = config.power.power_off() {
            crate::error!("power-off failed: {e}");
        }
    }
}

/// How long an action that ends the guest waits for the host to hang up
/// after its answer.
const HANGUP_WAIT: Duration = Duration::from_secs(2);

/// Reads (and drops) until the peer closes, an error, or `wait` passes.
fn wait_for_hangup<C: DuplexStream>(conn: &mut C, wait: Duration) {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 256];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match std::io::Read::read(conn, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Carries out a valid request, writing any output frames on `conn`. An
/// `exec` reads its input frames (with `stdin_stream`, starting with
/// `buffered`) and watches for a hang-up through a second handle; the flag
/// says one was made.
fn answer<C: DuplexStream>(
    request: Request,
    conn: &mut C,
    buffered: Vec<u8>,
    config: &ServiceConfig,
) -> (dispatch::Outcome, bool) {
    let method = request.call.method();
    // Every `exec` reads the connection while its command runs: its input
    // frames, and then (or from the start) whether the host hung up, which
    // kills the command.
    let input = match &request.call {
        Call::Exec(exec) => match conn.try_clone() {
            Ok(reader) => Some(InputSource::new(reader, buffered)),
            Err(e) if exec.stdin_stream || exec.stdin_raw_bytes.is_some() => {
                let message = format!("cannot read the input frames: {e}");
                crate::warn!("{method}: {message}");
                let response = Response::failure(ErrorBody::new(ErrorCode::Failed, message));
                return (dispatch::Outcome::reply(response), false);
            }
            Err(e) => {
                crate::warn!("{method}: cannot watch the connection for a hang-up: {e}");
                None
            }
        },
        _ => None,
    };
    let split = input.is_some();
    let mut frames = |line: &[u8]| match wire::write_line(conn, line, config.write_timeout) {
        Ok(()) => true,
        Err(e) => {
            crate::warn!("{method}: cannot send output, dropping the rest: {e}");
            false
        }
    };
    let outcome = dispatch::dispatch(request.call, config, &mut frames, input);
    if let Some(error) = &outcome.response.error {
        crate::warn!("{method}: {} ({})", error.message, error.code);
    }
    (outcome, split)
}

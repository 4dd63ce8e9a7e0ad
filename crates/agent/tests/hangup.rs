//! The host going away ends the command: the real service loop on a Unix
//! socket, a host that sends an `exec` request and hangs up while the
//! command runs. The process group is killed at once, so nothing the
//! command would have done later happens.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use banger_agent::protocol::{Call, ExecRequest, InputFrame, Request};
use banger_agent::service::{PowerControl, PowerError, ServiceConfig, serve};

struct NoPower;

impl PowerControl for NoPower {
    fn power_off(&self) -> Result<(), PowerError> {
        Ok(())
    }
}

struct Agent {
    dir: tempfile::TempDir,
    sock: PathBuf,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let mut config = ServiceConfig::guest(Arc::new(NoPower));
        config.fs_root = dir.path().to_path_buf();
        config.apply_live = false;
        let listener = UnixListener::bind(&sock).unwrap();
        let config = Arc::new(config);
        thread::spawn(move || serve(listener, config));
        Agent { dir, sock }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sends `request` (and `then`, raw lines after it) and keeps the
    /// connection open.
    fn send(&self, request: ExecRequest, then: &[Vec<u8>]) -> UnixStream {
        let mut conn = UnixStream::connect(&self.sock).unwrap();
        let mut bytes = Request::new(Call::Exec(request)).encode();
        bytes.push(b'\n');
        for line in then {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        conn.write_all(&bytes).unwrap();
        conn
    }
}

/// The script: note its pid, wait, then leave a marker it must never get
/// to leave.
fn doomed(agent: &Agent) -> (ExecRequest, PathBuf, PathBuf) {
    let (pid, marker) = (agent.path("pid"), agent.path("marker"));
    let script = format!(
        "echo $$ > {pid}; echo started; sleep 3; touch {marker}",
        pid = pid.display(),
        marker = marker.display()
    );
    (ExecRequest::new(["sh", "-c", &script]), pid, marker)
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The pid the script wrote, once it wrote it.
fn started_pid(pid_file: &Path) -> u32 {
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(pid_file).is_ok_and(|s| s.ends_with('\n'))
        }),
        "the command never started"
    );
    std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Alive, and not a zombie (the agent reaps its children).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.starts_with(" Z"))
    })
}

/// Hangs up through `hang_up` once the command runs; the command must be
/// gone within 2 s and never reach its marker.
fn assert_killed_on_hang_up(request: ExecRequest, then: &[Vec<u8>], hang_up: fn(UnixStream)) {
    let agent = Agent::start();
    let (mut doomed_request, pid_file, marker) = doomed(&agent);
    doomed_request.stream = request.stream;
    doomed_request.stdin_stream = request.stdin_stream;
    let conn = agent.send(doomed_request, then);
    let pid = started_pid(&pid_file);
    hang_up(conn);
    let gone = Instant::now();
    assert!(
        wait_until(Duration::from_secs(2), || !running(pid)),
        "the command still runs 2 s after the host hung up"
    );
    assert!(gone.elapsed() < Duration::from_secs(2));
    thread::sleep(Duration::from_millis(3500));
    assert!(!marker.exists(), "the command went on after the hang-up");
}

fn close(conn: UnixStream) {
    drop(conn);
}

/// What a VMM's splice shows the guest when the host closes its end.
fn half_close(conn: UnixStream) {
    conn.shutdown(Shutdown::Write).unwrap();
    // Keep reading so nothing but the hang-up differs from a live host.
    thread::spawn(move || {
        let _ = std::io::copy(&mut &conn, &mut std::io::sink());
    });
}

#[test]
fn closing_the_connection_kills_a_captured_command() {
    assert_killed_on_hang_up(ExecRequest::new(["x"]), &[], close);
}

#[test]
fn closing_the_connection_kills_a_streaming_command() {
    let mut request = ExecRequest::new(["x"]);
    request.stream = true;
    assert_killed_on_hang_up(request, &[], close);
}

#[test]
fn a_half_close_kills_the_command_too() {
    assert_killed_on_hang_up(ExecRequest::new(["x"]), &[], half_close);
}

#[test]
fn a_hang_up_after_complete_streamed_input_kills_the_command() {
    let mut request = ExecRequest::new(["x"]);
    request.stdin_stream = true;
    request.stream = true;
    let input = [
        InputFrame::data(b"hello").encode(),
        InputFrame::end().encode(),
    ];
    assert_killed_on_hang_up(request, &input, close);
}

#[test]
fn a_host_that_stays_gets_its_answer() {
    let agent = Agent::start();
    let conn = agent.send(ExecRequest::new(["sh", "-c", "sleep 0.5; echo done"]), &[]);
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut answer).unwrap();
    assert!(answer.contains(r#""status":0"#), "{answer}");
    assert!(answer.contains(r#""stdout":"done\n""#), "{answer}");
}

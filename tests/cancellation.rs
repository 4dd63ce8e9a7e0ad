//! A client that hangs up cancels its request, and the request's cleanup
//! runs. Uses `debug.sleep`, which exists only in builds with the
//! `test-methods` feature.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{Home, wait_until};

fn sleep_request(op_id: &str, millis: u64, marker_dir: &std::path::Path) -> String {
    format!(
        "{{\"version\":1,\"op_id\":\"{op_id}\",\"method\":\"debug.sleep\",\"params\":{{\"millis\":{millis},\"marker_dir\":\"{}\"}}}}\n",
        marker_dir.display()
    )
}

/// Sends a `debug.sleep` of `millis` as `op_id` and waits until it has
/// started; the connection stays open (hanging it up cancels the sleep).
fn start_sleeping(home: &Home, op_id: &str, millis: u64, markers: &std::path::Path) -> UnixStream {
    let stream = UnixStream::connect(home.socket()).unwrap();
    (&stream)
        .write_all(sleep_request(op_id, millis, markers).as_bytes())
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || markers.join("started").exists()),
        "work never started"
    );
    stream
}

fn operation(home: &Home, id: &str) -> serde_json::Value {
    let ops = home.raw("{\"version\":1,\"method\":\"daemon.operations.list\"}\n");
    ops["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .cloned()
        .unwrap_or_default()
}

/// Every line of the answer, up to the final result or error.
fn read_answer(stream: &UnixStream) -> Vec<serde_json::Value> {
    BufReader::new(stream)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

#[test]
fn hanging_up_cancels_the_request_and_runs_its_cleanup() {
    let home = Home::new();
    home.start_daemon();
    let markers = tempfile::tempdir().unwrap();

    let stream = start_sleeping(&home, "slow-1", 60_000, markers.path());
    assert_eq!(operation(&home, "slow-1")["state"], "running");
    assert_eq!(operation(&home, "slow-1")["stage"], "sleeping");

    drop(stream); // Ctrl-C
    assert!(
        wait_until(Duration::from_secs(10), || markers
            .path()
            .join("cleaned-up")
            .exists()),
        "cleanup did not run; log:\n{}",
        home.log()
    );
    assert!(wait_until(Duration::from_secs(5), || operation(
        &home, "slow-1"
    )["state"]
        == "cancelled"));
    assert!(home.log().contains("client went away"), "{}", home.log());
}

#[test]
fn a_request_left_alone_completes() {
    let home = Home::new();
    home.start_daemon();
    let markers = tempfile::tempdir().unwrap();
    let stream = UnixStream::connect(home.socket()).unwrap();
    (&stream)
        .write_all(sleep_request("quick-1", 50, markers.path()).as_bytes())
        .unwrap();
    let lines = read_answer(&stream);
    assert_eq!(
        lines,
        [
            serde_json::json!({"op_id": "quick-1", "progress": {"stage": "sleeping"}}),
            serde_json::json!({"op_id": "quick-1", "result": null}),
        ],
        "the stage, then the result"
    );
    assert!(!markers.path().join("cleaned-up").exists());
    assert_eq!(operation(&home, "quick-1")["state"], "succeeded");
}

#[test]
fn stopping_the_daemon_cancels_in_flight_work() {
    let home = Home::new();
    let pid = home.start_daemon();
    let markers = tempfile::tempdir().unwrap();
    let stream = start_sleeping(&home, "slow-2", 60_000, markers.path());
    common::terminate(pid);
    assert!(
        markers.path().join("cleaned-up").exists(),
        "shutdown skipped the cleanup"
    );
    let answer = read_answer(&stream).pop().unwrap().to_string();
    assert!(
        answer.contains("\"code\":\"operation_failed\"") && answer.contains("cancelled"),
        "{answer}"
    );
    assert!(!home.socket().exists(), "socket removed on shutdown");
}

/// One daemon per state directory is decided before anything changes: a
/// second `bangerd` for the same home finds the lock, names its holder and
/// exits, leaving the first one's in-flight operation running (it used to
/// mark it interrupted and reconcile VMs before finding the lock).
#[test]
fn a_second_daemon_touches_nothing_of_the_first() {
    let home = Home::new();
    let first = home.start_daemon();
    let markers = tempfile::tempdir().unwrap();
    let stream = start_sleeping(&home, "busy-1", 3_000, markers.path());

    let out = home.bangerd(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(
        err.contains("another bangerd") && err.contains(&format!("pid {first}")),
        "the refusal names the holder: {err}"
    );
    assert!(
        !err.contains("interrupted") && !err.contains("reconcile") && !err.contains("DNS"),
        "the second daemon did work before finding the lock: {err}"
    );
    assert_eq!(
        operation(&home, "busy-1")["state"],
        "running",
        "the first daemon's operation was marked by the second"
    );
    let lines = read_answer(&stream);
    assert_eq!(
        lines.last().unwrap(),
        &serde_json::json!({"op_id": "busy-1", "result": null}),
        "{lines:?}"
    );
    assert_eq!(operation(&home, "busy-1")["state"], "succeeded");
}

/// `MAX_CONNECTIONS` in crates/daemon/src/server.rs.
const MAX_CONNECTIONS: usize = 256;

/// The answer of a ping on a fresh connection.
fn ping(home: &Home) -> serde_json::Value {
    let stream = UnixStream::connect(home.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // A refused connection may be closed before the request goes out; its
    // answer is still there to read.
    let _ = (&stream).write_all(b"{\"version\":1,\"method\":\"ping\"}\n");
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("bad answer {answer:?}: {e}"))
}

/// A request that is running (here past its request line, sending progress)
/// holds its connection's slot until it ends.
#[test]
fn a_running_request_counts_against_the_connection_cap() {
    let home = Home::new();
    home.start_daemon();
    let markers = tempfile::tempdir().unwrap();
    let busy = start_sleeping(&home, "busy-cap", 60_000, markers.path());
    let idle: Vec<UnixStream> = (1..MAX_CONNECTIONS)
        .map(|_| UnixStream::connect(home.socket()).unwrap())
        .collect();

    let refused = ping(&home);
    assert_eq!(refused["error"]["code"], "operation_failed", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("serving {MAX_CONNECTIONS} connections already")),
        "{refused}"
    );

    // Hanging up cancels the request; once its cleanup has run, the slot is
    // free.
    drop(busy);
    assert!(
        wait_until(
            Duration::from_secs(10),
            || ping(&home)["result"]["protocol"] == 1
        ),
        "the cancelled request kept its slot; log:\n{}",
        home.log()
    );
    assert!(markers.path().join("cleaned-up").exists());
    drop(idle);
}

//! The daemon protocol on the wire: envelopes, error codes, operation ids,
//! socket permissions and peer authentication.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Home, stderr, terminate, wait_until};
use serde_json::json;

/// `MAX_CONNECTIONS` in crates/daemon/src/server.rs.
const MAX_CONNECTIONS: usize = 256;

/// Opens `n` connections that never send a request: each holds a slot until
/// it hangs up (or its 10 s to send a request run out).
fn idle_connections(home: &Home, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|_| UnixStream::connect(home.socket()).expect("connect"))
        .collect()
}

/// The one line the daemon answers on `stream` without being asked.
fn unprompted_answer(stream: &UnixStream) -> serde_json::Value {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .expect("an answer before the read timeout");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("bad answer {answer:?}: {e}"))
}

/// A ping on `stream`: its answer line.
fn ping_on(stream: &UnixStream) -> serde_json::Value {
    // A refused connection may be closed before the request goes out; its
    // answer is still there to read.
    let _ = (&*stream).write_all(b"{\"version\":1,\"method\":\"ping\"}\n");
    unprompted_answer(stream)
}

/// True when the daemon has neither answered nor closed `stream`.
fn still_waiting(stream: &UnixStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let waiting =
        matches!((&*stream).read(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    waiting
}

#[test]
fn requests_get_typed_answers_and_error_codes() {
    let home = Home::new();
    home.start_daemon();

    let ok = home.raw("{\"version\":1,\"op_id\":\"t-1\",\"method\":\"vm.list\"}\n");
    assert_eq!(ok, json!({"op_id": "t-1", "result": []}));

    let minted = home.raw("{\"version\":1,\"method\":\"ping\"}\n");
    assert!(
        minted["op_id"].as_str().unwrap().starts_with("op-"),
        "{minted}"
    );
    assert_eq!(minted["result"]["protocol"], 1);

    let cases = [
        ("{\"version\":2,\"method\":\"ping\"}\n", "bad_version"),
        (
            "{\"version\":1,\"method\":\"vm.explode\"}\n",
            "unknown_method",
        ),
        (
            "{\"version\":1,\"method\":\"vm.show\",\"params\":{}}\n",
            "bad_request",
        ),
        (
            "{\"version\":1,\"method\":\"ping\",\"params\":{\"x\":1}}\n",
            "bad_request",
        ),
        ("not json\n", "bad_request"),
        (
            "{\"version\":1,\"op_id\":\"has space\",\"method\":\"ping\"}\n",
            "bad_request",
        ),
        (
            "{\"version\":1,\"op_id\":\"t-2\",\"method\":\"vm.show\",\"params\":{\"vm\":\"ghost\"}}\n",
            "not_found",
        ),
    ];
    for (line, code) in cases {
        let answer = home.raw(line);
        assert_eq!(answer["error"]["code"], code, "{line} → {answer}");
        assert!(
            answer["op_id"].is_string(),
            "errors carry the op id: {answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(home.raw("{\"version\":1,\"op_id\":\"t-2\",\"method\":\"vm.show\",\"params\":{\"vm\":\"ghost\"}}\n")["op_id"], "t-2");

    // Oversized requests are refused without reading them whole.
    let huge = format!(
        "{{\"version\":1,\"method\":\"ping\",\"op_id\":\"{}\"}}\n",
        "x".repeat(2 << 20)
    );
    assert_eq!(home.raw(&huge)["error"]["code"], "bad_request");

    // Every log line of a request carries its op id.
    let log = home.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("method=vm.show"))
        .collect();
    assert!(!lines.is_empty(), "{log}");
    assert!(lines.iter().all(|l| l.contains("op_id=")), "{log}");
    assert!(log.contains("op_id=t-2"), "{log}");
}

#[test]
fn socket_is_private_from_the_start() {
    let home = Home::new();
    home.start_daemon();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home.socket()), 0o600);
    assert_eq!(mode(home.socket().parent().unwrap()), 0o700);
}

#[test]
fn a_second_daemon_for_the_same_home_is_refused() {
    let home = Home::new();
    home.start_daemon();
    let out = home.bangerd(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("another bangerd"), "{}", stderr(&out));
    // The first one still answers.
    assert_eq!(
        home.raw("{\"version\":1,\"method\":\"ping\"}\n")["result"]["protocol"],
        1
    );
}

#[test]
fn daemon_restarts_over_a_stale_socket() {
    let home = Home::new();
    let pid = home.start_daemon();
    // SIGKILL: no chance to remove the socket file.
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    // The socket is stale once connecting is refused: a zombie leader is not
    // enough, its other threads may still hold the listening socket open for
    // a moment (a connection then is accepted and reset).
    assert!(common::wait_until(
        std::time::Duration::from_secs(5),
        || {
            std::os::unix::net::UnixStream::connect(home.socket())
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        }
    ));
    assert!(home.socket().exists(), "stale socket left behind");
    let out = home.banger(&["vm", "list", "--json"]);
    common::assert_success(&out);
    assert!(stderr(&out).contains("started bangerd"), "{}", stderr(&out));
}

/// A throwaway uid that no account uses.
const STRANGER: u32 = 54_321;

#[test]
fn another_local_user_cannot_use_the_daemon() {
    if !common::is_root() {
        eprintln!("skipped: needs root to act as another uid");
        return;
    }
    let home = Home::new();
    home.start_daemon();
    // Let the stranger reach the home directory itself, so the only barrier
    // left is the one banger sets up.
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_stranger = || {
        use std::os::unix::process::CommandExt;
        let mut cmd = home.command(common::BANGER);
        cmd.args(["daemon", "ping"]).uid(STRANGER).gid(STRANGER);
        cmd.output().unwrap()
    };

    // Layer 1: the socket's directory and the socket itself are owner-only.
    let out = as_stranger();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );

    // Layer 2: even with permissions loosened by mistake, the daemon checks
    // the peer's uid and refuses.
    std::fs::set_permissions(
        home.socket().parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(home.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_stranger();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("uid {STRANGER} may not use this daemon")),
        "{}",
        stderr(&out)
    );
    assert!(
        home.log().contains("refused connection from another user"),
        "{}",
        home.log()
    );
}

#[test]
/// A VM recorded as running whose VMM is gone (no handles, no process) is
/// reconciled at start: cleaned up, marked stopped, and given no name. (A
/// VM whose VMM survived is adopted with its name: tests/vm_lifecycle.rs.)
fn dead_vms_are_stopped_and_unnamed_at_start() {
    let home = Home::new();
    common::assert_success(&home.bangerd(&["--migrate"]));
    common::insert_vm(&home.db(), "aaaa000000000000", "web", "running");
    common::insert_vm(&home.db(), "bbbb000000000000", "idle", "stopped");
    home.start_daemon();
    let pong = home.raw("{\"version\":1,\"method\":\"ping\"}\n");
    let addr: std::net::SocketAddr = pong["result"]["dns"]
        .as_str()
        .expect("DNS is up")
        .parse()
        .unwrap();
    let dig = |name: &str| {
        let out = Command::new("dig")
            .args([
                &format!("@{}", addr.ip()),
                "-p",
                &addr.port().to_string(),
                name,
                "+time=2",
                "+tries=1",
            ])
            .output()
            .expect("dig (bind9-dnsutils) is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let web = dig("web.vm");
    assert!(
        web.contains("status: NXDOMAIN"),
        "a dead VM has no name: {web}"
    );
    let out = home.banger(&["vm", "show", "web", "--json"]);
    common::assert_success(&out);
    let vm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vm["state"], "stopped", "reconciled: {vm}");
    assert!(home.log().contains("cleaning up"), "{}", home.log());
    let idle = dig("idle.vm");
    assert!(
        idle.contains("status: NXDOMAIN"),
        "a stopped VM has no name: {idle}"
    );
}

#[test]
/// The VM management methods on the wire: bounded log chunks resumed by
/// offset, typed refusals, and prune and set leaving records alone when
/// there is nothing to do.
fn vm_management_methods_answer_on_the_wire() {
    let home = Home::new();
    common::assert_success(&home.bangerd(&["--migrate"]));
    common::insert_vm(&home.db(), "cdcd000000000001", "dev", "stopped");
    home.start_daemon();
    let dir = home.path().join("state/vms/cdcd000000000001");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("console.log"), "one\ntwo\n").unwrap();
    let call = |method: &str, params: serde_json::Value| {
        let line = json!({"version": 1, "method": method, "params": params}).to_string() + "\n";
        home.raw(&line)
    };

    let tail = call("vm.logs", json!({"vm": "dev"}));
    let console = &tail["result"]["console"];
    assert_eq!(console["text"], "one\ntwo\n", "{tail}");
    assert_eq!(
        (&console["next_offset"], &console["skipped"]),
        (&json!(8), &json!(0))
    );
    assert!(
        tail["result"]["vmm"]["path"].is_null(),
        "no VMM log yet: {tail}"
    );
    let after = call("vm.logs", json!({"vm": "dev", "console_offset": 4}));
    assert_eq!(after["result"]["console"]["text"], "two\n", "{after}");
    let replaced = call("vm.logs", json!({"vm": "dev", "console_offset": 100}));
    assert_eq!(
        replaced["result"]["console"]["restarted"], true,
        "{replaced}"
    );
    assert_eq!(replaced["result"]["console"]["offset"], 0);

    let nothing = call("vm.set", json!({"vm": "dev"}));
    assert_eq!(nothing["error"]["code"], "bad_request", "{nothing}");
    let zero = call("vm.set", json!({"vm": "dev", "vcpu": 0}));
    assert_eq!(zero["error"]["code"], "bad_request", "{zero}");
    let shrink = call("vm.set", json!({"vm": "dev", "disk_size": "1G"}));
    assert_eq!(shrink["error"]["code"], "bad_request", "{shrink}");
    let same = call("vm.set", json!({"vm": "dev", "vcpu": 2}));
    assert_eq!(
        same["result"]["spec"]["vcpu"], 2,
        "no change is no error: {same}"
    );

    for method in ["vm.stats", "vm.ports", "vm.restart", "vm.logs"] {
        let answer = call(method, json!({"vm": "ghost"}));
        assert_eq!(answer["error"]["code"], "not_found", "{method}: {answer}");
    }
    let ports = call("vm.ports", json!({"vm": "dev"}));
    assert_eq!(ports["error"]["code"], "operation_failed", "{ports}");

    let none = call("vm.prune", json!({"ids": ["ffffffffffffffff"]}));
    assert_eq!(
        none["result"],
        json!([]),
        "unknown ids prune nothing: {none}"
    );
    let stats = call("vm.stats", json!({"vm": "dev"}));
    assert_eq!(stats["result"]["state"], "stopped", "{stats}");
}

#[test]
fn connections_beyond_the_cap_get_a_clear_error_and_the_others_are_served() {
    let home = Home::new();
    home.start_daemon();
    let mut held = idle_connections(&home, MAX_CONNECTIONS);

    // The daemon accepts in order, so the connection after the cap is the
    // one refused: at once, before it sends anything.
    let extra = UnixStream::connect(home.socket()).unwrap();
    let refused = unprompted_answer(&extra);
    assert_eq!(refused["error"]["code"], "operation_failed", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "bangerd is serving {MAX_CONNECTIONS} connections already (its limit); retry when some finish"
        )
    );
    assert!(refused["op_id"].is_string(), "{refused}");
    let mut rest = String::new();
    assert!(
        matches!(BufReader::new(&extra).read_line(&mut rest), Ok(0) | Err(_)),
        "the refused connection is closed after the one line: {rest:?}"
    );

    // The CLI shows the same message.
    let out = home.banger(&["daemon", "ping"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("connections already (its limit); retry when some finish"),
        "{}",
        stderr(&out)
    );

    // The held connections were accepted, are still waiting for their
    // request, and are served when it comes.
    assert!(held.iter().all(still_waiting));
    let last = held.pop().unwrap();
    assert_eq!(ping_on(&last)["result"]["protocol"], 1);
    drop(last);

    // That request finished, so its slot is free again.
    let served = || {
        let stream = UnixStream::connect(home.socket()).unwrap();
        let answered = ping_on(&stream)["result"]["protocol"] == 1;
        // The slot is released as the daemon ends the connection, a moment
        // after the answer: once it has closed it (EOF here), and the task
        // holding the slot has had a moment to end, the slot is free.
        let _ = (&stream).read_to_end(&mut Vec::new());
        std::thread::sleep(Duration::from_millis(100));
        answered
    };
    assert!(
        wait_until(Duration::from_secs(5), served),
        "no slot was freed; log:\n{}",
        home.log()
    );

    // At the cap again, a client hanging up frees its slot too (once the
    // daemon sees the EOF).
    held.push(UnixStream::connect(home.socket()).unwrap());
    let extra = UnixStream::connect(home.socket()).unwrap();
    assert_eq!(
        unprompted_answer(&extra)["error"]["code"],
        "operation_failed"
    );
    drop(held.pop());
    assert!(
        wait_until(Duration::from_secs(5), served),
        "no slot was freed; log:\n{}",
        home.log()
    );
    assert!(
        home.log().contains("connection limit"),
        "the refusal is logged:\n{}",
        home.log()
    );
    drop(held);
}

#[test]
fn shutdown_does_not_wait_for_connections_that_never_ask() {
    let home = Home::new();
    let pid = home.start_daemon();
    let mut held = idle_connections(&home, MAX_CONNECTIONS - 1);
    // Accepted in order: once this is answered, all of them were accepted.
    let sync = UnixStream::connect(home.socket()).unwrap();
    assert_eq!(ping_on(&sync)["result"]["protocol"], 1);
    // At the cap, and one beyond it.
    held.extend(idle_connections(&home, 2));
    let asked = Instant::now();
    terminate(pid);
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "bangerd took {took:?} to stop; log:\n{}",
        home.log()
    );
    assert!(!home.socket().exists());
    drop(held);
}

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Instant;

use super::*;

/// A daemon on a fresh socket that serves one connection with `serve`.
fn daemon(serve: fn(&str, &UnixStream)) -> (tempfile::TempDir, PathBuf) {
    crate::client::tests::one_connection_daemon(serve)
}

/// Answers the list request it gets with names a guest or user could pick.
fn lists(request: &str, conn: &UnixStream) {
    let method = serde_json::from_str::<serde_json::Value>(request).unwrap()["method"]
        .as_str()
        .unwrap()
        .to_owned();
    let names = [
        "dev",
        "web.1",
        "a b",
        "$(reboot)",
        "x\u{b}y",
        "-rf",
        "name:desc",
        "",
        "debian_bookworm-2",
    ];
    let items: Vec<_> = names
        .iter()
        .map(|n| serde_json::json!({"name": n, "state": "stopped", "other": [1, 2]}))
        .collect();
    let answer = serde_json::json!({"op_id": method, "result": items});
    let _ = (&*conn).write_all(format!("{answer}\n").as_bytes());
}

#[test]
fn only_plain_names_are_offered() {
    for good in [
        "dev",
        "debian-bookworm",
        "debian-cloud-amd64",
        "v1.2_x",
        "A9",
    ] {
        assert!(is_plain_name(good), "{good}");
    }
    let long = "a".repeat(MAX_NAME + 1);
    for bad in [
        "",
        "-rf",
        "--help",
        "a b",
        "a\tb",
        "a\nb",
        "a\u{b}b",
        "$(x)",
        "`x`",
        "a;b",
        "a|b",
        "a:b",
        "a/b",
        "~",
        "*",
        "é",
        "a\u{1b}[2J",
        &long,
    ] {
        assert!(!is_plain_name(bad), "{bad:?}");
    }
    assert!(is_plain_name(&"a".repeat(MAX_NAME)));
}

#[test]
fn a_daemon_s_lists_give_its_plain_names_in_its_order() {
    for (kind, method) in [
        (Kind::Vm, "vm.list"),
        (Kind::Image, "image.list"),
        (Kind::Kernel, "kernel.list"),
    ] {
        let (_dir, socket) = daemon(|request, conn| {
            assert!(request.ends_with('\n'), "{request}");
            lists(request, conn);
        });
        let got = names(&socket, kind, LOOKUP_LIMIT);
        assert_eq!(got, ["dev", "web.1", "debian_bookworm-2"], "{method}");
        let request = kind.request().into_envelope(None);
        assert_eq!(serde_json::to_value(request).unwrap()["method"], method);
    }
}

#[test]
fn no_daemon_means_no_names_at_once_and_nothing_started() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing at the path, then a stale socket file nobody listens on.
    let socket = dir.path().join("bangerd.sock");
    let started = Instant::now();
    assert!(names(&socket, Kind::Vm, LOOKUP_LIMIT).is_empty());
    drop(UnixListener::bind(&socket).unwrap());
    assert!(names(&socket, Kind::Image, LOOKUP_LIMIT).is_empty());
    assert!(started.elapsed() < Duration::from_millis(500));
    // A started daemon would have made its socket and log here.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the stale socket: {left:?}");
}

#[test]
fn a_daemon_that_does_not_answer_in_time_gives_no_names() {
    let limit = Duration::from_millis(300);
    // Silent: holds the connection open past the limit.
    let (_dir, socket) = daemon(|_, _| std::thread::sleep(Duration::from_secs(5)));
    let started = Instant::now();
    assert!(names(&socket, Kind::Vm, limit).is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Chatty: a progress line every 50 ms never ends the exchange, the limit does.
    let (_dir, socket) = daemon(|_, conn| {
        for _ in 0..100 {
            let line = b"{\"op_id\":\"x\",\"progress\":{\"stage\":\"working\"}}\n";
            if (&*conn).write_all(line).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let started = Instant::now();
    assert!(names(&socket, Kind::Kernel, limit).is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_error_or_a_non_list_answer_gives_no_names() {
    let (_dir, socket) = daemon(|_, conn| {
        let line = b"{\"op_id\":\"x\",\"error\":{\"code\":\"unauthorized\",\"message\":\"no\"}}\n";
        let _ = (&*conn).write_all(line);
    });
    assert!(names(&socket, Kind::Vm, LOOKUP_LIMIT).is_empty());
    let (_dir, socket) = daemon(|_, conn| {
        let _ = (&*conn).write_all(b"{\"op_id\":\"x\",\"result\":{\"name\":\"dev\"}}\n");
    });
    assert!(names(&socket, Kind::Vm, LOOKUP_LIMIT).is_empty());
}

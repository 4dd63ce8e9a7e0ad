//! The root helper (SPEC §2, §4) as its unit would run it: `bangerd
//! --root-helper` as root, inside a network namespace this test creates (so
//! nothing it does reaches the host's interfaces), serving a throwaway owner
//! uid. Clients run as that uid and as a stranger (`Command::uid`), speaking
//! the helper's line protocol through a tiny Python client.
//!
//! Needs root and python3; says why and passes without them.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use banger_sys::netns::Netns;

const OWNER: u32 = 4242;
const STRANGER: u32 = 4343;

/// Sends argv[2] (one line) to the socket argv[1], prints the reply line.
const CLIENT: &str = "import socket, sys\n\
s = socket.socket(socket.AF_UNIX)\n\
s.connect(sys.argv[1])\n\
s.sendall(sys.argv[2].encode() + b'\\n')\n\
print(s.makefile().readline(), end='')\n";

struct Helper {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    state: PathBuf,
    _ns: Netns,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn missing() -> Option<&'static str> {
    if !banger_sys::os::is_root() {
        return Some("needs root");
    }
    banger_sys::find_program("python3")
        .is_none()
        .then_some("needs python3")
}

fn start() -> Helper {
    let dir = tempfile::tempdir().unwrap();
    // Traversable by the clients that run as other uids.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let socket = dir.path().join("root/helper.sock");
    let ns = Netns::create("helper").expect("network namespace");
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name(), common::BANGERD, "--root-helper"])
        .args(["--owner-uid", &OWNER.to_string()])
        .arg("--managed-root")
        .arg(&state)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let up = common::wait_until(Duration::from_secs(20), || socket.exists());
    assert!(up, "the helper did not bind {}", socket.display());
    Helper {
        child,
        socket,
        _dir: dir,
        state,
        _ns: ns,
    }
}

/// One request line as `uid`; the reply line, or why there is none.
fn ask_as(uid: u32, socket: &Path, line: &str) -> Result<serde_json::Value, String> {
    let out = Command::new("python3")
        .args(["-c", CLIENT])
        .arg(socket)
        .arg(line)
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {:?}", out.stdout))
}

fn refusal(reply: &serde_json::Value) -> &str {
    reply["refused"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not refused: {reply}"))
}

#[test]
fn only_root_and_the_owner_are_served_and_only_what_validates() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let helper = start();
    let socket = &helper.socket;

    // The socket exists only with its final owner and mode, in a directory
    // others may only traverse.
    let meta = std::fs::metadata(socket).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (OWNER, 0o600));
    let dir = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o711);

    let list = r#"{"version":1,"op_id":"op-test1","call":"list_taps"}"#;
    // The owner and root are served.
    assert_eq!(
        ask_as(OWNER, socket, list).unwrap(),
        serde_json::json!({"taps": []})
    );
    assert_eq!(
        ask_as(0, socket, list).unwrap(),
        serde_json::json!({"taps": []})
    );

    // Another user cannot even connect; with the socket opened up by
    // mistake, the peer credentials still keep it out.
    let err = ask_as(STRANGER, socket, list).unwrap_err();
    assert!(err.contains("PermissionError"), "{err}");
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let reply = ask_as(STRANGER, socket, list).unwrap();
    assert!(
        refusal(&reply).contains(&format!("uid {STRANGER} may not use")),
        "{reply}"
    );

    // What does not validate is refused, and nothing is done.
    let eth0 = r#"{"version":1,"call":{"op":{"op":"ensure_bridge","bridge":"eth0","address":"10.0.0.1/24"}}}"#;
    assert!(refusal(&ask_as(OWNER, socket, eth0).unwrap()).contains("eth0"));
    let snapshot = |base: &Path| {
        serde_json::json!({"version": 1, "call": {"op": {"op": "create_snapshot", "request": {
            "name": "banger-vm1", "base": base, "cow": helper.state.join("cow")}}}})
        .to_string()
    };
    let reply = ask_as(OWNER, socket, &snapshot(Path::new("/etc/shadow"))).unwrap();
    assert!(refusal(&reply).contains("/etc/shadow"), "{reply}");
    std::os::unix::fs::symlink("/etc", helper.state.join("link")).unwrap();
    let reply = ask_as(OWNER, socket, &snapshot(&helper.state.join("link/shadow"))).unwrap();
    assert!(refusal(&reply).contains("symlink"), "{reply}");
    let tap_for_root =
        r#"{"version":1,"call":{"op":{"op":"create_tap","tap":"fctap1","owner_uid":0}}}"#;
    let reply = ask_as(OWNER, socket, tap_for_root).unwrap();
    assert!(refusal(&reply).contains("for its owner"), "{reply}");
    assert_eq!(
        ask_as(OWNER, socket, list).unwrap(),
        serde_json::json!({"taps": []})
    );
}

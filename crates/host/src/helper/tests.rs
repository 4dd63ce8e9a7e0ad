//! The helper end to end in one process: a real socket, the server over the
//! recording host, and [`HelperHost`] as the client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::RecordingHost;
use crate::error::HostError;
use crate::ops::{HostOps, OpKind, PrivOp, SnapshotRequest};
use crate::validate::{BridgeName, DmName, ManagedPath, ManagedRoots, TapName};

struct Rig {
    dir: tempfile::TempDir,
    socket: PathBuf,
    host: Arc<RecordingHost>,
}

/// A helper whose owner is whoever runs the test, managing `dir/state`.
fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let socket = dir.path().join("helper.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let policy = Arc::new(HelperPolicy {
        owner_uid: banger_sys::os::effective_uid(),
        roots: ManagedRoots::new([dir.path().join("state")]).unwrap(),
        builder: None,
    });
    let host = Arc::new(RecordingHost::new());
    let served: Arc<dyn HostOps> = host.clone();
    std::thread::spawn(move || serve(&listener, policy, served));
    Rig { dir, socket, host }
}

/// Sends `line` as it is and reads the reply.
fn raw(socket: &Path, line: &[u8]) -> HelperReply {
    let mut stream = UnixStream::connect(socket).unwrap();
    let _ = stream.write_all(line);
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

fn refused_message(reply: HelperReply) -> String {
    match reply {
        HelperReply::Refused { message } => message,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn calls_go_through_the_socket_to_the_host() {
    let rig = rig();
    let client = HelperHost::new(&rig.socket);
    let bridge = BridgeName::new("br-fc").unwrap();
    client
        .ensure_bridge(&bridge, "172.16.0.1/24".parse().unwrap())
        .unwrap();
    let tap = TapName::numbered(3);
    client
        .create_tap(&tap, banger_sys::os::effective_uid())
        .unwrap();
    assert_eq!(client.list_taps().unwrap(), [tap]);
    let calls = rig.host.calls();
    assert_eq!(
        calls.iter().map(PrivOp::kind).collect::<Vec<_>>(),
        [OpKind::EnsureBridge, OpKind::CreateTap]
    );
}

#[test]
fn a_failed_operation_is_an_error_and_a_refusal_says_so() {
    let rig = rig();
    let client = HelperHost::new(&rig.socket);
    rig.host.fail_next(OpKind::DeleteTap);
    let err = client.delete_tap(&TapName::numbered(1)).unwrap_err();
    assert!(
        matches!(
            err,
            HostError::Helper {
                op: OpKind::DeleteTap,
                refused: false,
                ..
            }
        ),
        "{err:?}"
    );
    // A tap for someone else than the owner is not made.
    let err = client
        .create_tap(&TapName::numbered(2), banger_sys::os::effective_uid() + 1)
        .unwrap_err();
    assert!(
        matches!(err, HostError::Helper { refused: true, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(
        rig.host
            .calls()
            .iter()
            .all(|c| c.kind() != OpKind::CreateTap)
    );
}

#[test]
fn paths_outside_the_roots_or_through_a_symlink_are_refused() {
    let rig = rig();
    let state = rig.dir.path().join("state");
    let inside = |name: &str| state.join(name);
    let snapshot = |base: PathBuf, cow: PathBuf| {
        // Paths as they arrive on the wire: only their syntax is checked
        // when they are read (a forged request, or a daemon with other
        // roots).
        let path =
            |p: PathBuf| serde_json::from_value::<ManagedPath>(serde_json::json!(p)).unwrap();
        PrivOp::CreateSnapshot {
            request: SnapshotRequest {
                name: DmName::new("banger-vm1").unwrap(),
                base: path(base),
                cow: path(cow),
            },
        }
    };
    let send = |op: PrivOp| {
        let request = HelperRequest {
            version: HELPER_PROTOCOL,
            op_id: None,
            call: HelperCall::Op(op),
        };
        let mut line = serde_json::to_vec(&request).unwrap();
        line.push(b'\n');
        raw(&rig.socket, &line)
    };
    let message = refused_message(send(snapshot(PathBuf::from("/etc/shadow"), inside("cow"))));
    assert!(message.contains("/etc/shadow"), "{message}");
    std::fs::create_dir(rig.dir.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(rig.dir.path().join("elsewhere"), inside("link")).unwrap();
    let message = refused_message(send(snapshot(inside("link/base"), inside("cow"))));
    assert!(message.contains("symlink"), "{message}");
    assert!(rig.host.calls().is_empty());
}

#[test]
fn malformed_foreign_or_oversized_requests_are_refused_before_anything_runs() {
    let rig = rig();
    let cases: [(&[u8], &str); 5] = [
        (
            br#"{"version":1,"call":{"op":{"op":"delete_bridge","bridge":"eth0"}}}"#,
            "eth0",
        ),
        (b"rm -rf /\n", "not a valid request"),
        (br#"{"version":9,"call":"list_taps"}"#, "version 9"),
        (
            br#"{"version":1,"op_id":"op 1; reboot","call":"list_taps"}"#,
            "operation id",
        ),
        (&[b' '; 70 * 1024], "longer than"),
    ];
    for (line, expected) in cases {
        let mut line = line.to_vec();
        line.push(b'\n');
        let message = refused_message(raw(&rig.socket, &line));
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert!(rig.host.calls().is_empty());
}

#[test]
fn the_op_id_travels_with_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fake-helper.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let seen = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        stream.write_all(b"\"done\"\n").unwrap();
        serde_json::from_str::<HelperRequest>(&line).unwrap()
    });
    with_op_id("op-42", || {
        HelperHost::new(&socket)
            .delete_tap(&TapName::numbered(1))
            .unwrap()
    });
    assert_eq!(seen.join().unwrap().op_id.as_deref(), Some("op-42"));
}

#[test]
fn an_unreachable_helper_says_where_it_looked() {
    let err = HelperHost::new("/nonexistent/helper.sock")
        .list_taps()
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/helper.sock"),
        "{err}"
    );
}

/// Records the builds it is asked for.
struct CountingBuilder(std::sync::Mutex<Vec<String>>);

impl ImageBuilder for CountingBuilder {
    fn build(&self, request: &ImageBuildRequest, owner_uid: u32) -> Result<bool, String> {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} for {owner_uid}", request.name));
        Ok(true)
    }
}

#[test]
fn image_builds_go_to_the_builder_only_for_managed_directories() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("images")).unwrap();
    let roots = ManagedRoots::new([state.clone()]).unwrap();
    let builder = Arc::new(CountingBuilder(Default::default()));
    let socket = dir.path().join("helper.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let policy = Arc::new(HelperPolicy {
        owner_uid: banger_sys::os::effective_uid(),
        roots: roots.clone(),
        builder: Some(builder.clone()),
    });
    let served: Arc<dyn HostOps> = Arc::new(RecordingHost::new());
    std::thread::spawn(move || serve(&listener, policy, served));
    let request = |images: &Path| ImageBuildRequest {
        images_dir: serde_json::from_value(serde_json::json!(images)).unwrap(),
        cache_dir: serde_json::from_value(serde_json::json!(images)).unwrap(),
        name: BuildName::try_from("debian-bookworm-minimal".to_owned()).unwrap(),
        variant: BuildVariant::Minimal,
        mirror: MirrorUrl::try_from("http://deb.example.invalid/debian".to_owned()).unwrap(),
        kernel_ref: BuildName::try_from("debian-cloud-amd64".to_owned()).unwrap(),
        force: false,
    };
    let client = HelperHost::new(&socket);
    assert!(client.build_image(request(&state.join("images"))).unwrap());
    // A store outside the helper's roots is refused before any build.
    let err = client.build_image(request(Path::new("/etc"))).unwrap_err();
    assert!(
        matches!(err, HostError::Helper { refused: true, .. }),
        "{err}"
    );
    assert_eq!(
        *builder.0.lock().unwrap(),
        [format!(
            "debian-bookworm-minimal for {}",
            banger_sys::os::effective_uid()
        )]
    );
    // A helper without a builder refuses builds.
    let rig = rig();
    std::fs::create_dir(rig.dir.path().join("state/images")).unwrap();
    let err = HelperHost::new(&rig.socket)
        .build_image(request(&rig.dir.path().join("state/images")))
        .unwrap_err();
    assert!(err.to_string().contains("does not build images"), "{err}");
}

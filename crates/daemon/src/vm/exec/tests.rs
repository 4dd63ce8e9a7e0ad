use std::path::Path;

use banger_agent_proto::protocol::{ExecRequest, OutputStream as GuestStream};
use banger_api::protocol::{OutputChunk, OutputStream};
use tokio_util::sync::CancellationToken;

use super::{exec_result, streamed};
use crate::guest::scripted::{ScriptedGuest, success};

/// Runs `guest` through the streaming relay; returns what reached the
/// client per stream, and the client's answer.
fn relay(
    guest: &ScriptedGuest,
    request: ExecRequest,
) -> ([Vec<u8>; 2], banger_api::protocol::VmExecResult) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputChunk>(1024);
    let cap = request.effective_max_output();
    let cancel = CancellationToken::new();
    let (result, cut) = streamed(guest, Path::new("/v.sock"), request, &tx, &cancel).unwrap();
    drop(tx);
    let mut got: [Vec<u8>; 2] = Default::default();
    while let Some(chunk) = rx.blocking_recv() {
        let i = usize::from(chunk.stream == OutputStream::Stderr);
        got[i].extend(banger_agent_proto::base64::decode(&chunk.data).unwrap());
    }
    (got, exec_result(result, cap, cut))
}

#[test]
fn output_beyond_the_cap_is_cut_in_the_relay_and_reported() {
    // An agent ignoring its cap (the guest is not trusted).
    let guest = ScriptedGuest::new(
        vec![
            (GuestStream::Stdout, vec![b'a'; 8]),
            (GuestStream::Stderr, b"warn\n".to_vec()),
            (GuestStream::Stdout, vec![b'b'; 8]),
        ],
        success(),
    );
    let mut request = ExecRequest::new(["yes"]);
    request.max_output_bytes = Some(10);
    let (got, result) = relay(&guest, request);
    assert_eq!(got[0], b"aaaaaaaabb");
    assert_eq!(got[1], b"warn\n");
    assert_eq!(result.stdout_cut_at, Some(10));
    assert_eq!(result.stderr_cut_at, None);
    assert_eq!(result.status, Some(0));
}

#[test]
fn the_agents_truncation_and_dropped_output_reach_the_client() {
    let mut answer = success();
    answer.stderr_truncated = true;
    answer.output_dropped = true;
    answer.status = Some(3);
    let guest = ScriptedGuest::new(vec![(GuestStream::Stdout, b"x".to_vec())], answer);
    let (got, result) = relay(&guest, ExecRequest::new(["make"]));
    assert_eq!(got[0], b"x");
    assert_eq!(result.stdout_cut_at, None);
    assert_eq!(
        result.stderr_cut_at,
        Some(banger_agent_proto::protocol::MAX_OUTPUT_BYTES as u64)
    );
    assert!(result.output_dropped);
    assert_eq!(result.status, Some(3), "the command's own status is kept");
}

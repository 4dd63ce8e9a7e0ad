//! The export relay against a scripted guest: every way the patch can come
//! incomplete is a failure, never a success with part of it.

use std::path::Path;

use banger_agent_proto::protocol::{ExecRequest, OutputStream as GuestStream};
use banger_api::protocol::OutputChunk;
use tokio_util::sync::CancellationToken;

use super::{MAX_EXPORT_BYTES, export_patch};
use crate::error::DaemonError;
use crate::guest::scripted::{ScriptedGuest, success};

/// Runs the export against `guest` with `limit`; returns the outcome and
/// the bytes the client got.
fn export(guest: &ScriptedGuest, limit: u64) -> (Result<u64, DaemonError>, Vec<u8>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputChunk>(1024);
    let cancel = CancellationToken::new();
    let request = ExecRequest::new(["sh", "-c", "git diff"]);
    let outcome = export_patch(guest, Path::new("/v.sock"), request, &tx, &cancel, limit);
    drop(tx);
    let mut got = Vec::new();
    while let Some(chunk) = rx.blocking_recv() {
        got.extend(banger_agent_proto::base64::decode(&chunk.data).unwrap());
    }
    (outcome, got)
}

fn patch_frames() -> Vec<(GuestStream, Vec<u8>)> {
    vec![
        (GuestStream::Stdout, b"diff --git a/x b/x\n".to_vec()),
        (GuestStream::Stdout, b"+more\n".to_vec()),
    ]
}

fn message(outcome: Result<u64, DaemonError>) -> String {
    banger_api::error_chain(&outcome.unwrap_err())
}

#[test]
fn a_whole_patch_is_relayed_and_counted() {
    let guest = ScriptedGuest::new(patch_frames(), success());
    let (outcome, got) = export(&guest, MAX_EXPORT_BYTES);
    assert_eq!(outcome.unwrap(), 25);
    assert_eq!(got, b"diff --git a/x b/x\n+more\n");
}

#[test]
fn a_patch_cut_by_the_agent_is_an_error() {
    let mut result = success();
    result.stdout_truncated = true;
    let guest = ScriptedGuest::new(patch_frames(), result);
    let message = message(export(&guest, MAX_EXPORT_BYTES).0);
    assert!(message.contains("the patch is incomplete"), "{message}");
    assert!(message.contains("cut it at 16777216 bytes"), "{message}");
}

#[test]
fn output_the_agent_dropped_for_a_stalled_host_is_an_error() {
    let mut result = success();
    result.output_dropped = true;
    let guest = ScriptedGuest::new(patch_frames(), result);
    let message = message(export(&guest, MAX_EXPORT_BYTES).0);
    assert!(message.contains("dropped part of it"), "{message}");
}

#[test]
fn a_guest_sending_more_than_the_limit_is_stopped_and_fails() {
    let mut frames = patch_frames();
    frames.extend(std::iter::repeat_n(
        (GuestStream::Stdout, vec![b'+'; 10]),
        100,
    ));
    let guest = ScriptedGuest::new(frames, success());
    let (outcome, got) = export(&guest, 40);
    let message = message(outcome);
    assert!(message.contains("more than 40 bytes"), "{message}");
    // Relayed up to the limit, and the call aborted right after.
    assert!(got.len() <= 40, "{}", got.len());
}

#[test]
fn a_failing_script_quotes_its_stderr() {
    let mut result = success();
    result.status = Some(128);
    let mut frames = patch_frames();
    frames.push((GuestStream::Stderr, b"fatal: bad revision\n".to_vec()));
    let guest = ScriptedGuest::new(frames, result);
    let message = message(export(&guest, MAX_EXPORT_BYTES).0);
    assert!(
        message.contains("exit status 128") && message.contains("fatal: bad revision"),
        "{message}"
    );
}

#[test]
fn scripts_run_without_streaming_ask_for_a_small_answer() {
    let guest = ScriptedGuest::new(Vec::new(), success());
    let cancel = CancellationToken::new();
    super::install_tools(&guest, Path::new("/v.sock"), "/root/app", "vm", &cancel);
    let requests = guest.requests.lock().unwrap();
    assert_eq!(
        requests[0].max_output_bytes,
        Some(super::SCRIPT_OUTPUT_BYTES)
    );
}

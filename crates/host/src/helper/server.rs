//! The root helper's side (SPEC §2, §4): a connection is served only for
//! uid 0 or the owner (`SO_PEERCRED`), carries one request of at most
//! [`MAX_LINE`] bytes, is checked against what only the helper knows (its
//! owner, its managed roots), runs through [`HostOps`] (argv only, never a
//! shell) and gets one reply.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::image_build::ImageBuilder;
use super::protocol::{
    HELPER_PROTOCOL, HelperCall, HelperReply, HelperRequest, MAX_LINE, valid_op_id,
};
use crate::error::HostError;
use crate::ops::{HostOps, PrivOp, SnapshotDevice};
use crate::validate::ManagedRoots;

/// What a connection that closes before sending anything is told.
const NO_REQUEST: &str = "the connection closed without a request";

/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may ask, where paths may point, and what builds images.
#[derive(Clone)]
pub struct HelperPolicy {
    /// The installed owner; uid 0 is always allowed.
    pub owner_uid: u32,
    /// The owner daemon's state, cache and run directories.
    pub roots: ManagedRoots,
    /// `None`: image builds are refused (a helper without the build code).
    pub builder: Option<Arc<dyn ImageBuilder>>,
}

/// Serves `listener` until accepting fails, a thread per connection.
pub fn serve(
    listener: &UnixListener,
    policy: Arc<HelperPolicy>,
    host: Arc<dyn HostOps>,
) -> io::Error {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let (policy, host) = (policy.clone(), host.clone());
                std::thread::spawn(move || handle(stream, &policy, host.as_ref()));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return e,
        }
    }
}

/// Serves one connection.
pub fn handle(mut stream: UnixStream, policy: &HelperPolicy, host: &dyn HostOps) {
    let reply = match banger_sys::os::peer_uid(&stream) {
        Ok(uid) if uid == 0 || uid == policy.owner_uid => answer(&stream, uid, policy, host),
        Ok(uid) => {
            tracing::warn!(
                peer_uid = uid,
                "refused a connection from a uid that is neither root nor the owner"
            );
            refused(format!(
                "uid {uid} may not use banger's root helper: only root and the owner (uid {}) may",
                policy.owner_uid
            ))
        }
        Err(e) => refused(format!("cannot read the peer's credentials: {e}")),
    };
    let mut line = serde_json::to_vec(&reply).expect("replies always serialise");
    line.push(b'\n');
    let _ = stream.write_all(&line);
}

fn answer(
    stream: &UnixStream,
    peer_uid: u32,
    policy: &HelperPolicy,
    host: &dyn HostOps,
) -> HelperReply {
    let request = match read_request(stream) {
        Ok(request) => request,
        // A probe (connect, close) asked nothing: not worth a warning.
        Err(message) if message == NO_REQUEST => {
            tracing::debug!(peer_uid, "a connection closed without a request");
            return refused(message);
        }
        Err(message) => {
            tracing::warn!(peer_uid, %message, "refused a request");
            return refused(message);
        }
    };
    let op_id = request.op_id.as_deref().unwrap_or("-");
    let what = match &request.call {
        HelperCall::Op(op) => op.kind().as_str(),
        HelperCall::ListTaps => "list_taps",
        HelperCall::BuildImage(_) => "build_image",
    };
    if let Err(message) = authorize(&request.call, policy) {
        tracing::warn!(op_id, peer_uid, op = what, %message, "refused a request");
        return refused(message);
    }
    if let HelperCall::BuildImage(build) = &request.call {
        tracing::info!(op_id, peer_uid, op = what, image = %build.name, "building an image");
        let reply = match &policy.builder {
            Some(builder) => match builder.build(build, policy.owner_uid) {
                Ok(built) => HelperReply::Built { built },
                Err(message) => HelperReply::Failed { message },
            },
            None => refused("this helper does not build images".into()),
        };
        tracing::info!(op_id, peer_uid, op = what, reply = ?reply, "image build answered");
        return reply;
    }
    let reply = match execute(host, request.call) {
        Ok(reply) => reply,
        // Typed, so the daemon can go on without the fence as it does
        // in-process (an iptables-only host).
        Err(HostError::FenceUnavailable { what, reason }) => {
            HelperReply::FenceUnavailable { what, reason }
        }
        Err(e) => HelperReply::Failed {
            message: banger_api::error_chain(&e),
        },
    };
    match &reply {
        HelperReply::Failed { message } => {
            tracing::warn!(op_id, peer_uid, op = what, %message, "host operation failed")
        }
        _ => tracing::info!(op_id, peer_uid, op = what, "host operation done"),
    }
    reply
}

/// The request line: bounded while read, within [`REQUEST_TIMEOUT`], of
/// this protocol's version, with a loggable op id.
fn read_request(stream: &UnixStream) -> Result<HelperRequest, String> {
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| format!("cannot set a read timeout: {e}"))?;
    let mut line = Vec::new();
    BufReader::new(stream.take(MAX_LINE as u64 + 1))
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("no request within {REQUEST_TIMEOUT:?}: {e}"))?;
    if line.len() > MAX_LINE {
        return Err(format!("the request is longer than {MAX_LINE} bytes"));
    }
    if line.is_empty() {
        return Err(NO_REQUEST.into());
    }
    let request: HelperRequest =
        serde_json::from_slice(&line).map_err(|e| format!("not a valid request: {e}"))?;
    if request.version != HELPER_PROTOCOL {
        return Err(format!(
            "protocol version {} is not {HELPER_PROTOCOL}: the helper and the daemon come from different banger versions; restart both",
            request.version
        ));
    }
    if let Some(op_id) = &request.op_id
        && !valid_op_id(op_id)
    {
        return Err("the operation id is not 1-64 letters, digits, '-' or '_'".into());
    }
    Ok(request)
}

/// What only the helper can check: taps are only for the owner, paths only
/// under the owner's roots with no symlink, snapshot devices only banger's.
fn authorize(call: &HelperCall, policy: &HelperPolicy) -> Result<(), String> {
    let op = match call {
        HelperCall::Op(op) => op,
        HelperCall::ListTaps => return Ok(()),
        HelperCall::BuildImage(build) => {
            for path in [&build.images_dir, &build.cache_dir] {
                path.revalidate(&policy.roots).map_err(|e| e.to_string())?;
            }
            return Ok(());
        }
    };
    match op {
        PrivOp::CreateTap { owner_uid, .. } if *owner_uid != policy.owner_uid => Err(format!(
            "a tap for uid {owner_uid}: the helper makes taps for its owner (uid {}) only",
            policy.owner_uid
        )),
        PrivOp::CreateSnapshot { request } => {
            for path in [&request.base, &request.cow] {
                path.revalidate(&policy.roots).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        PrivOp::RemoveSnapshot { device } => check_snapshot_device(device),
        _ => Ok(()),
    }
}

/// A snapshot to remove names its own device-mapper node and loop devices.
fn check_snapshot_device(device: &SnapshotDevice) -> Result<(), String> {
    let mapper = Path::new("/dev/mapper").join(device.name.as_str());
    let is_loop = |p: &Path| {
        p.parent() == Some(Path::new("/dev"))
            && p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("loop"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if device.device != mapper || !is_loop(&device.base_loop) || !is_loop(&device.cow_loop) {
        return Err(format!(
            "snapshot {} names devices that are not its own ({}, {}, {})",
            device.name,
            device.device.display(),
            device.base_loop.display(),
            device.cow_loop.display()
        ));
    }
    Ok(())
}

fn execute(host: &dyn HostOps, call: HelperCall) -> Result<HelperReply, HostError> {
    let op = match call {
        HelperCall::ListTaps => return host.list_taps().map(HelperReply::Taps),
        HelperCall::Op(op) => op,
        HelperCall::BuildImage(_) => unreachable!("answered before execute"),
    };
    match op {
        PrivOp::EnsureBridge { bridge, address } => host.ensure_bridge(&bridge, address),
        PrivOp::DeleteBridge { bridge } => host.delete_bridge(&bridge),
        PrivOp::CreateTap { tap, owner_uid } => host.create_tap(&tap, owner_uid),
        PrivOp::DeleteTap { tap } => host.delete_tap(&tap),
        PrivOp::AttachTap { tap, bridge } => host.attach_tap(&tap, &bridge),
        PrivOp::AddNat { guest, bridge } => host.add_nat(guest, &bridge),
        PrivOp::RemoveNat { guest, bridge } => host.remove_nat(guest, &bridge),
        PrivOp::EnsureBridgeFence { bridge, address } => host.ensure_bridge_fence(&bridge, address),
        PrivOp::RemoveBridgeFence { bridge } => host.remove_bridge_fence(&bridge),
        PrivOp::FenceGuest { tap, guest, mac } => host.fence_guest(&tap, guest, mac),
        PrivOp::UnfenceGuest { tap } => host.unfence_guest(&tap),
        PrivOp::CreateSnapshot { request } => {
            return host.create_snapshot(&request).map(HelperReply::Snapshot);
        }
        PrivOp::RemoveSnapshot { device } => host.remove_snapshot(&device),
        PrivOp::RouteResolver { bridge, dns } => host.route_resolver(&bridge, dns),
        PrivOp::UnrouteResolver { bridge } => host.unroute_resolver(&bridge),
    }
    .map(|()| HelperReply::Done)
}

fn refused(message: String) -> HelperReply {
    HelperReply::Refused { message }
}

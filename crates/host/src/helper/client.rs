//! The owner daemon's side: [`HelperHost`] is a [`HostOps`] whose every call
//! is one connection to the root helper.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::image_build::ImageBuildRequest;
use super::protocol::{HELPER_PROTOCOL, HelperCall, HelperReply, HelperRequest, MAX_LINE};
use crate::error::HostError;
use crate::ops::{HostOps, OpKind, PrivOp, SnapshotDevice, SnapshotRequest};
use crate::validate::{BridgeName, GuestMac, Ipv4Cidr, TapName};

/// How long one host operation may take in the helper (nft, device-mapper
/// and resolver calls take seconds at worst).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// An image build downloads and installs a Debian system.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

thread_local! {
    static OP_ID: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with `op_id` sent along with every helper call it makes on
/// this thread, so the helper's log names the operation.
pub fn with_op_id<R>(op_id: &str, f: impl FnOnce() -> R) -> R {
    let previous = OP_ID.with(|id| id.replace(Some(op_id.to_owned())));
    let result = f();
    OP_ID.with(|id| *id.borrow_mut() = previous);
    result
}

/// [`HostOps`] through the root helper's socket.
#[derive(Debug, Clone)]
pub struct HelperHost {
    socket: PathBuf,
}

impl HelperHost {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    fn call(&self, op: OpKind, call: HelperCall) -> Result<HelperReply, HostError> {
        self.call_within(op, call, CALL_TIMEOUT)
    }

    fn call_within(
        &self,
        op: OpKind,
        call: HelperCall,
        timeout: Duration,
    ) -> Result<HelperReply, HostError> {
        let unreachable = |source| HostError::HelperUnreachable {
            socket: self.socket.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(unreachable)?;
        let request = HelperRequest {
            version: HELPER_PROTOCOL,
            op_id: OP_ID.with(|id| id.borrow().clone()),
            call,
        };
        let mut line = serde_json::to_vec(&request).expect("requests always serialise");
        line.push(b'\n');
        stream.write_all(&line).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(unreachable)?;
        let mut answer = Vec::new();
        BufReader::new((&stream).take(MAX_LINE as u64 + 1))
            .read_until(b'\n', &mut answer)
            .map_err(unreachable)?;
        let bad = |detail: String| HostError::Helper {
            op,
            refused: false,
            message: detail,
        };
        if answer.len() > MAX_LINE {
            return Err(bad(format!("its answer is longer than {MAX_LINE} bytes")));
        }
        if answer.is_empty() {
            return Err(bad("it closed the connection without an answer".into()));
        }
        let reply: HelperReply = serde_json::from_slice(&answer)
            .map_err(|e| bad(format!("its answer is not a reply: {e}")))?;
        match reply {
            HelperReply::Refused { message } => Err(HostError::Helper {
                op,
                refused: true,
                message,
            }),
            HelperReply::Failed { message } => Err(HostError::Helper {
                op,
                refused: false,
                message,
            }),
            HelperReply::FenceUnavailable { what, reason } => {
                Err(HostError::FenceUnavailable { what, reason })
            }
            reply => Ok(reply),
        }
    }

    /// Builds an image as root into the owner's store (SPEC §9.3 needs
    /// mmdebstrap as root); `Ok(false)` when it was up to date.
    pub fn build_image(&self, request: ImageBuildRequest) -> Result<bool, HostError> {
        match self.call_within(
            OpKind::BuildImage,
            HelperCall::BuildImage(request),
            BUILD_TIMEOUT,
        )? {
            HelperReply::Built { built } => Ok(built),
            other => Err(unexpected(OpKind::BuildImage, &other)),
        }
    }

    fn op(&self, op: PrivOp) -> Result<(), HostError> {
        let kind = op.kind();
        match self.call(kind, HelperCall::Op(op))? {
            HelperReply::Done => Ok(()),
            other => Err(unexpected(kind, &other)),
        }
    }
}

fn unexpected(op: OpKind, reply: &HelperReply) -> HostError {
    HostError::Helper {
        op,
        refused: false,
        message: format!("it answered {reply:?} to {op}"),
    }
}

impl HostOps for HelperHost {
    fn ensure_bridge(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError> {
        self.op(PrivOp::EnsureBridge {
            bridge: bridge.clone(),
            address,
        })
    }
    fn delete_bridge(&self, bridge: &BridgeName) -> Result<(), HostError> {
        self.op(PrivOp::DeleteBridge {
            bridge: bridge.clone(),
        })
    }
    fn create_tap(&self, tap: &TapName, owner_uid: u32) -> Result<(), HostError> {
        self.op(PrivOp::CreateTap {
            tap: tap.clone(),
            owner_uid,
        })
    }
    fn delete_tap(&self, tap: &TapName) -> Result<(), HostError> {
        self.op(PrivOp::DeleteTap { tap: tap.clone() })
    }
    fn attach_tap(&self, tap: &TapName, bridge: &BridgeName) -> Result<(), HostError> {
        self.op(PrivOp::AttachTap {
            tap: tap.clone(),
            bridge: bridge.clone(),
        })
    }
    fn list_taps(&self) -> Result<Vec<TapName>, HostError> {
        match self.call(OpKind::ListTaps, HelperCall::ListTaps)? {
            HelperReply::Taps(taps) => Ok(taps),
            other => Err(unexpected(OpKind::ListTaps, &other)),
        }
    }
    fn add_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError> {
        self.op(PrivOp::AddNat {
            guest,
            bridge: bridge.clone(),
        })
    }
    fn remove_nat(&self, guest: Ipv4Addr, bridge: &BridgeName) -> Result<(), HostError> {
        self.op(PrivOp::RemoveNat {
            guest,
            bridge: bridge.clone(),
        })
    }
    fn ensure_bridge_fence(&self, bridge: &BridgeName, address: Ipv4Cidr) -> Result<(), HostError> {
        self.op(PrivOp::EnsureBridgeFence {
            bridge: bridge.clone(),
            address,
        })
    }
    fn remove_bridge_fence(&self, bridge: &BridgeName) -> Result<(), HostError> {
        self.op(PrivOp::RemoveBridgeFence {
            bridge: bridge.clone(),
        })
    }
    fn fence_guest(&self, tap: &TapName, guest: Ipv4Addr, mac: GuestMac) -> Result<(), HostError> {
        self.op(PrivOp::FenceGuest {
            tap: tap.clone(),
            guest,
            mac,
        })
    }
    fn unfence_guest(&self, tap: &TapName) -> Result<(), HostError> {
        self.op(PrivOp::UnfenceGuest { tap: tap.clone() })
    }
    fn create_snapshot(&self, request: &SnapshotRequest) -> Result<SnapshotDevice, HostError> {
        let op = PrivOp::CreateSnapshot {
            request: request.clone(),
        };
        match self.call(OpKind::CreateSnapshot, HelperCall::Op(op))? {
            HelperReply::Snapshot(device) => Ok(device),
            other => Err(unexpected(OpKind::CreateSnapshot, &other)),
        }
    }
    fn remove_snapshot(&self, device: &SnapshotDevice) -> Result<(), HostError> {
        self.op(PrivOp::RemoveSnapshot {
            device: device.clone(),
        })
    }
    fn route_resolver(&self, bridge: &BridgeName, dns: SocketAddrV4) -> Result<(), HostError> {
        self.op(PrivOp::RouteResolver {
            bridge: bridge.clone(),
            dns,
        })
    }
    fn unroute_resolver(&self, bridge: &BridgeName) -> Result<(), HostError> {
        self.op(PrivOp::UnrouteResolver {
            bridge: bridge.clone(),
        })
    }
}

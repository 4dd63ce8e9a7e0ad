//! The kinds of host call by name (`create_tap`, ...), without arguments:
//! what errors name and what the recording fake fails on purpose. Below
//! both the operations and the error type, importing neither.

use serde::{Deserialize, Serialize};

/// The kind of a host call, without its arguments: what
/// [`crate::RecordingHost::fail_next`] targets. Includes the one query,
/// `list_taps`, which has no `PrivOp` because it changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    EnsureBridge,
    DeleteBridge,
    CreateTap,
    DeleteTap,
    AttachTap,
    ListTaps,
    AddNat,
    RemoveNat,
    EnsureBridgeFence,
    RemoveBridgeFence,
    FenceGuest,
    UnfenceGuest,
    CreateSnapshot,
    RemoveSnapshot,
    RouteResolver,
    UnrouteResolver,
    /// The helper's image build: a helper call, not a `HostOps` method.
    BuildImage,
}

impl OpKind {
    pub const ALL: [OpKind; 17] = [
        OpKind::EnsureBridge,
        OpKind::DeleteBridge,
        OpKind::CreateTap,
        OpKind::DeleteTap,
        OpKind::AttachTap,
        OpKind::ListTaps,
        OpKind::AddNat,
        OpKind::RemoveNat,
        OpKind::EnsureBridgeFence,
        OpKind::RemoveBridgeFence,
        OpKind::FenceGuest,
        OpKind::UnfenceGuest,
        OpKind::CreateSnapshot,
        OpKind::RemoveSnapshot,
        OpKind::RouteResolver,
        OpKind::UnrouteResolver,
        OpKind::BuildImage,
    ];

    /// The trait method's name (`create_tap`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::EnsureBridge => "ensure_bridge",
            OpKind::DeleteBridge => "delete_bridge",
            OpKind::CreateTap => "create_tap",
            OpKind::DeleteTap => "delete_tap",
            OpKind::AttachTap => "attach_tap",
            OpKind::ListTaps => "list_taps",
            OpKind::AddNat => "add_nat",
            OpKind::RemoveNat => "remove_nat",
            OpKind::EnsureBridgeFence => "ensure_bridge_fence",
            OpKind::RemoveBridgeFence => "remove_bridge_fence",
            OpKind::FenceGuest => "fence_guest",
            OpKind::UnfenceGuest => "unfence_guest",
            OpKind::CreateSnapshot => "create_snapshot",
            OpKind::RemoveSnapshot => "remove_snapshot",
            OpKind::RouteResolver => "route_resolver",
            OpKind::UnrouteResolver => "unroute_resolver",
            OpKind::BuildImage => "build_image",
        }
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a method name such as `create_tap`.
impl std::str::FromStr for OpKind {
    type Err = UnknownOpKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OpKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownOpKind(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a host operation (expected one of the HostOps method names, e.g. create_tap)"
)]
pub struct UnknownOpKind(pub String);

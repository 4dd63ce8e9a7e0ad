//! The root helper (SPEC §2, §4): `bangerd` run as root in its helper mode
//! serves [`HostOps`](crate::HostOps) calls to the owner daemon over a
//! Unix socket, one validated request per connection ([`server`]); the
//! owner daemon's [`HelperHost`] is the same trait on the other end, so
//! in-process or through the helper is a choice at the composition root.

pub mod client;
pub mod image_build;
pub mod protocol;
pub mod server;

#[cfg(test)]
mod tests;

pub use client::{HelperHost, with_op_id};
pub use image_build::{BuildName, BuildVariant, ImageBuildRequest, ImageBuilder, MirrorUrl};
pub use protocol::{
    HELPER_PROTOCOL, HELPER_SOCKET, HELPER_SOCKET_ENV, HelperCall, HelperReply, HelperRequest,
    helper_socket_path,
};
pub use server::{HelperPolicy, handle, serve};

//! VMM drivers (SPEC §13, §14.1): Firecracker and QEMU microvm behind one
//! trait, [`VmmBackend`]. Both give the host the same hybrid-vsock socket to
//! reach the guest agent, so everything above this crate is backend-blind.
#![forbid(unsafe_code)]

mod backend;
pub mod firecracker;
pub mod qemu;

pub use backend::{BackendKind, DiskFormat, DiskSpec, VmConfig, VmHandle, VmmBackend, VmmError};

//! VMM drivers (SPEC §13, §14.1): Firecracker and QEMU microvm behind one
//! trait, [`VmmBackend`]. Both give the host the same hybrid-vsock socket to
//! reach the guest agent, so everything above this crate is backend-blind.
//! [`select`] decides which one runs new VMs; [`Kvm`] is the one KVM probe
//! both consult.
#![forbid(unsafe_code)]

pub mod agent_mux;
mod backend;
pub mod firecracker;
mod kvm;
pub mod logcap;
pub mod qemu;
pub mod select;

pub use backend::{
    BackendKind, DiskFormat, DiskSpec, VmConfig, VmHandle, VmmBackend, VmmError, driver_for,
};
pub use kvm::Kvm;

//! Guest networking that needs no privilege: the address plan of the guest
//! subnet, the warm pool of taps (created through `banger_host::HostOps`),
//! and the authoritative DNS server for the `.vm` zone.
#![forbid(unsafe_code)]

pub mod dns;
pub mod ssh;
pub mod subnet;
pub mod tap_pool;

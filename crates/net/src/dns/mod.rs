//! The authoritative DNS server for the `vm` zone (SPEC §8): `<name>.vm`
//! answers the guest IP of a running VM, anything else in the zone is
//! NXDOMAIN, and names outside the zone are refused, so a resolver that routes
//! `~vm` here can never be used to resolve (or amplify) anything else.
//!
//! The wire code is our own and deliberately small: the server answers one
//! question about one tiny zone, and every byte it reads comes from whoever can
//! reach the socket, so it parses only what it needs, bounds everything, and
//! drops what it cannot make sense of.
//!
//! - `wire`: header, names (with safe compression-pointer decoding), question.
//! - `zone`: [`answer`], the pure query-to-response function both transports use.
//! - `response`: encoding an answer, with name compression.
//! - `records`: [`DnsRecords`], the table of running VMs.
//! - `server`, `tcp`: [`DnsServer`] and its UDP and TCP transports.

mod error;
mod limits;
mod records;
mod resolution;
mod response;
mod server;
mod tcp;
mod wire;
mod zone;

#[cfg(test)]
mod tests;

pub use error::{DnsError, Transport};
pub use records::DnsRecords;
pub use server::DnsServer;
pub use zone::answer;

/// Where the daemon's DNS server listens by default: loopback only, on a high
/// port so the unprivileged daemon can bind it.
pub const DEFAULT_DNS_ADDR: &str = "127.0.0.1:42069";

/// The zone this server is authoritative for.
pub const ZONE: &str = "vm";

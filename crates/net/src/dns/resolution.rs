//! What the zone says about a question, and the constants the records it
//! names are written with: below both the zone's logic and the response
//! writer.

use std::net::Ipv4Addr;

use super::wire::Rcode;

/// TTL of every record served. Short, because VMs come and go: a stopped VM's
/// name should stop resolving within seconds, and resolvers such as
/// systemd-resolved cache positive answers for the TTL.
pub(crate) const RECORD_TTL: u32 = 5;
/// The SOA minimum field, which resolvers use as the negative-caching TTL
/// (RFC 2308): a VM that starts right after a miss is reachable within seconds.
pub(crate) const NEGATIVE_TTL: u32 = 5;
/// The zone has no secondaries and no transfers, so the serial only has to be
/// stable; the timers below are never used by anyone but are kept plausible.
pub(crate) const SOA_SERIAL: u32 = 1;
pub(crate) const SOA_REFRESH: u32 = 3600;
pub(crate) const SOA_RETRY: u32 = 600;
pub(crate) const SOA_EXPIRE: u32 = 86_400;
/// Labels prepended to the apex for the SOA's mname and rname and the NS target.
pub(crate) const NS_LABEL: &[u8] = b"ns";
pub(crate) const HOSTMASTER_LABEL: &[u8] = b"hostmaster";

/// A record in a response. Owners are implied: an A record is owned by the
/// question name, the SOA and NS records by the zone apex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    A(Ipv4Addr),
    Soa,
    Ns,
}

/// What the zone says about one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub(crate) rcode: Rcode,
    pub(crate) authoritative: bool,
    pub(crate) answers: Vec<Record>,
    pub(crate) authority: Vec<Record>,
}

impl Resolution {
    pub(crate) fn refused() -> Self {
        Self {
            rcode: Rcode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
        }
    }

    pub(crate) fn answer(answers: Vec<Record>) -> Self {
        Self {
            rcode: Rcode::NoError,
            authoritative: true,
            answers,
            authority: Vec::new(),
        }
    }

    /// The name exists but has no record of the asked type; the SOA in the
    /// authority section lets resolvers cache that (RFC 2308 §2.2).
    pub(crate) fn nodata() -> Self {
        Self {
            rcode: Rcode::NoError,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![Record::Soa],
        }
    }

    pub(crate) fn nxdomain() -> Self {
        Self {
            rcode: Rcode::NxDomain,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![Record::Soa],
        }
    }
}

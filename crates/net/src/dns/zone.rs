//! Answering: [`answer`] turns one query into one response (or nothing), and
//! [`resolve`] decides what the `vm` zone says about a question.

use std::net::Ipv4Addr;

use super::ZONE;
use super::records::DnsRecords;
use super::response;
use super::wire::{
    CLASS_ANY, CLASS_IN, HEADER_LEN, Header, OPCODE_QUERY, Question, Rcode, rtype, type_name,
};

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

/// Zone transfers are not offered.
const QTYPE_IXFR: u16 = 251;
const QTYPE_AXFR: u16 = 252;

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
    fn refused() -> Self {
        Self {
            rcode: Rcode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
        }
    }

    fn answer(answers: Vec<Record>) -> Self {
        Self {
            rcode: Rcode::NoError,
            authoritative: true,
            answers,
            authority: Vec::new(),
        }
    }

    /// The name exists but has no record of the asked type; the SOA in the
    /// authority section lets resolvers cache that (RFC 2308 §2.2).
    fn nodata() -> Self {
        Self {
            rcode: Rcode::NoError,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![Record::Soa],
        }
    }

    fn nxdomain() -> Self {
        Self {
            rcode: Rcode::NxDomain,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![Record::Soa],
        }
    }
}

/// Answers one DNS query for the `vm` zone. Used by both transports, and pure,
/// so it is what the property tests and fuzz-style tests exercise.
///
/// Returns `None` (drop silently) for anything shorter than a header and for
/// responses: answering a response could start a loop between two servers.
/// Only a standard query with exactly one question is served; other opcodes get
/// NOTIMP and other question counts FORMERR, as does a question that cannot be
/// parsed. Those error responses carry the header only, since the question
/// could not be trusted.
///
/// Anything after the question is ignored, including the answer, authority and
/// additional counts: that is where an EDNS OPT record lives, and answering
/// without one is valid (RFC 6891 §7). Being liberal here costs nothing and
/// keeps odd but harmless clients working.
pub fn answer(query: &[u8], records: &DnsRecords) -> Option<Vec<u8>> {
    let Some(header) = Header::parse(query) else {
        tracing::trace!(
            len = query.len(),
            "dns: dropped a packet shorter than a header"
        );
        return None;
    };
    if header.is_response() {
        tracing::trace!(id = header.id, "dns: dropped a response");
        return None;
    }
    if header.opcode() != OPCODE_QUERY {
        tracing::debug!(opcode = header.opcode(), rcode = "NOTIMP", "dns query");
        return Some(response::bare(&header, Rcode::NotImp));
    }
    if header.qdcount != 1 {
        tracing::debug!(qdcount = header.qdcount, rcode = "FORMERR", "dns query");
        return Some(response::bare(&header, Rcode::FormErr));
    }
    let question = match Question::parse(query, HEADER_LEN) {
        Ok((question, _end)) => question,
        Err(error) => {
            tracing::debug!(%error, rcode = "FORMERR", "dns query");
            return Some(response::bare(&header, Rcode::FormErr));
        }
    };
    let resolution = resolve(&question, records);
    tracing::debug!(
        name = %question.name,
        qtype = %type_name(question.qtype),
        rcode = resolution.rcode.as_str(),
        "dns query"
    );
    Some(response::encode(&header, &question, &resolution))
}

/// What the zone says about `question`. Names compare case-insensitively.
pub(crate) fn resolve(question: &Question, records: &DnsRecords) -> Resolution {
    if !matches!(question.qclass, CLASS_IN | CLASS_ANY) {
        return Resolution::refused();
    }
    // At most 127 labels fit in 255 bytes, so this stays small.
    let labels: Vec<&[u8]> = question.name.labels().collect();
    let Some((last, below_apex)) = labels.split_last() else {
        return Resolution::refused(); // the root
    };
    if !last.eq_ignore_ascii_case(ZONE.as_bytes()) {
        // Not ours: refuse rather than NXDOMAIN, so a misrouted query fails
        // loudly instead of being cached as "does not exist".
        return Resolution::refused();
    }
    if matches!(question.qtype, QTYPE_AXFR | QTYPE_IXFR) {
        return Resolution::refused();
    }
    match below_apex {
        [] => match question.qtype {
            rtype::SOA => Resolution::answer(vec![Record::Soa]),
            rtype::NS => Resolution::answer(vec![Record::Ns]),
            rtype::ANY => Resolution::answer(vec![Record::Soa, Record::Ns]),
            _ => Resolution::nodata(),
        },
        // VM names are valid UTF-8 (ASCII); a label that is not cannot match.
        [label] => match std::str::from_utf8(label).ok().and_then(|n| records.get(n)) {
            Some(ip) if matches!(question.qtype, rtype::A | rtype::ANY) => {
                Resolution::answer(vec![Record::A(ip)])
            }
            Some(_) => Resolution::nodata(),
            None => Resolution::nxdomain(),
        },
        // Nothing lives below a VM name. `ns.vm`, the NS target, is not
        // special either: nobody resolves it (the zone is only ever reached
        // through a forwarding rule), and a VM may be called `ns`.
        _ => Resolution::nxdomain(),
    }
}

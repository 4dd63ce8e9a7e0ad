//! Answering: [`answer`] turns one query into one response (or nothing), and
//! [`resolve`] decides what the `vm` zone says about a question.

use super::ZONE;
use super::records::DnsRecords;
use super::resolution::{Record, Resolution};
use super::response;
use super::wire::{
    CLASS_ANY, CLASS_IN, HEADER_LEN, Header, OPCODE_QUERY, Question, Rcode, rtype, type_name,
};

/// Zone transfers are not offered.
const QTYPE_IXFR: u16 = 251;
const QTYPE_AXFR: u16 = 252;

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

//! Encoding responses. Owner names and the names inside SOA and NS data are
//! compressed into pointers at the echoed question (RFC 1035 §4.1.4), which
//! is the only name in the message written in full.
//!
//! Size: the header (12), the longest question (255 + 4) and the largest record
//! set (SOA and NS for an ANY at the apex, under 70 bytes) stay well below 512
//! bytes, so a response never needs truncation, on UDP or anywhere else.

use super::ZONE;
use super::resolution::{
    HOSTMASTER_LABEL, NEGATIVE_TTL, NS_LABEL, RECORD_TTL, Record, Resolution, SOA_EXPIRE,
    SOA_REFRESH, SOA_RETRY, SOA_SERIAL,
};
use super::wire::{CLASS_IN, HEADER_LEN, Header, Question, Rcode, pointer, rtype};

/// A header-only response, for queries whose question was not understood.
pub(crate) fn bare(query: &Header, rcode: Rcode) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    Header {
        id: query.id,
        flags: Header::response_flags(query, false, rcode),
        qdcount: 0,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    }
    .write(&mut out);
    out
}

/// The full response: header, the question echoed as asked, then the records.
pub(crate) fn encode(query: &Header, question: &Question, resolution: &Resolution) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    Header {
        id: query.id,
        flags: Header::response_flags(query, resolution.authoritative, resolution.rcode),
        qdcount: 1,
        ancount: count(&resolution.answers),
        nscount: count(&resolution.authority),
        arcount: 0,
    }
    .write(&mut out);
    question.write(&mut out);

    let names = Names::for_question(question);
    for record in resolution.answers.iter().chain(&resolution.authority) {
        write_record(&mut out, &names, *record);
    }
    out
}

fn count(records: &[Record]) -> u16 {
    // A resolution holds at most two records; saturate rather than cast.
    u16::try_from(records.len()).unwrap_or(u16::MAX)
}

/// Where the names records refer to can be found in the message.
struct Names {
    /// Offset of the question name.
    question: usize,
    /// Offset of the zone apex label inside the question name, when the
    /// question is in the zone (it always is when there are records).
    apex: Option<usize>,
}

impl Names {
    fn for_question(question: &Question) -> Self {
        let name = &question.name;
        let apex = name
            .labels()
            .last()
            .filter(|label| label.eq_ignore_ascii_case(ZONE.as_bytes()))
            .map(|_| HEADER_LEN + name.label_offset(name.label_count() - 1));
        Self {
            question: HEADER_LEN,
            apex,
        }
    }

    /// Writes `prefix` (if any) followed by the apex name.
    fn write_under_apex(&self, out: &mut Vec<u8>, prefix: Option<&[u8]>) {
        if let Some(label) = prefix {
            push_label(out, label);
        }
        match self.apex {
            Some(offset) => out.extend_from_slice(&pointer(offset)),
            // Unreachable through `answer` (records only exist for in-zone
            // questions), but writing the name in full keeps this correct.
            None => {
                push_label(out, ZONE.as_bytes());
                out.push(0);
            }
        }
    }
}

fn push_label(out: &mut Vec<u8>, label: &[u8]) {
    debug_assert!(label.len() <= super::wire::MAX_LABEL_LEN);
    // Labels here are our own constants, all shorter than 64 bytes.
    out.push(label.len() as u8);
    out.extend_from_slice(label);
}

fn write_record(out: &mut Vec<u8>, names: &Names, record: Record) {
    let rr_type = match record {
        Record::A(_) => {
            out.extend_from_slice(&pointer(names.question));
            rtype::A
        }
        Record::Soa => {
            names.write_under_apex(out, None);
            rtype::SOA
        }
        Record::Ns => {
            names.write_under_apex(out, None);
            rtype::NS
        }
    };
    out.extend_from_slice(&rr_type.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&RECORD_TTL.to_be_bytes());

    // RDLENGTH is patched once the data is written, since compressed names
    // make its size depend on the message.
    let length_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match record {
        Record::A(ip) => out.extend_from_slice(&ip.octets()),
        Record::Ns => names.write_under_apex(out, Some(NS_LABEL)),
        Record::Soa => {
            names.write_under_apex(out, Some(NS_LABEL));
            names.write_under_apex(out, Some(HOSTMASTER_LABEL));
            for field in [SOA_SERIAL, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, NEGATIVE_TTL] {
                out.extend_from_slice(&field.to_be_bytes());
            }
        }
    }
    let rdlength = out.len() - length_at - 2;
    // RDATA here is at most a few dozen bytes.
    let rdlength = u16::try_from(rdlength).unwrap_or(u16::MAX);
    out[length_at..length_at + 2].copy_from_slice(&rdlength.to_be_bytes());
}

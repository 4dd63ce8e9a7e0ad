//! Property and fuzz-style tests of `answer`: whatever arrives, it never
//! panics, and whatever it sends is a well-formed DNS message.

use std::net::Ipv4Addr;

use banger_api::model::VmName;
use proptest::prelude::*;

use super::harness::Rng;
use super::message::{QueryBuilder, Rdata, TYPE_MX, TYPE_TXT, parse, query};
use crate::dns::wire::{HEADER_LEN, Header, rtype};
use crate::dns::{DnsRecords, answer};

const DEV_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);

fn records() -> DnsRecords {
    let records = DnsRecords::new();
    records.set(&VmName::new("dev").unwrap(), DEV_IP);
    records.set(&VmName::new("web-1").unwrap(), Ipv4Addr::new(172, 16, 0, 3));
    records
}

/// Checks the invariants of any response to `query`, returning why not.
fn check(query: &[u8], records: &DnsRecords) -> Result<(), String> {
    let Some(raw) = answer(query, records) else {
        // Dropping is only allowed for short packets and responses.
        return match Header::parse(query) {
            None => Ok(()),
            Some(h) if h.is_response() => Ok(()),
            Some(h) => Err(format!("dropped a query {h:?}")),
        };
    };
    let msg = parse(&raw).map_err(|e| format!("malformed response {raw:02x?}: {e}"))?;
    let q = Header::parse(query).ok_or("answered a packet shorter than a header")?;
    let h = msg.header;
    if !h.is_response() || h.id != q.id || h.opcode() != q.opcode() {
        return Err(format!("header {h:?} does not answer {q:?}"));
    }
    if h.recursion_desired() != q.recursion_desired() || h.recursion_available() || h.truncated() {
        return Err(format!("bad flags {h:?}"));
    }
    if raw.len() > 512 {
        return Err(format!("{} bytes: too long for plain UDP", raw.len()));
    }
    if h.qdcount == 1 {
        // The echoed question is the query's own bytes.
        let echoed = &raw[HEADER_LEN..HEADER_LEN + msg.questions[0].name.wire().len() + 4];
        if query.get(HEADER_LEN..HEADER_LEN + echoed.len()) != Some(echoed) {
            return Err("question not echoed byte for byte".into());
        }
    }
    Ok(())
}

/// A valid query from parts proptest chooses.
fn arb_query() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("dev.vm".to_owned()),
        Just("vm".to_owned()),
        Just("example.com".to_owned()),
        "[a-zA-Z0-9-]{1,20}(\\.[a-zA-Z0-9-]{1,20}){0,3}\\.(vm|VM|com)",
    ];
    let qtype = prop_oneof![
        Just(rtype::A),
        Just(rtype::AAAA),
        Just(rtype::ANY),
        Just(rtype::SOA),
        any::<u16>()
    ];
    (name, qtype, any::<u16>(), any::<bool>(), any::<bool>()).prop_map(
        |(name, qtype, id, rd, edns)| {
            let builder = query(&name, qtype).id(id).rd(rd);
            if edns { builder.edns() } else { builder }.build()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&bytes, &records()).map_err(TestCaseError::fail)?;
    }

    /// Random bytes after a plausible header reach the question parser, which
    /// pure noise rarely does (its QR bit and opcode are usually wrong).
    #[test]
    fn arbitrary_questions_never_panic(
        id in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = Vec::new();
        Header { id, flags: 0x0100, qdcount: 1, ancount: 0, nscount: 0, arcount: 0 }
            .write(&mut bytes);
        bytes.extend_from_slice(&body);
        check(&bytes, &records()).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_queries_never_panic(
        query in arb_query(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = query;
        for (at, mask) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check(&bytes, &records()).map_err(TestCaseError::fail)?;
    }

    /// The zone as a model: a recorded name in any letter case answers its IP
    /// for A and ANY, is NODATA for other types; any other name in the zone
    /// is NXDOMAIN.
    #[test]
    fn answers_follow_the_zone(
        known in any::<bool>(),
        other in "[a-z0-9]{1,10}",
        upper in prop::collection::vec(any::<bool>(), 16),
        qtype in prop_oneof![Just(rtype::A), Just(rtype::ANY), Just(rtype::AAAA), Just(TYPE_MX), Just(TYPE_TXT)],
    ) {
        let label = if known { "web-1".to_owned() } else { format!("x{other}") };
        let name: String = format!("{label}.vm")
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        let msg = parse(&answer(&query(&name, qtype).build(), &records()).unwrap()).unwrap();
        prop_assert!(msg.header.authoritative());
        prop_assert_eq!(msg.question_name(), format!("{name}."));
        let wants_address = matches!(qtype, rtype::A | rtype::ANY);
        match (known, wants_address) {
            (true, true) => {
                prop_assert_eq!(msg.header.rcode(), 0);
                prop_assert_eq!(&msg.answers[0].data, &Rdata::A(Ipv4Addr::new(172, 16, 0, 3)));
            }
            (true, false) => {
                prop_assert_eq!(msg.header.rcode(), 0);
                prop_assert!(msg.answers.is_empty());
                prop_assert_eq!(msg.authority.len(), 1);
            }
            (false, _) => {
                prop_assert_eq!(msg.header.rcode(), 3);
                prop_assert_eq!(msg.authority.len(), 1);
            }
        }
    }
}

fn seed_queries() -> Vec<Vec<u8>> {
    [
        query("dev.vm", rtype::A),
        query("DeV.vM", rtype::AAAA).edns(),
        query("vm", rtype::ANY),
        query("a.b.vm", rtype::SOA).rd(false),
        query("example.com", rtype::A).edns(),
    ]
    .iter()
    .map(QueryBuilder::build)
    .collect()
}

/// Every single-byte substitution (all 256 values at every offset) and every
/// truncation of a few valid queries: exhaustive where random testing only
/// samples.
#[test]
fn exhaustive_single_byte_mutations() {
    let records = records();
    for seed in seed_queries() {
        for at in 0..seed.len() {
            let mut bytes = seed.clone();
            for value in 0..=255u8 {
                bytes[at] = value;
                check(&bytes, &records)
                    .unwrap_or_else(|e| panic!("{e}\nbyte {at} = {value:#04x} of {seed:02x?}"));
            }
        }
        for len in 0..=seed.len() {
            check(&seed[..len], &records).unwrap_or_else(|e| panic!("{e}\nprefix {len}"));
        }
    }
}

/// Every 16-bit value as the first two bytes of the question name (all
/// pointer targets, all label types), in front of a plausible remainder.
#[test]
fn exhaustive_question_starts() {
    let records = records();
    let seed = query("dev.vm", rtype::A).build();
    let mut bytes = seed.clone();
    for word in 0..=u16::MAX {
        bytes[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&word.to_be_bytes());
        check(&bytes, &records).unwrap_or_else(|e| panic!("{e}\nquestion starts {word:#06x}"));
    }
}

/// A long deterministic fuzz run of random multi-byte mutations, splices and
/// extensions, cheap enough for every test run (a replayable seed).
#[test]
fn fuzz_random_mutations() {
    let records = records();
    let seeds = seed_queries();
    let mut rng = Rng::new(0xD15EA5E);
    for round in 0..50_000 {
        let mut bytes = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(6) {
            match rng.below(4) {
                0 => {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.bytes(1)[0];
                }
                1 => {
                    // Plant a compression pointer somewhere.
                    let at = rng.below(bytes.len().saturating_sub(1).max(1));
                    let target = rng.below(bytes.len() + 4);
                    let word = 0xC000u16 | u16::try_from(target).unwrap();
                    if at + 2 <= bytes.len() {
                        bytes[at..at + 2].copy_from_slice(&word.to_be_bytes());
                    }
                }
                2 => {
                    let len = rng.below(40);
                    bytes.extend(rng.bytes(len));
                }
                _ => {
                    let len = rng.below(bytes.len() + 1);
                    bytes.truncate(len);
                    if bytes.is_empty() {
                        break;
                    }
                }
            }
        }
        check(&bytes, &records).unwrap_or_else(|e| panic!("{e}\nround {round}: {bytes:02x?}"));
    }
}

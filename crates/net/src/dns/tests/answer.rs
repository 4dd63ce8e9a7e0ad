//! `answer` on hand-built queries: every rule of the zone, and every way a
//! query is refused, rejected or dropped.

use std::net::Ipv4Addr;

use banger_api::model::VmName;

use super::message::{CLASS_CH, Message, QueryBuilder, Rdata, TYPE_MX, parse, query};
use crate::dns::wire::{HEADER_LEN, rtype};
use crate::dns::{DnsRecords, answer};

const DEV_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);

const NOERROR: u8 = 0;
const FORMERR: u8 = 1;
const NXDOMAIN: u8 = 3;
const NOTIMP: u8 = 4;
const REFUSED: u8 = 5;

fn name(s: &str) -> VmName {
    VmName::new(s).unwrap()
}

fn records() -> DnsRecords {
    let records = DnsRecords::new();
    records.set(&name("dev"), DEV_IP);
    records
}

/// Answers `q` and parses the response strictly.
fn ask(q: &QueryBuilder, records: &DnsRecords) -> (Vec<u8>, Message) {
    let query = q.build();
    let raw = answer(&query, records).expect("a query gets a response");
    let msg = parse(&raw).unwrap_or_else(|e| panic!("malformed response {raw:02x?}: {e}"));
    (raw, msg)
}

fn assert_soa_authority(msg: &Message, apex: &str) {
    assert!(msg.answers.is_empty(), "{msg:?}");
    assert_eq!(msg.authority.len(), 1, "{msg:?}");
    let soa = &msg.authority[0];
    assert_eq!(soa.name, apex);
    assert_eq!(soa.rtype, rtype::SOA);
    assert_eq!(soa.class, 1);
    assert_eq!(soa.ttl, 5);
    let Rdata::Soa {
        mname,
        rname,
        minimum,
        ..
    } = &soa.data
    else {
        panic!("not SOA data: {soa:?}");
    };
    assert_eq!(mname.to_ascii_lowercase(), "ns.vm.");
    assert_eq!(rname.to_ascii_lowercase(), "hostmaster.vm.");
    assert_eq!(*minimum, 5, "negative TTL");
}

#[test]
fn a_record_for_a_running_vm() {
    let (raw, msg) = ask(&query("dev.vm", rtype::A).id(0xBEEF), &records());
    let h = msg.header;
    assert_eq!(h.id, 0xBEEF);
    assert!(h.is_response());
    assert!(h.authoritative());
    assert!(h.recursion_desired(), "RD is copied");
    assert!(!h.recursion_available());
    assert!(!h.truncated());
    assert_eq!(h.opcode(), 0);
    assert_eq!(h.rcode(), NOERROR);
    assert_eq!((h.qdcount, h.ancount, h.nscount, h.arcount), (1, 1, 0, 0));
    assert_eq!(msg.question_name(), "dev.vm.");
    assert_eq!(msg.questions[0].qtype, rtype::A);
    let a = &msg.answers[0];
    assert_eq!(a.name, "dev.vm.");
    assert_eq!((a.rtype, a.class, a.ttl), (rtype::A, 1, 5));
    assert_eq!(a.data, Rdata::A(DEV_IP));
    // The owner is compressed into a pointer at the question name.
    let owner_at = HEADER_LEN + "dev.vm".len() + 2 + 4;
    assert_eq!(&raw[owner_at..owner_at + 2], &[0xC0, 0x0C]);
}

#[test]
fn rd_is_copied_when_clear() {
    let (_, msg) = ask(&query("dev.vm", rtype::A).rd(false), &records());
    assert!(!msg.header.recursion_desired());
    assert_eq!(msg.answers.len(), 1);
}

#[test]
fn any_query_returns_the_a_record() {
    let (_, msg) = ask(&query("dev.vm", rtype::ANY), &records());
    assert_eq!(msg.answers.len(), 1);
    assert_eq!(msg.answers[0].data, Rdata::A(DEV_IP));
}

#[test]
fn class_any_is_answered_with_class_in() {
    let (_, msg) = ask(&query("dev.vm", rtype::A).class(255), &records());
    assert_eq!(msg.header.rcode(), NOERROR);
    assert_eq!(msg.answers[0].class, 1);
}

#[test]
fn names_compare_case_insensitively_and_the_question_is_echoed_as_asked() {
    let q = query("DeV.Vm", rtype::A);
    let (raw, msg) = ask(&q, &records());
    assert_eq!(msg.header.rcode(), NOERROR);
    assert_eq!(msg.answers[0].data, Rdata::A(DEV_IP));
    assert_eq!(msg.question_name(), "DeV.Vm.");
    let sent = q.build();
    assert_eq!(
        &raw[HEADER_LEN..sent.len()],
        &sent[HEADER_LEN..],
        "byte-exact echo"
    );
}

#[test]
fn unknown_names_are_nxdomain_with_the_soa() {
    for unknown in ["nope.vm", "a.b.vm", "x.dev.vm", "ns.vm", "NOPE.VM"] {
        let (_, msg) = ask(&query(unknown, rtype::A), &records());
        assert_eq!(msg.header.rcode(), NXDOMAIN, "{unknown}");
        assert!(msg.header.authoritative(), "{unknown}");
        assert_eq!(msg.question_name(), format!("{unknown}."));
        // The apex owner points into the question, so it keeps its case.
        let apex = if unknown.ends_with("VM") {
            "VM."
        } else {
            "vm."
        };
        assert_soa_authority(&msg, apex);
    }
}

#[test]
fn other_types_for_a_vm_are_nodata_with_the_soa() {
    for qtype in [rtype::AAAA, TYPE_MX, rtype::NS, rtype::SOA] {
        let (_, msg) = ask(&query("dev.vm", qtype), &records());
        assert_eq!(msg.header.rcode(), NOERROR, "type {qtype}");
        assert!(msg.header.authoritative());
        assert_soa_authority(&msg, "vm.");
    }
}

#[test]
fn apex_answers_soa_and_ns() {
    let (_, soa) = ask(&query("vm", rtype::SOA), &records());
    assert_eq!(soa.header.rcode(), NOERROR);
    assert!(soa.header.authoritative());
    assert_eq!(soa.answers.len(), 1);
    assert_eq!(soa.answers[0].name, "vm.");
    assert!(matches!(
        &soa.answers[0].data,
        Rdata::Soa { mname, serial: 1, minimum: 5, .. } if mname == "ns.vm."
    ));

    let (_, ns) = ask(&query("Vm", rtype::NS), &records());
    assert_eq!(ns.answers.len(), 1);
    assert_eq!(ns.answers[0].name, "Vm.");
    assert_eq!(ns.answers[0].data, Rdata::Ns("ns.Vm.".into()));

    let (_, any) = ask(&query("vm", rtype::ANY), &records());
    let types: Vec<u16> = any.answers.iter().map(|r| r.rtype).collect();
    assert_eq!(types, [rtype::SOA, rtype::NS]);

    let (_, a) = ask(&query("vm", rtype::A), &records());
    assert_eq!(a.header.rcode(), NOERROR);
    assert_soa_authority(&a, "vm.");
}

#[test]
fn names_outside_the_zone_are_refused() {
    for outside in ["example.com", "vm.example.com", "dev.vm.local", "."] {
        let (_, msg) = ask(&query(outside, rtype::A), &records());
        let h = msg.header;
        assert_eq!(h.rcode(), REFUSED, "{outside}");
        assert!(!h.authoritative(), "{outside}");
        assert_eq!((h.qdcount, h.ancount, h.nscount), (1, 0, 0));
    }
}

#[test]
fn other_classes_and_zone_transfers_are_refused() {
    let (_, chaos) = ask(&query("dev.vm", rtype::A).class(CLASS_CH), &records());
    assert_eq!(chaos.header.rcode(), REFUSED);
    assert!(chaos.answers.is_empty());
    let (_, axfr) = ask(&query("vm", 252), &records());
    assert_eq!(axfr.header.rcode(), REFUSED);
}

#[test]
fn other_opcodes_are_notimp() {
    for opcode in [1, 2, 4, 5, 15] {
        let (_, msg) = ask(&query("dev.vm", rtype::A).opcode(opcode).id(7), &records());
        let h = msg.header;
        assert_eq!(h.rcode(), NOTIMP, "opcode {opcode}");
        assert_eq!(h.opcode(), opcode, "opcode is copied");
        assert_eq!(h.id, 7);
        assert!(h.is_response());
        assert_eq!((h.qdcount, h.ancount, h.nscount, h.arcount), (0, 0, 0, 0));
    }
}

#[test]
fn question_counts_other_than_one_are_formerr() {
    for qdcount in [0, 2, u16::MAX] {
        let (_, msg) = ask(&query("dev.vm", rtype::A).qdcount(qdcount), &records());
        assert_eq!(msg.header.rcode(), FORMERR, "qdcount {qdcount}");
        assert_eq!(msg.header.qdcount, 0);
    }
}

#[test]
fn short_packets_and_responses_are_dropped() {
    let full = query("dev.vm", rtype::A).build();
    for len in 0..HEADER_LEN {
        assert_eq!(answer(&full[..len], &records()), None, "{len} bytes");
    }
    let response = query("dev.vm", rtype::A).qr(true).build();
    assert_eq!(answer(&response, &records()), None);
    // Our own response fed back is dropped too: no loops.
    let ours = answer(&full, &records()).unwrap();
    assert_eq!(answer(&ours, &records()), None);
}

/// A query whose question bytes are `question` (header asks one question).
fn with_question(question: &[u8]) -> Vec<u8> {
    let mut q = query("x", rtype::A).build()[..HEADER_LEN].to_vec();
    q.extend_from_slice(question);
    q
}

fn rcode_of(query: &[u8]) -> u8 {
    let raw = answer(query, &records()).expect("a response");
    parse(&raw).unwrap().header.rcode()
}

#[test]
fn malformed_questions_are_formerr() {
    let long_label = [&[63u8][..], &[b'a'; 63], b"\x02vm\x00\x00\x01\x00\x01"].concat();
    assert_eq!(
        rcode_of(&with_question(&long_label)),
        NXDOMAIN,
        "63 is fine"
    );
    let cases: &[(&str, Vec<u8>)] = &[
        ("name cut short", b"\x03dev\x02v".to_vec()),
        ("no terminating label", b"\x03dev".to_vec()),
        ("no type and class", b"\x03dev\x02vm\x00".to_vec()),
        ("half a class", b"\x03dev\x02vm\x00\x00\x01\x00".to_vec()),
        (
            "label type 01 (length 64)",
            b"\x40dev\x00\x00\x01\x00\x01".to_vec(),
        ),
        ("label type 10", b"\x80\x00\x00\x01\x00\x01".to_vec()),
        ("name over 255 bytes", {
            let mut q = [&[63u8][..], &[b'a'; 63]].concat().repeat(4);
            q.extend_from_slice(b"\x00\x00\x01\x00\x01");
            q
        }),
    ];
    for (what, question) in cases {
        assert_eq!(rcode_of(&with_question(question)), FORMERR, "{what}");
    }
}

#[test]
fn compression_pointers_in_the_question_are_formerr() {
    let cases: &[(&str, &[u8])] = &[
        ("pointer to itself", b"\xC0\x0C\x00\x01\x00\x01"),
        ("pointer into the header", b"\xC0\x00\x00\x01\x00\x01"),
        ("pointer forwards", b"\xC0\x0E\x00\x00\x00\x01\x00\x01"),
        (
            "label then pointer back to it",
            b"\x03dev\xC0\x0C\x00\x01\x00\x01",
        ),
        ("pointer cut short", b"\x03dev\xC0"),
    ];
    for (what, question) in cases {
        assert_eq!(rcode_of(&with_question(question)), FORMERR, "{what}");
    }
}

#[test]
fn edns_and_trailing_bytes_are_ignored() {
    let (_, msg) = ask(&query("dev.vm", rtype::A).edns(), &records());
    assert_eq!(msg.header.rcode(), NOERROR);
    assert_eq!(msg.answers[0].data, Rdata::A(DEV_IP));
    assert!(msg.additional.is_empty(), "no OPT in the answer");

    let mut trailing = query("dev.vm", rtype::A).build();
    trailing.extend_from_slice(b"garbage\xC0\x0C\xFF");
    let msg = parse(&answer(&trailing, &records()).unwrap()).unwrap();
    assert_eq!(msg.answers[0].data, Rdata::A(DEV_IP));
}

#[test]
fn record_changes_are_seen_by_the_next_query() {
    let records = records();
    let ip_of = |records: &DnsRecords, name: &str| {
        let (_, msg) = ask(&query(name, rtype::A), records);
        match msg.answers.first().map(|r| &r.data) {
            Some(Rdata::A(ip)) => Some(*ip),
            _ => {
                assert_eq!(msg.header.rcode(), NXDOMAIN);
                None
            }
        }
    };
    assert_eq!(ip_of(&records, "web.vm"), None);
    let clone = records.clone();
    clone.set(&name("web"), Ipv4Addr::new(172, 16, 0, 3));
    assert_eq!(
        ip_of(&records, "web.vm"),
        Some(Ipv4Addr::new(172, 16, 0, 3))
    );
    records.set(&name("web"), Ipv4Addr::new(172, 16, 0, 9));
    assert_eq!(
        ip_of(&records, "web.vm"),
        Some(Ipv4Addr::new(172, 16, 0, 9))
    );
    records.remove(&name("web"));
    assert_eq!(ip_of(&records, "web.vm"), None);
    assert_eq!(ip_of(&records, "dev.vm"), Some(DEV_IP));
    records.replace_all([(name("db"), Ipv4Addr::new(172, 16, 0, 4))]);
    assert_eq!(ip_of(&records, "dev.vm"), None);
    assert_eq!(ip_of(&records, "db.vm"), Some(Ipv4Addr::new(172, 16, 0, 4)));
}

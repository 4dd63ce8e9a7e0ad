//! The record table on its own.

use std::net::Ipv4Addr;

use banger_api::model::VmName;

use crate::dns::DnsRecords;

fn name(s: &str) -> VmName {
    VmName::new(s).unwrap()
}

#[test]
fn set_get_remove_and_counts() {
    let records = DnsRecords::new();
    assert!(records.is_empty());
    records.set(&name("dev"), Ipv4Addr::new(10, 0, 0, 2));
    records.set(&name("web-1"), Ipv4Addr::new(10, 0, 0, 3));
    assert_eq!(records.len(), 2);
    assert!(!records.is_empty());
    assert_eq!(records.get("dev"), Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(records.get("WEB-1"), Some(Ipv4Addr::new(10, 0, 0, 3)));
    assert_eq!(records.get("Dev"), Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(records.get("de"), None);
    assert_eq!(records.get(""), None);
    records.set(&name("dev"), Ipv4Addr::new(10, 0, 0, 7));
    assert_eq!(records.get("dev"), Some(Ipv4Addr::new(10, 0, 0, 7)));
    assert_eq!(records.len(), 2);
    records.remove(&name("dev"));
    assert_eq!(records.get("dev"), None);
    assert_eq!(records.len(), 1);
}

#[test]
fn replace_all_swaps_the_table_and_clones_share_it() {
    let records = DnsRecords::new();
    let shared = records.clone();
    records.set(&name("old"), Ipv4Addr::new(10, 0, 0, 2));
    shared.replace_all([
        (name("a"), Ipv4Addr::new(10, 0, 0, 4)),
        (name("b"), Ipv4Addr::new(10, 0, 0, 5)),
    ]);
    assert_eq!(records.get("old"), None);
    assert_eq!(records.get("b"), Some(Ipv4Addr::new(10, 0, 0, 5)));
    assert_eq!(records.len(), 2);
    shared.replace_all([]);
    assert!(records.is_empty());
}

#[test]
fn over_long_lookups_do_not_match() {
    let records = DnsRecords::new();
    let long = "a".repeat(63);
    records.set(&name(&long), Ipv4Addr::new(10, 0, 0, 2));
    assert!(records.get(&long.to_ascii_uppercase()).is_some());
    assert_eq!(records.get(&"a".repeat(64)), None);
}

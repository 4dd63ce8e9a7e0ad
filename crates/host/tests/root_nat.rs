//! NAT on a real kernel, as root, each test in its own network namespace:
//! per guest, idempotent, gone without a trace, and never touching rules
//! banger did not create.

mod common;

use std::net::Ipv4Addr;
use std::str::FromStr;

use banger_host::{BridgeName, HostOps, LocalHost, NatBackend};
use common::{in_netns, ip_forward, run};

fn ruleset() -> String {
    run("nft", &["list", "ruleset"])
}

fn iptables_all() -> String {
    run("iptables", &["-w", "-S"]) + &run("iptables", &["-w", "-t", "nat", "-S"])
}

#[test]
fn nft_nat_is_per_guest_idempotent_and_leaves_nothing() {
    let host_forwarding = ip_forward();
    let ran = in_netns("host-t3", || {
        let host = LocalHost::with_nat_backend(NatBackend::Nftables);
        let bridge = BridgeName::from_str("br-fc-t3").unwrap();
        let (one, two) = (Ipv4Addr::new(172, 16, 3, 2), Ipv4Addr::new(172, 16, 3, 3));
        assert_eq!(ip_forward(), "0", "a fresh namespace forwards nothing");

        host.add_nat(one, &bridge).unwrap();
        let rules = ruleset();
        assert!(rules.contains("table ip banger"), "{rules}");
        assert!(
            rules.contains("iifname \"br-fc-t3\" ip saddr 172.16.3.2 accept"),
            "{rules}"
        );
        assert!(
            rules.contains("ct state established,related accept"),
            "{rules}"
        );
        assert!(
            rules.contains("ip saddr 172.16.3.2 oifname != \"br-fc-t3\" masquerade"),
            "{rules}"
        );
        assert_eq!(
            rules.matches("comment \"banger-nat 172.16.3.2\"").count(),
            3,
            "{rules}"
        );
        assert!(!rules.contains("172.16.3.3"), "{rules}");
        assert_eq!(ip_forward(), "1");

        host.add_nat(one, &bridge).unwrap();
        assert_eq!(ruleset(), rules, "adding again changes nothing");

        host.add_nat(two, &bridge).unwrap();
        host.remove_nat(one, &bridge).unwrap();
        let rules = ruleset();
        assert!(
            !rules.contains("172.16.3.2") && rules.contains("172.16.3.3"),
            "{rules}"
        );

        host.remove_nat(two, &bridge).unwrap();
        assert!(!ruleset().contains("banger"), "{}", ruleset());
        host.remove_nat(two, &bridge).unwrap();
        assert_eq!(ip_forward(), "1", "never switched off");
    });
    if ran {
        assert_eq!(
            ip_forward(),
            host_forwarding,
            "the host's own setting is untouched"
        );
    }
}

#[test]
fn nft_nat_never_touches_a_foreign_table() {
    in_netns("host-t4", || {
        run("nft", &["add", "table", "ip", "foreign"]);
        run(
            "nft",
            &[
                "add", "chain", "ip", "foreign", "c", "{", "type", "filter", "hook", "forward",
                "priority", "0", ";", "}",
            ],
        );
        run(
            "nft",
            &[
                "add", "rule", "ip", "foreign", "c", "ip", "saddr", "10.9.9.9", "drop",
            ],
        );
        let foreign = || run("nft", &["list", "table", "ip", "foreign"]);
        let before = foreign();
        assert!(before.contains("ip saddr 10.9.9.9 drop"), "{before}");

        let host = LocalHost::with_nat_backend(NatBackend::Nftables);
        let bridge = BridgeName::from_str("br-fc-t4").unwrap();
        let guest = Ipv4Addr::new(172, 16, 4, 2);
        for _ in 0..10 {
            host.add_nat(guest, &bridge).unwrap();
            assert_eq!(foreign(), before);
            host.remove_nat(guest, &bridge).unwrap();
            assert_eq!(foreign(), before);
        }
        let rules = ruleset();
        assert!(
            !rules.contains("banger") && rules.contains("table ip foreign"),
            "{rules}"
        );
    });
}

#[test]
fn iptables_nat_is_per_guest_idempotent_and_leaves_nothing() {
    in_netns("host-t5", || {
        let before = iptables_all();
        let host = LocalHost::with_nat_backend(NatBackend::Iptables);
        let bridge = BridgeName::from_str("br-fc-t5").unwrap();
        let (one, two) = (Ipv4Addr::new(172, 16, 5, 2), Ipv4Addr::new(172, 16, 5, 3));

        host.add_nat(one, &bridge).unwrap();
        let fwd = run("iptables", &["-w", "-S", "BANGER-FWD"]);
        assert_eq!(
            fwd.matches("--comment \"banger-nat 172.16.5.2\"").count(),
            2,
            "{fwd}"
        );
        assert!(
            fwd.contains("-i br-fc-t5") && fwd.contains("RELATED,ESTABLISHED"),
            "{fwd}"
        );
        let nat = run("iptables", &["-w", "-t", "nat", "-S", "BANGER-POSTROUTING"]);
        assert!(
            nat.contains("-s 172.16.5.2/32 ! -o br-fc-t5") && nat.contains("-j MASQUERADE"),
            "{nat}"
        );
        assert!(run("iptables", &["-w", "-S", "FORWARD"]).contains("-A FORWARD -j BANGER-FWD"));
        assert_eq!(ip_forward(), "1");

        let with_one = iptables_all();
        host.add_nat(one, &bridge).unwrap();
        assert_eq!(iptables_all(), with_one, "adding again changes nothing");

        host.add_nat(two, &bridge).unwrap();
        host.remove_nat(one, &bridge).unwrap();
        let now = iptables_all();
        assert!(
            !now.contains("172.16.5.2/32") && now.contains("172.16.5.3/32"),
            "{now}"
        );

        host.remove_nat(two, &bridge).unwrap();
        assert_eq!(iptables_all(), before, "no chain, jump or rule left");
        host.remove_nat(two, &bridge).unwrap();
    });
}

#[test]
fn iptables_nat_never_touches_foreign_rules() {
    in_netns("host-t6", || {
        run(
            "iptables",
            &["-w", "-A", "FORWARD", "-s", "10.9.9.9", "-j", "DROP"],
        );
        run(
            "iptables",
            &[
                "-w",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                "10.9.9.9",
                "-j",
                "RETURN",
            ],
        );
        let before = iptables_all();
        let host = LocalHost::with_nat_backend(NatBackend::Iptables);
        let bridge = BridgeName::from_str("br-fc-t6").unwrap();
        let guest = Ipv4Addr::new(172, 16, 6, 2);
        for _ in 0..10 {
            host.add_nat(guest, &bridge).unwrap();
            let during = iptables_all();
            assert!(
                during.contains("-A FORWARD -s 10.9.9.9/32 -j DROP"),
                "{during}"
            );
            assert!(
                during.contains("-A POSTROUTING -s 10.9.9.9/32 -j RETURN"),
                "{during}"
            );
            host.remove_nat(guest, &bridge).unwrap();
            assert_eq!(iptables_all(), before);
        }
    });
}

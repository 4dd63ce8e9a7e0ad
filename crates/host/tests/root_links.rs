//! Bridges and taps on a real kernel, as root, each test in its own network
//! namespace.

mod common;

use std::str::FromStr;

use banger_host::{BridgeName, HostError, HostOps, Ipv4Cidr, LocalHost, TapName};
use common::{in_netns, run};

fn links() -> String {
    run("ip", &["-o", "link", "show"])
}

#[test]
fn bridge_is_created_idempotently_and_deleted() {
    in_netns("host-t1", || {
        let host = LocalHost::new();
        let bridge = BridgeName::from_str("br-fc-t1").unwrap();
        let address = Ipv4Cidr::from_str("10.77.1.1/24").unwrap();
        host.ensure_bridge(&bridge, address).unwrap();
        host.ensure_bridge(&bridge, address).unwrap();

        let detail = run("ip", &["-d", "-o", "link", "show", "dev", "br-fc-t1"]);
        assert!(
            detail.contains(" bridge ") && detail.contains(",UP"),
            "{detail}"
        );
        let addrs = run("ip", &["-o", "-4", "addr", "show", "dev", "br-fc-t1"]);
        assert_eq!(addrs.matches("inet 10.77.1.1/24").count(), 1, "{addrs}");

        host.delete_bridge(&bridge).unwrap();
        assert!(!links().contains("br-fc-t1"), "{}", links());
        host.delete_bridge(&bridge).unwrap();
    });
}

#[test]
fn a_foreign_link_with_a_banger_name_is_left_alone() {
    in_netns("host-t1b", || {
        // A tun device: a kind every kernel that runs banger has.
        run("ip", &["tuntap", "add", "dev", "br-fc-t1b", "mode", "tun"]);
        let host = LocalHost::new();
        let bridge = BridgeName::from_str("br-fc-t1b").unwrap();
        let err = host
            .ensure_bridge(&bridge, Ipv4Cidr::from_str("10.77.2.1/24").unwrap())
            .unwrap_err();
        assert!(
            matches!(&err, HostError::LinkKind { found, .. } if found == "tun"),
            "{err:?}"
        );
        let err = host.delete_bridge(&bridge).unwrap_err();
        assert!(matches!(err, HostError::LinkKind { .. }));
        let addrs = run("ip", &["-o", "-4", "addr", "show", "dev", "br-fc-t1b"]);
        assert!(addrs.is_empty(), "no address added: {addrs}");
        assert!(links().contains("br-fc-t1b"), "still there");
    });
}

#[test]
fn three_taps_are_attached_listed_and_deleted() {
    in_netns("host-t2", || {
        let host = LocalHost::new();
        let bridge = BridgeName::from_str("br-fc-t2").unwrap();
        host.ensure_bridge(&bridge, Ipv4Cidr::from_str("10.77.3.1/24").unwrap())
            .unwrap();
        // Not banger's: a tap with another name, a tun with a tap's name.
        run("ip", &["tuntap", "add", "dev", "tap0", "mode", "tap"]);
        run("ip", &["tuntap", "add", "dev", "fctap99", "mode", "tun"]);

        // A uid without a passwd entry, so `ip` prints it as a number.
        let taps: Vec<TapName> = (1..=3).map(TapName::numbered).collect();
        for tap in &taps {
            host.create_tap(tap, 54321).unwrap();
            host.create_tap(tap, 54321).unwrap();
            host.attach_tap(tap, &bridge).unwrap();
        }
        let enslaved = run("ip", &["-o", "link", "show", "master", "br-fc-t2"]);
        for tap in &taps {
            assert!(
                enslaved.contains(&format!(": {tap}: ")),
                "{tap}: {enslaved}"
            );
        }
        assert_eq!(enslaved.lines().count(), 3, "{enslaved}");
        assert_eq!(host.list_taps().unwrap(), taps);
        let detail = run("ip", &["-d", "-o", "link", "show", "dev", "fctap1"]);
        assert!(
            detail.contains("tun type tap") && detail.contains("user 54321"),
            "{detail}"
        );

        for tap in &taps {
            host.delete_tap(tap).unwrap();
            host.delete_tap(tap).unwrap();
        }
        assert!(host.list_taps().unwrap().is_empty());
        let left = links();
        assert!(
            !left.contains("fctap1") && !left.contains("fctap2") && !left.contains("fctap3"),
            "{left}"
        );
        assert!(
            left.contains("tap0") && left.contains("fctap99"),
            "foreign links stay: {left}"
        );
        host.delete_bridge(&bridge).unwrap();
    });
}

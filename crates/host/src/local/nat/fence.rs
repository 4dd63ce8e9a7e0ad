//! The guest fence on nftables (SPEC §12: a guest sends only from its own
//! IP and MAC, reaches the host only at the bridge address, and leaves the
//! host only with NAT).
//!
//! Two tables, both banger's own:
//! - `bridge banger`: a `prerouting` base chain (priority -200, policy
//!   accept) sends every frame entering from one of banger's taps
//!   (`fctap*`) to the regular chain `guests`, and drops it when `guests`
//!   did not accept it. `guests` holds two rules per fenced tap: IPv4 from
//!   the guest's MAC and IP, and ARP from its MAC announcing its IP (or
//!   0.0.0.0, a probe). Everything else from a tap (spoofed addresses,
//!   IPv6, VLAN tags, other ethertypes) is dropped, and so is everything
//!   from a tap that is not fenced. Frames the host sends, and other
//!   bridges' frames, are not touched.
//! - `ip banger` (shared with NAT): `input` accepts from the bridge only
//!   packets to the bridge address and replies to the host's own
//!   connections, then drops; `forward` drops what comes from or goes to
//!   the bridge through another interface, after the NAT guests' accepts
//!   (inserted at the top). Packets staying on the bridge (bridged
//!   guest-to-guest traffic that `br_netfilter` shows to this hook) and
//!   packets not involving the bridge pass; every base chain keeps policy
//!   accept, so the host's own forwarding (containers, VPNs) is unaffected.
//!
//! Every rule carries a comment naming what it belongs to:
//! `banger-fence <bridge> <bridge ip>` for the bridge's rules and
//! `banger-guest <tap> <ip> <mac>` for a guest's, so removal and the
//! idempotency checks work from the listing alone (`nft -j`). Each change
//! is one nft transaction.

use std::net::Ipv4Addr;

use super::super::runner::Runner;
use super::nft::{RuleJson, TABLE, nft, prelude, quoted, table_rules, words};
use crate::error::HostError;
use crate::validate::{BridgeName, GuestMac, Ipv4Cidr, TapName};

const BRIDGE_FAMILY: &str = "bridge";
const FENCE: &str = "banger-fence ";
const GUEST: &str = "banger-guest ";

fn fence_prefix(bridge: &BridgeName) -> String {
    format!("{FENCE}{bridge} ")
}

fn fence_tag(bridge: &BridgeName, address: Ipv4Cidr) -> String {
    format!("{FENCE}{bridge} {}", address.addr())
}

fn guest_prefix(tap: &TapName) -> String {
    format!("{GUEST}{tap} ")
}

fn guest_tag(tap: &TapName, guest: Ipv4Addr, mac: GuestMac) -> String {
    format!("{GUEST}{tap} {guest} {mac}")
}

/// `add table bridge banger` and its two chains (idempotent in nft).
fn bridge_prelude() -> Vec<String> {
    words(&format!(
        "add table bridge {TABLE} ; add chain bridge {TABLE} guests ; \
         add chain bridge {TABLE} prerouting {{ type filter hook prerouting priority -200 ; policy accept ; }}"
    ))
    .collect()
}

/// `(family, chain, rule)` triples; every rule ends with its comment.
type Rendered = Vec<(&'static str, &'static str, String)>;

fn bridge_rules(bridge: &BridgeName, address: Ipv4Cidr) -> Rendered {
    let br = quoted(bridge.as_str());
    let ip = address.addr();
    let taps = quoted(&format!("{}*", TapName::PREFIX));
    let c = quoted(&fence_tag(bridge, address));
    vec![
        (
            "ip",
            "input",
            format!("iifname {br} ct state established,related accept comment {c}"),
        ),
        (
            "ip",
            "input",
            format!("iifname {br} ip daddr {ip} accept comment {c}"),
        ),
        ("ip", "input", format!("iifname {br} drop comment {c}")),
        (
            "ip",
            "forward",
            format!("iifname {br} oifname != {br} drop comment {c}"),
        ),
        (
            "ip",
            "forward",
            format!("oifname {br} iifname != {br} drop comment {c}"),
        ),
        (
            BRIDGE_FAMILY,
            "prerouting",
            format!("iifname {taps} jump guests comment {c}"),
        ),
        (
            BRIDGE_FAMILY,
            "prerouting",
            format!("iifname {taps} drop comment {c}"),
        ),
    ]
}

fn guest_rules(tap: &TapName, guest: Ipv4Addr, mac: GuestMac) -> Rendered {
    let t = quoted(tap.as_str());
    let c = quoted(&guest_tag(tap, guest, mac));
    vec![
        (
            BRIDGE_FAMILY,
            "guests",
            format!("iifname {t} ether saddr {mac} ip saddr {guest} accept comment {c}"),
        ),
        (
            BRIDGE_FAMILY,
            "guests",
            format!(
                "iifname {t} ether saddr {mac} arp hlen 6 arp plen 4 arp saddr ether {mac} \
                 arp saddr ip {{ 0.0.0.0, {guest} }} accept comment {c}"
            ),
        ),
    ]
}

/// Appends `; add rule <family> banger <chain> <rule>` for each rule.
fn push_adds(argv: &mut Vec<String>, rules: Rendered) {
    for (family, chain, rule) in rules {
        argv.extend(words(&format!(
            "; add rule {family} {TABLE} {chain} {rule}"
        )));
    }
}

fn push_deletes(argv: &mut Vec<String>, stale: &[&RuleJson]) {
    for rule in stale {
        argv.push(";".to_owned());
        argv.extend(rule.delete());
    }
}

/// Whether `found` is exactly `want` copies of `tag` (the rules are banger's
/// own and written in one transaction, so their comments and number tell
/// whether they are complete and current).
fn complete(found: &[&RuleJson], tag: &str, want: usize) -> bool {
    found.len() == want && found.iter().all(|r| r.tag() == tag)
}

fn with_prefix<'a>(rules: &'a [RuleJson], prefix: &str) -> Vec<&'a RuleJson> {
    rules
        .iter()
        .filter(|r| r.tag().starts_with(prefix))
        .collect()
}

/// The full script for a transaction: preludes first, then `body`.
fn script(body: Vec<String>, ip: bool, bridge: bool) -> Vec<String> {
    let mut argv = Vec::new();
    if ip {
        argv.extend(prelude());
    }
    if bridge {
        if !argv.is_empty() {
            argv.push(";".to_owned());
        }
        argv.extend(bridge_prelude());
    }
    argv.extend(body);
    argv
}

pub(super) fn ensure_bridge(
    runner: &dyn Runner,
    bridge: &BridgeName,
    address: Ipv4Cidr,
) -> Result<(), HostError> {
    let ip_rules = table_rules(runner, "ip")?.unwrap_or_default();
    let br_rules = table_rules(runner, BRIDGE_FAMILY)?.unwrap_or_default();
    let prefix = fence_prefix(bridge);
    let tag = fence_tag(bridge, address);
    let ip_ours = with_prefix(&ip_rules, &prefix);
    let br_ours = with_prefix(&br_rules, &prefix);
    if complete(&ip_ours, &tag, 5) && complete(&br_ours, &tag, 2) {
        return Ok(());
    }
    let mut body = Vec::new();
    push_deletes(&mut body, &ip_ours);
    push_deletes(&mut body, &br_ours);
    push_adds(&mut body, bridge_rules(bridge, address));
    nft(runner, script(body, true, true), || {
        format!("install the guest fence of bridge {bridge} ({address})")
    })
    .map(drop)
}

pub(super) fn remove_bridge(runner: &dyn Runner, bridge: &BridgeName) -> Result<(), HostError> {
    let prefix = fence_prefix(bridge);
    let mut argv: Vec<String> = Vec::new();
    let sep = |argv: &mut Vec<String>| {
        if !argv.is_empty() {
            argv.push(";".to_owned());
        }
    };
    if let Some(rules) = table_rules(runner, "ip")? {
        let ours = with_prefix(&rules, &prefix);
        if ours.len() == rules.len() {
            sep(&mut argv);
            argv.extend(words(&format!("delete table ip {TABLE}")));
        } else {
            for rule in ours {
                sep(&mut argv);
                argv.extend(rule.delete());
            }
        }
    }
    if let Some(rules) = table_rules(runner, BRIDGE_FAMILY)? {
        let ours = with_prefix(&rules, &prefix);
        let other_fence = rules
            .iter()
            .any(|r| r.tag().starts_with(FENCE) && !r.tag().starts_with(&prefix));
        if !other_fence {
            // Guest rules without a bridge fence would only accept: the
            // table goes whole.
            sep(&mut argv);
            argv.extend(words(&format!("delete table bridge {TABLE}")));
        } else {
            for rule in ours {
                sep(&mut argv);
                argv.extend(rule.delete());
            }
        }
    }
    if argv.is_empty() {
        return Ok(());
    }
    nft(runner, argv, || {
        format!("remove the guest fence of bridge {bridge}")
    })
    .map(drop)
}

/// The words of a guest rule's comment: `(tap, ip, mac)`.
fn guest_of(rule: &RuleJson) -> Option<(&str, &str, &str)> {
    let mut w = rule.tag().strip_prefix(GUEST)?.split(' ');
    Some((w.next()?, w.next()?, w.next()?))
}

pub(super) fn fence_guest(
    runner: &dyn Runner,
    tap: &TapName,
    guest: Ipv4Addr,
    mac: GuestMac,
) -> Result<(), HostError> {
    let rules = table_rules(runner, BRIDGE_FAMILY)?.unwrap_or_default();
    if !rules.iter().any(|r| r.tag().starts_with(FENCE)) {
        return Err(HostError::FenceUnavailable {
            what: format!("guest {guest} on {tap}"),
            reason: "no bridge is fenced (nftables table `bridge banger` has no \
                     `banger-fence` rules): ensure_bridge_fence must run first, or the \
                     guest's rules would have no effect"
                .to_owned(),
        });
    }
    let tag = guest_tag(tap, guest, mac);
    let (ip_s, mac_s) = (guest.to_string(), mac.to_string());
    // This tap's earlier rules, and any other tap's claiming the address or
    // MAC (a stale record): the newest guest owns them.
    let stale: Vec<&RuleJson> = rules
        .iter()
        .filter(|r| {
            guest_of(r).is_some_and(|(t, i, m)| t == tap.as_str() || i == ip_s || m == mac_s)
        })
        .collect();
    if complete(&stale, &tag, 2) {
        return Ok(());
    }
    let mut body = Vec::new();
    push_deletes(&mut body, &stale);
    push_adds(&mut body, guest_rules(tap, guest, mac));
    nft(runner, script(body, false, true), || {
        format!("fence guest {guest} ({mac}) on {tap}")
    })
    .map(drop)
}

pub(super) fn unfence_guest(runner: &dyn Runner, tap: &TapName) -> Result<(), HostError> {
    let Some(rules) = table_rules(runner, BRIDGE_FAMILY)? else {
        return Ok(());
    };
    let ours = with_prefix(&rules, &guest_prefix(tap));
    if ours.is_empty() {
        return Ok(());
    }
    let mut argv = Vec::new();
    push_deletes(&mut argv, &ours);
    argv.remove(0);
    nft(runner, argv, || format!("remove the fence rules of {tap}")).map(drop)
}

#[cfg(test)]
mod tests {
    use super::super::super::runner::scripted::{Reply, ScriptedRunner};
    use super::*;

    fn br() -> BridgeName {
        BridgeName::new("br-fc").unwrap()
    }

    fn cidr() -> Ipv4Cidr {
        "172.16.0.1/24".parse().unwrap()
    }

    const G: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);

    fn mac() -> GuestMac {
        GuestMac::for_guest(G)
    }

    fn tap(n: u32) -> TapName {
        TapName::numbered(n)
    }

    fn listing(family: &str, rules: &[(&str, u64, &str)]) -> String {
        let mut items = vec![format!(
            r#"{{"table": {{"family": "{family}", "name": "banger", "handle": 1}}}}"#
        )];
        for (chain, handle, comment) in rules {
            items.push(format!(
                r#"{{"rule": {{"family": "{family}", "table": "banger", "chain": "{chain}", "handle": {handle}, "comment": "{comment}", "expr": [{{"accept": null}}]}}}}"#
            ));
        }
        format!(r#"{{"nftables": [{}]}}"#, items.join(", "))
    }

    fn tables(families: &[&str]) -> String {
        let items: Vec<String> = families
            .iter()
            .map(|f| format!(r#"{{"table": {{"family": "{f}", "name": "banger", "handle": 1}}}}"#))
            .collect();
        format!(r#"{{"nftables": [{}]}}"#, items.join(", "))
    }

    fn scripted(
        ip: Option<&[(&str, u64, &str)]>,
        bridge: Option<&[(&str, u64, &str)]>,
    ) -> ScriptedRunner {
        let r = ScriptedRunner::default();
        r.on(
            "nft -j list tables ip",
            Reply::Out(tables(if ip.is_some() { &["ip"] } else { &[] })),
        );
        r.on(
            "nft -j list tables bridge",
            Reply::Out(tables(if bridge.is_some() { &["bridge"] } else { &[] })),
        );
        if let Some(rules) = ip {
            r.on(
                "nft -j list table ip banger",
                Reply::Out(listing("ip", rules)),
            );
        }
        if let Some(rules) = bridge {
            r.on(
                "nft -j list table bridge banger",
                Reply::Out(listing("bridge", rules)),
            );
        }
        r
    }

    fn writes(r: &ScriptedRunner) -> Vec<String> {
        r.argv()
            .into_iter()
            .filter(|a| !a.starts_with("nft -j"))
            .collect()
    }

    const FENCE_TAG: &str = "banger-fence br-fc 172.16.0.1";
    const GUEST_TAG: &str = "banger-guest fctap1 172.16.0.2 02:fc:ac:10:00:02";

    fn fenced_ip() -> Vec<(&'static str, u64, &'static str)> {
        vec![
            ("input", 10, FENCE_TAG),
            ("input", 11, FENCE_TAG),
            ("input", 12, FENCE_TAG),
            ("forward", 13, FENCE_TAG),
            ("forward", 14, FENCE_TAG),
        ]
    }

    fn fenced_bridge() -> Vec<(&'static str, u64, &'static str)> {
        vec![("prerouting", 20, FENCE_TAG), ("prerouting", 21, FENCE_TAG)]
    }

    #[test]
    fn the_bridge_fence_renders_as_one_transaction() {
        let r = scripted(None, None);
        ensure_bridge(&r, &br(), cidr()).unwrap();
        let w = writes(&r);
        assert_eq!(w.len(), 1, "{w:?}");
        let c = "comment \"banger-fence br-fc 172.16.0.1\"";
        let want = [
            "add table ip banger ;".to_owned(),
            "add chain ip banger input { type filter hook input priority 0 ; policy accept ; } ;"
                .to_owned(),
            "add table bridge banger ; add chain bridge banger guests ; add chain bridge banger prerouting { type filter hook prerouting priority -200 ; policy accept ; }".to_owned(),
            format!("; add rule ip banger input iifname \"br-fc\" ct state established,related accept {c}"),
            format!("; add rule ip banger input iifname \"br-fc\" ip daddr 172.16.0.1 accept {c}"),
            format!("; add rule ip banger input iifname \"br-fc\" drop {c}"),
            format!("; add rule ip banger forward iifname \"br-fc\" oifname != \"br-fc\" drop {c}"),
            format!("; add rule ip banger forward oifname \"br-fc\" iifname != \"br-fc\" drop {c}"),
            format!("; add rule bridge banger prerouting iifname \"fctap*\" jump guests {c}"),
            format!("; add rule bridge banger prerouting iifname \"fctap*\" drop {c}"),
        ];
        for part in want {
            assert!(w[0].contains(&part), "missing {part:?} in {}", w[0]);
        }
    }

    #[test]
    fn a_complete_bridge_fence_is_left_alone_and_a_changed_one_replaced() {
        let r = scripted(Some(&fenced_ip()), Some(&fenced_bridge()));
        ensure_bridge(&r, &br(), cidr()).unwrap();
        assert!(writes(&r).is_empty(), "{:?}", r.argv());

        let r = scripted(Some(&fenced_ip()), Some(&fenced_bridge()));
        ensure_bridge(&r, &br(), "172.16.0.254/24".parse().unwrap()).unwrap();
        let w = writes(&r);
        assert_eq!(w.len(), 1);
        for h in [10, 11, 12, 13, 14] {
            assert!(
                w[0].contains("delete rule ip banger ") && w[0].contains(&format!("handle {h} ;")),
                "{}",
                w[0]
            );
        }
        assert!(
            w[0].contains("delete rule bridge banger prerouting handle 21 ;"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("ip daddr 172.16.0.254 accept"), "{}", w[0]);
    }

    #[test]
    fn guest_rules_check_mac_ip_and_arp() {
        let r = scripted(None, Some(&fenced_bridge()));
        fence_guest(&r, &tap(1), G, mac()).unwrap();
        let w = writes(&r);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            !w[0].contains("table ip"),
            "the ip table is not needed: {}",
            w[0]
        );
        let c = format!("comment \"{GUEST_TAG}\"");
        assert!(w[0].ends_with(&format!(
            "; add rule bridge banger guests iifname \"fctap1\" ether saddr 02:fc:ac:10:00:02 ip saddr 172.16.0.2 accept {c} \
             ; add rule bridge banger guests iifname \"fctap1\" ether saddr 02:fc:ac:10:00:02 arp hlen 6 arp plen 4 arp saddr ether 02:fc:ac:10:00:02 arp saddr ip {{ 0.0.0.0, 172.16.0.2 }} accept {c}"
        )), "{}", w[0]);
    }

    #[test]
    fn fencing_twice_writes_nothing_and_stale_claims_are_replaced() {
        let mut bridge = fenced_bridge();
        bridge.extend([("guests", 30, GUEST_TAG), ("guests", 31, GUEST_TAG)]);
        let r = scripted(None, Some(&bridge));
        fence_guest(&r, &tap(1), G, mac()).unwrap();
        assert!(writes(&r).is_empty(), "{:?}", r.argv());

        // Another tap now gets the address: fctap1's claim goes. And fctap1
        // gets another address: its old rules go.
        for (t, ip) in [(2, G), (1, Ipv4Addr::new(172, 16, 0, 9))] {
            let r = scripted(None, Some(&bridge));
            fence_guest(&r, &tap(t), ip, GuestMac::for_guest(ip)).unwrap();
            let w = writes(&r);
            assert!(
                w[0].contains("delete rule bridge banger guests handle 30 ; delete rule bridge banger guests handle 31 ;"),
                "{}",
                w[0]
            );
        }
        // An unrelated guest keeps its rules.
        let r = scripted(None, Some(&bridge));
        let other = Ipv4Addr::new(172, 16, 0, 3);
        fence_guest(&r, &tap(3), other, GuestMac::for_guest(other)).unwrap();
        assert!(!writes(&r)[0].contains("delete"), "{:?}", writes(&r));
    }

    #[test]
    fn fencing_without_a_bridge_fence_is_refused() {
        for bridge in [None, Some(&[][..])] {
            let r = scripted(None, bridge);
            let err = fence_guest(&r, &tap(1), G, mac()).unwrap_err();
            assert!(matches!(err, HostError::FenceUnavailable { .. }), "{err:?}");
            assert!(err.to_string().contains("ensure_bridge_fence"), "{err}");
            assert!(writes(&r).is_empty());
        }
    }

    #[test]
    fn unfencing_deletes_the_taps_rules_only_and_is_idempotent() {
        let mut bridge = fenced_bridge();
        bridge.extend([
            ("guests", 30, GUEST_TAG),
            ("guests", 31, GUEST_TAG),
            (
                "guests",
                32,
                "banger-guest fctap12 172.16.0.3 02:fc:ac:10:00:03",
            ),
        ]);
        let r = scripted(None, Some(&bridge));
        unfence_guest(&r, &tap(1)).unwrap();
        assert_eq!(
            writes(&r),
            [
                "nft delete rule bridge banger guests handle 30 ; delete rule bridge banger guests handle 31"
            ]
        );
        let r = scripted(None, Some(&fenced_bridge()));
        unfence_guest(&r, &tap(1)).unwrap();
        assert!(writes(&r).is_empty());
        let r = scripted(None, None);
        unfence_guest(&r, &tap(1)).unwrap();
        assert!(writes(&r).is_empty());
    }

    #[test]
    fn removing_the_bridge_fence_keeps_nat_and_drops_empty_tables() {
        // The ip table also holds a NAT guest: only the fence's rules go.
        let mut ip = fenced_ip();
        ip.push(("postrouting", 40, "banger-nat 172.16.0.2"));
        let mut bridge = fenced_bridge();
        bridge.push(("guests", 30, GUEST_TAG));
        let r = scripted(Some(&ip), Some(&bridge));
        remove_bridge(&r, &br()).unwrap();
        assert_eq!(
            writes(&r),
            [
                "nft delete rule ip banger input handle 10 ; delete rule ip banger input handle 11 ; \
              delete rule ip banger input handle 12 ; delete rule ip banger forward handle 13 ; \
              delete rule ip banger forward handle 14 ; delete table bridge banger"
            ]
        );
        // Nothing else: both tables go; then nothing is left to do.
        let r = scripted(Some(&fenced_ip()), Some(&fenced_bridge()));
        remove_bridge(&r, &br()).unwrap();
        assert_eq!(
            writes(&r),
            ["nft delete table ip banger ; delete table bridge banger"]
        );
        let r = scripted(None, None);
        remove_bridge(&r, &br()).unwrap();
        assert!(writes(&r).is_empty());
    }
}

//! Bridges and taps through iproute2's `ip`. banger runs `ip` through the
//! process layer instead of speaking netlink itself: every change is an
//! argv in the log that an operator can read and replay by hand.
//!
//! Existence is read from `ip -j -d link show` (JSON, with each link's
//! kind) rather than guessed from error messages, and a link that has one
//! of banger's names but the wrong kind is never modified.

use serde::Deserialize;

use banger_sys::Cmd;

use super::runner::{Runner, run};
use crate::error::HostError;
use crate::validate::{BridgeName, Ipv4Cidr, TapName};

const HINT: &str = "changing network links needs root (CAP_NET_ADMIN) and iproute2's `ip`";

/// One entry of `ip -j -d link show`.
#[derive(Debug, Deserialize)]
pub(crate) struct Link {
    pub(crate) ifname: String,
    #[serde(default)]
    linkinfo: Option<LinkInfo>,
}

#[derive(Debug, Deserialize)]
struct LinkInfo {
    #[serde(default)]
    info_kind: Option<String>,
    #[serde(default)]
    info_data: Option<serde_json::Value>,
}

impl Link {
    /// `bridge`, `tap`, `tun`, `veth`, ...; `device` for links without a
    /// kind (physical interfaces, loopback).
    pub(crate) fn kind(&self) -> String {
        let Some(info) = &self.linkinfo else {
            return "device".to_owned();
        };
        match info.info_kind.as_deref() {
            // tun and tap share the kind `tun`; the mode is in info_data.
            Some("tun") => info
                .info_data
                .as_ref()
                .and_then(|d| d.get("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("tun")
                .to_owned(),
            Some(kind) => kind.to_owned(),
            None => "device".to_owned(),
        }
    }
}

/// Every link in the current network namespace.
pub(crate) fn links(runner: &dyn Runner) -> Result<Vec<Link>, HostError> {
    let cmd = Cmd::new("ip").args(["-j", "-d", "link", "show"]);
    let argv = cmd.argv();
    let out = run(runner, cmd, || "list network links".to_owned(), HINT)?;
    parse_links(&out.stdout).map_err(|source| HostError::Json { argv, source })
}

pub(crate) fn parse_links(json: &[u8]) -> Result<Vec<Link>, serde_json::Error> {
    // Some iproute2 versions print nothing at all instead of `[]`.
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice(json)
}

pub(crate) fn find(runner: &dyn Runner, name: &str) -> Result<Option<Link>, HostError> {
    Ok(links(runner)?.into_iter().find(|l| l.ifname == name))
}

/// Refuses to act on a link that has banger's name but is something else.
fn expect_kind(link: &Link, wanted: &'static str) -> Result<(), HostError> {
    let found = link.kind();
    if found == wanted {
        Ok(())
    } else {
        Err(HostError::LinkKind {
            name: link.ifname.clone(),
            wanted,
            found,
        })
    }
}

fn ip<const N: usize>(
    runner: &dyn Runner,
    args: [&str; N],
    action: impl FnOnce() -> String,
) -> Result<(), HostError> {
    run(runner, Cmd::new("ip").args(args), action, HINT).map(drop)
}

pub(crate) fn ensure_bridge(
    runner: &dyn Runner,
    bridge: &BridgeName,
    address: Ipv4Cidr,
) -> Result<(), HostError> {
    let name = bridge.as_str();
    match find(runner, name)? {
        Some(link) => expect_kind(&link, "bridge")?,
        None => ip(
            runner,
            ["link", "add", "name", name, "type", "bridge"],
            || format!("create bridge {bridge}"),
        )?,
    }
    // `replace` is idempotent where `add` fails on an existing address.
    let cidr = address.to_string();
    ip(runner, ["addr", "replace", &cidr, "dev", name], || {
        format!("give bridge {bridge} the address {address}")
    })?;
    ip(runner, ["link", "set", "dev", name, "up"], || {
        format!("bring bridge {bridge} up")
    })
}

pub(crate) fn delete_bridge(runner: &dyn Runner, bridge: &BridgeName) -> Result<(), HostError> {
    let Some(link) = find(runner, bridge.as_str())? else {
        return Ok(());
    };
    expect_kind(&link, "bridge")?;
    ip(runner, ["link", "delete", "dev", bridge.as_str()], || {
        format!("delete bridge {bridge}")
    })
}

pub(crate) fn create_tap(
    runner: &dyn Runner,
    tap: &TapName,
    owner_uid: u32,
) -> Result<(), HostError> {
    if let Some(link) = find(runner, tap.as_str())? {
        // An existing tap is reused as it is (a previous daemon made it).
        return expect_kind(&link, "tap");
    }
    let uid = owner_uid.to_string();
    ip(
        runner,
        [
            "tuntap",
            "add",
            "dev",
            tap.as_str(),
            "mode",
            "tap",
            "user",
            &uid,
        ],
        || format!("create tap {tap} for uid {owner_uid}"),
    )
}

pub(crate) fn delete_tap(runner: &dyn Runner, tap: &TapName) -> Result<(), HostError> {
    let Some(link) = find(runner, tap.as_str())? else {
        return Ok(());
    };
    expect_kind(&link, "tap")?;
    // A VMM killed a moment ago may still hold the tap open while the kernel
    // closes its files: the deletion is refused as busy for that moment.
    let mut tries = 0;
    loop {
        let deleted = ip(
            runner,
            ["tuntap", "del", "dev", tap.as_str(), "mode", "tap"],
            || format!("delete tap {tap}"),
        );
        match deleted {
            Err(e) if tries < BUSY_RETRIES && is_busy(&e) => {
                tries += 1;
                tracing::debug!(%tap, tries, "tap still busy; retrying");
                std::thread::sleep(BUSY_PAUSE);
            }
            other => return other,
        }
    }
}

/// How often, and how far apart, a busy tap deletion is tried again: 3 s in all.
const BUSY_RETRIES: u32 = 30;
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

fn is_busy(e: &HostError) -> bool {
    matches!(e, HostError::Command { source: banger_sys::ProcessError::Failed { stderr, .. }, .. }
        if stderr.contains("Device or resource busy"))
}

pub(crate) fn attach_tap(
    runner: &dyn Runner,
    tap: &TapName,
    bridge: &BridgeName,
) -> Result<(), HostError> {
    ip(
        runner,
        [
            "link",
            "set",
            "dev",
            tap.as_str(),
            "master",
            bridge.as_str(),
        ],
        || format!("attach tap {tap} to bridge {bridge}"),
    )?;
    ip(runner, ["link", "set", "dev", tap.as_str(), "up"], || {
        format!("bring tap {tap} up")
    })
}

/// Taps named like banger's, sorted by number.
pub(crate) fn list_taps(runner: &dyn Runner) -> Result<Vec<TapName>, HostError> {
    let mut taps: Vec<TapName> = links(runner)?
        .into_iter()
        .filter(|l| l.kind() == "tap")
        .filter_map(|l| TapName::new(l.ifname).ok())
        .collect();
    taps.sort_by(|a, b| a.number().cmp(&b.number()).then_with(|| a.cmp(b)));
    Ok(taps)
}

#[cfg(test)]
mod tests {
    use super::super::runner::scripted::{Reply, ScriptedRunner};
    use super::*;

    /// Captured from `ip -j -d link show` (iproute2 6.1), trimmed.
    const LINKS: &str = r#"[
      {"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"link_type":"loopback"},
      {"ifindex":2,"ifname":"eth0","link_type":"ether"},
      {"ifindex":3,"ifname":"br-fc","link_type":"ether","linkinfo":{"info_kind":"bridge","info_data":{"stp_state":0}}},
      {"ifindex":4,"ifname":"fctap10","master":"br-fc","linkinfo":{"info_kind":"tun","info_data":{"type":"tap","pi":false,"persist":true,"user":"1000"},"info_slave_kind":"bridge"}},
      {"ifindex":5,"ifname":"fctap2","linkinfo":{"info_kind":"tun","info_data":{"type":"tap","persist":true}}},
      {"ifindex":6,"ifname":"fctap3","linkinfo":{"info_kind":"tun","info_data":{"type":"tun","persist":true}}},
      {"ifindex":7,"ifname":"fctap4","linkinfo":{"info_kind":"veth"}},
      {"ifindex":8,"ifname":"tap0","linkinfo":{"info_kind":"tun","info_data":{"type":"tap"}}}
    ]"#;

    fn host() -> ScriptedRunner {
        let r = ScriptedRunner::default();
        r.on("ip -j -d link show", Reply::Out(LINKS.to_owned()));
        r
    }

    #[test]
    fn only_banger_named_taps_are_listed() {
        let r = host();
        let taps = list_taps(&r).unwrap();
        assert_eq!(taps, [TapName::numbered(2), TapName::numbered(10)]);
    }

    #[test]
    fn kinds_come_from_linkinfo() {
        let links = parse_links(LINKS.as_bytes()).unwrap();
        let kinds: Vec<String> = links.iter().map(Link::kind).collect();
        assert_eq!(
            kinds,
            [
                "device", "device", "bridge", "tap", "tap", "tun", "veth", "tap"
            ]
        );
        assert!(parse_links(b"\n").unwrap().is_empty());
    }

    #[test]
    fn an_existing_bridge_is_only_addressed_and_brought_up() {
        let r = host();
        let bridge = BridgeName::new("br-fc").unwrap();
        ensure_bridge(&r, &bridge, "172.16.0.1/24".parse().unwrap()).unwrap();
        assert_eq!(
            r.argv(),
            [
                "ip -j -d link show",
                "ip addr replace 172.16.0.1/24 dev br-fc",
                "ip link set dev br-fc up"
            ]
        );
        let r = host();
        let bridge = BridgeName::new("br-fc-2").unwrap();
        ensure_bridge(&r, &bridge, "10.0.0.1/16".parse().unwrap()).unwrap();
        assert_eq!(r.argv()[1], "ip link add name br-fc-2 type bridge");
    }

    #[test]
    fn links_of_the_wrong_kind_are_left_alone() {
        let r = host();
        let err = create_tap(&r, &TapName::numbered(3), 1000).unwrap_err();
        assert!(
            matches!(&err, HostError::LinkKind { found, .. } if found == "tun"),
            "{err:?}"
        );
        let err = delete_tap(&r, &TapName::numbered(4)).unwrap_err();
        assert!(
            err.to_string().contains("fctap4 exists but is a veth"),
            "{err}"
        );
        assert_eq!(
            r.argv(),
            ["ip -j -d link show", "ip -j -d link show"],
            "nothing changed"
        );
    }

    #[test]
    fn a_busy_tap_is_deleted_once_its_vmm_lets_go() {
        let r = host();
        let busy = "ioctl(TUNSETPERSIST): Device or resource busy";
        r.once("ip tuntap del", Reply::Fail(busy.into()));
        r.once("ip tuntap del", Reply::Fail(busy.into()));
        delete_tap(&r, &TapName::numbered(10)).unwrap();
        let dels = r
            .argv()
            .iter()
            .filter(|a| a.starts_with("ip tuntap del"))
            .count();
        assert_eq!(dels, 3, "retried while busy");

        // Another failure is not retried.
        let r = host();
        r.on(
            "ip tuntap del",
            Reply::Fail("Operation not permitted".into()),
        );
        assert!(delete_tap(&r, &TapName::numbered(10)).is_err());
        let dels = r
            .argv()
            .iter()
            .filter(|a| a.starts_with("ip tuntap del"))
            .count();
        assert_eq!(dels, 1);
    }

    #[test]
    fn taps_are_created_once_and_deleted_only_if_present() {
        let r = host();
        create_tap(&r, &TapName::numbered(2), 1000).unwrap();
        create_tap(&r, &TapName::numbered(7), 1000).unwrap();
        delete_tap(&r, &TapName::numbered(9)).unwrap();
        delete_tap(&r, &TapName::numbered(10)).unwrap();
        delete_bridge(&r, &BridgeName::new("br-fc-gone").unwrap()).unwrap();
        let changes: Vec<String> = r
            .argv()
            .into_iter()
            .filter(|a| !a.starts_with("ip -j"))
            .collect();
        assert_eq!(
            changes,
            [
                "ip tuntap add dev fctap7 mode tap user 1000",
                "ip tuntap del dev fctap10 mode tap"
            ]
        );
    }

    #[test]
    fn attaching_enslaves_then_brings_up() {
        let r = ScriptedRunner::default();
        attach_tap(
            &r,
            &TapName::numbered(1),
            &BridgeName::new("br-fc").unwrap(),
        )
        .unwrap();
        assert_eq!(
            r.argv(),
            [
                "ip link set dev fctap1 master br-fc",
                "ip link set dev fctap1 up"
            ]
        );
    }

    #[test]
    fn a_failing_ip_names_the_action_and_keeps_stderr() {
        let r = host();
        r.on(
            "ip link add",
            Reply::Fail("RTNETLINK answers: Operation not permitted".to_owned()),
        );
        let err = ensure_bridge(
            &r,
            &BridgeName::new("br-fc-x").unwrap(),
            "10.0.0.1/24".parse().unwrap(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("cannot create bridge br-fc-x") && msg.contains("CAP_NET_ADMIN"),
            "{msg}"
        );
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            source.contains("ip link add name br-fc-x type bridge")
                && source.contains("not permitted"),
            "{source}"
        );
    }
}

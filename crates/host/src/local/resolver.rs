//! Routing the `vm` domain to banger's DNS server through systemd-resolved
//! (SPEC §8): per-link DNS on the bridge, with `~vm` as a routing-only
//! domain, so only `.vm` names go there. Hosts without systemd-resolved get
//! [`HostError::ResolverUnavailable`], which the daemon reports as a warning
//! pointing at the dnsmasq / resolv.conf guide.

use std::net::SocketAddrV4;

use banger_sys::{Cmd, ProcessError};

use super::link;
use super::runner::Runner;
use crate::error::HostError;
use crate::validate::BridgeName;

const HINT: &str = "is systemd-resolved running? `resolvectl status` shows it";

/// The routing-only domain: `~` means "send these names here", not "append
/// to short names".
const ROUTE_DOMAIN: &str = "~vm";

fn resolvectl(
    runner: &dyn Runner,
    args: &[&str],
    bridge: &BridgeName,
    what: &str,
) -> Result<(), HostError> {
    let cmd = Cmd::new("resolvectl").args(args);
    match runner.run(&cmd) {
        Ok(_) => Ok(()),
        Err(ProcessError::NotFound { .. }) => Err(HostError::ResolverUnavailable {
            bridge: bridge.clone(),
        }),
        Err(source) => Err(HostError::Command {
            action: format!("{what} on {bridge}"),
            hint: HINT,
            source,
        }),
    }
}

pub(crate) fn route(
    runner: &dyn Runner,
    bridge: &BridgeName,
    dns: SocketAddrV4,
) -> Result<(), HostError> {
    let server = dns.to_string();
    resolvectl(
        runner,
        &["dns", bridge.as_str(), &server],
        bridge,
        "set banger's DNS server",
    )?;
    resolvectl(
        runner,
        &["domain", bridge.as_str(), ROUTE_DOMAIN],
        bridge,
        "route the .vm domain",
    )
}

pub(crate) fn unroute(runner: &dyn Runner, bridge: &BridgeName) -> Result<(), HostError> {
    // Per-link settings vanish with the link; resolvectl would fail on it.
    if link::find(runner, bridge.as_str())?.is_none() {
        return Ok(());
    }
    match resolvectl(
        runner,
        &["revert", bridge.as_str()],
        bridge,
        "revert DNS settings",
    ) {
        // Without resolvectl nothing can have been routed.
        Err(HostError::ResolverUnavailable { .. }) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::runner::scripted::{Reply, ScriptedRunner};
    use super::*;

    fn br() -> BridgeName {
        BridgeName::new("br-fc").unwrap()
    }

    const DNS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 42069);
    const BRIDGE_UP: &str = r#"[{"ifname":"br-fc","linkinfo":{"info_kind":"bridge"}}]"#;

    #[test]
    fn routing_sets_the_server_and_the_routing_domain() {
        let r = ScriptedRunner::default();
        route(&r, &br(), DNS).unwrap();
        assert_eq!(
            r.argv(),
            [
                "resolvectl dns br-fc 127.0.0.1:42069",
                "resolvectl domain br-fc ~vm"
            ]
        );
    }

    #[test]
    fn without_resolvectl_routing_is_unavailable_and_unrouting_is_done() {
        let r = ScriptedRunner::default();
        r.on("resolvectl", Reply::Missing);
        r.on("ip -j", Reply::Out(BRIDGE_UP.into()));
        let err = route(&r, &br(), DNS).unwrap_err();
        assert!(
            matches!(&err, HostError::ResolverUnavailable { bridge } if bridge == &br()),
            "{err:?}"
        );
        assert!(err.to_string().contains("dnsmasq"), "{err}");
        unroute(&r, &br()).unwrap();
    }

    #[test]
    fn unrouting_reverts_the_link_only_if_it_exists() {
        let r = ScriptedRunner::default();
        r.on("ip -j", Reply::Out(BRIDGE_UP.into()));
        unroute(&r, &br()).unwrap();
        assert_eq!(r.argv(), ["ip -j -d link show", "resolvectl revert br-fc"]);

        let r = ScriptedRunner::default();
        r.on("ip -j", Reply::Out("[]".into()));
        unroute(&r, &br()).unwrap();
        assert_eq!(r.argv(), ["ip -j -d link show"]);
    }

    #[test]
    fn a_failing_resolved_is_a_command_error() {
        let r = ScriptedRunner::default();
        r.on("resolvectl", Reply::Fail("Failed to set DNS configuration: Unit dbus-org.freedesktop.resolve1.service not found.".into()));
        let err = route(&r, &br(), DNS).unwrap_err();
        assert!(matches!(err, HostError::Command { .. }), "{err:?}");
    }
}

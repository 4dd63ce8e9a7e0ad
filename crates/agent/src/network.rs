//! The guest NIC from `banger.ip=`/`banger.gw=`/`banger.dns=`, configured
//! with the image's own `ip` (one logged argv per change, like the host
//! side), and `/etc/resolv.conf`; and the same NIC moved to a new MAC and
//! address when `identity` refreshes a copy restored from a snapshot.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

use crate::boot_config::NetConfig;
use crate::fsutil::{self, FsError};
use crate::init::wait;
use crate::run_cmd::{self, RunError};

/// Written once the NIC is configured, so later steps of the same boot
/// (the minimal image's init, the systemd image's `banger-network` unit)
/// know there is nothing left to do. Under `/run`: gone with the boot.
pub const CONFIGURED_MARKER: &str = "run/banger/network-configured";

/// Whether this boot's network was configured already (under `root`).
pub fn configured(root: &Path) -> bool {
    root.join(CONFIGURED_MARKER).exists()
}

/// How long to wait for the NIC's driver to register it.
const IFACE_WAIT: Duration = Duration::from_secs(5);

/// Why the network could not be configured.
#[derive(Debug, Error)]
pub enum NetworkError {
    #[error("interface {iface} did not appear within {} s", IFACE_WAIT.as_secs())]
    NoInterface { iface: String },
    #[error(transparent)]
    Ip(#[from] RunError),
    #[error(transparent)]
    ResolvConf(#[from] FsError),
}

/// The `ip` invocations for `net`, in order. Using `replace` makes them
/// idempotent, so the `network` mode can run again after a restart.
pub fn ip_commands(net: &NetConfig) -> Vec<Vec<String>> {
    let mut commands = vec![link_up(&net.iface), address(net)];
    commands.extend(default_route(net));
    commands
}

/// The `ip` invocations that move the NIC of a running guest (a copy
/// restored from a snapshot, still holding its parent's) to `mac` and
/// `net`: the MAC changes with the link down, then the old global
/// addresses go (and the routes through them), and the new address and
/// default route come as at boot ([`ip_commands`]).
pub fn readdress_commands(net: &NetConfig, mac: &str) -> Vec<Vec<String>> {
    let iface = net.iface.as_str();
    let mut commands = vec![
        argv(&["ip", "link", "set", "dev", iface, "down"]),
        argv(&["ip", "link", "set", "dev", iface, "address", mac]),
        link_up(iface),
        argv(&["ip", "addr", "flush", "dev", iface, "scope", "global"]),
        address(net),
    ];
    commands.extend(default_route(net));
    commands
}

fn link_up(iface: &str) -> Vec<String> {
    argv(&["ip", "link", "set", "dev", iface, "up"])
}

fn address(net: &NetConfig) -> Vec<String> {
    argv(&[
        "ip",
        "addr",
        "replace",
        &format!("{}/{}", net.addr, net.prefix),
        "dev",
        &net.iface,
    ])
}

fn default_route(net: &NetConfig) -> Option<Vec<String>> {
    let gw = net.gateway?;
    Some(argv(&[
        "ip",
        "route",
        "replace",
        "default",
        "via",
        &gw.to_string(),
        "dev",
        &net.iface,
    ]))
}

/// Runs `commands` in order, stopping at the first that fails.
fn run_all(commands: Vec<Vec<String>>) -> Result<(), RunError> {
    for command in commands {
        let refs: Vec<&str> = command.iter().map(String::as_str).collect();
        run_cmd::run(&refs)?;
    }
    Ok(())
}

/// Gives the NIC of a running guest the MAC `mac` and the address and
/// default route of `net` (see [`readdress_commands`]). `/etc/resolv.conf`
/// is left alone.
pub fn readdress(net: &NetConfig, mac: &str) -> Result<(), NetworkError> {
    run_all(readdress_commands(net, mac))?;
    crate::info!(
        "{}: now {mac}, {}/{} via {}",
        net.iface,
        net.addr,
        net.prefix,
        net.gateway
            .map_or_else(|| "no gateway".to_string(), |g| g.to_string())
    );
    Ok(())
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `/etc/resolv.conf` for `dns`, or `None` to leave the file alone.
pub fn resolv_conf(dns: &[IpAddr]) -> Option<String> {
    if dns.is_empty() {
        return None;
    }
    let mut text = String::from("# written by banger-agent from banger.dns=\n");
    for server in dns {
        text.push_str(&format!("nameserver {server}\n"));
    }
    Some(text)
}

/// Brings up `lo` and, when configured, the NIC with its address, route and
/// resolvers (`/etc/resolv.conf` under `root`).
pub fn configure(net: Option<&NetConfig>, root: &Path) -> Result<(), NetworkError> {
    run_cmd::run(&["ip", "link", "set", "dev", "lo", "up"])?;
    let Some(net) = net else {
        crate::info!("no banger.ip: leaving the network unconfigured");
        return Ok(());
    };
    let sys_entry = Path::new("/sys/class/net").join(&net.iface);
    if wait::wait_for_path(&sys_entry, IFACE_WAIT, wait::POLL).is_err() {
        return Err(NetworkError::NoInterface {
            iface: net.iface.clone(),
        });
    }
    run_all(ip_commands(net))?;
    if let Some(text) = resolv_conf(&net.dns) {
        // Replaces a symlink (e.g. to systemd-resolved's stub) instead of
        // writing through it.
        fsutil::write_atomic(&root.join("etc/resolv.conf"), text.as_bytes(), 0o644)?;
    }
    crate::info!(
        "{}: {}/{} via {}",
        net.iface,
        net.addr,
        net.prefix,
        net.gateway
            .map_or_else(|| "no gateway".to_string(), |g| g.to_string())
    );
    let marker = root.join(CONFIGURED_MARKER);
    if let Some(dir) = marker.parent() {
        fsutil::ensure_dir(dir, 0o755)?;
    }
    fsutil::write_atomic(&marker, b"", 0o644)?;
    Ok(())
}

/// Why the `network` mode failed.
#[derive(Debug, Error)]
pub enum NetworkModeError {
    #[error("cannot read {path}: {source}", path = crate::cmdline::PROC_CMDLINE)]
    Cmdline { source: std::io::Error },
    #[error(transparent)]
    Config(#[from] crate::boot_config::BootConfigError),
    #[error(transparent)]
    Network(#[from] NetworkError),
}

/// The `network` mode: apply the kernel command line's network settings
/// (for images whose init is systemd, from a oneshot unit).
pub fn run_mode() -> Result<(), NetworkModeError> {
    let text = std::fs::read_to_string(crate::cmdline::PROC_CMDLINE)
        .map_err(|source| NetworkModeError::Cmdline { source })?;
    let config =
        crate::boot_config::BootConfig::from_cmdline(&crate::cmdline::Cmdline::parse(&text))?;
    configure(config.net.as_ref(), Path::new("/"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn net() -> NetConfig {
        NetConfig {
            iface: "eth0".into(),
            addr: Ipv4Addr::new(172, 16, 0, 2),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(172, 16, 0, 1)),
            dns: vec!["1.1.1.1".parse().unwrap()],
        }
    }

    #[test]
    fn commands_bring_up_address_and_route() {
        let commands = ip_commands(&net());
        let joined: Vec<String> = commands.iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            joined,
            [
                "ip link set dev eth0 up",
                "ip addr replace 172.16.0.2/24 dev eth0",
                "ip route replace default via 172.16.0.1 dev eth0",
            ]
        );
    }

    #[test]
    fn readdressing_changes_the_mac_link_down_then_replaces_the_addresses() {
        let mut n = net();
        n.addr = Ipv4Addr::new(172, 16, 0, 3);
        let joined: Vec<String> = readdress_commands(&n, "06:00:ac:10:00:03")
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            joined,
            [
                "ip link set dev eth0 down",
                "ip link set dev eth0 address 06:00:ac:10:00:03",
                "ip link set dev eth0 up",
                "ip addr flush dev eth0 scope global",
                "ip addr replace 172.16.0.3/24 dev eth0",
                "ip route replace default via 172.16.0.1 dev eth0",
            ]
        );
    }

    #[test]
    fn no_gateway_no_route() {
        let mut n = net();
        n.gateway = None;
        assert_eq!(ip_commands(&n).len(), 2);
    }

    #[test]
    fn resolv_conf_lists_every_server() {
        let text = resolv_conf(&["1.1.1.1".parse().unwrap(), "::1".parse().unwrap()]).unwrap();
        let servers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("nameserver "))
            .collect();
        assert_eq!(servers, ["nameserver 1.1.1.1", "nameserver ::1"]);
        assert_eq!(resolv_conf(&[]), None);
    }
}

//! Doctor rows for host networking: the bridge, NAT tooling, the DNS port.

use std::net::{SocketAddrV4, UdpSocket};
use std::time::Duration;

use banger_config::Config;
use banger_sys::{Cmd, find_program};

use super::{Check, Status, check};

pub fn rows(config: &Config, paths: &banger_config::Paths) -> Vec<Check> {
    vec![
        bridge(config),
        nat(|p| find_program(p).is_some()),
        dns(config.dns_listen()),
        ssh_include(paths),
    ]
}

/// Whether plain `ssh NAME.vm` uses banger's key and pinned host keys.
fn ssh_include(paths: &banger_config::Paths) -> Check {
    use banger_net::ssh::{IncludeStatus, include_status, user_ssh_config};
    let Some(home) = std::env::var_os("HOME") else {
        return check(
            "ssh-config",
            Status::Warn,
            "HOME is not set: cannot look at ~/.ssh/config",
        );
    };
    let user = user_ssh_config(std::path::Path::new(&home));
    match include_status(&user, &paths.ssh_config) {
        Ok(IncludeStatus::Current) => check(
            "ssh-config",
            Status::Pass,
            format!("{} includes banger's config", user.display()),
        ),
        Ok(IncludeStatus::Missing) => check(
            "ssh-config",
            Status::Warn,
            format!(
                "{} does not include banger's config: `banger ssh-config --install` makes `ssh NAME.vm` work",
                user.display()
            ),
        ),
        Ok(IncludeStatus::Outdated) => check(
            "ssh-config",
            Status::Warn,
            format!(
                "banger's block in {} is outdated: run `banger ssh-config --install`",
                user.display()
            ),
        ),
        Err(e) => check("ssh-config", Status::Fail, banger_api::error_chain(&e)),
    }
}

fn bridge(config: &Config) -> Check {
    let name = config.bridge_name();
    let wanted = format!("{}/{}", config.bridge_ip(), config.cidr_prefix());
    if find_program("ip").is_none() {
        return check("bridge", Status::Fail, "`ip` not found: install iproute2");
    }
    match Cmd::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", name])
        .run()
    {
        Ok(out) => {
            let text = out.stdout_str();
            if text.contains(&format!("inet {wanted} ")) {
                check("bridge", Status::Pass, format!("{name} has {wanted}"))
            } else {
                check(
                    "bridge",
                    Status::Warn,
                    format!(
                        "{name} exists without {wanted}; banger sets the address when the next VM starts"
                    ),
                )
            }
        }
        Err(_) => check(
            "bridge",
            Status::Pass,
            format!(
                "{name} not created yet; banger creates it with {wanted} when the first VM starts"
            ),
        ),
    }
}

fn nat(present: impl Fn(&str) -> bool) -> Check {
    if present("nft") {
        check(
            "nat",
            Status::Pass,
            "nftables: per-VM rules in banger's own table `ip banger`",
        )
    } else if present("iptables") {
        check(
            "nat",
            Status::Pass,
            "iptables (no nft): per-VM rules in banger's own chains",
        )
    } else {
        check(
            "nat",
            Status::Warn,
            "neither nft nor iptables found: `--nat` cannot work; install nftables",
        )
    }
}

/// Free, served by bangerd, or taken by someone else.
fn dns(addr: SocketAddrV4) -> Check {
    match UdpSocket::bind(addr) {
        Ok(_) => check(
            "dns",
            Status::Pass,
            format!("{addr} is free; bangerd serves the .vm zone there while it runs"),
        ),
        Err(bind_err) => {
            if answers_for_vm_zone(addr) {
                check(
                    "dns",
                    Status::Pass,
                    format!("bangerd answers for .vm on {addr}"),
                )
            } else {
                check(
                    "dns",
                    Status::Fail,
                    format!(
                        "{addr} is taken by another program ({bind_err}); free it or set dns_listen in config.toml"
                    ),
                )
            }
        }
    }
}

/// Asks `addr` for the SOA of `vm`: banger's server answers authoritatively.
fn answers_for_vm_zone(addr: SocketAddrV4) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
    // id 0xb4e6, RD, one question: "vm" SOA IN.
    let query = [
        0xb4, 0xe6, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'v', b'm', 0, 0, 6, 0, 1,
    ];
    if sock.send_to(&query, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    match sock.recv(&mut buf) {
        // Same id, a response (QR), authoritative (AA), NOERROR.
        Ok(n) if n >= 12 => buf[..2] == query[..2] && buf[2] & 0x84 == 0x84 && buf[3] & 0x0f == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_prefers_nft() {
        assert!(nat(|_| true).detail.starts_with("nftables"));
        assert!(nat(|p| p == "iptables").detail.starts_with("iptables"));
        assert_eq!(nat(|_| false).status, Status::Warn);
    }

    #[test]
    fn dns_port_taken_by_a_stranger_fails() {
        let squatter = UdpSocket::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(addr) = squatter.local_addr().unwrap() else {
            unreachable!()
        };
        let c = dns(addr);
        assert_eq!(c.status, Status::Fail, "{}", c.detail);
        drop(squatter);
        assert_eq!(dns(addr).status, Status::Pass);
    }
}

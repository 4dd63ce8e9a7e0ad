//! What the host tells the guest through `banger.*` kernel parameters, as
//! validated types. The guest kernel has no `ip=` autoconfiguration
//! (`IP_PNP` is off in Debian's cloud kernel), so banger's init reads these.
//!
//! | key                 | default       | meaning                                        |
//! |---------------------|---------------|------------------------------------------------|
//! | `banger.root`       | `/dev/vda`    | root block device                              |
//! | `banger.rootfstype` | `ext4`        | its filesystem                                 |
//! | `banger.rootwait`   | `10`          | seconds to wait for the device to appear       |
//! | `ro` / `rw`         | `rw`          | mount the root read-only / read-write          |
//! | `banger.init`       | `/sbin/init`  | program exec'd as PID 1 after the switch       |
//! | `banger.ip`         | none          | `ADDR/PREFIX` of the guest NIC (no NIC setup when absent) |
//! | `banger.gw`         | none          | default gateway                                |
//! | `banger.dns`        | none          | comma-separated nameservers                    |
//! | `banger.iface`      | `eth0`        | the NIC to configure                           |
//! | `banger.workdisk`   | `/dev/vdb`    | work disk mounted at `/root` (`none`: none)    |
//! | `banger.modules`    | none          | read-only disk of the kernel's modules, mounted at `/lib/modules/<release>` |
//! | `banger.halt`       | `poweroff`    | `poweroff`, or `reboot` for VMMs that stop on reboot (Firecracker) |
//! | `banger.channel`    | vsock         | `serial`: the service's channel is the virtio-serial port (QEMU; read by `service`) |

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::cmdline::Cmdline;

pub const DEFAULT_ROOT_DEVICE: &str = "/dev/vda";
pub const DEFAULT_ROOT_FSTYPE: &str = "ext4";
pub const DEFAULT_ROOT_WAIT: Duration = Duration::from_secs(10);
pub const DEFAULT_INIT: &str = "/sbin/init";
pub const DEFAULT_IFACE: &str = "eth0";
pub const DEFAULT_WORKDISK: &str = "/dev/vdb";

/// The longest root wait accepted, so a typo cannot stall a boot for hours.
const MAX_ROOT_WAIT: Duration = Duration::from_secs(300);

/// A `banger.*` parameter that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BootConfigError {
    #[error("kernel parameter {key}={value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("kernel parameter {key} needs {needs}")]
    Requires {
        key: &'static str,
        needs: &'static str,
    },
}

/// How the guest stops when it is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HaltAction {
    /// `reboot(RB_POWER_OFF)`: QEMU (ACPI) ends the VM.
    #[default]
    PowerOff,
    /// `reboot(RB_AUTOBOOT)`: Firecracker has no power-off device and exits
    /// when the guest reboots (with `reboot=k`).
    Reboot,
}

/// The root filesystem to switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootConfig {
    pub device: PathBuf,
    pub fstype: String,
    pub read_only: bool,
    pub wait: Duration,
}

/// Static IPv4 configuration of the guest NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    pub iface: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<IpAddr>,
}

/// Everything `banger.*` says, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    pub root: RootConfig,
    pub init: PathBuf,
    pub net: Option<NetConfig>,
    pub workdisk: Option<PathBuf>,
    /// The kernel's modules disk (ext4, read-only), when the host has one.
    pub modules: Option<PathBuf>,
    pub halt: HaltAction,
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            root: RootConfig {
                device: PathBuf::from(DEFAULT_ROOT_DEVICE),
                fstype: DEFAULT_ROOT_FSTYPE.into(),
                read_only: false,
                wait: DEFAULT_ROOT_WAIT,
            },
            init: PathBuf::from(DEFAULT_INIT),
            net: None,
            workdisk: Some(PathBuf::from(DEFAULT_WORKDISK)),
            modules: None,
            halt: HaltAction::PowerOff,
        }
    }
}

impl BootConfig {
    /// Reads the `banger.*` keys of `cmdline`; absent keys keep their defaults.
    pub fn from_cmdline(cmdline: &Cmdline) -> Result<BootConfig, BootConfigError> {
        let mut config = BootConfig::default();
        if let Some(v) = cmdline.get("banger.root") {
            config.root.device = device_path("banger.root", v)?;
        }
        if let Some(v) = cmdline.get("banger.rootfstype") {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(invalid(
                    "banger.rootfstype",
                    v,
                    "not a filesystem type name",
                ));
            }
            config.root.fstype = v.to_string();
        }
        if let Some(v) = cmdline.get("banger.rootwait") {
            config.root.wait = seconds("banger.rootwait", v, MAX_ROOT_WAIT)?;
        }
        config.root.read_only = cmdline.last_flag_of(&["ro", "rw"]) == Some("ro");
        if let Some(v) = cmdline.get("banger.init") {
            if !v.starts_with('/') {
                return Err(invalid("banger.init", v, "must be an absolute path"));
            }
            config.init = PathBuf::from(v);
        }
        config.net = net_config(cmdline)?;
        if let Some(v) = cmdline.get("banger.workdisk") {
            config.workdisk = match v {
                "none" => None,
                _ => Some(device_path("banger.workdisk", v)?),
            };
        }
        if let Some(v) = cmdline.get("banger.modules") {
            config.modules = Some(device_path("banger.modules", v)?);
        }
        if let Some(v) = cmdline.get("banger.halt") {
            config.halt = match v {
                "poweroff" => HaltAction::PowerOff,
                "reboot" => HaltAction::Reboot,
                _ => return Err(invalid("banger.halt", v, "expected poweroff or reboot")),
            };
        }
        Ok(config)
    }

    /// Reads only `banger.halt`, for error paths that must stop the guest
    /// even when another key is invalid.
    pub fn halt_from_cmdline(cmdline: &Cmdline) -> HaltAction {
        match cmdline.get("banger.halt") {
            Some("reboot") => HaltAction::Reboot,
            _ => HaltAction::PowerOff,
        }
    }
}

fn net_config(cmdline: &Cmdline) -> Result<Option<NetConfig>, BootConfigError> {
    let Some(ip) = cmdline.get("banger.ip") else {
        for key in ["banger.gw", "banger.dns"] {
            if cmdline.get(key).is_some() {
                return Err(BootConfigError::Requires {
                    key,
                    needs: "banger.ip",
                });
            }
        }
        return Ok(None);
    };
    let (addr, prefix) = ip
        .split_once('/')
        .ok_or_else(|| invalid("banger.ip", ip, "expected ADDRESS/PREFIX"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| invalid("banger.ip", ip, "not an IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .ok_or_else(|| invalid("banger.ip", ip, "prefix must be 1..=32"))?;
    let gateway = cmdline
        .get("banger.gw")
        .map(|gw| {
            gw.parse::<Ipv4Addr>()
                .map_err(|_| invalid("banger.gw", gw, "not an IPv4 address"))
        })
        .transpose()?;
    let dns = match cmdline.get("banger.dns") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| invalid("banger.dns", list, "not a list of IP addresses"))
            })
            .collect::<Result<_, _>>()?,
    };
    let iface = cmdline.get("banger.iface").unwrap_or(DEFAULT_IFACE);
    if !valid_iface(iface) {
        return Err(invalid("banger.iface", iface, "not an interface name"));
    }
    Ok(Some(NetConfig {
        iface: iface.to_string(),
        addr,
        prefix,
        gateway,
        dns,
    }))
}

/// Linux interface names: 1..=15 bytes, no `/`, `:` or whitespace.
fn valid_iface(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn device_path(key: &'static str, value: &str) -> Result<PathBuf, BootConfigError> {
    let path = Path::new(value);
    if !value.starts_with("/dev/") || path.components().any(|c| c.as_os_str() == "..") {
        return Err(invalid(key, value, "must be a path under /dev/"));
    }
    Ok(path.to_path_buf())
}

fn seconds(key: &'static str, value: &str, max: Duration) -> Result<Duration, BootConfigError> {
    let secs: f64 = value
        .parse()
        .map_err(|_| invalid(key, value, "not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 || secs > max.as_secs_f64() {
        return Err(invalid(
            key,
            value,
            &format!("must be between 0 and {}", max.as_secs()),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn invalid(key: &'static str, value: &str, reason: &str) -> BootConfigError {
    BootConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BootConfig, BootConfigError> {
        BootConfig::from_cmdline(&Cmdline::parse(s))
    }

    #[test]
    fn defaults_apply_without_banger_keys() {
        let c = parse("console=ttyS0 reboot=k").unwrap();
        assert_eq!(c, BootConfig::default());
        assert_eq!(c.root.device, Path::new("/dev/vda"));
        assert_eq!(c.root.fstype, "ext4");
        assert!(!c.root.read_only);
        assert_eq!(c.init, Path::new("/sbin/init"));
        assert_eq!(c.net, None);
        assert_eq!(c.workdisk.as_deref(), Some(Path::new("/dev/vdb")));
        assert_eq!(c.modules, None);
        assert_eq!(c.halt, HaltAction::PowerOff);
    }

    #[test]
    fn reads_every_key() {
        let c = parse(
            "ro banger.root=/dev/vdc banger.rootfstype=xfs banger.rootwait=2.5 \
             banger.init=/usr/local/lib/banger/banger-agent banger.ip=172.16.0.2/24 \
             banger.gw=172.16.0.1 banger.dns=1.1.1.1,2606:4700:4700::1111 banger.iface=ens3 \
             banger.workdisk=none banger.modules=/dev/vdd banger.halt=reboot",
        )
        .unwrap();
        assert_eq!(c.root.device, Path::new("/dev/vdc"));
        assert_eq!(c.root.fstype, "xfs");
        assert_eq!(c.root.wait, Duration::from_millis(2500));
        assert!(c.root.read_only);
        assert_eq!(c.init, Path::new("/usr/local/lib/banger/banger-agent"));
        let net = c.net.unwrap();
        assert_eq!(net.iface, "ens3");
        assert_eq!(net.addr, Ipv4Addr::new(172, 16, 0, 2));
        assert_eq!(net.prefix, 24);
        assert_eq!(net.gateway, Some(Ipv4Addr::new(172, 16, 0, 1)));
        assert_eq!(
            net.dns,
            vec![
                "1.1.1.1".parse::<IpAddr>().unwrap(),
                "2606:4700:4700::1111".parse().unwrap()
            ]
        );
        assert_eq!(c.workdisk, None);
        assert_eq!(c.modules.as_deref(), Some(Path::new("/dev/vdd")));
        assert_eq!(c.halt, HaltAction::Reboot);
    }

    #[test]
    fn network_without_gateway_or_dns() {
        let net = parse("banger.ip=10.0.0.5/8").unwrap().net.unwrap();
        assert_eq!(net.iface, "eth0");
        assert_eq!(net.gateway, None);
        assert!(net.dns.is_empty());
    }

    #[test]
    fn rw_after_ro_wins() {
        assert!(!parse("ro rw").unwrap().root.read_only);
        assert!(parse("rw ro").unwrap().root.read_only);
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        let cases = [
            ("banger.ip=172.16.0.2", "banger.ip"),
            ("banger.ip=172.16.0.300/24", "banger.ip"),
            ("banger.ip=172.16.0.2/33", "banger.ip"),
            ("banger.ip=172.16.0.2/0", "banger.ip"),
            ("banger.ip=::1/64", "banger.ip"),
            ("banger.ip=10.0.0.2/24 banger.gw=gw", "banger.gw"),
            ("banger.ip=10.0.0.2/24 banger.dns=1.1.1.1,x", "banger.dns"),
            ("banger.ip=10.0.0.2/24 banger.iface=a/b", "banger.iface"),
            (
                "banger.ip=10.0.0.2/24 banger.iface=averyveryverylongname",
                "banger.iface",
            ),
            ("banger.root=vda", "banger.root"),
            ("banger.root=/dev/../etc/passwd", "banger.root"),
            ("banger.rootfstype=ext4;x", "banger.rootfstype"),
            ("banger.rootwait=-1", "banger.rootwait"),
            ("banger.rootwait=9999", "banger.rootwait"),
            ("banger.rootwait=soon", "banger.rootwait"),
            ("banger.init=sbin/init", "banger.init"),
            ("banger.workdisk=/tmp/x", "banger.workdisk"),
            ("banger.modules=/dev/../x", "banger.modules"),
            ("banger.modules=vdc", "banger.modules"),
            ("banger.halt=explode", "banger.halt"),
        ];
        for (line, key) in cases {
            match parse(line) {
                Err(BootConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn gateway_or_dns_without_address_is_an_error() {
        assert_eq!(
            parse("banger.gw=10.0.0.1"),
            Err(BootConfigError::Requires {
                key: "banger.gw",
                needs: "banger.ip"
            })
        );
        assert_eq!(
            parse("banger.dns=1.1.1.1"),
            Err(BootConfigError::Requires {
                key: "banger.dns",
                needs: "banger.ip"
            })
        );
    }

    #[test]
    fn halt_is_readable_even_when_other_keys_are_bad() {
        let c = Cmdline::parse("banger.ip=bad banger.halt=reboot");
        assert!(BootConfig::from_cmdline(&c).is_err());
        assert_eq!(BootConfig::halt_from_cmdline(&c), HaltAction::Reboot);
        assert_eq!(
            BootConfig::halt_from_cmdline(&Cmdline::parse("")),
            HaltAction::PowerOff
        );
    }
}

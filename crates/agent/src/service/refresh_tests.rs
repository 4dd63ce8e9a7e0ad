//! Tests of the refresh parts of `identity`: each bad field is refused with
//! its own error, the machine id is written like the other files, and
//! nothing reaches the running kernel without `apply_live`.

use std::fs;
use std::net::Ipv4Addr;

use super::*;
use crate::protocol::IdentityResult;
use crate::service::identity::{self, IdentityError, validate};
use crate::service::test_support::{config, mode};

const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

fn network() -> NetworkIdentity {
    NetworkIdentity {
        iface: "eth0".into(),
        mac: "06:00:AC:10:00:03".into(),
        address: "172.16.0.3/24".into(),
        gateway: "172.16.0.1".into(),
    }
}

fn seed(len: usize) -> String {
    base64::encode(&vec![0x5a; len])
}

/// A refresh of every part: what the host sends a copy of a snapshot.
fn full() -> IdentityRequest {
    IdentityRequest {
        machine_id: Some(MACHINE_ID.into()),
        network: Some(network()),
        entropy: Some(seed(64)),
        realtime_ns: Some(1_767_225_600_123_456_789),
        ..IdentityRequest::default()
    }
}

fn with_network(change: impl FnOnce(&mut NetworkIdentity)) -> IdentityRequest {
    let mut net = network();
    change(&mut net);
    IdentityRequest {
        network: Some(net),
        ..IdentityRequest::default()
    }
}

#[test]
fn each_part_alone_is_something_to_change() {
    validate(&full()).unwrap();
    for request in [
        IdentityRequest {
            machine_id: Some(MACHINE_ID.into()),
            ..IdentityRequest::default()
        },
        with_network(|_| {}),
        IdentityRequest {
            entropy: Some(seed(32)),
            ..IdentityRequest::default()
        },
        IdentityRequest {
            realtime_ns: Some(MIN_REALTIME_NS),
            ..IdentityRequest::default()
        },
    ] {
        assert_eq!(validate(&request), Ok(()), "{request:?}");
    }
    let err = validate(&IdentityRequest::default()).unwrap_err();
    assert!(err.to_string().contains("realtime_ns"), "{err}");
}

#[test]
fn bad_machine_ids_are_refused() {
    for bad in [
        "",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdeg",
        "00000000000000000000000000000000",
        "0123456789abcdef-123456789abcdef",
    ] {
        let request = IdentityRequest {
            machine_id: Some(bad.into()),
            ..IdentityRequest::default()
        };
        assert_eq!(
            validate(&request),
            Err(InvalidIdentity::MachineId(bad.into())),
            "{bad:?}"
        );
    }
}

#[test]
fn bad_interface_names_are_refused() {
    for bad in [
        "",
        "a23456789012345x",
        "eth 0",
        "a/b",
        "eth0:1",
        ".",
        "..",
        "ét0",
    ] {
        let request = with_network(|n| n.iface = bad.into());
        assert_eq!(
            validate(&request),
            Err(InvalidIdentity::Iface(bad.into())),
            "{bad:?}"
        );
    }
    for good in ["eth0", "ens3", "br-lan_1.2", "a23456789012345"] {
        assert_eq!(validate(&with_network(|n| n.iface = good.into())), Ok(()));
    }
}

#[test]
fn bad_macs_are_refused() {
    for bad in [
        "",
        "06:00:ac:10:00",
        "06:00:ac:10:00:03:04",
        "06-00-ac-10-00-03",
        "6:0:ac:10:0:3",
        "06:00:ac:10:00:0g",
        "06:00:ac:10:00:+3",
        "01:00:5e:00:00:01",
        "ff:ff:ff:ff:ff:ff",
        "00:00:00:00:00:00",
    ] {
        let request = with_network(|n| n.mac = bad.into());
        assert_eq!(
            validate(&request),
            Err(InvalidIdentity::Mac(bad.into())),
            "{bad:?}"
        );
    }
}

#[test]
fn bad_addresses_are_refused() {
    for bad in [
        "172.16.0.3",
        "172.16.0.3/",
        "172.16.0.3/0",
        "172.16.0.3/33",
        "172.16.0.3/+24",
        "172.16.0.3/24/1",
        "172.16.0/24",
        "fd00::3/64",
        "0.0.0.0/24",
        "127.0.0.1/8",
        "224.0.0.1/4",
        "255.255.255.255/24",
    ] {
        let request = with_network(|n| n.address = bad.into());
        assert_eq!(
            validate(&request),
            Err(InvalidIdentity::Address(bad.into())),
            "{bad:?}"
        );
    }
}

#[test]
fn bad_gateways_are_refused() {
    for bad in [
        "",
        "172.16.0",
        "fd00::1",
        "0.0.0.0",
        "255.255.255.255",
        "gw",
    ] {
        let request = with_network(|n| n.gateway = bad.into());
        assert_eq!(
            validate(&request),
            Err(InvalidIdentity::Gateway(bad.into())),
            "{bad:?}"
        );
    }
    for (address, gateway) in [
        ("172.16.0.3/24", "172.16.1.1"),
        ("172.16.0.3/24", "172.16.0.3"),
        ("172.16.0.3/32", "172.16.0.1"),
    ] {
        let request = with_network(|n| {
            n.address = address.into();
            n.gateway = gateway.into();
        });
        assert_eq!(
            validate(&request),
            Err(InvalidIdentity::GatewayOutsideSubnet {
                gateway: gateway.into(),
                address: address.into(),
            }),
            "{address} via {gateway}"
        );
    }
    let wide = with_network(|n| {
        n.address = "10.1.2.3/8".into();
        n.gateway = "10.200.0.1".into();
    });
    assert_eq!(validate(&wide), Ok(()));
}

#[test]
fn bad_entropy_is_refused() {
    let with = |text: String| IdentityRequest {
        entropy: Some(text),
        ..IdentityRequest::default()
    };
    assert!(matches!(
        validate(&with("not base64!".into())),
        Err(InvalidIdentity::EntropyEncoding(_))
    ));
    assert!(matches!(
        validate(&with(" ".repeat(44))),
        Err(InvalidIdentity::EntropyEncoding(_))
    ));
    for len in [0, 1, MIN_ENTROPY_BYTES - 1, MAX_ENTROPY_BYTES + 1, 4096] {
        assert_eq!(
            validate(&with(seed(len))),
            Err(InvalidIdentity::EntropyLength(len)),
            "{len}"
        );
    }
    for len in [MIN_ENTROPY_BYTES, MAX_ENTROPY_BYTES] {
        assert_eq!(validate(&with(seed(len))), Ok(()));
    }
    let err = validate(&with(seed(16))).unwrap_err().to_string();
    assert!(
        err.contains("16 bytes") && err.contains("32 to 512"),
        "{err}"
    );
}

#[test]
fn a_time_before_2020_is_a_unit_mistake() {
    let seconds = 1_767_225_600;
    for bad in [0, 1, seconds, seconds * 1000, MIN_REALTIME_NS - 1] {
        let request = IdentityRequest {
            realtime_ns: Some(bad),
            ..IdentityRequest::default()
        };
        assert_eq!(
            validate(&request),
            Err(InvalidIdentity::RealtimeNs(bad)),
            "{bad}"
        );
    }
    let err = InvalidIdentity::RealtimeNs(seconds).to_string();
    assert!(err.contains("nanoseconds since the epoch"), "{err}");
}

#[test]
fn parsing_lowercases_the_mac_and_builds_the_boot_time_config() {
    let request = full();
    let refresh = Refresh::parse(&request).unwrap();
    let readdress = refresh.network.unwrap();
    assert_eq!(readdress.mac, "06:00:ac:10:00:03");
    assert_eq!(
        readdress.net,
        NetConfig {
            iface: "eth0".into(),
            addr: Ipv4Addr::new(172, 16, 0, 3),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(172, 16, 0, 1)),
            dns: Vec::new(),
        }
    );
    assert_eq!(refresh.entropy.unwrap(), vec![0x5a; 64]);
    assert_eq!(refresh.machine_id, Some(MACHINE_ID));
    assert_eq!(refresh.realtime_ns, request.realtime_ns);
}

#[test]
fn the_machine_id_is_written_read_only_with_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = config(root);
    // A copy of a snapshot has its parent's, read-only like every one.
    fs::write(
        root.join("etc/machine-id"),
        "ffffffffffffffffffffffffffffffff\n",
    )
    .unwrap();
    fs::set_permissions(
        root.join("etc/machine-id"),
        std::os::unix::fs::PermissionsExt::from_mode(0o444),
    )
    .unwrap();
    let result = identity::apply(&full(), &config).unwrap();
    assert_eq!(
        result,
        IdentityResult {
            written: vec!["/etc/machine-id".into()],
            machine_id_set: true,
            ..IdentityResult::default()
        }
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/machine-id")).unwrap(),
        format!("{MACHINE_ID}\n")
    );
    assert_eq!(mode(&root.join("etc/machine-id")), 0o444);
    // Nothing else appeared: the network, seed and clock are not files.
    let names: Vec<_> = fs::read_dir(root.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["machine-id"]);
}

#[test]
fn every_part_together_is_written_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let request = IdentityRequest {
        hostname: Some("copy-2".into()),
        authorized_keys: Some("ssh-ed25519 AAAA me".into()),
        ..full()
    };
    validate(&request).unwrap();
    let result = identity::apply(&request, &config(dir.path())).unwrap();
    assert_eq!(
        result.written,
        [
            "/etc/hostname",
            "/root/.ssh/authorized_keys",
            "/etc/machine-id"
        ]
    );
    assert!(result.machine_id_set);
    // Without apply_live the running kernel is left alone, and says so.
    assert!(!result.hostname_set && !result.network_set);
    assert!(!result.reseeded && !result.clock_stepped);
    assert!(identity::thaws(&request));
}

#[test]
fn an_invalid_part_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let request = IdentityRequest {
        hostname: Some("dev".into()),
        entropy: Some(seed(8)),
        ..IdentityRequest::default()
    };
    let err = identity::apply(&request, &config(dir.path())).unwrap_err();
    assert!(
        matches!(
            err,
            IdentityError::Invalid(InvalidIdentity::EntropyLength(8))
        ),
        "{err}"
    );
    assert!(!dir.path().join("etc/hostname").exists());
}

#[test]
fn only_a_seed_with_a_clock_thaws() {
    let both = full();
    assert!(identity::thaws(&both));
    for request in [
        IdentityRequest {
            entropy: None,
            ..full()
        },
        IdentityRequest {
            realtime_ns: None,
            ..full()
        },
        IdentityRequest {
            hostname: Some("dev".into()),
            ..IdentityRequest::default()
        },
    ] {
        assert!(!identity::thaws(&request), "{request:?}");
    }
}

/// The real ioctl on this machine's `/dev/urandom`, with a seed from its
/// own RNG (mixing it in takes nothing away): either it reseeds, or it is
/// refused for want of `CAP_SYS_ADMIN`, and then `reseed` fails rather
/// than pretend. Any other error (`ENOTTY`: a wrong request number) fails.
#[test]
fn the_reseed_ioctl_is_one_the_kernel_knows() {
    let mut seed = [0u8; 32];
    std::io::Read::read_exact(&mut fs::File::open(URANDOM).unwrap(), &mut seed).unwrap();
    match reseed(&seed) {
        Ok(()) => {}
        Err(RefreshError::Reseed(e)) => {
            assert_eq!(e.raw_os_error(), Some(nix::libc::EPERM), "{e}");
        }
        Err(other) => panic!("{other}"),
    }
}

/// Without `CAP_SYS_TIME` the step fails, and says so. (Never tried with
/// it: that would set the clock of the machine running the tests.)
#[test]
fn a_refused_clock_step_is_an_error() {
    if nix::unistd::geteuid().is_root() {
        return;
    }
    let err = step_clock(MIN_REALTIME_NS).unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::Clock {
                errno: nix::errno::Errno::EPERM,
                ..
            }
        ),
        "{err}"
    );
}

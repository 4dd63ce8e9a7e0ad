//! The guest fence on a real kernel, as root, with real packets. Each test
//! enters a "host" network namespace it creates; fake guests are veth pairs
//! whose host end is named like a tap (`fctap<N>`, enslaved to the bridge)
//! and whose other end lives in a guest namespace of its own; an "outside"
//! namespace behind another veth plays the internet, and a second bridge
//! `docker9` (10.99.0.1, this kernel has no dummy driver) in the host
//! namespace plays another host network (docker0, a VPN).
//! Every namespace is deleted at the end, so the host's own interfaces and
//! rules are never touched and no packet leaves the test's namespaces.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use banger_host::{
    BridgeName, GuestMac, HostError, HostOps, Ipv4Cidr, LocalHost, NatBackend, TapName,
};
use banger_sys::Cmd;
use banger_sys::netns::Netns;
use common::{in_netns, ip_forward, run};

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Sends one UDP datagram from `src` (an address of the guest) to `dst`.
const UDP_SEND: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
s.bind((sys.argv[1],0))\n\
s.sendto(b'banger',(sys.argv[2],int(sys.argv[3])))\n";

/// Exits 0 when a TCP connection to `dst:port` is established in time.
const TCP_CONNECT: &str = "import socket,sys\n\
s=socket.socket()\n\
s.settimeout(2)\n\
s.connect((sys.argv[1],int(sys.argv[2])))\n";

/// Sends an ARP reply from `mac` claiming `ip` is at `mac`, to the bridge.
const ARP_CLAIM: &str = "import socket,sys\n\
def m(s): return bytes.fromhex(s.replace(':',''))\n\
mac,ip,br_mac,br_ip=sys.argv[1:5]\n\
f=m(br_mac)+m(mac)+b'\\x08\\x06'+b'\\x00\\x01\\x08\\x00\\x06\\x04\\x00\\x02'+m(mac)+socket.inet_aton(ip)+m(br_mac)+socket.inet_aton(br_ip)\n\
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
s.bind(('eth0',0))\n\
s.send(f)\n";

/// Sends a raw IPv4/UDP frame from the guest's address to 127.0.0.1:port,
/// addressed to the bridge's MAC: what a guest would do to reach a service
/// the host binds to loopback only.
const UDP_TO_LOOPBACK: &str = "import socket,struct,sys\n\
mac,ip,br_mac,port=sys.argv[1],sys.argv[2],sys.argv[3],int(sys.argv[4])\n\
def m(s): return bytes.fromhex(s.replace(':',''))\n\
udp=struct.pack('!HHHH',40000,port,8+6,0)+b'banger'\n\
h=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(udp),1,0,64,17,0,socket.inet_aton(ip),socket.inet_aton('127.0.0.1'))\n\
c=sum(struct.unpack('!10H',h))\n\
c=(c&0xffff)+(c>>16)\n\
c=(c&0xffff)+(c>>16)\n\
h=h[:10]+struct.pack('!H',~c&0xffff)+h[12:]\n\
s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
s.bind(('eth0',0))\n\
s.send(m(br_mac)+m(mac)+b'\\x08\\x00'+h+udp)\n";

/// Sends a UDP datagram over IPv6 to all nodes on the link (the host's
/// bridge included).
const UDP6_ALL_NODES: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n\
s.sendto(b'banger',('ff02::1%eth0',int(sys.argv[1])))\n";

struct Guest {
    ns: Netns,
    tap: TapName,
    ip: Ipv4Addr,
    mac: GuestMac,
}

impl Guest {
    fn cmd(&self, program: &str) -> Cmd {
        self.ns.cmd(program)
    }

    fn ip(&self, args: &[&str]) {
        self.cmd("ip")
            .args(args)
            .run()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends one datagram from `src` to `dst:port`.
    fn udp(&self, src: Ipv4Addr, dst: Ipv4Addr, port: u16) {
        self.cmd(python())
            .args([
                "-c",
                UDP_SEND,
                &src.to_string(),
                &dst.to_string(),
                &port.to_string(),
            ])
            .run()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn python(&self, script: &str, args: &[&str]) {
        self.cmd(python())
            .args(["-c", script])
            .args(args)
            .run()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn connects(&self, dst: Ipv4Addr, port: u16) -> bool {
        self.cmd(python())
            .args(["-c", TCP_CONNECT, &dst.to_string(), &port.to_string()])
            .run()
            .is_ok()
    }
}

/// A bridge with `<net>.1/24`, fake guests `<net>.2`, `<net>.3`, ..., a
/// bridge `docker9` with 10.99.0.1/24 (standing in for docker0) and an
/// uplink 10.200.<third octet>.1/24 towards the "outside" namespace
/// (10.200.x.2, which has no route to the guests).
struct Lab {
    bridge: BridgeName,
    bridge_ip: Ipv4Addr,
    uplink: Ipv4Addr,
    outside_ip: Ipv4Addr,
    outside: Netns,
    guests: Vec<Guest>,
}

impl Lab {
    fn new(host: &LocalHost, tag: &str, octet: u8, guests: u32) -> Lab {
        let bridge = BridgeName::from_str(&format!("br-fc-{tag}")).unwrap();
        let bridge_ip = Ipv4Addr::new(172, 16, octet, 1);
        host.ensure_bridge(&bridge, Ipv4Cidr::new(bridge_ip, 24).unwrap())
            .unwrap();
        run("ip", &["link", "add", "docker9", "type", "bridge"]);
        run("ip", &["addr", "add", "10.99.0.1/24", "dev", "docker9"]);
        run("ip", &["link", "set", "docker9", "up"]);

        let outside = Netns::create(&format!("{tag}-out")).unwrap();
        let uplink = Ipv4Addr::new(10, 200, octet, 1);
        let outside_ip = Ipv4Addr::new(10, 200, octet, 2);
        run(
            "ip",
            &[
                "link",
                "add",
                "up0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                outside.name(),
            ],
        );
        run(
            "ip",
            &["addr", "add", &format!("{uplink}/24"), "dev", "up0"],
        );
        run("ip", &["link", "set", "up0", "up"]);
        for args in [
            vec!["addr", "add", &*format!("{outside_ip}/24"), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
        ] {
            outside.cmd("ip").args(args).run().unwrap();
        }

        let guests = (1..=guests)
            .map(|n| {
                let ns = Netns::create(&format!("{tag}-g{n}")).unwrap();
                let tap = TapName::numbered(n);
                let ip = Ipv4Addr::new(172, 16, octet, 1 + n as u8);
                let mac = GuestMac::for_guest(ip);
                run(
                    "ip",
                    &[
                        "link",
                        "add",
                        tap.as_str(),
                        "type",
                        "veth",
                        "peer",
                        "name",
                        "eth0",
                        "netns",
                        ns.name(),
                    ],
                );
                run(
                    "ip",
                    &["link", "set", tap.as_str(), "master", bridge.as_str(), "up"],
                );
                let g = Guest { ns, tap, ip, mac };
                g.ip(&["link", "set", "eth0", "address", &mac.to_string()]);
                g.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
                g.ip(&["link", "set", "eth0", "up"]);
                g.ip(&["route", "add", "default", "via", &bridge_ip.to_string()]);
                g
            })
            .collect::<Vec<Guest>>();
        // IP checks do not depend on ARP working. Read now: a bridge takes
        // the lowest MAC of its ports.
        let br_mac = mac_of(bridge.as_str());
        for g in &guests {
            g.ip(&[
                "neigh",
                "replace",
                &bridge_ip.to_string(),
                "lladdr",
                &br_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
        }
        Lab {
            bridge,
            bridge_ip,
            uplink,
            outside_ip,
            outside,
            guests,
        }
    }

    fn cidr(&self) -> Ipv4Cidr {
        Ipv4Cidr::new(self.bridge_ip, 24).unwrap()
    }
}

/// Runs `f` on a thread inside `ns` (sockets made there stay there).
fn inside<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let _in = ns.enter().unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn udp_socket(port: u16) -> UdpSocket {
    let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s
}

/// The sender of the first datagram within the timeout, if any.
fn received(s: &UdpSocket) -> Option<SocketAddr> {
    let mut buf = [0u8; 64];
    s.recv_from(&mut buf).ok().map(|(_, from)| from)
}

/// A link's MAC in the current namespace (/sys shows the namespace it was
/// mounted in, not this thread's).
fn mac_of(dev: &str) -> String {
    let out = run("ip", &["-o", "link", "show", "dev", dev]);
    let (_, rest) = out.split_once("link/ether ").expect(&out);
    rest.split(' ').next().unwrap().to_owned()
}

fn nft_ruleset() -> String {
    run("nft", &["list", "ruleset"])
}

#[test]
fn guests_send_only_from_their_own_ip_and_mac() {
    in_netns("fence-1", || {
        let host = LocalHost::with_nat_backend(NatBackend::Nftables);
        let lab = Lab::new(&host, "f1", 41, 2);
        let (g1, g2) = (&lab.guests[0], &lab.guests[1]);
        // g2 also holds g1's address, so its kernel sends from it.
        g2.ip(&["addr", "add", &format!("{}/32", g1.ip), "dev", "eth0"]);
        let rx = udp_socket(7001);
        let rx6 = UdpSocket::bind(("::", 7011)).unwrap();
        rx6.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();

        // Unfenced, the spoof gets through, and so does IPv6: the test can
        // tell.
        g2.udp(g1.ip, lab.bridge_ip, 7001);
        assert!(
            received(&rx).is_some(),
            "baseline: a spoofed packet arrives without the fence"
        );
        // IPv6 needs its link-local address (after DAD) first.
        let mut v6 = false;
        for _ in 0..20 {
            let sent = g2
                .cmd(python())
                .args(["-c", UDP6_ALL_NODES, "7011"])
                .run()
                .is_ok();
            if !sent {
                std::thread::sleep(Duration::from_millis(250));
            } else if received(&rx6).is_some() {
                v6 = true;
                break;
            }
        }
        assert!(v6, "baseline: IPv6 arrives without the fence");

        host.ensure_bridge_fence(&lab.bridge, lab.cidr()).unwrap();
        // Not fenced yet: nothing at all from the tap.
        g2.udp(g2.ip, lab.bridge_ip, 7001);
        assert_eq!(received(&rx), None, "an unfenced tap sends nothing");

        for g in &lab.guests {
            host.fence_guest(&g.tap, g.ip, g.mac).unwrap();
            host.fence_guest(&g.tap, g.ip, g.mac).unwrap();
        }
        g2.udp(g2.ip, lab.bridge_ip, 7001);
        assert_eq!(
            received(&rx).map(|a| a.ip()),
            Some(g2.ip.into()),
            "its own address passes"
        );
        g2.udp(g1.ip, lab.bridge_ip, 7001);
        assert_eq!(received(&rx), None, "a spoofed source IP is dropped");

        assert_eq!(received(&rx6), None);
        g2.python(UDP6_ALL_NODES, &["7011"]);
        assert_eq!(received(&rx6), None, "IPv6 from a guest is dropped");

        let spoofed_mac = "02:fc:00:00:00:99";
        g2.ip(&["link", "set", "eth0", "address", spoofed_mac]);
        g2.udp(g2.ip, lab.bridge_ip, 7001);
        assert_eq!(received(&rx), None, "a spoofed MAC is dropped");
        g2.ip(&["link", "set", "eth0", "address", &g2.mac.to_string()]);
        g2.udp(g2.ip, lab.bridge_ip, 7001);
        assert!(
            received(&rx).is_some(),
            "back to its own MAC, it passes again"
        );

        let rules = nft_ruleset();
        assert_eq!(
            rules.matches("comment \"banger-guest ").count(),
            4,
            "{rules}"
        );

        // Unfenced again, g1 is silent.
        host.unfence_guest(&g1.tap).unwrap();
        host.unfence_guest(&g1.tap).unwrap();
        g1.udp(g1.ip, lab.bridge_ip, 7001);
        assert_eq!(received(&rx), None, "an unfenced guest sends nothing");
    });
}

#[test]
fn a_guest_cannot_poison_the_hosts_arp_cache() {
    in_netns("fence-2", || {
        let host = LocalHost::with_nat_backend(NatBackend::Nftables);
        let lab = Lab::new(&host, "f2", 42, 2);
        let (g1, g2) = (&lab.guests[0], &lab.guests[1]);
        let br_mac = mac_of(lab.bridge.as_str());
        let neigh = || {
            run(
                "ip",
                &[
                    "neigh",
                    "show",
                    &g1.ip.to_string(),
                    "dev",
                    lab.bridge.as_str(),
                ],
            )
        };
        let claim = |g: &Guest| {
            g.cmd(python())
                .args([
                    "-c",
                    ARP_CLAIM,
                    &g.mac.to_string(),
                    &g1.ip.to_string(),
                    &br_mac,
                    &lab.bridge_ip.to_string(),
                ])
                .run()
                .unwrap_or_else(|e| panic!("{e}"));
        };
        let listener = TcpListener::bind(("0.0.0.0", 7002)).unwrap();
        // Baseline without the fence: g2's claim replaces g1's entry.
        assert!(g1.connects(lab.bridge_ip, 7002));
        assert!(neigh().contains(&g1.mac.to_string()), "{}", neigh());
        std::thread::sleep(Duration::from_millis(1200)); // past locktime
        claim(g2);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            neigh().contains(&g2.mac.to_string()),
            "baseline poisoning works: {}",
            neigh()
        );

        run("ip", &["neigh", "flush", "dev", lab.bridge.as_str()]);
        host.ensure_bridge_fence(&lab.bridge, lab.cidr()).unwrap();
        for g in &lab.guests {
            host.fence_guest(&g.tap, g.ip, g.mac).unwrap();
        }
        assert!(
            g1.connects(lab.bridge_ip, 7002),
            "ARP of a fenced guest works"
        );
        assert!(neigh().contains(&g1.mac.to_string()), "{}", neigh());
        std::thread::sleep(Duration::from_millis(1200));
        claim(g2);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            neigh().contains(&g1.mac.to_string()),
            "the claim was dropped: {}",
            neigh()
        );
        drop(listener);
    });
}

#[test]
fn guests_reach_the_host_only_at_the_bridge_address() {
    in_netns("fence-3", || {
        let host = LocalHost::with_nat_backend(NatBackend::Nftables);
        let lab = Lab::new(&host, "f3", 43, 1);
        let g = &lab.guests[0];
        let listener = TcpListener::bind(("0.0.0.0", 7003)).unwrap();
        let local = TcpListener::bind(("127.0.0.1", 7004)).unwrap();
        let forbidden = [Ipv4Addr::new(10, 99, 0, 1), lab.uplink];
        for addr in forbidden {
            assert!(
                g.connects(addr, 7003),
                "baseline: {addr} is reachable without the fence"
            );
        }
        // Loopback from outside is a martian unless route_localnet is on
        // (some setups turn it on); with it on, the fence still holds.
        for conf in ["all", lab.bridge.as_str()] {
            std::fs::write(
                format!("/proc/sys/net/ipv4/conf/{conf}/route_localnet"),
                "1\n",
            )
            .unwrap();
        }
        let lo = UdpSocket::bind(("127.0.0.1", 7012)).unwrap();
        lo.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let br_mac = mac_of(lab.bridge.as_str());
        let to_loopback = || {
            g.python(
                UDP_TO_LOOPBACK,
                &[&g.mac.to_string(), &g.ip.to_string(), &br_mac, "7012"],
            );
            received(&lo)
        };
        assert!(
            to_loopback().is_some(),
            "baseline: 127.0.0.1 is reachable via the bridge"
        );

        host.ensure_bridge_fence(&lab.bridge, lab.cidr()).unwrap();
        host.ensure_bridge_fence(&lab.bridge, lab.cidr()).unwrap();
        host.fence_guest(&g.tap, g.ip, g.mac).unwrap();
        assert!(
            g.connects(lab.bridge_ip, 7003),
            "the bridge address is reachable"
        );
        for addr in forbidden {
            assert!(!g.connects(addr, 7003), "{addr} is fenced off");
        }
        assert!(
            !g.connects(lab.bridge_ip, 7004),
            "a 127.0.0.1 listener is not"
        );
        assert_eq!(to_loopback(), None, "nor 127.0.0.1 itself");

        // The host still reaches the guest (replies come back through
        // input): a listener in the guest.
        let to_guest = inside(&g.ns, || TcpListener::bind(("0.0.0.0", 7005)).unwrap());
        std::net::TcpStream::connect_timeout(&(g.ip, 7005).into(), Duration::from_secs(2))
            .expect("the host connects to the guest");
        drop((listener, local, to_guest));
    });
}

#[test]
fn only_nat_guests_are_forwarded_and_masqueraded() {
    in_netns("fence-4", || {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("ip_forward.banger");
        let host = LocalHost::with_nat_backend(NatBackend::Nftables).with_forwarding_state(&state);
        let lab = Lab::new(&host, "f4", 44, 2);
        let (nat, plain) = (&lab.guests[0], &lab.guests[1]);
        let (rx, tcp) = inside(&lab.outside, || {
            (
                udp_socket(7006),
                TcpListener::bind(("0.0.0.0", 7007)).unwrap(),
            )
        });
        // The host's own forwarding between other interfaces keeps working:
        // a "container" behind docker9 gets a datagram from outside.
        let ctr = Netns::create("f4-ctr").unwrap();
        run(
            "ip",
            &[
                "link",
                "add",
                "ctr0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ctr.name(),
            ],
        );
        run("ip", &["link", "set", "ctr0", "master", "docker9", "up"]);
        for args in [
            &["addr", "add", "10.99.0.2/24", "dev", "eth0"][..],
            &["link", "set", "eth0", "up"],
            &["route", "add", "default", "via", "10.99.0.1"],
        ] {
            ctr.cmd("ip").args(args).run().unwrap();
        }
        lab.outside
            .cmd("ip")
            .args([
                "route",
                "add",
                "10.99.0.0/24",
                "via",
                &lab.uplink.to_string(),
            ])
            .run()
            .unwrap();
        let ctr_rx = inside(&ctr, || udp_socket(7013));
        host.ensure_bridge_fence(&lab.bridge, lab.cidr()).unwrap();
        for g in &lab.guests {
            host.fence_guest(&g.tap, g.ip, g.mac).unwrap();
        }
        assert_eq!(ip_forward(), "0");
        host.add_nat(nat.ip, &lab.bridge).unwrap();
        assert_eq!(ip_forward(), "1");

        let from_outside = || {
            lab.outside
                .cmd(python())
                .args([
                    "-c",
                    UDP_SEND,
                    &lab.outside_ip.to_string(),
                    "10.99.0.2",
                    "7013",
                ])
                .run()
                .unwrap();
            received(&ctr_rx)
        };
        assert!(
            from_outside().is_some(),
            "the host still forwards for others"
        );

        nat.udp(nat.ip, lab.outside_ip, 7006);
        assert_eq!(
            received(&rx).map(|a| a.ip()),
            Some(lab.uplink.into()),
            "forwarded and masqueraded"
        );
        assert!(
            nat.connects(lab.outside_ip, 7007),
            "and the replies come back"
        );

        plain.udp(plain.ip, lab.outside_ip, 7006);
        assert_eq!(received(&rx), None, "a guest without NAT is not forwarded");
        assert!(!plain.connects(lab.outside_ip, 7007));
        plain.ip(&["addr", "add", &format!("{}/32", nat.ip), "dev", "eth0"]);
        plain.udp(nat.ip, lab.outside_ip, 7006);
        assert_eq!(received(&rx), None, "nor with the NAT guest's address");

        host.remove_nat(nat.ip, &lab.bridge).unwrap();
        assert_eq!(ip_forward(), "0", "restored when the last NAT guest goes");
        assert!(!state.exists());
        drop(tcp);
    });
}

#[test]
fn ip_forward_is_restored_after_a_crash() {
    in_netns("fence-5", || {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("ip_forward.banger");
        let bridge = BridgeName::from_str("br-fc-f5").unwrap();
        let (one, two) = (Ipv4Addr::new(172, 16, 45, 2), Ipv4Addr::new(172, 16, 45, 3));
        let new_host =
            || LocalHost::with_nat_backend(NatBackend::Nftables).with_forwarding_state(&state);

        let before = new_host();
        before.add_nat(one, &bridge).unwrap();
        before.add_nat(two, &bridge).unwrap();
        assert_eq!(ip_forward(), "1");
        drop(before); // killed: the rules and the record stay

        let after = new_host();
        after.remove_nat(one, &bridge).unwrap();
        assert_eq!(ip_forward(), "1", "a NAT guest is left");
        after.remove_nat(two, &bridge).unwrap();
        assert_eq!(ip_forward(), "0");
        after.remove_nat(two, &bridge).unwrap();
        assert_eq!(ip_forward(), "0");

        // Killed after the record, before any rule: the next removal,
        // of a guest already gone, still restores.
        std::fs::write(
            &state,
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|b| format!("ip_forward=0 boot={}\n", b.trim()))
                .unwrap(),
        )
        .unwrap();
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1\n").unwrap();
        new_host().remove_nat(one, &bridge).unwrap();
        assert_eq!(ip_forward(), "0");

        // A host that forwarded before keeps forwarding.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1\n").unwrap();
        let host = new_host();
        host.add_nat(one, &bridge).unwrap();
        host.remove_nat(one, &bridge).unwrap();
        assert_eq!(ip_forward(), "1");
        assert!(!nft_ruleset().contains("banger"), "{}", nft_ruleset());
    });
}

#[test]
fn the_fence_never_touches_foreign_tables_and_leaves_nothing() {
    in_netns("fence-6", || {
        for script in [
            "add table ip foreign",
            "add chain ip foreign c { type filter hook forward priority 0 ; }",
            "add rule ip foreign c ip saddr 10.9.9.9 drop",
            "add chain ip foreign i { type filter hook input priority 0 ; }",
            "add rule ip foreign i ip saddr 10.9.9.8 drop",
            "add table bridge foreign",
            "add chain bridge foreign p { type filter hook prerouting priority 0 ; }",
            "add rule bridge foreign p ether saddr 02:00:00:00:00:09 drop",
        ] {
            run("nft", &script.split(' ').collect::<Vec<_>>());
        }
        let foreign = || {
            run("nft", &["list", "table", "ip", "foreign"])
                + &run("nft", &["list", "table", "bridge", "foreign"])
        };
        let before = foreign();
        let host = LocalHost::with_nat_backend(NatBackend::Nftables);
        let bridge = BridgeName::from_str("br-fc-f6").unwrap();
        let cidr = Ipv4Cidr::from_str("172.16.46.1/24").unwrap();
        let guest = Ipv4Addr::new(172, 16, 46, 2);
        let tap = TapName::numbered(1);
        for _ in 0..5 {
            host.ensure_bridge_fence(&bridge, cidr).unwrap();
            host.fence_guest(&tap, guest, GuestMac::for_guest(guest))
                .unwrap();
            host.add_nat(guest, &bridge).unwrap();
            assert_eq!(foreign(), before);
            let rules = nft_ruleset();
            // NAT's accepts come before the fence's drops.
            let forward = &rules[rules.find("chain forward").unwrap()..];
            assert!(
                forward.find("banger-nat").unwrap() < forward.find("banger-fence").unwrap(),
                "{rules}"
            );
            host.unfence_guest(&tap).unwrap();
            host.remove_nat(guest, &bridge).unwrap();
            host.remove_bridge_fence(&bridge).unwrap();
            host.remove_bridge_fence(&bridge).unwrap();
            assert_eq!(foreign(), before);
            let rules = nft_ruleset();
            assert!(!rules.contains("banger"), "{rules}");
        }
        // A guest cannot be fenced before its bridge.
        let err = host
            .fence_guest(&tap, guest, GuestMac::for_guest(guest))
            .unwrap_err();
        assert!(matches!(err, HostError::FenceUnavailable { .. }), "{err:?}");
    });
}

#[test]
fn iptables_fence_guards_input_and_forward_and_leaves_nothing() {
    in_netns("fence-7", || {
        let iptables_all =
            || run("iptables", &["-w", "-S"]) + &run("iptables", &["-w", "-t", "nat", "-S"]);
        run(
            "iptables",
            &["-w", "-A", "INPUT", "-s", "10.9.9.9", "-j", "DROP"],
        );
        let before = iptables_all();
        let host = LocalHost::with_nat_backend(NatBackend::Iptables);
        let lab = Lab::new(&host, "f7", 47, 1);
        let g = &lab.guests[0];
        let listener = TcpListener::bind(("0.0.0.0", 7008)).unwrap();
        host.ensure_bridge_fence(&lab.bridge, lab.cidr()).unwrap();
        host.ensure_bridge_fence(&lab.bridge, lab.cidr()).unwrap();
        assert!(matches!(
            host.fence_guest(&g.tap, g.ip, g.mac),
            Err(HostError::FenceUnavailable { .. })
        ));
        assert!(g.connects(lab.bridge_ip, 7008));
        assert!(!g.connects(Ipv4Addr::new(10, 99, 0, 1), 7008));
        assert!(!g.connects(lab.uplink, 7008));
        let fwd = run("iptables", &["-w", "-S", "BANGER-FWD"]);
        assert_eq!(
            fwd.matches("banger-fence br-fc-f7 172.16.47.1").count(),
            2,
            "{fwd}"
        );

        host.add_nat(g.ip, &lab.bridge).unwrap();
        let (rx, _tcp) = inside(&lab.outside, || {
            (
                udp_socket(7009),
                TcpListener::bind(("0.0.0.0", 7010)).unwrap(),
            )
        });
        assert!(g.connects(lab.outside_ip, 7010), "NAT passes the fence");
        g.udp(g.ip, lab.outside_ip, 7009);
        assert_eq!(received(&rx).map(|a| a.ip()), Some(lab.uplink.into()));
        host.remove_nat(g.ip, &lab.bridge).unwrap();
        assert!(
            !g.connects(lab.outside_ip, 7010),
            "without NAT, no forwarding"
        );

        host.remove_bridge_fence(&lab.bridge).unwrap();
        host.remove_bridge_fence(&lab.bridge).unwrap();
        assert_eq!(iptables_all(), before);
        drop(listener);
    });
}

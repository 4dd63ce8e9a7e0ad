//! Listening sockets from `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! The kernel prints each socket as one line of hex fields. Addresses are the
//! raw `__be32` words printed as native-endian integers, so each 8-digit
//! group is decoded with the host's byte order (the agent always reads its
//! own kernel's files). Lines that do not parse are skipped: a listing must
//! never fail because of one odd line.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::protocol::{ListeningPort, Proto};

/// `TCP_LISTEN` in the `st` column.
const TCP_LISTEN: u8 = 0x0A;
/// `TCP_CLOSE`: how an unconnected (bound, not connected) UDP socket shows.
const UDP_UNCONNECTED: u8 = 0x07;

/// The files read and what they hold.
const SOURCES: [(&str, Proto, Family); 4] = [
    ("tcp", Proto::Tcp, Family::V4),
    ("tcp6", Proto::Tcp, Family::V6),
    ("udp", Proto::Udp, Family::V4),
    ("udp6", Proto::Udp, Family::V6),
];

/// Address family of a `/proc/net` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Reads every listening socket under `proc_net` (normally `/proc/net`),
/// sorted and without duplicates. A missing file (no IPv6 in the kernel)
/// contributes nothing; any other read error is returned.
pub fn listening_ports(proc_net: &Path) -> io::Result<Vec<ListeningPort>> {
    let mut ports = Vec::new();
    for (file, proto, family) in SOURCES {
        let text = match fs::read(proc_net.join(file)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        ports.extend(parse_table(&text, proto, family));
    }
    ports.sort();
    ports.dedup();
    Ok(ports)
}

/// Parses one table, keeping TCP sockets in LISTEN and unconnected UDP
/// sockets.
pub fn parse_table(text: &str, proto: Proto, family: Family) -> Vec<ListeningPort> {
    let wanted_state = match proto {
        Proto::Tcp => TCP_LISTEN,
        Proto::Udp => UDP_UNCONNECTED,
    };
    text.lines()
        .filter_map(|line| parse_line(line, proto, family))
        .filter(|(state, _)| *state == wanted_state)
        .map(|(_, port)| port)
        .collect()
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`; the
/// header line fails to parse and is skipped like any bad line.
fn parse_line(line: &str, proto: Proto, family: Family) -> Option<(u8, ListeningPort)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 10 || !fields[0].ends_with(':') {
        return None;
    }
    let (addr, port) = parse_endpoint(fields[1], family)?;
    let state = u8::from_str_radix(fields[3], 16).ok()?;
    let inode = fields[9].parse::<u64>().ok()?;
    Some((
        state,
        ListeningPort {
            proto,
            addr,
            port,
            inode,
        },
    ))
}

fn parse_endpoint(field: &str, family: Family) -> Option<(IpAddr, u16)> {
    let (addr_hex, port_hex) = field.split_once(':')?;
    if port_hex.len() != 4 {
        return None;
    }
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let addr = match family {
        Family::V4 if addr_hex.len() == 8 => {
            IpAddr::V4(Ipv4Addr::from(word(addr_hex)?.to_ne_bytes()))
        }
        Family::V6 if addr_hex.len() == 32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(&addr_hex[i * 8..i * 8 + 8])?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((addr, port))
}

fn word(hex: &str) -> Option<u32> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

// The samples are what a little-endian kernel prints.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15002 1 0000000000000000 100 0 0 10 0
   2: 020010AC:0016 010010AC:C350 01 00000000:00000000 02:000A7B5E 00000000     0        0 15003 4 0000000000000000 20 4 29 10 -1
   3: 0100007F:1F90 0100007F:A000 06 00000000:00000000 03:00000F3C 00000000     0        0 0 3 0000000000000000
   garbage line
   4: ZZZZZZZZ:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15004 1
   5: 00000000:16 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15005 1
   6: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 notanumber 1
   7: 00000000:0050 00000000:0000 0A
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 16001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0CEA 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 16002 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF0000020010AC:0016 0000000000000000FFFF0000010010AC:D431 01 00000000:00000000 02:00000000 00000000     0        0 16003 2 0000000000000000
   3: 00000000000000000000000001000000:0CEB 00000000000000000000000000000000:0000 0A
";

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 17001 2 0000000000000000 0
  101: 020010AC:A1B2 01010101:0035 01 00000000:00000000 00:00000000 00000000     0        0 17002 2 0000000000000000 0
";

    const UDP6: &str = "   sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  200: 000080FE00000000FF00005A120000FE:0222 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 18001 2 0000000000000000 0
";

    fn port(proto: Proto, addr: &str, port: u16, inode: u64) -> ListeningPort {
        ListeningPort {
            proto,
            addr: addr.parse().unwrap(),
            port,
            inode,
        }
    }

    #[test]
    fn tcp_keeps_only_listen_and_skips_bad_lines() {
        assert_eq!(
            parse_table(TCP, Proto::Tcp, Family::V4),
            vec![
                port(Proto::Tcp, "0.0.0.0", 22, 15001),
                port(Proto::Tcp, "127.0.0.1", 631, 15002),
            ]
        );
    }

    #[test]
    fn tcp6_decodes_ipv6_words() {
        assert_eq!(
            parse_table(TCP6, Proto::Tcp, Family::V6),
            vec![
                port(Proto::Tcp, "::", 22, 16001),
                port(Proto::Tcp, "::1", 3306, 16002),
            ]
        );
    }

    #[test]
    fn udp_keeps_only_unconnected_sockets() {
        assert_eq!(
            parse_table(UDP, Proto::Udp, Family::V4),
            vec![port(Proto::Udp, "127.0.0.53", 53, 17001)]
        );
        assert_eq!(
            parse_table(UDP6, Proto::Udp, Family::V6),
            vec![port(Proto::Udp, "fe80::5a00:ff:fe00:12", 546, 18001)]
        );
    }

    #[test]
    fn a_family_mismatch_yields_nothing_rather_than_garbage() {
        assert!(parse_table(TCP6, Proto::Tcp, Family::V4).is_empty());
        assert!(parse_table(TCP, Proto::Tcp, Family::V6).is_empty());
        assert!(parse_table("", Proto::Udp, Family::V4).is_empty());
        assert!(parse_table("\u{0}\u{1}\n:::\n", Proto::Udp, Family::V4).is_empty());
    }

    #[test]
    fn reads_a_directory_and_tolerates_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tcp"), TCP).unwrap();
        fs::write(dir.path().join("udp6"), UDP6).unwrap();
        let ports = listening_ports(dir.path()).unwrap();
        assert_eq!(
            ports,
            vec![
                port(Proto::Tcp, "0.0.0.0", 22, 15001),
                port(Proto::Tcp, "127.0.0.1", 631, 15002),
                port(Proto::Udp, "fe80::5a00:ff:fe00:12", 546, 18001),
            ]
        );
    }

    #[test]
    fn finds_sockets_this_process_opened() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_port = tcp.local_addr().unwrap().port();
        let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        let connected = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        connected.connect("127.0.0.1:9").unwrap();
        let connected_port = connected.local_addr().unwrap().port();

        let ports = listening_ports(Path::new("/proc/net")).unwrap();
        assert!(ports.windows(2).all(|w| w[0] < w[1]));
        let find = |proto: Proto, addr: &str, p: u16| {
            ports.iter().any(|e| {
                e.proto == proto && e.addr == addr.parse::<IpAddr>().unwrap() && e.port == p
            })
        };
        assert!(find(Proto::Tcp, "127.0.0.1", tcp_port), "{ports:?}");
        assert!(find(Proto::Udp, "::1", udp_port), "{ports:?}");
        assert!(!find(Proto::Udp, "127.0.0.1", connected_port), "{ports:?}");
    }
}

//! `vm.ports`: the guest's listening sockets (from the agent), each with
//! its `<name>.vm:<port>` endpoint, and an `http://` link where the port
//! answers HTTP when the daemon asks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use banger_agent_proto::protocol::{ListeningPort, Proto};
use banger_api::model::VmState;
use banger_api::protocol::{ErrorCode, PortProto, VmPort, VmPorts, VmRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::handles::read_handles;
use super::record::find;
use crate::blocking::run;
use crate::error::DaemonError;
use crate::state::Daemon;

const PROBE_CONNECT: Duration = Duration::from_millis(500);
const PROBE_ANSWER: Duration = Duration::from_secs(1);
/// Ports probed for HTTP per request. A guest may listen on thousands;
/// probing them all would keep the request open for minutes.
const MAX_PROBES: usize = 64;
const HTTP_REQUEST: &[u8] = b"HEAD / HTTP/1.0\r\n\r\n";
const HTTP_MARK: &[u8] = b"HTTP/";

pub async fn ports(daemon: &Daemon, r: VmRef) -> Result<VmPorts, DaemonError> {
    let vm = find(daemon, &r.vm).await?;
    let not_running = || {
        DaemonError::failed(
            ErrorCode::OperationFailed,
            format!(
                "VM {name} is {state}; its ports are listed while it runs: `banger vm start {name}`",
                name = vm.name,
                state = vm.state
            ),
        )
    };
    if vm.state != VmState::Running {
        return Err(not_running());
    }
    let handles = read_handles(&daemon.paths.vm_dir(&vm.id)).ok_or_else(not_running)?;
    let uds = handles.handle.vsock_uds;
    let guest = daemon.vms.guest();
    let name = vm.name.to_string();
    // The agent client refuses more than `MAX_PORTS` entries; grouping is
    // still work proportional to what the guest sent, so it runs off the
    // async workers (DNS and the socket share them).
    let mut ports = run(move || guest.ports(&uds).map(|l| group(&name, l))).await??;
    let mut notes = Vec::new();
    match vm.ip() {
        Some(ip) => notes.extend(probe_all(&vm.name.to_string(), ip, &mut ports).await),
        None => notes.push("no address on record: HTTP was not probed".to_owned()),
    }
    Ok(VmPorts {
        ip: vm.ip(),
        name: vm.name,
        ports,
        notes,
    })
}

/// One entry per protocol and port, with every address it listens on
/// (each once, sorted): O(n log n) in the entries the guest sent.
fn group(name: &str, listening: Vec<ListeningPort>) -> Vec<VmPort> {
    let mut by_port: BTreeMap<(PortProto, u16), BTreeSet<IpAddr>> = BTreeMap::new();
    for l in listening {
        let proto = match l.proto {
            Proto::Tcp => PortProto::Tcp,
            Proto::Udp => PortProto::Udp,
        };
        by_port.entry((proto, l.port)).or_default().insert(l.addr);
    }
    by_port
        .into_iter()
        .map(|((proto, port), addrs)| VmPort {
            proto,
            port,
            reachable: addrs.iter().any(|a| reachable_from_host(*a)),
            addrs: addrs.iter().map(IpAddr::to_string).collect(),
            endpoint: format!("{name}.vm:{port}"),
            http: None,
        })
        .collect()
}

/// The host reaches the guest on its IPv4 address: a socket on every
/// address (`0.0.0.0`, or `::`, which also takes IPv4) or on a non-loopback
/// IPv4 address answers; loopback and specific IPv6 addresses do not.
fn reachable_from_host(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => !v4.is_loopback(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => !v4.is_loopback(),
            None => v6.is_unspecified(),
        },
    }
}

/// Probes the reachable TCP ports for HTTP, all at once, and fills in their
/// links. Returns notes about ports left unprobed.
async fn probe_all(name: &str, ip: Ipv4Addr, ports: &mut [VmPort]) -> Vec<String> {
    let candidates: Vec<usize> = (0..ports.len())
        .filter(|&i| ports[i].proto == PortProto::Tcp && ports[i].reachable)
        .collect();
    let mut notes = Vec::new();
    if candidates.len() > MAX_PROBES {
        notes.push(format!(
            "{} TCP ports listen; only the first {MAX_PROBES} were probed for HTTP",
            candidates.len()
        ));
    }
    let mut probes = tokio::task::JoinSet::new();
    for i in candidates.into_iter().take(MAX_PROBES) {
        let addr = SocketAddr::from((ip, ports[i].port));
        probes.spawn(async move { (i, answers_http(addr).await) });
    }
    while let Some(done) = probes.join_next().await {
        if let Ok((i, true)) = done {
            ports[i].http = Some(format!("http://{name}.vm:{}/", ports[i].port));
        }
    }
    notes
}

/// Connects, sends `HEAD / HTTP/1.0`, and reads at most five bytes: an
/// answer starting `HTTP/` is a web server. Every step is bounded in time.
async fn answers_http(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = tokio::time::timeout(PROBE_CONNECT, tokio::net::TcpStream::connect(addr))
            .await
            .ok()?
            .ok()?;
        stream.write_all(HTTP_REQUEST).await.ok()?;
        let mut head = [0u8; HTTP_MARK.len()];
        let mut got = 0;
        while got < head.len() {
            match stream.read(&mut head[got..]).await.ok()? {
                0 => break,
                n => got += n,
            }
        }
        Some(&head[..got] == HTTP_MARK)
    };
    let answered = tokio::time::timeout(PROBE_CONNECT + PROBE_ANSWER, probe).await;
    let is_http = matches!(answered, Ok(Some(true)));
    tracing::debug!(%addr, is_http, "HTTP probe");
    is_http
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(proto: Proto, addr: &str, port: u16) -> ListeningPort {
        ListeningPort {
            proto,
            addr: addr.parse().unwrap(),
            port,
            inode: 1,
        }
    }

    /// The most entries the agent client lets through, all on one port
    /// with distinct addresses and each twice: grouped once each, quickly
    /// (a list compared against itself took seconds of an async worker).
    #[test]
    fn grouping_the_most_a_guest_may_send_is_cheap() {
        let max = banger_agent::protocol::MAX_PORTS;
        let listening: Vec<ListeningPort> = (0..max)
            .map(|i| {
                let addr = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
                port(Proto::Tcp, &addr, 8080)
            })
            .chain((0..max).map(|_| port(Proto::Tcp, "10.0.0.0", 8080)))
            .collect();
        let started = std::time::Instant::now();
        let grouped = group("dev", listening);
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[0].addrs.len(), max);
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn sockets_group_by_port_and_loopback_is_unreachable() {
        let grouped = group(
            "dev",
            vec![
                port(Proto::Tcp, "0.0.0.0", 22),
                port(Proto::Tcp, "::", 22),
                port(Proto::Tcp, "127.0.0.1", 5432),
                port(Proto::Udp, "::1", 53),
                port(Proto::Tcp, "::ffff:127.0.0.1", 6000),
                port(Proto::Tcp, "172.16.0.2", 3000),
                port(Proto::Tcp, "fe80::1", 7000),
            ],
        );
        let summary: Vec<(PortProto, u16, usize, bool, &str)> = grouped
            .iter()
            .map(|p| {
                (
                    p.proto,
                    p.port,
                    p.addrs.len(),
                    p.reachable,
                    p.endpoint.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (PortProto::Tcp, 22, 2, true, "dev.vm:22"),
                (PortProto::Tcp, 3000, 1, true, "dev.vm:3000"),
                (PortProto::Tcp, 5432, 1, false, "dev.vm:5432"),
                (PortProto::Tcp, 6000, 1, false, "dev.vm:6000"),
                (PortProto::Tcp, 7000, 1, false, "dev.vm:7000"),
                (PortProto::Udp, 53, 1, false, "dev.vm:53"),
            ]
        );
    }

    /// A local server per kind of answer: HTTP, an ssh-like banner, silence.
    async fn serve(answer: &'static [u8]) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(answer).await;
                    // Hold the connection open: the probe must not wait for EOF.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn only_an_http_answer_counts() {
        let http = serve(b"HTTP/1.0 200 OK\r\n\r\n").await;
        let ssh = serve(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        let silent = serve(b"").await;
        let at = |p| SocketAddr::from(([127, 0, 0, 1], p));
        assert!(answers_http(at(http)).await);
        assert!(!answers_http(at(ssh)).await);
        let started = std::time::Instant::now();
        assert!(!answers_http(at(silent)).await);
        assert!(started.elapsed() < PROBE_CONNECT + PROBE_ANSWER + Duration::from_millis(500));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free = closed.local_addr().unwrap().port();
        drop(closed);
        assert!(!answers_http(at(free)).await, "nothing listens");
    }

    #[tokio::test]
    async fn links_are_filled_in_for_http_ports_only() {
        let http = serve(b"HTTP/1.1 404 Not Found\r\n\r\n").await;
        let ssh = serve(b"SSH-2.0-x\r\n").await;
        let mut ports = group(
            "dev",
            vec![
                port(Proto::Tcp, "0.0.0.0", http),
                port(Proto::Tcp, "0.0.0.0", ssh),
            ],
        );
        let notes = probe_all("dev", Ipv4Addr::LOCALHOST, &mut ports).await;
        assert!(notes.is_empty());
        let links: Vec<Option<String>> = ports.iter().map(|p| p.http.clone()).collect();
        let expected = |p: u16, l: &str| (p, Some(l.to_owned()));
        let by_port: Vec<(u16, Option<String>)> = ports.iter().map(|p| p.port).zip(links).collect();
        assert!(by_port.contains(&expected(http, &format!("http://dev.vm:{http}/"))));
        assert!(by_port.contains(&(ssh, None)));
    }
}

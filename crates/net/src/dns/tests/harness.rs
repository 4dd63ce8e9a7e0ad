//! A real `DnsServer` on 127.0.0.1 with a kernel-picked port, served on its
//! own runtime so tests can drive it with blocking sockets and `dig`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use banger_api::model::VmName;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::message::{Message, parse};
use crate::dns::limits::Limits;
use crate::dns::{DnsRecords, DnsServer};

pub(super) const DEV_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);

/// How long a test waits for any single answer.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct TestServer {
    pub(super) addr: SocketAddr,
    shutdown: CancellationToken,
    serving: Option<JoinHandle<()>>,
    // Last field: dropped after the server task is cancelled.
    runtime: Option<Runtime>,
}

impl TestServer {
    /// A server knowing `dev` → [`DEV_IP`].
    pub(super) fn start() -> Self {
        Self::start_with(Limits::default())
    }

    pub(super) fn start_with(limits: Limits) -> Self {
        let records = DnsRecords::new();
        records.set(&VmName::new("dev").unwrap(), DEV_IP);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server = runtime
            .block_on(DnsServer::bind(loopback, records))
            .unwrap()
            .with_limits(limits);
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let shutdown = CancellationToken::new();
        let serving = runtime.spawn(server.serve(shutdown.clone()));
        Self {
            addr,
            shutdown,
            serving: Some(serving),
            runtime: Some(runtime),
        }
    }

    /// Cancels the server and says whether `serve` returned within `limit`.
    pub(super) fn stop_within(&mut self, limit: Duration) -> bool {
        self.shutdown.cancel();
        let (Some(runtime), Some(serving)) = (&self.runtime, self.serving.take()) else {
            return true;
        };
        runtime.block_on(async { tokio::time::timeout(limit, serving).await.is_ok() })
    }

    /// One UDP query from a fresh socket; `None` if no answer came.
    pub(super) fn udp(&self, query: &[u8]) -> Option<Vec<u8>> {
        udp_exchange(self.addr, query, IO_TIMEOUT)
    }

    pub(super) fn tcp(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }

    /// A TCP connection from `source` (any port), e.g. `127.0.0.2`: all of
    /// 127.0.0.0/8 is loopback on Linux, so tests can play several peers.
    pub(super) fn tcp_from(&self, source: IpAddr) -> TcpStream {
        let runtime = self.runtime.as_ref().expect("the server is running");
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(source, 0)).unwrap();
            socket.connect(self.addr).await.unwrap()
        });
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

pub(super) fn udp_exchange(addr: SocketAddr, query: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.set_read_timeout(Some(timeout)).unwrap();
    socket.send_to(query, addr).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..len].to_vec())
}

/// Writes one length-prefixed message.
pub(super) fn tcp_send(stream: &mut TcpStream, message: &[u8]) {
    let len = u16::try_from(message.len()).unwrap();
    stream
        .write_all(&[&len.to_be_bytes()[..], message].concat())
        .unwrap();
}

/// Reads one length-prefixed message and parses it.
pub(super) fn tcp_receive(stream: &mut TcpStream) -> Message {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("a length prefix");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).expect("a whole message");
    parse(&body).unwrap()
}

/// True when the server closed `stream` (EOF or reset) within the read timeout.
pub(super) fn is_closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing flood or fuzz
/// run can be replayed from its seed.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).unwrap()
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64().to_le_bytes()[0]).collect()
    }
}

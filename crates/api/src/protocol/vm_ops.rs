//! Parameters and results of the VM management and observation methods:
//! `vm.restart`, `vm.prune`, `vm.set`, `vm.logs`, `vm.stats`, `vm.ports`.
//! The results are also the CLI's `--json` output.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::VmSpec;
use crate::model::{ByteSize, VmName, VmState};

/// The smallest memory a Debian guest boots in.
pub const MIN_MEMORY_MIB: u64 = 128;
/// The smallest work disk banger makes.
pub const MIN_DISK_MIB: u64 = 64;

/// Most bytes of one log a `vm.logs` answer carries. A guest can write to
/// its console without end; a bigger backlog is read in several requests
/// (with offsets) or, without one, only its tail is sent.
pub const MAX_LOG_CHUNK: u64 = 512 * 1024;

/// `vm.prune`: delete VMs that are not running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmPruneParams {
    /// Only these VM ids (exact), e.g. the ones a user confirmed. Each is
    /// still deleted only if it is not running when its turn comes. All
    /// VMs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneOutcome {
    Deleted,
    /// Running (or started since it was listed): left alone.
    Skipped,
    Failed,
}

/// What `vm.prune` did with one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneEntry {
    pub id: String,
    pub name: VmName,
    /// The state it was found in.
    pub state: VmState,
    pub outcome: PruneOutcome,
    /// Why it was skipped or what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `vm.set`: change what a VM is. vCPUs, memory and disk need the VM not
/// running; NAT is switched on a running VM at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSetParams {
    pub vm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// The work disk's new size; it only grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<bool>,
}

impl VmSetParams {
    pub fn changes_nothing(&self) -> bool {
        self.vcpu.is_none()
            && self.memory_mib.is_none()
            && self.disk_size.is_none()
            && self.nat.is_none()
    }

    /// Whether the change touches what the VMM was launched with.
    pub fn needs_stopped_vm(&self) -> bool {
        self.vcpu.is_some() || self.memory_mib.is_some() || self.disk_size.is_some()
    }
}

/// `vm.logs`: a bounded piece of each log. Without an offset, the tail of
/// the log (at most [`MAX_LOG_CHUNK`]); with one, what follows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmLogsParams {
    pub vm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm_offset: Option<u64>,
}

/// A VM's two logs: the VMM's own, and the guest's serial console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmLogs {
    pub name: VmName,
    pub vmm: LogChunk,
    pub console: LogChunk,
}

/// A piece of one log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The file on the host; `None` while there is none (the VM has not
    /// been started yet).
    pub path: Option<String>,
    /// The log's size when it was read: where its newest byte ends, counting
    /// discarded bytes (offsets are positions in everything the log was
    /// ever written, so they stay valid across the cap's rotations).
    pub size: u64,
    /// Where `text` starts in the file.
    pub offset: u64,
    /// Where the next read continues: pass it back as the offset.
    pub next_offset: u64,
    /// Bytes before `offset` that were not sent: without an offset asked
    /// for (the tail), the kept bytes before it; when following, the bytes
    /// between the offset asked for and `offset` that the log's cap
    /// discarded before they could be read.
    pub skipped: u64,
    /// Bytes at the start of the log that its cap discarded from disk
    /// (`banger_vmm::logcap`: the newest 8–16 MiB are kept): `offset`s
    /// below this are gone. 0 for a log never cut.
    #[serde(default)]
    pub discarded: u64,
    /// The file is shorter than the offset asked for (a new boot replaced
    /// it): this chunk reads it from the start.
    pub restarted: bool,
    /// The cap cut this chunk short: ask again at once for the rest.
    pub more: bool,
    /// The bytes, as UTF-8 (invalid sequences replaced); never split in the
    /// middle of a character.
    pub text: String,
}

/// `vm.stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmStats {
    pub id: String,
    pub name: VmName,
    pub state: VmState,
    pub spec: VmSpec,
    /// The VMM process, while the VM runs.
    pub vmm: Option<VmmUsage>,
    /// From the guest agent, while the VM runs and the agent answers.
    pub guest: Option<GuestUsage>,
    pub disks: Vec<DiskUsage>,
    /// What could not be measured, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmmUsage {
    pub pid: u32,
    /// User plus system CPU time of the VMM process (all its threads).
    pub cpu_seconds: f64,
    /// Resident memory of the VMM process, guest memory it touched included.
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestUsage {
    pub uptime_s: f64,
    /// The agent's version.
    pub agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// `root` or `work`.
    pub role: String,
    pub path: String,
    /// The size the guest sees.
    pub apparent_bytes: u64,
    /// Blocks the file holds on the host (sparse files hold less; blocks a
    /// reflink clone shares with its image are counted too).
    pub allocated_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProto {
    Tcp,
    Udp,
}

impl PortProto {
    pub fn as_str(self) -> &'static str {
        match self {
            PortProto::Tcp => "tcp",
            PortProto::Udp => "udp",
        }
    }
}

/// `vm.ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmPorts {
    pub name: VmName,
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<VmPort>,
    /// E.g. ports that were not probed for HTTP.
    pub notes: Vec<String>,
}

/// One listening port in the guest; sockets of one protocol and port on
/// several addresses are one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmPort {
    pub proto: PortProto,
    pub port: u16,
    /// The guest addresses it listens on (`0.0.0.0`, `::` for all).
    pub addrs: Vec<String>,
    /// `<name>.vm:<port>`.
    pub endpoint: String,
    /// False when it listens on loopback only: the host cannot reach it.
    pub reachable: bool,
    /// `http://<name>.vm:<port>/` when the port answered an HTTP request.
    pub http: Option<String>,
}

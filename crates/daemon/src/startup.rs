//! The composition root: decides the OS boundaries (host operations, VMM
//! drivers, the guest interface), takes the state directory's lock before
//! anything else, opens the store, serves DNS, reconciles VMs left by an
//! earlier daemon, then hands over to the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use banger_api::model::VmState;
use banger_config::{Config, Paths};
use banger_host::helper::HelperHost;
use banger_host::{HostOps, LocalHost};
use banger_net::dns::{DnsRecords, DnsServer};
use banger_store::Store;
use tokio_util::sync::CancellationToken;

use crate::backend::SystemVmms;
use crate::error::StartupError;
use crate::guest::AgentGuest;
use crate::lock::StateLock;
use crate::machinery::{Boundaries, Machinery};
use crate::state::Daemon;
use crate::store_handle::StoreHandle;
use crate::tap_ledger::{LedgeredHost, ledger_path};

/// Everything the binary decides before the daemon starts.
pub struct DaemonOptions {
    pub paths: Paths,
    pub config: Config,
    /// The uid allowed to connect besides root.
    pub owner_uid: u32,
    /// The owner's home: where `[[file_sync]]` files and the git identity
    /// new work disks get are read from. `None` skips both.
    pub owner_home: Option<PathBuf>,
}

/// The real OS boundaries: host operations in-process when the daemon is
/// root (the root helper that will serve them to an unprivileged daemon is
/// not there yet), the VMM drivers banger ships, the agent over vsock.
fn system_boundaries(paths: &Paths) -> Boundaries {
    // The first NAT guest turns `ip_forward` on; the file remembers what it
    // was, so the last one puts it back, even after a crash in between.
    let forwarding = paths.state_dir.join("ip-forward.json");
    let mut remote = None;
    let host: Result<Arc<dyn HostOps>, String> = if banger_sys::os::is_root() {
        let local = Arc::new(LocalHost::new().with_forwarding_state(forwarding));
        Ok(Arc::new(LedgeredHost::new(local, ledger_path(paths))))
    } else if let Some(socket) = helper_socket() {
        tracing::info!(socket = %socket.display(), "host operations and image builds through the root helper");
        let helper = Arc::new(HelperHost::new(socket));
        remote = Some(helper.clone());
        Ok(Arc::new(LedgeredHost::new(helper, ledger_path(paths))))
    } else {
        Err(no_helper(paths))
    };
    Boundaries {
        host,
        helper: remote,
        vmms: Arc::new(SystemVmms),
        guest: Arc::new(AgentGuest),
    }
}

pub use banger_host::helper::HELPER_SOCKET_ENV;

/// The helper `HELPER_SOCKET_ENV` names; without it, the installed helper's
/// socket when it exists.
fn helper_socket() -> Option<PathBuf> {
    let socket = banger_host::helper::helper_socket_path();
    let named = std::env::var_os(HELPER_SOCKET_ENV).is_some_and(|s| !s.is_empty());
    (named || socket.exists()).then_some(socket)
}

/// What a daemon that is neither root nor has a helper says, with the
/// exact command that starts a helper for it.
fn no_helper(paths: &Paths) -> String {
    let uid = banger_sys::os::effective_uid();
    format!(
        "VMs need bridges, taps and NAT rules, which need root, and no root helper is running          (none at {}; {HELPER_SOCKET_ENV} names another): start one for uid {uid} with          `sudo bangerd --root-helper --owner-uid {uid} --managed-root {} --managed-root {}          --managed-root {}`, or run bangerd itself as root",
        banger_host::helper::HELPER_SOCKET,
        paths.state_dir.display(),
        paths.cache_dir.display(),
        paths.run_dir.display(),
    )
}

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn run(opts: DaemonOptions) -> Result<(), StartupError> {
    // One daemon per state directory, decided before anything changes.
    opts.paths
        .ensure_private_dirs()
        .map_err(StartupError::Dirs)?;
    let lock = StateLock::acquire(&opts.paths)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartupError::Runtime)?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let machinery = Machinery::new(system_boundaries(&opts.paths), shutdown.child_token());
        let mut daemon = open(opts, &lock, machinery)?;
        tokio::spawn(stop_on_signal(shutdown.clone()));
        start_dns(&mut daemon, shutdown.child_token()).await;
        crate::vm::reconcile(&daemon).await;
        crate::snapshots::store(&daemon).sweep();
        crate::server::serve(daemon, &lock, shutdown).await
    })
}

/// Opens the store (applying pending migrations) and builds the shared
/// state. Operations left `running` by a previous daemon are marked
/// interrupted: nothing of theirs is running any more. Needs the lock.
pub fn open(
    opts: DaemonOptions,
    _lock: &StateLock,
    vms: Machinery,
) -> Result<Daemon, StartupError> {
    // A [[file_sync]] host path outside the home is a config error,
    // refused at start like any other.
    let file_sync = match &opts.owner_home {
        Some(home) => opts.config.resolve_file_sync(home)?,
        None => Vec::new(),
    };
    let store = Store::open(&opts.paths.db_file).map_err(StartupError::Store)?;
    let interrupted = store
        .mark_interrupted_operations()
        .map_err(StartupError::Store)?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "operations interrupted by the previous daemon's exit"
        );
    }
    let dns = DnsRecords::new();
    dns.replace_all(
        store
            .list_vms()
            .map_err(StartupError::Store)?
            .into_iter()
            .filter_map(|vm| {
                let ip = vm.ip().filter(|_| vm.state == VmState::Running)?;
                Some((vm.name, ip))
            }),
    );
    Ok(Daemon {
        paths: opts.paths,
        config: opts.config,
        store: StoreHandle::new(store),
        owner_uid: opts.owner_uid,
        owner_home: opts.owner_home,
        file_sync,
        dns,
        dns_addr: None,
        vms,
    })
}

/// Starts the `.vm` DNS server on `dns_listen`. A port someone else holds
/// does not stop the daemon (VMs work without names); it is logged, and
/// `banger doctor` reports it.
async fn start_dns(daemon: &mut Daemon, shutdown: CancellationToken) {
    let addr = SocketAddr::V4(daemon.config.dns_listen());
    match DnsServer::bind(addr, daemon.dns.clone()).await {
        Ok(server) => {
            let bound = server.local_addr();
            tracing::info!(addr = %bound, records = daemon.dns.len(), "DNS server for .vm listening");
            daemon.dns_addr = Some(bound);
            tokio::spawn(server.serve(shutdown));
        }
        Err(e) => {
            tracing::error!(error = %banger_api::error_chain(&e), "DNS server not started: .vm names will not resolve")
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop bangerd with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

//! The daemon's shared state and its start-up: paths, config, store.

use std::path::PathBuf;

use std::net::SocketAddr;

use banger_api::model::VmState;
use banger_config::{Config, Paths};
use banger_net::dns::{DnsRecords, DnsServer};
use banger_store::Store;
use tokio_util::sync::CancellationToken;

use crate::store_handle::StoreHandle;
use crate::vm::Machinery;

/// Everything the composition root decides before the daemon starts.
pub struct DaemonOptions {
    pub paths: Paths,
    pub config: Config,
    /// The uid allowed to connect besides root.
    pub owner_uid: u32,
    /// The owner's home: where `[[file_sync]]` files and the git identity
    /// new work disks get are read from. `None` skips both.
    pub owner_home: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot prepare banger's directories")]
    Dirs(#[source] banger_config::PathError),
    #[error("cannot open the state store")]
    Store(#[source] banger_store::StoreError),
    #[error("another bangerd already serves {socket}; stop it first (its lock is {lock})")]
    AlreadyRunning { socket: PathBuf, lock: PathBuf },
    #[error(transparent)]
    Config(#[from] banger_config::ConfigError),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Shared by every request handler.
pub struct Daemon {
    pub paths: Paths,
    pub config: Config,
    pub store: StoreHandle,
    pub owner_uid: u32,
    pub owner_home: Option<PathBuf>,
    /// `[[file_sync]]` with host paths resolved in the owner's home.
    pub file_sync: Vec<banger_config::ResolvedFileSync>,
    /// `<name>.vm` → guest address, for running VMs.
    pub dns: DnsRecords,
    /// Where the DNS server listens, once it is up.
    pub dns_addr: Option<SocketAddr>,
    /// VM lifecycle state: host operations, the VMM driver, the tap pool
    /// and per-VM locks.
    pub(crate) vms: Machinery,
}

impl Daemon {
    /// Creates the private directories and opens the store, applying pending
    /// migrations. Operations left `running` by a previous daemon are marked
    /// interrupted: nothing of theirs is running any more.
    pub fn open(opts: DaemonOptions) -> Result<Daemon, StartupError> {
        opts.paths
            .ensure_private_dirs()
            .map_err(StartupError::Dirs)?;
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
                    let ip = vm.runtime.ip.filter(|_| vm.state == VmState::Running)?;
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
            vms: Machinery::new(CancellationToken::new()),
        })
    }

    /// Starts the `.vm` DNS server on `dns_listen`. A port someone else holds
    /// does not stop the daemon (VMs work without names); it is logged, and
    /// `banger doctor` reports it.
    async fn start_dns(&mut self, shutdown: CancellationToken) {
        let addr = SocketAddr::V4(self.config.dns_listen());
        match DnsServer::bind(addr, self.dns.clone()).await {
            Ok(server) => {
                let bound = server.local_addr();
                tracing::info!(addr = %bound, records = self.dns.len(), "DNS server for .vm listening");
                self.dns_addr = Some(bound);
                tokio::spawn(server.serve(shutdown));
            }
            Err(e) => {
                tracing::error!(error = %banger_api::error_chain(&e), "DNS server not started: .vm names will not resolve")
            }
        }
    }
}

/// Runs the daemon in the foreground until SIGINT or SIGTERM: opens the store,
/// binds the socket, serves, and removes the socket on the way out.
pub fn run(opts: DaemonOptions) -> Result<(), StartupError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartupError::Runtime)?;
    runtime.block_on(async {
        let mut daemon = Daemon::open(opts)?;
        let shutdown = CancellationToken::new();
        daemon.vms = Machinery::new(shutdown.child_token());
        tokio::spawn(stop_on_signal(shutdown.clone()));
        daemon.start_dns(shutdown.child_token()).await;
        crate::vm::reconcile(&daemon).await;
        crate::server::serve(daemon, shutdown).await
    })
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

//! The daemon's shared state and its start-up: paths, config, store.

use std::path::PathBuf;

use banger_config::{Config, Paths};
use banger_store::Store;

use crate::store_handle::StoreHandle;

/// Everything the composition root decides before the daemon starts.
pub struct DaemonOptions {
    pub paths: Paths,
    pub config: Config,
    /// The uid allowed to connect besides root.
    pub owner_uid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot prepare banger's directories")]
    Dirs(#[source] banger_config::PathError),
    #[error("cannot open the state store")]
    Store(#[source] banger_store::StoreError),
    #[error("another bangerd already serves {socket}; stop it first (its lock is {lock})")]
    AlreadyRunning { socket: PathBuf, lock: PathBuf },
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
}

impl Daemon {
    /// Creates the private directories and opens the store, applying pending
    /// migrations. Operations left `running` by a previous daemon are marked
    /// interrupted: nothing of theirs is running any more.
    pub fn open(opts: DaemonOptions) -> Result<Daemon, StartupError> {
        opts.paths
            .ensure_private_dirs()
            .map_err(StartupError::Dirs)?;
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
        Ok(Daemon {
            paths: opts.paths,
            config: opts.config,
            store: StoreHandle::new(store),
            owner_uid: opts.owner_uid,
        })
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
        let daemon = Daemon::open(opts)?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        crate::server::serve(daemon, shutdown).await
    })
}

async fn stop_on_signal(shutdown: tokio_util::sync::CancellationToken) {
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

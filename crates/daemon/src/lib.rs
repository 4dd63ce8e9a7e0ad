//! `bangerd`, the daemon core: it owns the state store, serves the protocol of
//! [`banger_api::protocol`] on a Unix socket, and tracks long operations.
//!
//! Layers, each importing only the ones below it:
//! - [`startup`]: the composition root (lock, OS boundaries, store, DNS,
//!   reconcile), then [`server`]: transport, peer authentication, cancellation;
//! - [`dispatch`]: the router, one `match` arm per method;
//! - handlers: [`vm`], [`images`], [`kernels`], [`daemon_info`], `debug`;
//! - what handlers share: [`supply`] (images and kernels fetched or built as
//!   stages), [`ops`] (the operations registry), [`machinery`] (host ops, VMM,
//!   guest, tap pool, locks), [`guest`], [`backend`];
//! - the bottom: [`state`] (the shared `Daemon`), [`context`] (one request's
//!   context), [`blocking`], [`store_handle`], [`error`], [`lock`].
#![forbid(unsafe_code)]

mod auth;
mod backend;
mod blocking;
mod context;
mod daemon_info;
#[cfg(feature = "test-methods")]
mod debug;
mod dispatch;
mod error;
mod fault;
mod guest;
mod helper_build;
mod images;
mod kernels;
mod lock;
mod logging;
mod machinery;
mod ops;
mod root_helper;
mod server;
mod snapshots;
mod startup;
mod state;
mod store_handle;
mod supply;
mod tap_ledger;
mod vm;

pub use banger_host::helper::HELPER_SOCKET;
/// `bangerd --cap-log FILE BYTES`: the log capper the VMM drivers start for
/// each VM log (`banger_vmm::logcap`), a hidden mode of the daemon's binary.
pub use banger_vmm::agent_mux::{AGENT_MUX_FLAG, main as agent_mux_main};
pub use banger_vmm::logcap::{CAP_LOG_FLAG, main as cap_log_main};
pub use error::{DaemonError, StartupError};
/// The daemon's named crash points (armed in `test-methods` builds by
/// `BANGER_CRASH_AT`); tests/crash_matrix.rs runs every one.
pub use fault::POINTS as CRASH_POINTS;
pub use logging::init_logging;
pub use root_helper::{HelperOptions, run as run_root_helper};
pub use startup::HELPER_SOCKET_ENV;
pub use startup::{DaemonOptions, run};

//! `bangerd`, the daemon core: it owns the state store, serves the protocol of
//! [`banger_api::protocol`] on a Unix socket, and tracks long operations.
//!
//! Request flow: [`server`] accepts a connection, checks the peer's uid, reads
//! one [`Envelope`](banger_api::protocol::Envelope), parses it into a typed
//! [`Request`](banger_api::protocol::Request) and hands it to [`dispatch`]
//! together with a cancellation token that fires when the client hangs up.
#![forbid(unsafe_code)]

mod agent_bin;
mod auth;
mod daemon;
mod dispatch;
mod error;
mod logging;
mod ops;
mod server;
mod store_handle;
mod vm;

pub use daemon::{Daemon, DaemonOptions, StartupError, run};
pub use error::DaemonError;
pub use logging::init_logging;
pub use server::serve;

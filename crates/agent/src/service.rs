//! The `service` mode: answer the host on vsock port [`AGENT_PORT`], one
//! request per connection (see `PROTOCOL.md`).
//!
//! The server loop is generic over [`Listener`], so tests run the very same
//! code over a Unix socket on the host.

mod capture;
mod config;
pub mod conn;
mod dispatch;
pub mod exec;
pub mod exec_input;
mod exec_spec;
pub mod exec_stream;
mod hangup;
mod health;
pub mod identity;
pub mod listener;
pub mod power;
mod process;
mod server;

pub use config::ServiceConfig;
pub use listener::Listener;
pub use power::{PowerControl, PowerError};
pub use server::serve;

use std::io;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::mode::ServiceArgs;
use crate::protocol::AGENT_PORT;

/// Why the service could not start.
#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("cannot listen on vsock port {port}: {source}")]
    BindVsock { port: u32, source: io::Error },
    #[error("cannot listen on {}: {source}", path.display())]
    BindUnix { path: PathBuf, source: io::Error },
}

/// Runs the service as `banger-agent service` asked; returns only when the
/// listening socket cannot be created.
pub fn run(args: &ServiceArgs) -> Result<std::convert::Infallible, ServiceError> {
    let config = Arc::new(ServiceConfig::guest(power::from_choice(args.power)));
    match &args.unix {
        Some(path) => {
            // A leftover socket file from an earlier run would make bind fail.
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path).map_err(|source| ServiceError::BindUnix {
                path: path.clone(),
                source,
            })?;
            serve(listener, config)
        }
        None => {
            let listener =
                vsock::VsockListener::bind_with_cid_port(vsock::VMADDR_CID_ANY, AGENT_PORT)
                    .map_err(|source| ServiceError::BindVsock {
                        port: AGENT_PORT,
                        source,
                    })?;
            serve(listener, config)
        }
    }
}

//! `ping` and `daemon.operations.list`: what the daemon says about itself.

use banger_api::build_info;
use banger_api::protocol::{Operation, OperationsListParams, PROTOCOL_VERSION, Pong};

use crate::error::DaemonError;
use crate::state::Daemon;

/// Finished operations listed by `daemon.operations.list` unless asked otherwise.
const DEFAULT_FINISHED_OPS: u32 = 20;

pub fn ping(daemon: &Daemon) -> Pong {
    Pong {
        protocol: PROTOCOL_VERSION,
        version: build_info::VERSION.to_owned(),
        commit: build_info::COMMIT.to_owned(),
        pid: std::process::id(),
        dns: daemon.dns_addr.map(|a| a.to_string()),
    }
}

pub async fn operations(
    daemon: &Daemon,
    p: OperationsListParams,
) -> Result<Vec<Operation>, DaemonError> {
    let limit = p.limit.unwrap_or(DEFAULT_FINISHED_OPS) as usize;
    daemon.store.call(move |s| s.list_operations(limit)).await
}

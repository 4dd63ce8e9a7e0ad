//! One function per method. The transport hands over a typed request and a
//! context; handlers return a JSON result or a typed error.

use banger_api::build_info;
use banger_api::protocol::{OutputChunk, PROTOCOL_VERSION, Pong, Request};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::daemon::Daemon;
use crate::error::DaemonError;

/// Per-request context.
pub struct RequestCtx {
    /// Names the request's tracked operation, if it starts one.
    pub op_id: String,
    /// Stage lines for the client, sent ahead of the final answer (through
    /// [`crate::ops::OpTracker::stage`]).
    pub progress: tokio::sync::mpsc::UnboundedSender<String>,
    /// Output of a streaming `vm.exec`, sent ahead of the final answer.
    /// Bounded, so a client that reads slowly slows the guest command down
    /// instead of filling the daemon's memory.
    pub output: tokio::sync::mpsc::Sender<OutputChunk>,
    /// Fires when the client hangs up. Handlers doing long work select on it
    /// and unwind what they have done before returning [`DaemonError::Cancelled`].
    pub cancel: CancellationToken,
}

/// Finished operations listed by `daemon.operations.list` unless asked otherwise.
const DEFAULT_FINISHED_OPS: u32 = 20;

pub async fn dispatch(
    daemon: &Daemon,
    ctx: &RequestCtx,
    request: Request,
) -> Result<Value, DaemonError> {
    match request {
        Request::Ping(_) => to_value(Pong {
            protocol: PROTOCOL_VERSION,
            version: build_info::VERSION.to_owned(),
            commit: build_info::COMMIT.to_owned(),
            pid: std::process::id(),
            dns: daemon.dns_addr.map(|a| a.to_string()),
        }),
        Request::VmList(_) => to_value(daemon.store.call(|s| s.list_vms()).await?),
        Request::VmShow(params) => {
            to_value(daemon.store.call(move |s| s.find_vm(&params.vm)).await?)
        }
        Request::VmCreate(p) => to_value(crate::vm::create(daemon, ctx, p).await?),
        Request::VmStart(p) => to_value(crate::vm::start(daemon, ctx, p).await?),
        Request::VmStop(p) => to_value(crate::vm::stop(daemon, ctx, p).await?),
        Request::VmKill(p) => to_value(crate::vm::kill(daemon, ctx, p).await?),
        Request::VmDelete(p) => to_value(crate::vm::delete(daemon, ctx, p).await?),
        Request::VmExec(p) => to_value(crate::vm::exec(daemon, ctx, p).await?),
        Request::VmRestart(p) => to_value(crate::vm::restart(daemon, ctx, p).await?),
        Request::VmPrune(p) => to_value(crate::vm::prune(daemon, ctx, p).await?),
        Request::VmSet(p) => to_value(crate::vm::set(daemon, ctx, p).await?),
        Request::VmLogs(p) => to_value(crate::vm::logs(daemon, p).await?),
        Request::VmStats(p) => to_value(crate::vm::stats(daemon, p).await?),
        Request::VmPorts(p) => to_value(crate::vm::ports(daemon, p).await?),
        Request::WorkspacePlan(p) => to_value(crate::vm::workspace_plan(p).await?),
        Request::WorkspacePrepare(p) => {
            to_value(crate::vm::workspace_prepare(daemon, ctx, p).await?)
        }
        Request::WorkspaceExport(p) => to_value(crate::vm::workspace_export(daemon, ctx, p).await?),
        Request::OperationsList(params) => {
            let limit = params.limit.unwrap_or(DEFAULT_FINISHED_OPS) as usize;
            to_value(daemon.store.call(move |s| s.list_operations(limit)).await?)
        }
        Request::KernelList(_) => to_value(kernels::list(daemon).await?),
        Request::KernelShow(p) => to_value(kernels::show(daemon, p).await?),
        Request::KernelRemove(p) => to_value(kernels::remove(daemon, p).await?),
        Request::KernelImport(p) => to_value(kernels::import(daemon, ctx, p).await?),
        Request::KernelPull(p) => to_value(kernels::pull(daemon, ctx, p).await?),
        Request::ImageList(_) => to_value(images::list(daemon).await?),
        Request::ImageShow(p) => to_value(images::show(daemon, p).await?),
        Request::ImageDelete(p) => to_value(images::delete(daemon, p).await?),
        Request::ImageRegister(p) => to_value(images::register(daemon, p).await?),
        Request::ImagePromote(p) => to_value(images::promote(daemon, ctx, p).await?),
        Request::ImageBuild(p) => to_value(images::build(daemon, ctx, p).await?),
        #[cfg(feature = "test-methods")]
        Request::DebugSleep(params) => debug::sleep(daemon, ctx, params).await,
    }
}

fn to_value<T: serde::Serialize>(value: T) -> Result<Value, DaemonError> {
    serde_json::to_value(value)
        .map_err(|e| DaemonError::Internal(format!("cannot encode result: {e}")))
}

pub(crate) mod blocking;
#[cfg(feature = "test-methods")]
mod debug;
pub(crate) mod images;
pub(crate) mod kernels;

//! The router: one arm per method, nothing else. The transport hands over a
//! typed request and its context; each arm calls its handler and encodes
//! the typed result.

use banger_api::protocol::Request;
use serde_json::Value;

use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::state::Daemon;
use crate::{daemon_info, images, kernels, snapshots, vm};

pub async fn dispatch(
    daemon: &Daemon,
    ctx: &RequestCtx,
    request: Request,
) -> Result<Value, DaemonError> {
    match request {
        Request::Ping(_) => to_value(daemon_info::ping(daemon)),
        Request::VmList(_) => to_value(vm::list(daemon).await?),
        Request::VmShow(p) => to_value(vm::show(daemon, p).await?),
        Request::VmCreate(p) => to_value(vm::create(daemon, ctx, p).await?),
        Request::VmStart(p) => to_value(vm::start(daemon, ctx, p).await?),
        Request::VmStop(p) => to_value(vm::stop(daemon, ctx, p).await?),
        Request::VmKill(p) => to_value(vm::kill(daemon, ctx, p).await?),
        Request::VmDelete(p) => to_value(vm::delete(daemon, ctx, p).await?),
        Request::VmExec(p) => to_value(vm::exec(daemon, ctx, p).await?),
        Request::VmRestart(p) => to_value(vm::restart(daemon, ctx, p).await?),
        Request::VmPrune(p) => to_value(vm::prune(daemon, ctx, p).await?),
        Request::VmSet(p) => to_value(vm::set(daemon, ctx, p).await?),
        Request::VmLogs(p) => to_value(vm::logs(daemon, p).await?),
        Request::VmStats(p) => to_value(vm::stats(daemon, p).await?),
        Request::VmPorts(p) => to_value(vm::ports(daemon, p).await?),
        Request::VmSnapshot(p) => to_value(vm::snapshot(daemon, ctx, p).await?),
        Request::VmRestore(p) => to_value(vm::restore(daemon, ctx, p).await?),
        Request::VmFork(p) => to_value(vm::fork(daemon, ctx, p).await?),
        Request::SnapshotList(_) => to_value(snapshots::list(daemon).await?),
        Request::SnapshotShow(p) => to_value(snapshots::show(daemon, p).await?),
        Request::SnapshotDelete(p) => to_value(snapshots::delete(daemon, p).await?),
        Request::WorkspacePlan(p) => to_value(vm::workspace_plan(p).await?),
        Request::WorkspacePrepare(p) => to_value(vm::workspace_prepare(daemon, ctx, p).await?),
        Request::WorkspaceExport(p) => to_value(vm::workspace_export(daemon, ctx, p).await?),
        Request::OperationsList(p) => to_value(daemon_info::operations(daemon, p).await?),
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
        Request::DebugSleep(p) => crate::debug::sleep(daemon, ctx, p).await,
    }
}

fn to_value<T: serde::Serialize>(value: T) -> Result<Value, DaemonError> {
    serde_json::to_value(value)
        .map_err(|e| DaemonError::Internal(format!("cannot encode result: {e}")))
}

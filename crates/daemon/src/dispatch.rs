//! One function per method. The transport hands over a typed request and a
//! context; handlers return a JSON result or a typed error.

use banger_api::build_info;
use banger_api::protocol::{PROTOCOL_VERSION, Pong, Request};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::daemon::Daemon;
use crate::error::DaemonError;

/// Per-request context.
pub struct RequestCtx {
    /// Names the request's tracked operation, if it starts one.
    #[cfg_attr(not(feature = "test-methods"), allow(dead_code))]
    pub op_id: String,
    /// Fires when the client hangs up. Handlers doing long work select on it
    /// and unwind what they have done before returning [`DaemonError::Cancelled`].
    pub cancel: CancellationToken,
}

/// Finished operations listed by `daemon.operations.list` unless asked otherwise.
const DEFAULT_FINISHED_OPS: u32 = 20;

// Only the test methods need the context so far; real long operations will.
#[cfg_attr(not(feature = "test-methods"), allow(unused_variables))]
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
        Request::OperationsList(params) => {
            let limit = params.limit.unwrap_or(DEFAULT_FINISHED_OPS) as usize;
            to_value(daemon.store.call(move |s| s.list_operations(limit)).await?)
        }
        #[cfg(feature = "test-methods")]
        Request::DebugSleep(params) => debug::sleep(daemon, ctx, params).await,
    }
}

fn to_value<T: serde::Serialize>(value: T) -> Result<Value, DaemonError> {
    serde_json::to_value(value)
        .map_err(|e| DaemonError::Internal(format!("cannot encode result: {e}")))
}

#[cfg(feature = "test-methods")]
mod debug {
    //! Methods compiled only into test builds.

    use std::path::PathBuf;
    use std::time::Duration;

    use banger_api::protocol::DebugSleepParams;
    use serde_json::Value;

    use super::RequestCtx;
    use crate::daemon::Daemon;
    use crate::error::DaemonError;
    use crate::ops::OpTracker;

    /// Sleeps as a tracked operation. Writes `started` when it begins and,
    /// when cancelled, `cleaned-up` once its cleanup has run: the test reads
    /// both to prove the cancellation path end to end.
    pub async fn sleep(
        daemon: &Daemon,
        ctx: &RequestCtx,
        p: DebugSleepParams,
    ) -> Result<Value, DaemonError> {
        let dir = PathBuf::from(&p.marker_dir);
        let mut op = OpTracker::begin(&daemon.store, &ctx.op_id, "debug.sleep", None).await?;
        op.stage("sleeping").await?;
        let result = async {
            write_marker(&dir, "started").await?;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(p.millis)) => Ok(Value::Null),
                () = ctx.cancel.cancelled() => {
                    tracing::info!("cancelled; cleaning up");
                    write_marker(&dir, "cleaned-up").await?;
                    Err(DaemonError::Cancelled)
                }
            }
        }
        .await;
        op.finish(result).await
    }

    async fn write_marker(dir: &std::path::Path, name: &str) -> Result<(), DaemonError> {
        tokio::fs::write(dir.join(name), b"")
            .await
            .map_err(|e| DaemonError::Internal(format!("cannot write marker {name}: {e}")))
    }
}

//! Methods compiled only into test builds (feature `test-methods`).

use std::path::PathBuf;
use std::time::Duration;

use banger_api::protocol::DebugSleepParams;
use serde_json::Value;

use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::ops::OpTracker;
use crate::state::Daemon;

/// Sleeps as a tracked operation. Writes `started` when it begins and,
/// when cancelled, `cleaned-up` once its cleanup has run: the test reads
/// both to prove the cancellation path end to end.
pub async fn sleep(
    daemon: &Daemon,
    ctx: &RequestCtx,
    p: DebugSleepParams,
) -> Result<Value, DaemonError> {
    let dir = PathBuf::from(&p.marker_dir);
    let mut op = OpTracker::begin(&daemon.store, ctx, "debug.sleep", None).await?;
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

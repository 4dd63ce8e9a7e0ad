//! Long, blocking work (downloads, mmdebstrap, mkfs) runs on tokio's blocking
//! pool; the stages it reports become the operation's stages, recorded in the
//! registry and sent to the client as progress lines.

use crate::context::current_op_id;
use crate::error::DaemonError;
use crate::ops::OpTracker;

pub async fn run_staged<T, F>(op: &mut OpTracker, work: F) -> Result<T, DaemonError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn FnMut(&str)) -> T + Send + 'static,
{
    let (tx, mut stages) = tokio::sync::mpsc::unbounded_channel::<String>();
    let op_id = current_op_id();
    let handle = tokio::task::spawn_blocking(move || {
        let mut report = |stage: &str| {
            let _ = tx.send(stage.to_owned());
        };
        with_request_op_id(op_id, || work(&mut report))
    });
    // The channel closes when the work returns and drops its sender.
    while let Some(stage) = stages.recv().await {
        op.stage(&stage).await?;
    }
    handle
        .await
        .map_err(|e| DaemonError::Internal(format!("worker failed: {e}")))
}

/// Short blocking calls (reading manifests) without stages.
pub async fn run<T, F>(work: F) -> Result<T, DaemonError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let op_id = current_op_id();
    tokio::task::spawn_blocking(move || with_request_op_id(op_id, work))
        .await
        .map_err(|e| DaemonError::Internal(format!("worker failed: {e}")))
}

/// Runs `work` with the request's operation id handed on to the root helper
/// (SPEC §4: forwarded to the helper, logged there).
fn with_request_op_id<T>(op_id: Option<String>, work: impl FnOnce() -> T) -> T {
    match op_id {
        Some(id) => banger_host::helper::with_op_id(&id, work),
        None => work(),
    }
}

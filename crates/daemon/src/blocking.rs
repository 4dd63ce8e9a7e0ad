//! Long, blocking work (downloads, mmdebstrap, mkfs) runs on tokio's blocking
//! pool; the stages it reports become the operation's stages, recorded in the
//! registry and sent to the client as progress lines.

use crate::error::DaemonError;
use crate::ops::OpTracker;

pub async fn run_staged<T, F>(op: &mut OpTracker, work: F) -> Result<T, DaemonError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn FnMut(&str)) -> T + Send + 'static,
{
    let (tx, mut stages) = tokio::sync::mpsc::unbounded_channel::<String>();
    let handle = tokio::task::spawn_blocking(move || {
        let mut report = |stage: &str| {
            let _ = tx.send(stage.to_owned());
        };
        work(&mut report)
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
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DaemonError::Internal(format!("worker failed: {e}")))
}

//! The operations registry (SPEC §4): long operations are recorded in the
//! store when they start, move through named stages, and end as succeeded,
//! failed or cancelled. `daemon.operations.list` reads it back.

use banger_api::protocol::{Operation, OperationState};

use crate::context::RequestCtx;
use crate::error::DaemonError;
use crate::store_handle::StoreHandle;

/// One tracked operation. Dropping it without [`OpTracker::finish`] (a panic
/// in the handler) leaves it `running` until the next daemon start marks it
/// interrupted.
pub struct OpTracker {
    store: StoreHandle,
    id: String,
    stage: Option<String>,
    /// The client sees each stage as a progress line.
    progress: tokio::sync::mpsc::UnboundedSender<String>,
    /// For a [`OpTracker::part`]: what its stage lines start with.
    prefix: Option<String>,
}

impl OpTracker {
    pub async fn begin(
        store: &StoreHandle,
        ctx: &RequestCtx,
        kind: &str,
        target: Option<String>,
    ) -> Result<Self, DaemonError> {
        let id = ctx.op_id.as_str();
        let op = Operation {
            id: id.to_owned(),
            kind: kind.to_owned(),
            target,
            state: OperationState::Running,
            stage: None,
            error: None,
            started_at: banger_store::now_rfc3339(),
            finished_at: None,
        };
        store.call(move |s| s.insert_operation(&op)).await?;
        tracing::info!(kind, "operation started");
        Ok(Self {
            store: store.clone(),
            id: id.to_owned(),
            stage: None,
            progress: ctx.progress.clone(),
            prefix: None,
        })
    }

    /// A tracker for one part of this operation that runs alongside
    /// others (the children of a fork): its stages reach the same record
    /// and client, each line starting with `prefix`. It is dropped, never
    /// finished: the operation ends with its whole.
    pub fn part(&self, prefix: &str) -> OpTracker {
        OpTracker {
            store: self.store.clone(),
            id: self.id.clone(),
            stage: None,
            progress: self.progress.clone(),
            prefix: Some(prefix.to_owned()),
        }
    }

    pub async fn stage(&mut self, stage: &str) -> Result<(), DaemonError> {
        let prefixed;
        let stage = match &self.prefix {
            Some(prefix) => {
                prefixed = format!("{prefix}: {stage}");
                prefixed.as_str()
            }
            None => stage,
        };
        tracing::info!(stage, "stage");
        let _ = self.progress.send(stage.to_owned());
        self.stage = Some(stage.to_owned());
        self.update(OperationState::Running, None).await
    }

    /// Names the operation's target once it is known (a part leaves the
    /// whole's target alone).
    pub async fn set_target(&self, target: &str) -> Result<(), DaemonError> {
        if self.prefix.is_some() {
            return Ok(());
        }
        let (id, target) = (self.id.clone(), target.to_owned());
        self.store
            .call(move |s| s.set_operation_target(&id, &target))
            .await
    }

    /// Records how the operation ended and passes its result through.
    pub async fn finish<T>(self, result: Result<T, DaemonError>) -> Result<T, DaemonError> {
        let (state, error) = match &result {
            Ok(_) => (OperationState::Succeeded, None),
            Err(DaemonError::Cancelled) => (OperationState::Cancelled, None),
            // The message can quote the guest: cleaned and capped for the
            // registry like a VM's last error.
            Err(e) => (
                OperationState::Failed,
                Some(banger_api::text::clean_guest_text_capped(
                    &e.to_protocol().message,
                    16 * 1024,
                )),
            ),
        };
        tracing::info!(state = state.as_str(), "operation finished");
        if let Err(e) = self.update(state, error).await {
            tracing::error!(error = %e, "could not record the end of the operation");
        }
        result
    }

    async fn update(
        &self,
        state: OperationState,
        error: Option<String>,
    ) -> Result<(), DaemonError> {
        let (id, stage) = (self.id.clone(), self.stage.clone());
        self.store
            .call(move |s| s.update_operation(&id, state, stage.as_deref(), error.as_deref()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use banger_store::Store;

    use super::*;

    async fn store() -> (tempfile::TempDir, StoreHandle) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        (dir, StoreHandle::new(store))
    }

    async fn ops(store: &StoreHandle) -> Vec<Operation> {
        store.call(|s| s.list_operations(10)).await.unwrap()
    }

    #[tokio::test]
    async fn records_each_way_an_operation_ends() {
        let (_dir, store) = store().await;
        let cases: [(&str, Result<(), DaemonError>, OperationState); 3] = [
            ("ok", Ok(()), OperationState::Succeeded),
            (
                "bad",
                Err(DaemonError::Internal("disk full".into())),
                OperationState::Failed,
            ),
            (
                "gone",
                Err(DaemonError::Cancelled),
                OperationState::Cancelled,
            ),
        ];
        for (id, result, want) in cases {
            let (progress, mut stages) = tokio::sync::mpsc::unbounded_channel();
            let ctx = RequestCtx {
                op_id: id.into(),
                cancel: Default::default(),
                progress,
                output: tokio::sync::mpsc::channel(1).0,
            };
            let mut op = OpTracker::begin(&store, &ctx, "vm.create", Some("dev".into()))
                .await
                .unwrap();
            let running = ops(&store).await.into_iter().find(|o| o.id == id).unwrap();
            assert_eq!(running.state, OperationState::Running);
            op.stage("boot").await.unwrap();
            assert_eq!(
                stages.try_recv().unwrap(),
                "boot",
                "the client hears of each stage"
            );
            let failed = result.is_err();
            assert_eq!(op.finish(result).await.is_err(), failed);
            let done = ops(&store).await.into_iter().find(|o| o.id == id).unwrap();
            assert_eq!(done.state, want, "{id}");
            assert_eq!(done.stage.as_deref(), Some("boot"), "the stage it ended in");
            assert!(done.finished_at.is_some());
            assert_eq!(
                done.error.is_some(),
                want == OperationState::Failed,
                "{id}: {:?}",
                done.error
            );
        }
    }
}

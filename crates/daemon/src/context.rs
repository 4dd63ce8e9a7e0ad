//! What one request carries through its handler: its operation id, the
//! channels to the client, and its cancellation. The bottom layer: it
//! imports nothing of the daemon.

use banger_api::protocol::OutputChunk;
use tokio_util::sync::CancellationToken;

tokio::task_local! {
    /// The operation id of the request a task works for, so blocking work
    /// it starts (see `blocking`) can hand it on to the root helper.
    pub static OP_ID: String;
}

/// The current request's operation id, if this task serves one.
pub fn current_op_id() -> Option<String> {
    OP_ID.try_with(Clone::clone).ok()
}

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
    /// and unwind what they have done before returning
    /// [`crate::error::DaemonError::Cancelled`].
    pub cancel: CancellationToken,
}

//! The store behind an async-friendly handle: SQLite calls are blocking, so
//! they run on tokio's blocking pool, one at a time over one connection.

use std::sync::{Arc, Mutex};

use banger_store::{Store, StoreError};

use crate::error::DaemonError;

#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Mutex<Store>>,
}

impl StoreHandle {
    pub fn new(store: Store) -> Self {
        Self {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    pub async fn call<T, F>(&self, f: F) -> Result<T, DaemonError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave SQLite half-written
            // (every write is a transaction), so a poisoned lock is still usable.
            let store = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&store)
        })
        .await
        .map_err(|e| DaemonError::Internal(format!("store task failed: {e}")))?
        .map_err(DaemonError::from)
    }
}

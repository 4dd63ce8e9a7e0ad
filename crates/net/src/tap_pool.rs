//! A warm pool of taps already attached to the bridge, so creating a VM does
//! not wait for tap creation (SPEC §8, `tap_pool_size`). A background task
//! refills the pool after each take.

use std::collections::VecDeque;
use std::sync::Arc;

use banger_host::{BridgeName, HostError, HostOps, TapName};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

pub struct TapPool {
    host: Arc<dyn HostOps>,
    bridge: BridgeName,
    owner_uid: u32,
    target: usize,
    inner: Mutex<Inner>,
    wake: Notify,
}

struct Inner {
    ready: VecDeque<TapName>,
    /// Next tap number to try. Numbers only grow during a daemon's life, so a
    /// name released to one VM is never handed to another while in use.
    next: u32,
}

impl TapPool {
    /// `target` taps are kept ready once [`TapPool::fill`] or the refiller ran.
    pub fn new(
        host: Arc<dyn HostOps>,
        bridge: BridgeName,
        owner_uid: u32,
        target: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            host,
            bridge,
            owner_uid,
            target,
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                next: 0,
            }),
            wake: Notify::new(),
        })
    }

    /// Looks at the taps on the host: those `held` by VMs stay theirs, the
    /// others (left by an earlier daemon) join the pool. Numbering continues
    /// after the highest existing tap.
    pub async fn adopt_existing(&self, held: &[TapName]) -> Result<usize, HostError> {
        let existing = self.blocking(|h, _| h.list_taps()).await?;
        let mut inner = self.inner.lock().await;
        let mut adopted = 0;
        for tap in existing {
            inner.next = inner.next.max(tap.number().saturating_add(1));
            if !held.contains(&tap) && !inner.ready.contains(&tap) {
                let t = tap.clone();
                self.blocking(move |h, pool| h.attach_tap(&t, &pool.bridge))
                    .await?;
                inner.ready.push_back(tap);
                adopted += 1;
            }
        }
        Ok(adopted)
    }

    /// A tap attached to the bridge: from the pool, or made now when the pool
    /// is empty. Wakes the refiller either way.
    pub async fn take(&self) -> Result<TapName, HostError> {
        let ready = self.inner.lock().await.ready.pop_front();
        self.wake.notify_one();
        match ready {
            Some(tap) => Ok(tap),
            None => self.create_one().await,
        }
    }

    /// Deletes a tap a VM no longer needs. Taps are not recycled: a fresh
    /// one carries no state from the previous guest.
    pub async fn release(&self, tap: TapName) -> Result<(), HostError> {
        self.blocking(move |h, _| h.delete_tap(&tap)).await
    }

    /// Creates taps until `target` are ready.
    pub async fn fill(&self) -> Result<(), HostError> {
        while self.ready().await < self.target {
            let tap = self.create_one().await?;
            self.inner.lock().await.ready.push_back(tap);
        }
        Ok(())
    }

    pub async fn ready(&self) -> usize {
        self.inner.lock().await.ready.len()
    }

    /// Deletes every ready tap (daemon shutdown, or turning networking off).
    pub async fn drain(&self) -> Result<(), HostError> {
        let taps: Vec<TapName> = self.inner.lock().await.ready.drain(..).collect();
        for tap in taps {
            self.release(tap).await?;
        }
        Ok(())
    }

    /// Keeps the pool full in the background until `shutdown`. A failure is
    /// logged and retried on the next wake-up, never fatal: `take` can still
    /// create taps on demand.
    pub fn spawn_refiller(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = pool.fill().await {
                    tracing::warn!(error = %e, "cannot refill the tap pool");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = pool.wake.notified() => {}
                }
            }
        })
    }

    async fn create_one(&self) -> Result<TapName, HostError> {
        let tap = {
            let mut inner = self.inner.lock().await;
            let tap = TapName::numbered(inner.next);
            inner.next += 1;
            tap
        };
        let t = tap.clone();
        self.blocking(move |h, pool| {
            h.create_tap(&t, pool.owner_uid)?;
            if let Err(e) = h.attach_tap(&t, &pool.bridge) {
                // Do not leave a tap that is in neither the pool nor a VM.
                let _ = h.delete_tap(&t);
                return Err(e);
            }
            Ok(())
        })
        .await?;
        tracing::debug!(tap = %tap, "tap created");
        Ok(tap)
    }

    /// Host operations run processes: keep them off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn HostOps, &PoolConfig) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, HostError> {
        let host = self.host.clone();
        let cfg = PoolConfig {
            bridge: self.bridge.clone(),
            owner_uid: self.owner_uid,
        };
        tokio::task::spawn_blocking(move || f(host.as_ref(), &cfg))
            .await
            .unwrap_or_else(|e| Err(HostError::Internal(format!("host task failed: {e}"))))
    }
}

/// What a blocking host call needs to know about the pool.
struct PoolConfig {
    bridge: BridgeName,
    owner_uid: u32,
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use banger_host::{Ipv4Cidr, OpKind, PrivOp, RecordingHost};

    use super::*;

    fn setup(target: usize) -> (Arc<RecordingHost>, Arc<TapPool>) {
        let host = Arc::new(RecordingHost::new());
        let bridge = BridgeName::from_str("br-fc").unwrap();
        host.ensure_bridge(&bridge, Ipv4Cidr::from_str("172.16.0.1/24").unwrap())
            .unwrap();
        host.take_calls();
        let pool = TapPool::new(host.clone(), bridge, 1000, target);
        (host, pool)
    }

    fn attached(host: &RecordingHost) -> Vec<String> {
        host.state()
            .taps
            .iter()
            .filter(|(_, t)| t.bridge.is_some() && t.owner_uid == 1000)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    #[tokio::test]
    async fn fill_makes_attached_taps_owned_by_the_vmm_user() {
        let (host, pool) = setup(3);
        pool.fill().await.unwrap();
        assert_eq!(pool.ready().await, 3);
        assert_eq!(attached(&host), ["fctap0", "fctap1", "fctap2"]);
        pool.fill().await.unwrap();
        assert_eq!(host.state().taps.len(), 3, "a full pool creates nothing");
    }

    #[tokio::test]
    async fn take_uses_the_pool_then_creates_on_demand() {
        let (host, pool) = setup(1);
        pool.fill().await.unwrap();
        host.take_calls();
        assert_eq!(pool.take().await.unwrap().to_string(), "fctap0");
        assert!(
            host.take_calls().is_empty(),
            "a warm tap costs no host call"
        );
        assert_eq!(
            pool.take().await.unwrap().to_string(),
            "fctap1",
            "made on demand"
        );
        assert_eq!(host.state().taps.len(), 2);
    }

    #[tokio::test]
    async fn the_refiller_tops_the_pool_up_after_a_take() {
        let (host, pool) = setup(2);
        let stop = CancellationToken::new();
        let refiller = pool.spawn_refiller(stop.clone());
        let wait_full = || async {
            for _ in 0..200 {
                if pool.ready().await == 2 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!("pool never refilled");
        };
        wait_full().await;
        pool.take().await.unwrap();
        wait_full().await;
        assert_eq!(host.state().taps.len(), 3);
        stop.cancel();
        refiller.await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_attach_leaves_no_tap_behind() {
        let (host, pool) = setup(1);
        host.fail_next(OpKind::AttachTap);
        assert!(pool.take().await.is_err());
        assert!(host.state().taps.is_empty(), "{:?}", host.calls());
        assert!(matches!(
            host.calls().last(),
            Some(PrivOp::DeleteTap { .. })
        ));
    }

    #[tokio::test]
    async fn adoption_keeps_vm_taps_and_pools_orphans() {
        let (host, pool) = setup(0);
        for n in [3, 7] {
            host.create_tap(&TapName::numbered(n), 1000).unwrap();
        }
        let adopted = pool.adopt_existing(&[TapName::numbered(7)]).await.unwrap();
        assert_eq!(adopted, 1);
        assert_eq!(
            pool.take().await.unwrap(),
            TapName::numbered(3),
            "the orphan, now attached"
        );
        assert_eq!(
            pool.take().await.unwrap(),
            TapName::numbered(8),
            "numbering continues after the highest"
        );
        assert_eq!(attached(&host), ["fctap3", "fctap8"]);
    }

    #[tokio::test]
    async fn release_and_drain_delete_taps() {
        let (host, pool) = setup(2);
        pool.fill().await.unwrap();
        let tap = pool.take().await.unwrap();
        pool.release(tap.clone()).await.unwrap();
        pool.release(tap).await.unwrap();
        pool.drain().await.unwrap();
        assert!(host.state().taps.is_empty());
        assert_eq!(pool.ready().await, 0);
    }
}

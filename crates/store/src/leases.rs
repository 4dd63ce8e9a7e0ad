//! The `ip_leases` table: which guest address belongs to whom. The lowest
//! free address is chosen inside an IMMEDIATE transaction, so concurrent
//! allocations (threads or processes) serialise and never collide; the
//! primary key on `ip` backs that up.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use crate::clock::now_rfc3339;
use crate::error::StoreError;
use crate::store::Store;

/// One leased address. `holder` is normally a VM id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpLease {
    pub ip: Ipv4Addr,
    pub holder: String,
    pub leased_at: String,
}

impl Store {
    /// Leases the first address of `candidates` (in the order given: lowest
    /// first) that nobody holds. A holder that already has a lease gets the
    /// same address back, so a retried create does not leak addresses.
    pub fn lease_ip(
        &self,
        holder: &str,
        candidates: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Result<Ipv4Addr, StoreError> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite(&self.path, "starting an IP lease"))?;
        let ip = self.lease_ip_in_transaction(holder, candidates)?;
        tx.commit()
            .map_err(StoreError::sqlite(&self.path, "committing an IP lease"))?;
        Ok(ip)
    }

    /// [`Store::lease_ip`] inside a transaction the caller opened (IMMEDIATE,
    /// so the choice and the insert are not raced) and commits.
    pub(crate) fn lease_ip_in_transaction(
        &self,
        holder: &str,
        candidates: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Result<Ipv4Addr, StoreError> {
        let err = |action| StoreError::sqlite(&self.path, action);
        let existing: Option<String> = self
            .conn
            .query_row(
                "SELECT ip FROM ip_leases WHERE holder = ?1",
                [holder],
                |r| r.get(0),
            )
            .optional()
            .map_err(err("looking up an IP lease"))?;
        if let Some(ip) = existing {
            return self.parse_ip(ip);
        }
        let taken: HashSet<String> = self
            .conn
            .prepare("SELECT ip FROM ip_leases")
            .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
            .map_err(err("listing IP leases"))?;
        let ip = candidates
            .into_iter()
            .find(|ip| !taken.contains(&ip.to_string()))
            .ok_or_else(|| StoreError::NoFreeAddress {
                holder: holder.to_owned(),
            })?;
        self.conn
            .execute(
                "INSERT INTO ip_leases (ip, holder, leased_at) VALUES (?1, ?2, ?3)",
                params![ip.to_string(), holder, now_rfc3339()],
            )
            .map_err(err("recording an IP lease"))?;
        Ok(ip)
    }

    /// Gives the holder's address back. Releasing twice is fine: returns
    /// whether there was a lease.
    pub fn release_ip(&self, holder: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM ip_leases WHERE holder = ?1", [holder])
            .map_err(StoreError::sqlite(&self.path, "releasing an IP lease"))?;
        Ok(n > 0)
    }

    /// Every lease, by address.
    pub fn list_leases(&self) -> Result<Vec<IpLease>, StoreError> {
        let rows: Vec<(String, String, String)> = self
            .conn
            .prepare("SELECT ip, holder, leased_at FROM ip_leases")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(StoreError::sqlite(&self.path, "listing IP leases"))?;
        let mut leases = rows
            .into_iter()
            .map(|(ip, holder, leased_at)| {
                Ok(IpLease {
                    ip: self.parse_ip(ip)?,
                    holder,
                    leased_at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        leases.sort_by_key(|l| l.ip);
        Ok(leases)
    }

    fn parse_ip(&self, ip: String) -> Result<Ipv4Addr, StoreError> {
        ip.parse().map_err(|_| StoreError::BadLease {
            path: self.path.clone(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use crate::Store;

    /// 172.16.0.2 ..= 172.16.0.254: a /24 without network, bridge (.1) and broadcast.
    fn subnet() -> impl Iterator<Item = Ipv4Addr> {
        (2..=254).map(|h| Ipv4Addr::new(172, 16, 0, h))
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("banger.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn lowest_free_address_and_reuse_after_release() {
        let (_dir, store) = store();
        let a = store.lease_ip("vm-a", subnet()).unwrap();
        let b = store.lease_ip("vm-b", subnet()).unwrap();
        let c = store.lease_ip("vm-c", subnet()).unwrap();
        assert_eq!([a, b, c], [2, 3, 4].map(|h| Ipv4Addr::new(172, 16, 0, h)));
        assert!(store.release_ip("vm-b").unwrap());
        assert!(
            !store.release_ip("vm-b").unwrap(),
            "releasing twice is fine"
        );
        assert_eq!(
            store.lease_ip("vm-d", subnet()).unwrap(),
            b,
            "the freed address is reused"
        );
        let holders: Vec<String> = store
            .list_leases()
            .unwrap()
            .into_iter()
            .map(|l| l.holder)
            .collect();
        assert_eq!(holders, ["vm-a", "vm-d", "vm-c"]);
    }

    #[test]
    fn a_holder_keeps_its_address() {
        let (_dir, store) = store();
        let first = store.lease_ip("vm-a", subnet()).unwrap();
        assert_eq!(store.lease_ip("vm-a", subnet()).unwrap(), first);
        assert_eq!(store.list_leases().unwrap().len(), 1);
    }

    #[test]
    fn a_full_subnet_is_a_clear_error() {
        let (_dir, store) = store();
        let two = || (2..=3).map(|h| Ipv4Addr::new(10, 0, 0, h));
        store.lease_ip("a", two()).unwrap();
        store.lease_ip("b", two()).unwrap();
        let err = store.lease_ip("c", two()).unwrap_err();
        assert!(
            err.to_string().contains("no free guest address left for c"),
            "{err}"
        );
        assert_eq!(
            store.list_leases().unwrap().len(),
            2,
            "nothing half-recorded"
        );
    }

    #[test]
    fn fifty_concurrent_allocations_never_collide() {
        let (dir, _store) = store();
        let db = dir.path().join("banger.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
        let threads: Vec<_> = (0..50)
            .map(|i| {
                let (db, barrier) = (db.clone(), barrier.clone());
                std::thread::spawn(move || {
                    // Each thread has its own connection, as separate
                    // processes would.
                    let store = Store::open(&db).unwrap();
                    barrier.wait();
                    store.lease_ip(&format!("vm-{i}"), subnet()).unwrap()
                })
            })
            .collect();
        let mut ips: Vec<Ipv4Addr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        ips.sort();
        let expected: Vec<Ipv4Addr> = subnet().take(50).collect();
        assert_eq!(ips, expected, "50 distinct addresses, the lowest 50");
    }
}

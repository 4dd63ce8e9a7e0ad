//! The record table: one A record per running VM, shared between the daemon
//! (which updates it as VMs start and stop) and the server tasks.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use banger_api::model::VmName;

/// Shared, cheaply clonable record table: VM name → IPv4, for running VMs.
///
/// Keys are [`VmName`]s, which are lower-case by construction, so a lookup
/// only has to lower-case the queried label. A std lock (not tokio's) because
/// [`answer`](super::answer) is synchronous and never holds it across an await.
#[derive(Debug, Clone, Default)]
pub struct DnsRecords {
    inner: Arc<RwLock<HashMap<String, Ipv4Addr>>>,
}

impl DnsRecords {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the address of `name`.
    pub fn set(&self, name: &VmName, ip: Ipv4Addr) {
        self.write().insert(name.as_str().to_owned(), ip);
    }

    pub fn remove(&self, name: &VmName) {
        self.write().remove(name.as_str());
    }

    /// Swaps the whole table at once (daemon start-up rebuilds it), so a
    /// concurrent query sees either the old table or the new one, never half.
    pub fn replace_all(&self, records: impl IntoIterator<Item = (VmName, Ipv4Addr)>) {
        let table: HashMap<String, Ipv4Addr> = records
            .into_iter()
            .map(|(name, ip)| (String::from(name), ip))
            .collect();
        *self.write() = table;
    }

    /// The address of `name`, compared case-insensitively as DNS requires.
    pub fn get(&self, name: &str) -> Option<Ipv4Addr> {
        // A VM name is at most 63 bytes; anything longer cannot match and is
        // not worth lower-casing.
        if name.len() > VmName::MAX_LEN {
            return None;
        }
        let read = self.read();
        match read.get(name) {
            Some(ip) => Some(*ip),
            None if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                read.get(&name.to_ascii_lowercase()).copied()
            }
            None => None,
        }
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // Nothing panics while holding the lock (plain map operations), and the
    // map is valid after any of them, so a poisoned lock is still usable.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Ipv4Addr>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Ipv4Addr>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

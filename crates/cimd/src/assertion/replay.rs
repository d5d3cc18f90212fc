//! Single-use `jti` (RFC 7523 §3 item 7; single-use across all replicas, kept until
//! `exp` + skew).
//!
//! [`ReplayStore`] is the small trait a shared backend (Redis `SET NX PX`, a SQL unique key)
//! implements; [`MemoryReplayStore`] is the in-process implementation for a single replica.
//!
//! Namespacing: entries are keyed by `(client_id, jti)`, so one client's `jti` values never
//! collide with another's, and per-client caps stop one client from filling the store and locking
//! everyone else out (the reference implementation's global 10 000-entry cache had that flaw).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

use super::error::ReplayStoreError;

/// Default total capacity of a [`MemoryReplayStore`] (live entries).
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;
/// Default per-client capacity of a [`MemoryReplayStore`] (live entries). At the 330 s maximum
/// retention (300 s lifetime + 30 s skew) this allows ~30 assertions per second per client.
pub const DEFAULT_REPLAY_CAPACITY_PER_CLIENT: usize = 10_000;

/// Records `(client_id, jti)` pairs so that each assertion is accepted once.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Atomically record (client_id, jti) until `expires_at`; Ok(true) if new, Ok(false) if
    /// already seen (and not yet expired).
    async fn record_once(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, ReplayStoreError>;
}

type EntryKey = (String, String);

#[derive(Debug, Default)]
struct Inner {
    /// (client_id, jti) → expiry.
    entries: HashMap<EntryKey, SystemTime>,
    /// Expiry index, oldest first, for cheap purging.
    by_expiry: BTreeSet<(SystemTime, String, String)>,
    /// Live entries per client.
    per_client: HashMap<String, usize>,
}

impl Inner {
    /// Drop every entry whose expiry is at or before `now`.
    fn purge(&mut self, now: SystemTime) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 > now {
                break;
            }
            let Some((_, client_id, jti)) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&(client_id.clone(), jti));
            if let Some(count) = self.per_client.get_mut(&client_id) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.per_client.remove(&client_id);
                }
            }
        }
    }
}

/// In-process, bounded [`ReplayStore`] for a single replica.
///
/// When full (after purging expired entries) it **refuses** the new `jti`
/// ([`ReplayStoreError::Full`] / [`ReplayStoreError::ClientFull`]) instead of evicting a live
/// entry: an evicted `jti` could be replayed until its assertion expires.
#[derive(Debug)]
pub struct MemoryReplayStore {
    inner: Mutex<Inner>,
    capacity: usize,
    per_client_capacity: usize,
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryReplayStore {
    /// A store with [`DEFAULT_REPLAY_CAPACITY`] and [`DEFAULT_REPLAY_CAPACITY_PER_CLIENT`].
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY, DEFAULT_REPLAY_CAPACITY_PER_CLIENT)
    }

    /// A store holding at most `capacity` live entries, and at most `per_client_capacity` for any
    /// one client.
    pub fn with_capacity(capacity: usize, per_client_capacity: usize) -> Self {
        MemoryReplayStore {
            inner: Mutex::new(Inner::default()),
            capacity,
            per_client_capacity,
        }
    }

    /// Number of entries currently held (expired ones included until the next purge).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-operation; every operation
        // leaves the maps consistent before it can panic (it cannot), so keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// [`ReplayStore::record_once`] with an explicit clock (for tests).
    pub fn record_once_at(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<bool, ReplayStoreError> {
        let mut inner = self.lock();
        inner.purge(now);
        let key = (client_id.to_owned(), jti.to_owned());
        if inner.entries.contains_key(&key) {
            return Ok(false);
        }
        let client_count = inner.per_client.get(client_id).copied().unwrap_or(0);
        if client_count >= self.per_client_capacity {
            tracing::warn!(
                client_id,
                capacity = self.per_client_capacity,
                "replay store per-client cap reached; refusing assertion"
            );
            return Err(ReplayStoreError::ClientFull {
                client_id: client_id.to_owned(),
                capacity: self.per_client_capacity,
            });
        }
        if inner.entries.len() >= self.capacity {
            tracing::warn!(
                capacity = self.capacity,
                "replay store full; refusing assertion"
            );
            return Err(ReplayStoreError::Full {
                capacity: self.capacity,
            });
        }
        // An already-expired assertion is never recorded (the claim checks reject it first);
        // recording it anyway would only be purged at once.
        inner
            .by_expiry
            .insert((expires_at, key.0.clone(), key.1.clone()));
        inner.entries.insert(key, expires_at);
        *inner.per_client.entry(client_id.to_owned()).or_insert(0) += 1;
        Ok(true)
    }
}

#[async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn record_once(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, ReplayStoreError> {
        self.record_once_at(client_id, jti, expires_at, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: &str = "https://a.example/client";
    const B: &str = "https://b.example/client";

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn rejects_replayed_jti() {
        let s = MemoryReplayStore::new();
        assert_eq!(s.record_once_at(A, "j", t(100), t(0)), Ok(true));
        assert_eq!(s.record_once_at(A, "j", t(100), t(50)), Ok(false));
        assert_eq!(s.record_once_at(A, "j", t(100), t(99)), Ok(false));
        // After expiry the entry is purged and the jti may be recorded again (the assertion
        // itself is expired by then, so the claim checks reject it first).
        assert_eq!(s.record_once_at(A, "j", t(300), t(100)), Ok(true));
    }

    #[test]
    fn replay_namespace_is_per_client() {
        let s = MemoryReplayStore::new();
        assert_eq!(s.record_once_at(A, "same-jti", t(100), t(0)), Ok(true));
        assert_eq!(s.record_once_at(B, "same-jti", t(100), t(0)), Ok(true));
        assert_eq!(s.record_once_at(A, "same-jti", t(100), t(1)), Ok(false));
        assert_eq!(s.record_once_at(B, "same-jti", t(100), t(1)), Ok(false));
        // No delimiter ambiguity between client_id and jti.
        assert_eq!(s.record_once_at("a|b", "c", t(100), t(0)), Ok(true));
        assert_eq!(s.record_once_at("a", "b|c", t(100), t(0)), Ok(true));
    }

    #[test]
    fn replay_store_refuses_when_full() {
        let s = MemoryReplayStore::with_capacity(3, 10);
        for (i, client) in ["c1", "c2", "c3"].into_iter().enumerate() {
            assert_eq!(
                s.record_once_at(client, "j", t(100 + i as u64), t(0)),
                Ok(true)
            );
        }
        // Full of live entries: refused, and nothing live was evicted.
        assert_eq!(
            s.record_once_at("c4", "j", t(100), t(10)),
            Err(ReplayStoreError::Full { capacity: 3 })
        );
        for client in ["c1", "c2", "c3"] {
            assert_eq!(
                s.record_once_at(client, "j", t(100), t(10)),
                Ok(false),
                "{client}"
            );
        }
        // Once the oldest entry expires it is purged and there is room again.
        assert_eq!(s.record_once_at("c4", "j", t(200), t(100)), Ok(true));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn replay_store_caps_each_client() {
        let s = MemoryReplayStore::with_capacity(100, 2);
        assert_eq!(s.record_once_at(A, "1", t(100), t(0)), Ok(true));
        assert_eq!(s.record_once_at(A, "2", t(100), t(0)), Ok(true));
        assert!(matches!(
            s.record_once_at(A, "3", t(100), t(0)),
            Err(ReplayStoreError::ClientFull { capacity: 2, .. })
        ));
        // Another client is unaffected.
        assert_eq!(s.record_once_at(B, "1", t(100), t(0)), Ok(true));
        // A's count drops as its entries expire.
        assert_eq!(s.record_once_at(A, "3", t(200), t(100)), Ok(true));
    }

    #[tokio::test]
    async fn replay_store_is_atomic_under_concurrency() {
        let s = std::sync::Arc::new(MemoryReplayStore::new());
        let exp = SystemTime::now() + Duration::from_secs(60);
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let s = s.clone();
            tasks.push(tokio::spawn(
                async move { s.record_once(A, "race", exp).await },
            ));
        }
        let mut accepted = 0;
        for task in tasks {
            if task.await.expect("join") == Ok(true) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 1);
    }
}

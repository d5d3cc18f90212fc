//! The process-local L1 in front of a shared [`super::DocumentStore`] (Redis): recently read
//! entries with their validated document memoised, so a cached `/authorize` on one of N
//! instances costs no store round trip and no re-validation.
//!
//! Two rules keep it correct:
//!
//! - An L1 copy answers without reading the shared store only until
//!   `min(fresh_until, read_at + local_ttl)` ([`super::CacheConfig::local_ttl`], 10 s by
//!   default). After that the shared store is read again, so a document refetched, replaced or
//!   evicted by another instance is picked up within `local_ttl`, and nothing is ever served
//!   past its freshness from here.
//! - The validated document is reused only for a byte-identical body (the copy keeps the body;
//!   the comparison is exact, not a hash), so an L1 miss with an unchanged body — the common
//!   case after `local_ttl`, or after another instance's 304 revalidation — costs one store read
//!   and no validation; a changed body is validated again.
//!
//! Negative entries are not kept here: they are always read from the shared store.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use moka::Expiry;
use moka::sync::Cache;

use super::store::StoredDocument;
use super::{CacheConfig, ResolvedClient, add_or_same};

/// One L1 copy.
pub(super) struct LocalEntry {
    /// The entry as read from (or written to) the shared store, `resolved` filled in when its
    /// body is valid.
    doc: Arc<StoredDocument>,
    /// Answer from this copy, without a store read, strictly before this time.
    use_until: SystemTime,
}

/// Drops copies when the entry's stale-if-error window ends (they are no use after that).
struct KeepExpiry;

impl Expiry<String, Arc<LocalEntry>> for KeepExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<LocalEntry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(
            value
                .doc
                .keep_until
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
    fn expire_after_update(
        &self,
        key: &String,
        value: &Arc<LocalEntry>,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

/// The L1: bounded like the memory store (entries and approximate bytes).
pub(super) struct LocalCache {
    entries: Cache<String, Arc<LocalEntry>>,
    ttl: Duration,
}

impl LocalCache {
    pub(super) fn new(cfg: &CacheConfig) -> Self {
        let max_entries = cfg.max_entries.max(1);
        let max_bytes = cfg.max_bytes.max(1);
        let min_weight = max_bytes.div_ceil(max_entries);
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |k: &String, v: &Arc<LocalEntry>| {
                u32::try_from(v.doc.approx_bytes(k).max(min_weight)).unwrap_or(u32::MAX)
            })
            .expire_after(KeepExpiry)
            .build();
        LocalCache {
            entries,
            ttl: cfg.local_ttl,
        }
    }

    /// The copy for `key` if it may still answer at `now` without a store read.
    pub(super) fn usable(&self, key: &str, now: SystemTime) -> Option<Arc<StoredDocument>> {
        let e = self.entries.get(key)?;
        (now < e.use_until && now < e.doc.fresh_until).then(|| Arc::clone(&e.doc))
    }

    /// The validated document memoised for exactly this `body`, whatever the copy's age.
    pub(super) fn memo(&self, key: &str, body: &Bytes) -> Option<Arc<ResolvedClient>> {
        let e = self.entries.get(key)?;
        if e.doc.body == *body {
            e.doc.resolved.clone()
        } else {
            None
        }
    }

    /// Keeps `doc` (read from or just written to the shared store at `now`).
    pub(super) fn insert(&self, key: &str, doc: Arc<StoredDocument>, now: SystemTime) {
        let use_until = add_or_same(now, self.ttl).min(doc.fresh_until);
        self.entries
            .insert(key.to_owned(), Arc::new(LocalEntry { doc, use_until }));
    }

    /// Forgets the copy (evicted: no-store, invalid new version).
    pub(super) fn remove(&self, key: &str) {
        self.entries.invalidate(key);
    }
}

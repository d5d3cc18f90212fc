//! Storage for cached documents and negative entries: the [`DocumentStore`] trait and its
//! in-process implementation [`MemoryDocumentStore`] (docs/architecture.md, *Caching*: bounded
//! size, shareable through the store — *Storage and scale*).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_cache_semantics::CachePolicy;
use moka::Expiry;
use moka::future::Cache;

use super::{CacheConfig, ResolveError, ResolvedClient};
use crate::document::ValidationReport;
use crate::fetch::FetchError;

/// Approximate per-entry overhead beyond the body: the key, the `CachePolicy` (two header maps —
/// the response's cut to at most `freshness::MAX_CACHE_HEADERS_TOTAL` bytes — URI, options) and
/// the parsed document. A deliberate over-estimate so the byte bound holds.
pub const ENTRY_OVERHEAD_BYTES: u64 = 4096;

/// Approximate overhead of a negative entry beyond its key and error message.
pub const NEGATIVE_OVERHEAD_BYTES: u64 = 256;

/// A cached document in serialisable form: what a shared backend (e.g. Redis) stores.
///
/// `resolved` is a process-local memo of the validated document, skipped by serde; a backend
/// that cannot keep it returns `None` and the resolver re-validates `body` on a hit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredDocument {
    /// The raw 200 body, exactly as received.
    #[serde(with = "bytes_serde")]
    pub body: Bytes,
    /// RFC 9111 policy of the response (request + response heads, response time).
    pub policy: CachePolicy,
    /// When the body was fetched or last revalidated.
    pub fetched_at: SystemTime,
    /// End of freshness (our clamps applied).
    pub fresh_until: SystemTime,
    /// End of the stale-if-error window; the store may drop the entry after this.
    pub keep_until: SystemTime,
    /// Memoised validated document (not serialised).
    #[serde(skip)]
    pub resolved: Option<Arc<ResolvedClient>>,
}

impl StoredDocument {
    /// Approximate memory cost in bytes (body, plus its parsed form, plus overhead).
    pub fn approx_bytes(&self, key: &str) -> u64 {
        let body = self.body.len() as u64;
        (key.len() as u64)
            .saturating_add(body.saturating_mul(2))
            .saturating_add(ENTRY_OVERHEAD_BYTES)
    }
}

/// A remembered failure (the negative cache, docs/architecture.md, *Fetching (SSRF-safe)*): the
/// exact error, until when it holds.
///
/// A shared backend stores it as [`StoredNegative`] ([`NegativeEntry::to_stored`]).
#[derive(Debug, Clone)]
pub struct NegativeEntry {
    /// The failure to return again.
    pub error: ResolveError,
    /// Remembered until this time.
    pub until: SystemTime,
}

/// The serialisable form of a [`NegativeEntry`]. A validation report is kept whole; a fetch
/// failure keeps its message (it comes back as [`FetchError::Remembered`], still a
/// [`ResolveError::Fetch`], so stale-if-error and the error page behave the same).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredNegative {
    /// The failure.
    pub error: StoredFailure,
    /// Remembered until this time.
    pub until: SystemTime,
}

/// The failure inside a [`StoredNegative`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StoredFailure {
    /// [`ResolveError::Fetch`]: the error's message.
    Fetch {
        /// `Display` of the [`FetchError`].
        message: String,
    },
    /// [`ResolveError::Invalid`]: the whole report.
    Invalid {
        /// The validation report.
        report: ValidationReport,
    },
}

impl NegativeEntry {
    /// The serialisable form.
    pub fn to_stored(&self) -> StoredNegative {
        let error = match &self.error {
            ResolveError::Fetch(e) => StoredFailure::Fetch {
                message: e.to_string(),
            },
            ResolveError::Invalid(report) => StoredFailure::Invalid {
                report: report.clone(),
            },
        };
        StoredNegative {
            error,
            until: self.until,
        }
    }

    /// Rebuild from the serialisable form.
    pub fn from_stored(stored: StoredNegative) -> NegativeEntry {
        let error = match stored.error {
            StoredFailure::Fetch { message } => {
                ResolveError::Fetch(FetchError::Remembered { message })
            }
            StoredFailure::Invalid { report } => ResolveError::Invalid(report),
        };
        NegativeEntry {
            error,
            until: stored.until,
        }
    }
}

/// Backend failure. The resolver degrades (treats it as a miss, logs a warning); it never turns
/// a store outage into a client error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("document store failed: {message}")]
pub struct StoreError {
    /// What went wrong, naming the backend operation.
    pub message: String,
}

/// Where cached documents and negative entries live, keyed by the exact `client_id` string.
///
/// Implementations must drop entries at or after [`StoredDocument::keep_until`] /
/// [`NegativeEntry::until`] (the resolver also checks the times, so late expiry is harmless).
#[async_trait::async_trait]
pub trait DocumentStore: Send + Sync {
    /// The stored document for `client_id`, if any.
    async fn get(&self, client_id: &str) -> Result<Option<Arc<StoredDocument>>, StoreError>;
    /// Stores (replaces) the document for `client_id`.
    async fn put(&self, client_id: &str, doc: Arc<StoredDocument>) -> Result<(), StoreError>;
    /// Removes the document for `client_id` (no-store, invalid new version).
    async fn remove(&self, client_id: &str) -> Result<(), StoreError>;
    /// The remembered failure for `client_id`, if any.
    async fn get_negative(&self, client_id: &str)
    -> Result<Option<Arc<NegativeEntry>>, StoreError>;
    /// Remembers a failure for `client_id`.
    async fn put_negative(
        &self,
        client_id: &str,
        entry: Arc<NegativeEntry>,
    ) -> Result<(), StoreError>;
}

/// Per-entry expiry for moka from the entries' own `SystemTime` deadlines.
struct UntilExpiry;

fn remaining(until: SystemTime) -> Option<Duration> {
    Some(
        until
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl Expiry<String, Arc<StoredDocument>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<StoredDocument>,
        _created_at: Instant,
    ) -> Option<Duration> {
        remaining(value.keep_until)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<StoredDocument>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        remaining(value.keep_until)
    }
}

impl Expiry<String, Arc<NegativeEntry>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<NegativeEntry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        remaining(value.until)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<NegativeEntry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        remaining(value.until)
    }
}

/// In-process [`DocumentStore`] on `moka` (TinyLFU admission, LRU eviction).
///
/// Bounded by entries AND bytes with a single weighted capacity: capacity is `max_bytes` and
/// every entry weighs at least `max_bytes / max_entries`, so neither bound can be exceeded.
/// Entries expire at their `keep_until` (freshness + stale-if-error); negative entries at their
/// `until`, with at most `max_entries` of them.
pub struct MemoryDocumentStore {
    docs: Cache<String, Arc<StoredDocument>>,
    negative: Cache<String, Arc<NegativeEntry>>,
}

impl MemoryDocumentStore {
    /// A store bounded by `cfg.max_entries` and `cfg.max_bytes`.
    pub fn new(cfg: &CacheConfig) -> Self {
        let max_entries = cfg.max_entries.max(1);
        let max_bytes = cfg.max_bytes.max(1);
        let min_weight = max_bytes.div_ceil(max_entries);
        let docs = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |k: &String, v: &Arc<StoredDocument>| {
                u32::try_from(v.approx_bytes(k).max(min_weight)).unwrap_or(u32::MAX)
            })
            .expire_after(UntilExpiry)
            .build();
        // Negative entries share the same two bounds, weighed by what they hold (the key and the
        // error message), within a quarter of the byte budget.
        let negative_bytes = (max_bytes / 4).max(1);
        let negative_min_weight = negative_bytes.div_ceil(max_entries);
        let negative = Cache::builder()
            .max_capacity(negative_bytes)
            .weigher(move |k: &String, v: &Arc<NegativeEntry>| {
                let bytes = (k.len() as u64)
                    .saturating_add(v.error.to_string().len() as u64)
                    .saturating_add(NEGATIVE_OVERHEAD_BYTES);
                u32::try_from(bytes.max(negative_min_weight)).unwrap_or(u32::MAX)
            })
            .expire_after(UntilExpiry)
            .build();
        MemoryDocumentStore { docs, negative }
    }

    /// Number of cached documents (approximate until pending maintenance has run).
    pub fn len(&self) -> u64 {
        self.docs.entry_count()
    }

    /// Whether no document is cached (approximate, like [`Self::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight of cached documents in approximate bytes.
    pub fn weighted_bytes(&self) -> u64 {
        self.docs.weighted_size()
    }

    /// Runs moka's pending maintenance (evictions, expiry) now; for tests and metrics.
    pub async fn run_pending_tasks(&self) {
        self.docs.run_pending_tasks().await;
        self.negative.run_pending_tasks().await;
    }
}

#[async_trait::async_trait]
impl DocumentStore for MemoryDocumentStore {
    async fn get(&self, client_id: &str) -> Result<Option<Arc<StoredDocument>>, StoreError> {
        Ok(self.docs.get(client_id).await)
    }
    async fn put(&self, client_id: &str, doc: Arc<StoredDocument>) -> Result<(), StoreError> {
        self.docs.insert(client_id.to_owned(), doc).await;
        Ok(())
    }
    async fn remove(&self, client_id: &str) -> Result<(), StoreError> {
        self.docs.invalidate(client_id).await;
        Ok(())
    }
    async fn get_negative(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<NegativeEntry>>, StoreError> {
        Ok(self.negative.get(client_id).await)
    }
    async fn put_negative(
        &self,
        client_id: &str,
        entry: Arc<NegativeEntry>,
    ) -> Result<(), StoreError> {
        self.negative.insert(client_id.to_owned(), entry).await;
        Ok(())
    }
}

/// serde for [`Bytes`] (the `bytes` crate's serde feature is off): a byte string out, a byte
/// string or a sequence of bytes in.
mod bytes_serde {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Vec::<u8>::deserialize(d).map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::freshness::new_policy;
    use http::HeaderMap;

    fn doc(body_len: usize, keep: Duration) -> Arc<StoredDocument> {
        let now = SystemTime::now();
        Arc::new(StoredDocument {
            body: Bytes::from(vec![b'x'; body_len]),
            policy: new_policy("https://a.example/c", &HeaderMap::new(), now),
            fetched_at: now,
            fresh_until: now,
            keep_until: now + keep,
            resolved: None,
        })
    }

    #[tokio::test]
    async fn memory_store_bounded_by_entry_count() {
        let cfg = CacheConfig {
            max_entries: 10,
            max_bytes: 10 * 1024 * 1024,
            ..CacheConfig::default()
        };
        let store = MemoryDocumentStore::new(&cfg);
        for i in 0..50 {
            store
                .put(
                    &format!("https://a.example/{i}"),
                    doc(100, Duration::from_secs(60)),
                )
                .await
                .unwrap();
        }
        store.run_pending_tasks().await;
        assert!(store.len() <= 10, "entries {} > 10", store.len());
        assert!(!store.is_empty());
    }

    #[tokio::test]
    async fn memory_store_bounded_by_bytes() {
        let cfg = CacheConfig {
            max_entries: 10_000,
            max_bytes: 64 * 1024,
            ..CacheConfig::default()
        };
        let store = MemoryDocumentStore::new(&cfg);
        for i in 0..100 {
            store
                .put(
                    &format!("https://a.example/{i}"),
                    doc(5000, Duration::from_secs(60)),
                )
                .await
                .unwrap();
        }
        store.run_pending_tasks().await;
        assert!(
            store.weighted_bytes() <= 64 * 1024,
            "bytes {}",
            store.weighted_bytes()
        );
        // Each entry weighs ~12 KiB, so at most 5 fit.
        assert!(store.len() <= 5, "entries {}", store.len());
        assert!(!store.is_empty());
    }

    #[tokio::test]
    async fn memory_store_drops_entries_after_keep_until() {
        let store = MemoryDocumentStore::new(&CacheConfig::default());
        store
            .put("https://a.example/c", doc(10, Duration::from_millis(50)))
            .await
            .unwrap();
        assert!(store.get("https://a.example/c").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(store.get("https://a.example/c").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn memory_store_remove_evicts() {
        let store = MemoryDocumentStore::new(&CacheConfig::default());
        store
            .put("https://a.example/c", doc(10, Duration::from_secs(60)))
            .await
            .unwrap();
        store.remove("https://a.example/c").await.unwrap();
        assert!(store.get("https://a.example/c").await.unwrap().is_none());
    }

    #[test]
    fn negative_entries_round_trip_with_the_same_message() {
        use crate::document::Problem;
        let until = SystemTime::now();
        let cases = [
            ResolveError::Fetch(FetchError::HttpStatus { status: 404 }),
            ResolveError::Invalid(ValidationReport {
                problems: vec![
                    Problem::error("redirect_uris", "empty-redirect-uris", "must not be empty"),
                    Problem::warning("x", "no-such-rule-yet", "later"),
                ],
            }),
        ];
        for error in cases {
            let entry = NegativeEntry {
                error: error.clone(),
                until,
            };
            let json = serde_json::to_string(&entry.to_stored()).unwrap();
            let back = NegativeEntry::from_stored(serde_json::from_str(&json).unwrap());
            assert_eq!(back.until, until);
            assert_eq!(
                std::mem::discriminant(&back.error),
                std::mem::discriminant(&error)
            );
            let (was, now) = (error.to_string(), back.error.to_string());
            assert_eq!(now, was.replace("no-such-rule-yet", "unknown-rule"));
        }
    }

    #[test]
    fn stored_document_round_trips_through_serde() {
        let d = doc(3, Duration::from_secs(60));
        let json = serde_json::to_string(&*d).unwrap();
        let back: StoredDocument = serde_json::from_str(&json).unwrap();
        assert_eq!(back.body, d.body);
        assert_eq!(back.fresh_until, d.fresh_until);
        assert_eq!(back.keep_until, d.keep_until);
        assert!(back.resolved.is_none());
    }
}

//! The [`Resolver`]: cache lookup, negative cache, coalesced fetch/revalidation, stale-if-error
//! (docs/architecture.md, *Fetching (SSRF-safe)* and *Caching*; RFC 9111 §4, §4.3).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::{HeaderMap, StatusCode};
use http_cache_semantics::{AfterResponse, CachePolicy};

use super::freshness::{
    Freshness, freshness, new_policy, normalised, policy_request, policy_response, validators,
};
use super::local::LocalCache;
use super::store::{DocumentStore, MemoryDocumentStore, NegativeEntry, StoredDocument};
use super::{CacheConfig, ResolveError, ResolvedClient, add_or_same, document_digest};
use crate::client_id::ClientIdUrl;
use crate::document::{MAX_DOCUMENT_BYTES, Profile, ValidationReport, validate_document};
use crate::fetch::{FetchError, FetchRequest, Fetcher};

type ResolveResult = Result<Arc<ResolvedClient>, ResolveError>;
type InflightFetch = Shared<BoxFuture<'static, ResolveResult>>;

/// Counters for metrics and tests (monotonic since the resolver was built).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// HTTP requests sent for documents (conditional or not).
    pub fetches: u64,
    /// Revalidations answered with 304 Not Modified.
    pub not_modified: u64,
    /// Lookups answered from the negative cache.
    pub negative_hits: u64,
    /// Stale documents served under stale-if-error.
    pub stale_served: u64,
    /// Stored bodies validated again because no validated form was memoised (a shared store's
    /// entry this instance had not seen with that body).
    pub validations: u64,
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    not_modified: AtomicU64,
    negative_hits: AtomicU64,
    stale_served: AtomicU64,
    validations: AtomicU64,
}

struct Inner {
    fetcher: Arc<Fetcher>,
    store: Arc<dyn DocumentStore>,
    /// Process-local L1 in front of a shared store (`None` for an in-process store).
    local: Option<LocalCache>,
    cfg: CacheConfig,
    profile: Profile,
    /// One in-flight fetch per client_id (coalescing, docs/architecture.md, *Fetching
    /// (SSRF-safe)*).
    inflight: Mutex<HashMap<String, InflightFetch>>,
    counters: Counters,
}

/// Resolves a `client_id` URL to its validated metadata document through the cache.
///
/// Cheap to clone (shares the cache, the in-flight map and the counters). Fetches run on
/// spawned Tokio tasks, so resolving needs a Tokio runtime.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("cfg", &self.inner.cfg)
            .field("profile", &self.inner.profile)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Resolver {
    /// A resolver over `store` fetching with `fetcher`, validating with `profile`. For a store
    /// that keeps entries in this process (it hands back the memoised validated document).
    pub fn new(
        fetcher: Arc<Fetcher>,
        store: Arc<dyn DocumentStore>,
        cfg: CacheConfig,
        profile: Profile,
    ) -> Self {
        Self::build(fetcher, store, None, cfg, profile)
    }

    /// A resolver over a `store` shared with other instances (e.g. Redis), with a process-local
    /// L1 in front of it: fresh hits answer from this process for at most
    /// [`CacheConfig::local_ttl`] (never past freshness) without a store read, and an unchanged
    /// body read back from the store is not validated again (see the module documentation).
    pub fn shared(
        fetcher: Arc<Fetcher>,
        store: Arc<dyn DocumentStore>,
        cfg: CacheConfig,
        profile: Profile,
    ) -> Self {
        let local = Some(LocalCache::new(&cfg));
        Self::build(fetcher, store, local, cfg, profile)
    }

    fn build(
        fetcher: Arc<Fetcher>,
        store: Arc<dyn DocumentStore>,
        local: Option<LocalCache>,
        cfg: CacheConfig,
        profile: Profile,
    ) -> Self {
        Resolver {
            inner: Arc::new(Inner {
                fetcher,
                store,
                local,
                cfg,
                profile,
                inflight: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        }
    }

    /// A resolver with a fresh [`MemoryDocumentStore`] sized by `cfg`.
    pub fn in_memory(fetcher: Arc<Fetcher>, cfg: CacheConfig, profile: Profile) -> Self {
        let store = Arc::new(MemoryDocumentStore::new(&cfg));
        Self::new(fetcher, store, cfg, profile)
    }

    /// The configuration in use.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.cfg
    }

    /// Counters since construction.
    pub fn stats(&self) -> ResolverStats {
        let c = &self.inner.counters;
        ResolverStats {
            fetches: c.fetches.load(Ordering::Relaxed),
            not_modified: c.not_modified.load(Ordering::Relaxed),
            negative_hits: c.negative_hits.load(Ordering::Relaxed),
            stale_served: c.stale_served.load(Ordering::Relaxed),
            validations: c.validations.load(Ordering::Relaxed),
        }
    }

    /// A fresh, already validated document from the cache, or `None` when answering would need
    /// a fetch or a revalidation. Never does network I/O; callers use it to apply fetch rate
    /// limits only to requests that can trigger a fetch.
    pub async fn peek_fresh(&self, id: &ClientIdUrl) -> Option<Arc<ResolvedClient>> {
        let now = SystemTime::now();
        let cached = self.inner.load(id, now).await?;
        if now < cached.fresh_until {
            let hit = match &cached.resolved {
                Some(r) => Some(Arc::clone(r)),
                // A shared backend without the memo: validate the stored body (no I/O).
                None => self.inner.materialise(id, &cached).ok(),
            };
            // A miss here is counted by the `resolve` that follows it.
            if hit.is_some() {
                crate::metrics::cache("hit");
            }
            hit
        } else {
            None
        }
    }

    /// Whether a document for `id` is held at all (fresh or stale, within its keep window):
    /// a fetch for it would be a refresh of a known client, not a first fetch. No network I/O
    /// (a store read with a shared store).
    pub async fn holds(&self, id: &ClientIdUrl) -> bool {
        self.inner.load(id, SystemTime::now()).await.is_some()
    }

    /// For `/authorize`: a fresh document from the cache, or fetched / revalidated now.
    /// A recent failure comes back from the negative cache without a fetch.
    pub async fn resolve(&self, id: &ClientIdUrl) -> ResolveResult {
        self.resolve_at(id, SystemTime::now(), false).await
    }

    /// For `/token` and refresh (never a new `/authorize`): like [`Self::resolve`], but when the
    /// fetch fails (not when the new document is invalid) a previously valid document within
    /// [`CacheConfig::stale_if_error`] past its freshness is returned, with a warning.
    pub async fn resolve_allow_stale(&self, id: &ClientIdUrl) -> ResolveResult {
        self.resolve_at(id, SystemTime::now(), true).await
    }

    /// The lookup with an explicit clock for the cache decisions (fresh, negative, stale).
    pub(crate) async fn resolve_at(
        &self,
        id: &ClientIdUrl,
        now: SystemTime,
        allow_stale: bool,
    ) -> ResolveResult {
        let inner = &self.inner;
        let cached = inner.load(id, now).await;
        if let Some(c) = &cached
            && now < c.fresh_until
        {
            if let Some(r) = &c.resolved {
                tracing::debug!(client_id = %id, "client metadata document served from cache");
                crate::metrics::cache("hit");
                return Ok(Arc::clone(r));
            }
            // A shared backend without the memo: re-validate the stored body.
            if let Ok(r) = inner.materialise(id, c) {
                tracing::debug!(client_id = %id, "client metadata document served from cache");
                crate::metrics::cache("hit");
                return Ok(r);
            }
        }
        if let Some(neg) = inner.load_negative(id.as_str(), now).await {
            inner.counters.negative_hits.fetch_add(1, Ordering::Relaxed);
            crate::metrics::cache("negative");
            if stale_allowed(allow_stale, &neg.error)
                && let Some(s) = inner.stale_fallback(id, cached.as_deref(), now, &neg.error)
            {
                return Ok(s);
            }
            tracing::debug!(client_id = %id, reason = %neg.error, "negative cache hit");
            return Err(neg.error.clone());
        }
        crate::metrics::cache("miss");
        match self.fetch_coalesced(id, now).await {
            Ok(r) => Ok(r),
            Err(e) => {
                if stale_allowed(allow_stale, &e)
                    && let Some(s) = inner.stale_fallback(id, cached.as_deref(), now, &e)
                {
                    return Ok(s);
                }
                Err(e)
            }
        }
    }

    /// Joins the in-flight fetch for `id`, or starts one (deciding with the clock `now`). The fetch
    /// runs in its own task, so a caller that goes away does not cancel it for the others, and its
    /// map entry is always removed when it ends.
    async fn fetch_coalesced(&self, id: &ClientIdUrl, now: SystemTime) -> ResolveResult {
        let shared = {
            let mut map = lock(&self.inner.inflight);
            if let Some(f) = map.get(id.as_str()) {
                f.clone()
            } else {
                let inner = Arc::clone(&self.inner);
                let task_id = id.clone();
                let handle = tokio::spawn(async move {
                    let _guard = InflightGuard {
                        inner: Arc::clone(&inner),
                        key: task_id.as_str().to_owned(),
                    };
                    inner.refresh(&task_id, now).await
                });
                let fut: InflightFetch = async move {
                    handle.await.unwrap_or_else(|e| {
                        Err(ResolveError::Fetch(FetchError::Io {
                            message: format!("document fetch task failed: {e}"),
                        }))
                    })
                }
                .boxed()
                .shared();
                map.insert(id.as_str().to_owned(), fut.clone());
                fut
            }
        };
        shared.await
    }
}

/// Removes a finished (or panicked) fetch from the in-flight map.
struct InflightGuard {
    inner: Arc<Inner>,
    key: String,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        // Drop the removed future outside the lock.
        let removed = lock(&self.inner.inflight).remove(&self.key);
        drop(removed);
    }
}

impl Inner {
    /// The stored document, if any and still within its keep window. Store errors are a miss.
    ///
    /// With a shared store: a usable L1 copy answers without a store read; otherwise the entry
    /// read from the store gets its validated form (memoised for the same body, or validated
    /// now) and is kept in the L1.
    async fn load(&self, id: &ClientIdUrl, now: SystemTime) -> Option<Arc<StoredDocument>> {
        let key = id.as_str();
        if let Some(local) = &self.local
            && let Some(d) = local.usable(key, now)
        {
            return Some(d);
        }
        let d = match self.store.get(key).await {
            Ok(Some(d)) if now < d.keep_until => d,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(client_id = key, error = %e, "document store read failed; treating as a miss");
                return None;
            }
        };
        match &self.local {
            Some(local) => Some(self.remember(local, id, d, now)),
            None => Some(d),
        }
    }

    /// Fills in the validated form of an entry read from the shared store and keeps it in the
    /// L1. An invalid body (never written by a resolver) is returned as is and not kept.
    fn remember(
        &self,
        local: &LocalCache,
        id: &ClientIdUrl,
        d: Arc<StoredDocument>,
        now: SystemTime,
    ) -> Arc<StoredDocument> {
        let key = id.as_str();
        if d.resolved.is_some() {
            local.insert(key, Arc::clone(&d), now);
            return d;
        }
        let resolved = match local.memo(key, &d.body) {
            // Same bytes, same client_id, same profile: the same validation result; only the
            // times come from the (possibly revalidated) stored entry.
            Some(m) => Arc::new(ResolvedClient {
                document: m.document.clone(),
                digest: m.digest.clone(),
                warnings: m.warnings.clone(),
                fetched_at: d.fetched_at,
                fresh_until: d.fresh_until,
            }),
            None => match self.materialise(id, &d) {
                Ok(r) => r,
                Err(_) => return d,
            },
        };
        let mut doc = Arc::unwrap_or_clone(d);
        doc.resolved = Some(resolved);
        let doc = Arc::new(doc);
        local.insert(key, Arc::clone(&doc), now);
        doc
    }

    /// The remembered failure, if any and not yet expired at `now`.
    async fn load_negative(&self, key: &str, now: SystemTime) -> Option<Arc<NegativeEntry>> {
        match self.store.get_negative(key).await {
            Ok(Some(n)) if now < n.until => Some(n),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(client_id = key, error = %e, "negative cache read failed; treating as a miss");
                None
            }
        }
    }

    /// The validated document for a stored entry: the memo, or the body validated again.
    fn materialise(
        &self,
        id: &ClientIdUrl,
        c: &StoredDocument,
    ) -> Result<Arc<ResolvedClient>, ValidationReport> {
        if let Some(r) = &c.resolved {
            return Ok(Arc::clone(r));
        }
        self.counters.validations.fetch_add(1, Ordering::Relaxed);
        let v = validate_document(&c.body, Some(id), self.profile)?;
        Ok(Arc::new(ResolvedClient {
            digest: document_digest(&v.document),
            document: v.document,
            warnings: v.warnings,
            fetched_at: c.fetched_at,
            fresh_until: c.fresh_until,
        }))
    }

    /// Stale-if-error: a previously valid document, still within its keep window at `now`, when
    /// the host could not be reached or failed. Never for an invalid new document, and never for
    /// a document its host withdrew (404, 410): removing a document, or a key from it, must stop
    /// it working.
    fn stale_fallback(
        &self,
        id: &ClientIdUrl,
        cached: Option<&StoredDocument>,
        now: SystemTime,
        err: &ResolveError,
    ) -> Option<Arc<ResolvedClient>> {
        match err {
            ResolveError::Fetch(FetchError::HttpStatus { status: 404 | 410 }) => return None,
            ResolveError::Fetch(_) => {}
            ResolveError::Invalid(_) => return None,
        }
        let c = cached?;
        if now >= c.keep_until {
            return None;
        }
        let r = self.materialise(id, c).ok()?;
        self.counters.stale_served.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache("stale");
        tracing::warn!(
            client_id = %id,
            reason = %err,
            stale_secs = now.duration_since(c.fresh_until).map(|d| d.as_secs()).unwrap_or(0),
            "serving a stale client metadata document (stale-if-error)"
        );
        Some(r)
    }

    /// Fetches or revalidates `id` and updates the store. Runs once per in-flight key; `now` is
    /// the starting caller's clock for the cache decisions.
    async fn refresh(&self, id: &ClientIdUrl, now: SystemTime) -> ResolveResult {
        let key = id.as_str();
        // Someone may have finished a fetch between our caller's lookup and this task.
        let cached = self.load(id, now).await;
        if let Some(c) = &cached
            && now < c.fresh_until
            && let Ok(r) = self.materialise(id, c)
        {
            return Ok(r);
        }
        if let Some(neg) = self.load_negative(key, now).await {
            return Err(neg.error.clone());
        }
        let (mut if_none_match, mut if_modified_since) = match &cached {
            Some(c) => validators(&c.policy, key, now),
            None => (None, None),
        };
        // At most one conditional and one unconditional request.
        for _ in 0..2 {
            let conditional = if_none_match.is_some() || if_modified_since.is_some();
            let req = FetchRequest {
                url: key,
                max_bytes: MAX_DOCUMENT_BYTES,
                if_none_match: if_none_match.as_deref(),
                if_modified_since: if_modified_since.as_deref(),
                refresh: cached.is_some(),
            };
            self.counters.fetches.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let fetched = self.fetcher.fetch(&req).await;
            crate::metrics::fetch(fetched.as_ref().map(|_| ()), started.elapsed());
            let resp = match fetched {
                Ok(r) => r,
                Err(e) => return self.fail(id, ResolveError::Fetch(e)).await,
            };
            let now = SystemTime::now();
            let headers = normalised(&resp.headers);
            if resp.status != StatusCode::NOT_MODIFIED {
                return self.accept(id, &resp.body, &headers, now).await;
            }
            if let Some(c) = &cached {
                let after = c.policy.after_response(
                    &policy_request(key),
                    &policy_response(resp.status, &headers),
                    now,
                );
                if let AfterResponse::NotModified(policy, head) = after {
                    return self.revalidated(id, c, policy, &head.headers, now).await;
                }
            }
            tracing::warn!(
                client_id = %id,
                conditional,
                "304 Not Modified does not match the cached document; fetching unconditionally"
            );
            if_none_match = None;
            if_modified_since = None;
        }
        self.fail(
            id,
            ResolveError::Fetch(FetchError::HttpStatus {
                status: StatusCode::NOT_MODIFIED.as_u16(),
            }),
        )
        .await
    }

    /// A 200 body: validate, then store (or evict on `no-store`); an invalid document evicts the
    /// old entry and goes to the negative cache.
    async fn accept(
        &self,
        id: &ClientIdUrl,
        body: &Bytes,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> ResolveResult {
        let key = id.as_str();
        let v = match validate_document(body, Some(id), self.profile) {
            Ok(v) => v,
            Err(report) => {
                self.evict(key).await;
                return self.fail(id, ResolveError::Invalid(report)).await;
            }
        };
        let policy = new_policy(key, headers, now);
        let fresh = freshness(&policy, headers, now, &self.cfg);
        let resolved = Arc::new(ResolvedClient {
            digest: document_digest(&v.document),
            document: v.document,
            warnings: v.warnings,
            fetched_at: now,
            fresh_until: fresh_until(fresh, now),
        });
        tracing::info!(
            client_id = %id,
            bytes = body.len(),
            ttl_secs = ttl_secs(fresh, now),
            stored = fresh != Freshness::NoStore,
            warnings = resolved.warnings.len(),
            "fetched client metadata document"
        );
        self.store(key, body.clone(), policy, fresh, now, &resolved)
            .await;
        Ok(resolved)
    }

    /// A 304 that matches the stored entry: keep the body, refresh policy and times.
    async fn revalidated(
        &self,
        id: &ClientIdUrl,
        c: &StoredDocument,
        policy: CachePolicy,
        merged_headers: &HeaderMap,
        now: SystemTime,
    ) -> ResolveResult {
        self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
        let key = id.as_str();
        let base = match self.materialise(id, c) {
            Ok(b) => b,
            Err(report) => {
                self.evict(key).await;
                return self.fail(id, ResolveError::Invalid(report)).await;
            }
        };
        let fresh = freshness(&policy, merged_headers, now, &self.cfg);
        let resolved = Arc::new(ResolvedClient {
            document: base.document.clone(),
            digest: base.digest.clone(),
            warnings: base.warnings.clone(),
            fetched_at: now,
            fresh_until: fresh_until(fresh, now),
        });
        tracing::info!(
            client_id = %id,
            ttl_secs = ttl_secs(fresh, now),
            stored = fresh != Freshness::NoStore,
            "client metadata document revalidated (304 Not Modified)"
        );
        self.store(key, c.body.clone(), policy, fresh, now, &resolved)
            .await;
        Ok(resolved)
    }

    /// Writes the entry, or evicts on `no-store`.
    async fn store(
        &self,
        key: &str,
        body: Bytes,
        policy: CachePolicy,
        fresh: Freshness,
        now: SystemTime,
        resolved: &Arc<ResolvedClient>,
    ) {
        let Freshness::Store { fresh_until } = fresh else {
            self.evict(key).await;
            return;
        };
        let entry = StoredDocument {
            body,
            policy,
            fetched_at: now,
            fresh_until,
            keep_until: add_or_same(fresh_until, self.cfg.stale_if_error),
            resolved: Some(Arc::clone(resolved)),
        };
        let entry = Arc::new(entry);
        if let Some(local) = &self.local {
            local.insert(key, Arc::clone(&entry), now);
        }
        if let Err(e) = self.store.put(key, entry).await {
            tracing::warn!(client_id = key, error = %e, "document store write failed");
        }
    }

    async fn evict(&self, key: &str) {
        if let Some(local) = &self.local {
            local.remove(key);
        }
        if let Err(e) = self.store.remove(key).await {
            tracing::warn!(client_id = key, error = %e, "document store remove failed");
        }
    }

    /// Logs the failure, remembers it for `negative_ttl`, returns it.
    async fn fail(&self, id: &ClientIdUrl, err: ResolveError) -> ResolveResult {
        tracing::warn!(client_id = %id, reason = %err, detail = ?err, "client metadata document rejected");
        if matches!(err, ResolveError::Fetch(FetchError::RateLimited { .. })) {
            // Our own throttle says nothing about the document: remembering it would let anyone
            // who drains a host's budget lock its real clients out for the negative TTL.
            return Err(err);
        }
        let entry = NegativeEntry {
            error: err.clone(),
            until: add_or_same(SystemTime::now(), self.cfg.negative_ttl),
        };
        if let Err(e) = self.store.put_negative(id.as_str(), Arc::new(entry)).await {
            tracing::warn!(client_id = %id, error = %e, "negative cache write failed");
        }
        Err(err)
    }
}

/// Whether a failure may be answered with a stale document: at `/token` and refresh
/// (`allow_stale`) for any host failure, and everywhere when the failure is our own per-host
/// fetch budget (a throttle of ours, not a sign the host or the document is gone).
fn stale_allowed(allow_stale: bool, err: &ResolveError) -> bool {
    allow_stale || matches!(err, ResolveError::Fetch(FetchError::RateLimited { .. }))
}

fn fresh_until(f: Freshness, now: SystemTime) -> SystemTime {
    match f {
        Freshness::Store { fresh_until } => fresh_until,
        Freshness::NoStore => now,
    }
}

fn ttl_secs(f: Freshness, now: SystemTime) -> u64 {
    fresh_until(f, now)
        .duration_since(now)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

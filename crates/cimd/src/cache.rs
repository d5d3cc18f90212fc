//! # Document cache: RFC 9111 private cache, negative cache, request coalescing
//!
//! Implements coalescing and the negative cache (docs/architecture.md, *Fetching (SSRF-safe)*)
//! and caching (docs/architecture.md, *Caching*) for client metadata
//! documents fetched under draft-ietf-oauth-client-id-metadata-document-02 §5.2 ("the
//! authorization server MAY cache the document … SHOULD respect the HTTP cache headers", and
//! may impose its own bounds).
//!
//! Design, in the order a lookup takes ([`Resolver::resolve`]):
//!
//! 1. **Fresh hit** — one store lookup, one time compare, one `Arc` clone; no I/O, no parsing
//!    (the memory store memoises the validated [`ResolvedClient`] next to the raw body).
//! 2. **Negative hit** — a fetch failure or an invalid document is remembered for
//!    [`CacheConfig::negative_ttl`] with its reason; within that time the same [`ResolveError`]
//!    comes back without a fetch (FastMCP has no negative cache: every bogus `client_id` costs an
//!    outbound fetch).
//! 3. **Fetch / revalidate** — concurrent callers for the same URL share ONE request
//!    (coalescing). A stale entry is revalidated with `If-None-Match` / `If-Modified-Since`
//!    (RFC 9111 §4.3.1) taken from `http_cache_semantics::CachePolicy`; a 304 refreshes the times
//!    and keeps the document (§4.3.4).
//!
//! Freshness (RFC 9111 §4.2, private cache, no heuristic freshness): `max-age` beats `Expires`,
//! `Age` is subtracted; `no-store` is never stored and evicts what was there (§5.2.2.5);
//! `no-cache` is stored but revalidated on every use (§5.2.2.4) — the [`CacheConfig::min_ttl`]
//! clamp never makes it fresh. Everything else is clamped to `[min_ttl, max_ttl]`; a response
//! with no freshness information gets [`CacheConfig::default_ttl`]. The clamps are
//! authorization-server-imposed bounds, which draft §5.2 permits: `max-age=0` is therefore cached
//! for `min_ttl` (it protects the document host and us from a refetch per request), while a
//! host that really wants per-request revalidation says `no-cache`.
//!
//! Invalid documents are never cached as documents: the old good entry is evicted (an invalid
//! new version must not be served) and the validation report goes into the negative cache.
//!
//! Stale-if-error (RFC 5861 §4 in spirit; a product rule): [`Resolver::resolve_allow_stale`] — for
//! `/token` and refresh only, never a new `/authorize` — may return a previously valid document
//! up to [`CacheConfig::stale_if_error`] past its freshness when the refetch fails, with a
//! `WARN` log.
//!
//! Storage sits behind the small [`DocumentStore`] trait whose entries ([`StoredDocument`]) are
//! serialisable (raw body + `CachePolicy` + times), so a shared backend (Redis) can hold them;
//! [`MemoryDocumentStore`] is the in-process implementation on `moka`, bounded by entry count
//! and bytes.
//!
//! With a store shared by several instances ([`Resolver::shared`], e.g. Redis) each instance
//! keeps a small process-local L1 of the entries it read, with the validated document memoised:
//! a fresh hit answers from it for at most [`CacheConfig::local_ttl`] (10 s by default, never
//! past the entry's freshness) without a store round trip, then the shared entry is read again
//! (one GET, and no re-validation when its body is unchanged). A document refetched, replaced
//! or evicted by another instance is therefore seen by every instance within `local_ttl`.
//! Negative entries are always read from the shared store.

use std::time::{Duration, SystemTime};

use crate::document::{ClientDocument, Problem, ValidationReport};
use crate::fetch::FetchError;

pub(crate) mod freshness;
mod local;
mod resolver;
mod store;

pub use resolver::{Resolver, ResolverStats};
pub use store::{
    DocumentStore, MemoryDocumentStore, NegativeEntry, StoreError, StoredDocument, StoredFailure,
    StoredNegative,
};

/// Default freshness lifetime when the response carries no `max-age`, `Expires` or
/// `no-cache`: 1 hour (product default; FastMCP's `DEFAULT_CACHE_TTL_SECONDS = 3600`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Lower clamp for server-supplied lifetimes: 30 s (draft §5.2 AS-imposed bounds; product default).
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(30);
/// Upper clamp for server-supplied lifetimes: 24 h (draft §5.2 AS-imposed bounds; product default).
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a failed fetch or invalid document is remembered: 30 s (product default).
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Default bound on cached documents (product default; FastMCP 4.1.6 used 1 000).
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// Default bound on cached bytes: 64 MiB (product default). With 5 KiB documents
/// ([`crate::document::MAX_DOCUMENT_BYTES`]) the entry bound is normally hit first.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// How long past its freshness a previously valid document may still serve `/token` and
/// refresh while its host is failing: 1 h (product default, stale-if-error).
pub const DEFAULT_STALE_IF_ERROR: Duration = Duration::from_secs(3600);

/// With a shared store: how long an instance may answer from its own copy of a fresh entry
/// before reading the shared store again: 10 s (see [`CacheConfig::local_ttl`]).
pub const DEFAULT_LOCAL_TTL: Duration = Duration::from_secs(10);

/// Cache tuning. All bounds are operator-configurable; [`Default`] gives the values in
/// docs/architecture.md, *Caching*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Lifetime for a response with no freshness information ([`DEFAULT_TTL`]).
    pub default_ttl: Duration,
    /// Lower clamp ([`DEFAULT_MIN_TTL`]). Never applied to `no-cache` responses.
    pub min_ttl: Duration,
    /// Upper clamp ([`DEFAULT_MAX_TTL`]). If `min_ttl > max_ttl`, `max_ttl` wins.
    pub max_ttl: Duration,
    /// Negative-cache lifetime ([`DEFAULT_NEGATIVE_TTL`]).
    pub negative_ttl: Duration,
    /// Maximum number of cached documents ([`DEFAULT_MAX_ENTRIES`]); also bounds the
    /// negative cache.
    pub max_entries: u64,
    /// Maximum approximate bytes of cached documents ([`DEFAULT_MAX_BYTES`]).
    pub max_bytes: u64,
    /// Stale-if-error window past freshness ([`DEFAULT_STALE_IF_ERROR`]); entries are dropped
    /// from the store once it has passed.
    pub stale_if_error: Duration,
    /// Only for a shared store ([`Resolver::shared`]): the longest an instance answers from its
    /// process-local copy of a fresh entry without reading the shared store again
    /// ([`DEFAULT_LOCAL_TTL`]); never past the entry's freshness. This bounds how long a
    /// document refetched, replaced or evicted by another instance can still be served here.
    pub local_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            default_ttl: DEFAULT_TTL,
            min_ttl: DEFAULT_MIN_TTL,
            max_ttl: DEFAULT_MAX_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            stale_if_error: DEFAULT_STALE_IF_ERROR,
            local_ttl: DEFAULT_LOCAL_TTL,
        }
    }
}

/// A validated client metadata document as served by the cache.
#[derive(Debug, Clone)]
pub struct ResolvedClient {
    /// The validated document.
    pub document: ClientDocument,
    /// SHA-256 (lower-case hex) of the validated document's canonical JSON: computed once, when
    /// the document is validated, and what grants and remembered consent bind to (a changed
    /// document has another digest). See [`document_digest`].
    pub digest: String,
    /// Validation warnings (accepted, but worth showing to the operator).
    pub warnings: Vec<Problem>,
    /// When the document body was last fetched or revalidated (304).
    pub fetched_at: SystemTime,
    /// Until when it may be used without revalidation (equal to `fetched_at` for `no-cache`).
    pub fresh_until: SystemTime,
}

/// The digest of a validated document: SHA-256 over its JSON as this crate serialises it
/// (fields in declaration order), so the same document always has the same digest whatever the
/// formatting of the bytes it came from.
pub fn document_digest(document: &ClientDocument) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    // Serialising a validated document cannot fail (plain strings, numbers and lists); were it
    // ever to, the empty input still gives a digest that never equals a real document's.
    let json = serde_json::to_vec(document).unwrap_or_default();
    let hash = sha2::Sha256::digest(&json);
    let mut hex = String::with_capacity(64);
    for b in hash {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Why a client could not be resolved. Negative-cache hits and coalesced waiters get a clone
/// of the very same value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The document could not be fetched (network, TLS, status, content type, size, …). Shown
    /// to callers with [`FetchError::public_message`]: no internal addresses or OS messages (the
    /// `Debug` form, for logs, has them).
    #[error("could not fetch the client metadata document: {}", .0.public_message())]
    Fetch(FetchError),
    /// The document was fetched but breaks the rules; every problem is listed.
    #[error("the client metadata document is invalid: {0}")]
    Invalid(ValidationReport),
}

/// How long a fetched key set (a `jwks_uri`, a trusted issuer's JWKS) may be used, by its
/// response's HTTP cache headers under the same RFC 9111 rules as documents (`max-age` after
/// `Age`, `Expires`), clamped to `[min, max]`; a silent response gets `max`; `no-store` and
/// `no-cache` get `min` (the keys at hand are used, and a host cannot make us refetch on every
/// request).
pub fn key_set_lifetime(
    url: &str,
    headers: &http::HeaderMap,
    now: SystemTime,
    min: Duration,
    max: Duration,
) -> Duration {
    use freshness::{Freshness, freshness, new_policy, normalised};
    let headers = normalised(headers);
    let policy = new_policy(url, &headers, now);
    let bounds = CacheConfig {
        default_ttl: max,
        min_ttl: min,
        max_ttl: max,
        ..CacheConfig::default()
    };
    match freshness(&policy, &headers, now, &bounds) {
        Freshness::NoStore => min,
        Freshness::Store { fresh_until } => fresh_until
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .max(min),
    }
}

/// `t + d`, or `t` itself if that is not representable (fails towards "stale").
pub(crate) fn add_or_same(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or(t)
}

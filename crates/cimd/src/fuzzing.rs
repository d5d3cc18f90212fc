//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature `fuzzing`, off by
//! default; not part of the supported API).
//!
//! Each function runs the production code a request runs — nothing is re-implemented here — and
//! only makes crate-private steps reachable from the fuzz crate:
//!
//! - [`document_freshness`]: `Cache-Control` / `Age` / `Expires` handling of a fetched document
//!   ([`crate::cache`]: header normalisation, the RFC 9111 policy, our clamps, validators);
//! - [`assertion_header_and_claims`]: steps 2 and 6 of [`crate::assertion`] (compact JWS split,
//!   header checks, payload decoding, claim rules) — every step but the key lookup and the
//!   signature, which a fuzzer cannot forge.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::assertion::{AssertionError, MAX_ASSERTION_BYTES, claims, jws};
use crate::cache::CacheConfig;
use crate::cache::freshness::{self, Freshness};

/// The caps on what a cache entry keeps of a response's headers.
pub use crate::cache::freshness::{MAX_CACHE_HEADER_BYTES, MAX_CACHE_HEADERS_TOTAL};

/// What the document cache decides for a `200` response with `headers`, received at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentFreshness {
    /// The headers the cache keeps (normalised, capped).
    pub kept: HeaderMap,
    /// `None` for `no-store`; else how long the document is fresh (zero for `no-cache`).
    pub fresh_for: Option<Duration>,
    /// `If-None-Match` / `If-Modified-Since` for the revalidation at `now + fresh_for`.
    pub validators: (Option<String>, Option<String>),
}

/// The cache's decision for a document response, as `Resolver` makes it.
pub fn document_freshness(
    client_id: &str,
    headers: &HeaderMap,
    now: SystemTime,
    cfg: &CacheConfig,
) -> DocumentFreshness {
    let kept = freshness::normalised(headers);
    let policy = freshness::new_policy(client_id, &kept, now);
    let (fresh_for, until) = match freshness::freshness(&policy, &kept, now, cfg) {
        Freshness::NoStore => (None, now),
        Freshness::Store { fresh_until } => (
            Some(fresh_until.duration_since(now).unwrap_or(Duration::ZERO)),
            fresh_until,
        ),
    };
    let validators = freshness::validators(&policy, client_id, until);
    DocumentFreshness {
        kept,
        fresh_for,
        validators,
    }
}

/// The claims a well-formed assertion carries, once the header and claim rules passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAssertion {
    /// The header `alg` (in the allow-list).
    pub alg: jsonwebtoken::Algorithm,
    /// The header `kid`.
    pub kid: Option<String>,
    /// The `jti`.
    pub jti: String,
    /// The `exp`, in seconds since the epoch.
    pub exp: i64,
}

/// The verifier's pipeline without the key lookup and the signature: size cap, compact JWS
/// shape, header (`alg` allow-list, `crit`, `kid`), payload JSON, claim rules at `now_secs`.
pub fn assertion_header_and_claims(
    assertion: &str,
    client_id: &str,
    audiences: &[String],
    now_secs: i64,
) -> Result<CheckedAssertion, AssertionError> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(AssertionError::TooLarge {
            len: assertion.len(),
            limit: MAX_ASSERTION_BYTES,
        });
    }
    let parsed = jws::parse(assertion)?;
    let payload = jws::decode_json_object(parsed.payload_b64)
        .map_err(|reason| AssertionError::InvalidPayload { reason })?;
    let defaults = crate::assertion::AssertionConfig::default();
    let rules = claims::ClaimRules {
        client_id,
        audiences,
        skew: defaults.skew,
        max_lifetime: defaults.max_lifetime,
        now: now_secs,
    };
    let checked = claims::check(&payload, &rules)?;
    Ok(CheckedAssertion {
        alg: parsed.alg,
        kid: parsed.kid,
        jti: checked.jti,
        exp: checked.exp,
    })
}

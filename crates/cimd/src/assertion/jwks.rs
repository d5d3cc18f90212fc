//! Where a client's keys come from, cached: the document's inline `jwks`, or its `jwks_uri`
//! fetched through the shared SSRF-safe [`Fetcher`] (docs/architecture.md, *Fetching (SSRF-safe)*).
//!
//! `jwks_uri` caching rules:
//! - one entry per URI, fresh for as long as the response's `Cache-Control` / `Expires` say
//!   (after `Age`), clamped to `[JWKS_REFRESH_MIN_INTERVAL, JWKS_CACHE_TTL]`; a silent response
//!   is fresh for [`JWKS_CACHE_TTL`](super::JWKS_CACHE_TTL); `no-store` / `no-cache` keep the
//!   set only for the minimum interval (the keys verify the assertion at hand, and a host cannot
//!   make us refetch on every request);
//! - an assertion whose `kid` is not in a fresh set triggers one refetch, at most once every
//!   [`JWKS_REFRESH_MIN_INTERVAL`](super::JWKS_REFRESH_MIN_INTERVAL) per URI; inside that
//!   interval the miss is answered with a clear error instead of another fetch (an attacker
//!   sending random kids cannot make us hammer the client's host);
//! - refreshes are coalesced: concurrent misses wait for the one fetch in flight;
//! - a failed fetch is remembered for the same interval and its error returned without
//!   refetching (negative cache);
//! - the response is at most [`MAX_JWKS_BYTES`](super::MAX_JWKS_BYTES), must be a JSON JWK Set
//!   and must not contain private key members.
//!
//! Cache timing uses the `now` the verifier is given, so tests can move the clock.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

use super::error::AssertionError;
use super::keys::KeySet;
use crate::fetch::{FetchRequest, Fetcher};

/// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
const PRIVATE_KEY_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Most documents (client_ids) whose decoded inline keys are cached.
const INLINE_CACHE_ENTRIES: u64 = 10_000;
/// Most `jwks_uri`s cached.
const REMOTE_CACHE_ENTRIES: u64 = 10_000;

fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or(Duration::ZERO)
}

/// Decoded inline keys per client_id; reused while the document's `jwks` is unchanged.
pub(crate) struct InlineKeyCache {
    cache: moka::sync::Cache<String, Arc<(JwkSet, Arc<KeySet>)>>,
}

impl InlineKeyCache {
    pub(crate) fn new() -> Self {
        InlineKeyCache {
            cache: moka::sync::Cache::new(INLINE_CACHE_ENTRIES),
        }
    }

    pub(crate) fn keys(&self, client_id: &str, jwks: &JwkSet) -> Arc<KeySet> {
        if let Some(entry) = self.cache.get(client_id)
            && entry.0 == *jwks
        {
            return entry.1.clone();
        }
        let keys = Arc::new(KeySet::from_jwks(jwks, "the document's jwks"));
        self.cache
            .insert(client_id.to_owned(), Arc::new((jwks.clone(), keys.clone())));
        keys
    }
}

#[derive(Default)]
struct UriState {
    /// The last good key set, when it was fetched, and how long it stays fresh.
    loaded: Option<(Arc<KeySet>, SystemTime, Duration)>,
    /// The last failure and when it happened (cleared by a success).
    failure: Option<(SystemTime, AssertionError)>,
}

#[derive(Default)]
struct UriEntry {
    state: RwLock<UriState>,
    /// Held while fetching, so concurrent refreshes of one URI coalesce.
    refresh: tokio::sync::Mutex<()>,
}

impl UriEntry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, UriState> {
        // Nothing panics while the lock is held; a poisoned lock still holds consistent data.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, UriState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Key sets fetched from `jwks_uri`, per URI.
pub(crate) struct RemoteKeyCache {
    fetcher: Arc<Fetcher>,
    entries: moka::sync::Cache<String, Arc<UriEntry>>,
    ttl: Duration,
    min_refresh: Duration,
    max_bytes: usize,
}

impl RemoteKeyCache {
    pub(crate) fn new(
        fetcher: Arc<Fetcher>,
        ttl: Duration,
        min_refresh: Duration,
        max_bytes: usize,
    ) -> Self {
        RemoteKeyCache {
            fetcher,
            entries: moka::sync::Cache::new(REMOTE_CACHE_ENTRIES),
            ttl,
            min_refresh,
            max_bytes,
        }
    }

    /// The key set of `uri` that should contain `kid` (when given), fetching it if it is not
    /// cached, stale, or lacks `kid` (subject to the refresh interval).
    pub(crate) async fn keys(
        &self,
        uri: &str,
        kid: Option<&str>,
        now: SystemTime,
    ) -> Result<Arc<KeySet>, AssertionError> {
        let entry = self
            .entries
            .get_with_by_ref(uri, || Arc::new(UriEntry::default()));
        if let Some((keys, at, fresh_for)) = &entry.read().loaded
            && elapsed(*at, now) < *fresh_for
            && keys.has_kid(kid)
        {
            return Ok(keys.clone());
        }

        let _refreshing = entry.refresh.lock().await;
        // Re-check: a concurrent refresh may have finished while we waited.
        {
            let state = entry.read();
            if let Some((keys, at, fresh_for)) = &state.loaded
                && elapsed(*at, now) < *fresh_for
            {
                if keys.has_kid(kid) {
                    return Ok(keys.clone());
                }
                if elapsed(*at, now) < self.min_refresh {
                    return Err(AssertionError::UnknownKidRecentlyRefreshed {
                        kid: kid.unwrap_or_default().to_owned(),
                        uri: uri.to_owned(),
                        min_interval: self.min_refresh,
                    });
                }
            }
            if let Some((at, err)) = &state.failure
                && elapsed(*at, now) < self.min_refresh
            {
                return Err(err.clone());
            }
        }

        let held = entry.read().loaded.is_some();
        match self.fetch(uri, held, now).await {
            Ok((keys, fresh_for)) => {
                tracing::info!(
                    jwks_uri = uri,
                    fresh_secs = fresh_for.as_secs(),
                    "fetched client key set"
                );
                let keys = Arc::new(keys);
                let mut state = entry.write();
                state.loaded = Some((keys.clone(), now, fresh_for));
                state.failure = None;
                Ok(keys)
            }
            Err(err) => {
                tracing::warn!(jwks_uri = uri, error = %err, detail = ?err, "client key set fetch failed");
                entry.write().failure = Some((now, err.clone()));
                Err(err)
            }
        }
    }

    /// Fetch and parse the key set; also how long it stays fresh (see the module docs).
    async fn fetch(
        &self,
        uri: &str,
        refresh: bool,
        now: SystemTime,
    ) -> Result<(KeySet, Duration), AssertionError> {
        let invalid = |reason: String| AssertionError::JwksInvalid {
            uri: uri.to_owned(),
            reason,
        };
        // Unconditional: the key set is small and cached by us, no revalidation needed.
        let request = FetchRequest {
            refresh,
            ..FetchRequest::new(uri, self.max_bytes)
        };
        let response =
            self.fetcher
                .fetch(&request)
                .await
                .map_err(|source| AssertionError::JwksFetch {
                    uri: uri.to_owned(),
                    source,
                })?;
        if response.status != http::StatusCode::OK {
            return Err(invalid(format!(
                "unexpected HTTP status {}",
                response.status
            )));
        }
        let keys = parse_jwks(&response.body)
            .map(|set| KeySet::from_jwks(&set, uri))
            .map_err(invalid)?;
        let fresh_for =
            crate::cache::key_set_lifetime(uri, &response.headers, now, self.min_refresh, self.ttl);
        Ok((keys, fresh_for))
    }
}

/// Parse a fetched JWK Set, refusing one that publishes private key material.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<JwkSet, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "no \"keys\" array (RFC 7517 §5)".to_owned())?;
    for (i, key) in keys.iter().enumerate() {
        let Some(obj) = key.as_object() else {
            return Err(format!("keys[{i}] is not a JSON object"));
        };
        if let Some(member) = PRIVATE_KEY_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            let kid = obj.get("kid").and_then(Value::as_str).unwrap_or("");
            return Err(format!(
                "keys[{i}] (kid {kid:?}) contains the private/secret member {member:?}; a key set \
                 must publish public keys only"
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("not a JWK Set ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_jwks_rules_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("not json", "<html></html>", Some("not JSON")),
            ("no keys", r#"{"jwks":[]}"#, Some("keys")),
            ("keys not array", r#"{"keys":{}}"#, Some("keys")),
            ("key not object", r#"{"keys":[1]}"#, Some("keys[0]")),
            (
                "private d",
                r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"AA","d":"AA"}]}"#,
                Some("\"d\""),
            ),
            (
                "secret k",
                r#"{"keys":[{"kty":"oct","k":"AA"}]}"#,
                Some("\"k\""),
            ),
            ("empty set", r#"{"keys":[]}"#, None),
            (
                "public okp",
                r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"AA"}]}"#,
                None,
            ),
        ];
        for (name, body, err) in cases {
            match (parse_jwks(body.as_bytes()), err) {
                (Ok(_), None) => {}
                (Err(e), Some(needle)) => assert!(e.contains(needle), "{name}: {e}"),
                (r, _) => panic!("{name}: unexpected {r:?}"),
            }
        }
    }
}

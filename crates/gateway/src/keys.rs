//! Where token-verification keys come from ([`KeySource`]): the authorization server's keys held
//! in process, or a remote JWKS document (RFC 7517 §5) fetched over HTTPS and cached: fresh as
//! long as its `Cache-Control` / `Expires` say within [[`JWKS_MIN_REFRESH`], [`JWKS_MAX_FRESH`]]
//! (the RFC 9111 rules of [`cimd::cache::key_set_lifetime`]), fetched again when stale or when a
//! token names an unknown `kid` — at most once per [`JWKS_MIN_REFRESH`]. When a refetch fails
//! the keys held keep verifying for up to [`JWKS_STALE_IF_ERROR`] past their freshness, and the
//! fetch is retried after [`JWKS_MIN_REFRESH`].
//!
//! Which keys are used, and which key verifies a token, is decided by the one JOSE rule set of
//! [`cimd::jose`] — the same as for client assertions and id_tokens: public asymmetric keys
//! only (a `kty: "oct"` JWK would become an HMAC key anyone reading the JWKS could forge with),
//! `use` absent or `sig`, `key_ops` with `verify`, RSA of at least 2048 bits, the header `alg`
//! fitting the key.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cimd::jose::{KeyError, KeySet, VerifyingKey};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;

/// Shortest time between two fetches of a remote JWKS (an unknown `kid` does not let a caller
/// make us hammer the JWKS host).
pub const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

/// Longest a fetched JWKS is used without fetching it again (and its lifetime when the response
/// has no cache headers).
pub const JWKS_MAX_FRESH: Duration = Duration::from_secs(3600);

/// How long past its freshness a JWKS keeps verifying while refetches fail (an issuer's short
/// outage must not log every user out; a longer one must not keep a rotated-out key alive).
pub const JWKS_STALE_IF_ERROR: Duration = Duration::from_secs(24 * 3600);

/// Total deadline of one JWKS fetch.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS document accepted.
pub const JWKS_MAX_BYTES: usize = 256 * 1024;

/// Signature algorithms a token may use: the JOSE allow-list of [`cimd::jose`] (asymmetric
/// only: never `none`, never `HS*`).
pub const ALLOWED_ALGS: &[Algorithm] = &cimd::jose::ALLOWED_ALGORITHMS;

/// Parse a JWK Set under the key rules of [`cimd::jose`] (public asymmetric keys, `use` sig,
/// RSA ≥ 2048 bits, …).
pub fn parse_jwks(doc: &serde_json::Value) -> Result<KeySet, String> {
    let set: JwkSet =
        serde_json::from_value(doc.clone()).map_err(|e| format!("not a JWK Set: {e}"))?;
    Ok(KeySet::from_jwks(&set))
}

/// The key of `keys` for a token with header `kid` and `alg` (see [`KeySet::select`]).
fn select(keys: &KeySet, kid: &str, alg: Algorithm) -> Result<VerifyingKey, KeyError> {
    keys.select(Some(kid), alg).cloned()
}

/// Where a token source's keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// Keys held in process (the embedded authorization server's public keys).
    Local(Arc<KeySet>),
    /// A remote JWKS URL, cached, refreshed on an unknown `kid`.
    RemoteJwks(Arc<RemoteJwks>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Local(k) => f.debug_tuple("Local").field(&k.len()).finish(),
            KeySource::RemoteJwks(r) => f.debug_tuple("RemoteJwks").field(&r.url).finish(),
        }
    }
}

impl KeySource {
    /// In-process keys from a JWK Set document (e.g. the AS's `/jwks.json` contents).
    pub fn local_jwks(doc: &serde_json::Value) -> Result<Self, String> {
        let keys = parse_jwks(doc)?;
        if keys.usable() == 0 {
            return Err("the JWK Set has no usable (asymmetric, signing) key".into());
        }
        Ok(KeySource::Local(Arc::new(keys)))
    }

    /// A remote JWKS fetched with `client` (give it the deployment's TLS and proxy settings).
    pub fn remote(url: url::Url, client: reqwest::Client) -> Self {
        KeySource::RemoteJwks(Arc::new(RemoteJwks::new(url, client)))
    }

    /// The key for a token with this `kid` and `alg`, fetching the remote JWKS when the `kid` is
    /// unknown (rate-limited).
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<VerifyingKey, String> {
        match self {
            KeySource::Local(keys) => select(keys, kid, alg).map_err(|e| e.to_string()),
            KeySource::RemoteJwks(remote) => remote.key(kid, alg).await,
        }
    }
}

/// A fetched key set and how long it may be used.
struct Loaded {
    keys: Arc<KeySet>,
    /// Used without refetching until then.
    fresh_until: Instant,
    /// Used at all until then (while refetches fail).
    usable_until: Instant,
}

/// A cached remote JWKS.
pub struct RemoteJwks {
    /// The JWKS URL.
    pub url: url::Url,
    client: reqwest::Client,
    loaded: RwLock<Option<Loaded>>,
    /// When the last fetch started (`None`: never); the mutex also makes fetches single-flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// [`JWKS_MIN_REFRESH`] (shorter in tests).
    min_refresh: Duration,
}

/// What the cache can say about a `kid` without fetching.
enum Held {
    /// Fresh keys answered (a key, or a refusal other than "unknown kid").
    Fresh(Result<VerifyingKey, String>),
    /// Keys past their freshness but still usable answered.
    Stale(Result<VerifyingKey, String>),
    /// Nothing usable knows this `kid`.
    Nothing,
}

impl RemoteJwks {
    /// Nothing fetched yet; the first token triggers the first fetch.
    pub fn new(url: url::Url, client: reqwest::Client) -> Self {
        RemoteJwks {
            url,
            client,
            loaded: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refresh: JWKS_MIN_REFRESH,
        }
    }

    fn held(&self, kid: &str, alg: Algorithm, now: Instant) -> Held {
        let guard = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let Some(loaded) = guard.as_ref().filter(|l| now < l.usable_until) else {
            return Held::Nothing;
        };
        match select(&loaded.keys, kid, alg) {
            Err(KeyError::UnknownKid { .. }) => Held::Nothing,
            answer if now < loaded.fresh_until => Held::Fresh(answer.map_err(|e| e.to_string())),
            answer => Held::Stale(answer.map_err(|e| e.to_string())),
        }
    }

    async fn key(&self, kid: &str, alg: Algorithm) -> Result<VerifyingKey, String> {
        if let Held::Fresh(answer) = self.held(kid, alg, Instant::now()) {
            return answer;
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while we waited.
        let held = self.held(kid, alg, Instant::now());
        if let Held::Fresh(answer) = held {
            return answer;
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return match held {
                Held::Stale(answer) | Held::Fresh(answer) => answer,
                Held::Nothing => Err(format!(
                    "unknown kid {kid:?} (JWKS fetched less than {}s ago)",
                    self.min_refresh.as_secs()
                )),
            };
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok((keys, lifetime)) => {
                tracing::debug!(url = %self.url, keys = keys.len(), usable = keys.usable(),
                    fresh_secs = lifetime.as_secs(), "JWKS refreshed");
                let found = select(&keys, kid, alg).map_err(|e| e.to_string());
                let now = Instant::now();
                *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Some(Loaded {
                    keys: Arc::new(keys),
                    fresh_until: now + lifetime,
                    usable_until: now + lifetime + JWKS_STALE_IF_ERROR,
                });
                found
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e,
                    "JWKS refetch failed; using the keys held, retrying in {}s",
                    self.min_refresh.as_secs());
                match held {
                    Held::Stale(answer) | Held::Fresh(answer) => answer,
                    Held::Nothing => Err(e),
                }
            }
        }
    }

    /// Fetch and parse the key set; also how long it stays fresh.
    async fn fetch(&self) -> Result<(KeySet, Duration), String> {
        let err = |e: String| format!("JWKS {}: {e}", self.url);
        let mut resp = self
            .client
            .get(self.url.clone())
            .timeout(JWKS_FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("status {}", resp.status())));
        }
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| err(e.to_string()))? {
            if body.len() + chunk.len() > JWKS_MAX_BYTES {
                return Err(err(format!("larger than {JWKS_MAX_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| err(format!("not a JWK Set: {e}")))?;
        let lifetime = cimd::cache::key_set_lifetime(
            self.url.as_str(),
            &headers,
            std::time::SystemTime::now(),
            self.min_refresh,
            JWKS_MAX_FRESH,
        );
        Ok((KeySet::from_jwks(&set), lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The gateway follows the one JOSE rule set: a symmetric key, a key for encryption, a
    /// 1024-bit RSA key and an alg other than the JWK's never verify a token (the gateway used
    /// to accept the `use: enc` and the 1024-bit keys).
    #[tokio::test]
    async fn only_keys_the_jose_rules_allow_verify_tokens() {
        use base64::Engine as _;
        let ed = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let mut n = vec![0xa5u8; 128];
        n[0] = 0xc1;
        let n1024 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&n);
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "OKP", "crv": "Ed25519", "x": ed, "kid": "ed", "alg": "EdDSA"},
            {"kty": "OKP", "crv": "Ed25519", "x": ed, "kid": "enc", "use": "enc"},
            {"kty": "RSA", "n": n1024, "e": "AQAB", "kid": "rsa1024"},
        ]});
        let source = KeySource::local_jwks(&doc).unwrap();
        let cases = [
            ("ed", Algorithm::EdDSA, None),
            ("hmac", Algorithm::EdDSA, Some("symmetric")),
            ("enc", Algorithm::EdDSA, Some("not \"sig\"")),
            ("rsa1024", Algorithm::RS256, Some("1024 bits")),
            ("ed", Algorithm::ES256, Some("does not fit")),
            ("nope", Algorithm::EdDSA, Some("unknown kid")),
        ];
        for (kid, alg, want) in cases {
            match (source.key(kid, alg).await, want) {
                (Ok(k), None) => assert_eq!(k.kid.as_deref(), Some(kid)),
                (Err(e), Some(words)) => assert!(e.contains(words), "{kid}: {e}"),
                (got, want) => panic!("{kid} {alg:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// A remote JWKS host on loopback whose answer the test changes: (status, Cache-Control);
    /// counts fetches.
    async fn jwks_host(
        state: Arc<std::sync::Mutex<(u16, &'static str)>>,
        fetches: Arc<std::sync::atomic::AtomicUsize>,
    ) -> url::Url {
        use axum::http::{HeaderMap, StatusCode, header::CACHE_CONTROL};
        let ed = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let doc = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ed, "kid": "ed"}]});
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, cache) = *state.lock().unwrap();
                let mut headers = HeaderMap::new();
                headers.insert(CACHE_CONTROL, cache.parse().unwrap());
                let status = StatusCode::from_u16(status).unwrap();
                let body = doc.to_string();
                async move { (status, headers, body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        url::Url::parse(&format!("http://{addr}/jwks.json")).unwrap()
    }

    /// A trusted issuer's JWKS is refetched once its Cache-Control lifetime passes (it used to
    /// be kept until an unknown kid appeared); a failed refetch keeps the held keys verifying
    /// and is retried; a failed first fetch is retried too (review Low finding).
    #[tokio::test]
    async fn remote_jwks_follows_cache_control_and_survives_failed_refetches() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let state = Arc::new(std::sync::Mutex::new((200u16, "max-age=1")));
        let fetches = Arc::new(AtomicUsize::new(0));
        let url = jwks_host(state.clone(), fetches.clone()).await;
        let remote = RemoteJwks {
            min_refresh: Duration::from_millis(500),
            ..RemoteJwks::new(url.clone(), reqwest::Client::new())
        };
        let count = || fetches.load(Ordering::SeqCst);
        let pause = || tokio::time::sleep(Duration::from_millis(1200));

        remote.key("ed", Algorithm::EdDSA).await.unwrap();
        remote.key("ed", Algorithm::EdDSA).await.unwrap();
        assert_eq!(count(), 1, "fresh for max-age=1");
        pause().await;
        remote.key("ed", Algorithm::EdDSA).await.unwrap();
        assert_eq!(count(), 2, "stale after max-age: fetched again");

        // The issuer fails: the held keys keep verifying; the refetch is retried.
        *state.lock().unwrap() = (503, "no-store");
        pause().await;
        remote.key("ed", Algorithm::EdDSA).await.unwrap();
        assert_eq!(count(), 3);
        remote.key("ed", Algorithm::EdDSA).await.unwrap();
        assert_eq!(count(), 3, "no second attempt inside the minimum interval");
        pause().await;
        remote.key("ed", Algorithm::EdDSA).await.unwrap();
        assert_eq!(count(), 4, "retried after the minimum interval");

        // A first fetch that fails is retried once the issuer is back.
        let fresh = RemoteJwks {
            min_refresh: Duration::from_millis(500),
            ..RemoteJwks::new(url, reqwest::Client::new())
        };
        assert!(fresh.key("ed", Algorithm::EdDSA).await.is_err());
        *state.lock().unwrap() = (200, "max-age=600");
        pause().await;
        fresh.key("ed", Algorithm::EdDSA).await.unwrap();
    }

    #[test]
    fn local_source_without_usable_keys_is_refused() {
        assert!(KeySource::local_jwks(&json!({"keys": []})).is_err());
        assert!(KeySource::local_jwks(&json!({"nope": 1})).is_err());
    }
}

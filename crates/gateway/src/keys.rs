//! Where token-verification keys come from ([`KeySource`]): the authorization server's keys held
//! in process, or a remote JWKS document (RFC 7517 §5) fetched over HTTPS, cached, and fetched
//! again when a token names an unknown `kid` — at most once per [`JWKS_MIN_REFRESH`].
//!
//! Only asymmetric keys are kept: a JWK of `kty: "oct"` would become an HMAC key in jsonwebtoken
//! (crates.md gotcha 2), letting anyone who can read the JWKS forge tokens.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Shortest time between two fetches of a remote JWKS (an unknown `kid` does not let a caller
/// make us hammer the JWKS host).
pub const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

/// Total deadline of one JWKS fetch.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS document accepted.
pub const JWKS_MAX_BYTES: usize = 256 * 1024;

/// Signature algorithms a token may use. Asymmetric only: never `none`, never `HS*`.
pub const ALLOWED_ALGS: &[Algorithm] = &[
    Algorithm::EdDSA,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// One public verification key.
#[derive(Clone)]
pub struct VerifyKey {
    /// Key id.
    pub kid: String,
    /// The algorithm the JWK pins (`alg` member), if any.
    pub alg: Option<Algorithm>,
    /// The key.
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Keys by `kid`.
pub type KeyMap = HashMap<String, VerifyKey>;

/// Parse a JWK Set, keeping asymmetric keys that carry a `kid`.
pub fn parse_jwks(doc: &serde_json::Value) -> Result<KeyMap, String> {
    let set: JwkSet =
        serde_json::from_value(doc.clone()).map_err(|e| format!("not a JWK Set: {e}"))?;
    Ok(keys_from_set(&set))
}

fn keys_from_set(set: &JwkSet) -> KeyMap {
    set.keys.iter().filter_map(verify_key).collect()
}

fn verify_key(jwk: &Jwk) -> Option<(String, VerifyKey)> {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    if !matches!(
        jwk.algorithm,
        P::RSA(_) | P::EllipticCurve(_) | P::OctetKeyPair(_)
    ) {
        return None;
    }
    let kid = jwk.common.key_id.clone()?;
    let alg = match jwk.common.key_algorithm {
        Some(a) => Some(Algorithm::try_from(a).ok()?),
        None => None,
    };
    if alg.is_some_and(|a| !ALLOWED_ALGS.contains(&a)) {
        return None;
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid.clone(), VerifyKey { kid, alg, decoding }))
}

/// Where a token source's keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// Keys held in process (the embedded authorization server's public keys).
    Local(Arc<KeyMap>),
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
        if keys.is_empty() {
            return Err("the JWK Set has no usable (asymmetric, with kid) key".into());
        }
        Ok(KeySource::Local(Arc::new(keys)))
    }

    /// A remote JWKS fetched with `client` (give it the deployment's TLS and proxy settings).
    pub fn remote(url: url::Url, client: reqwest::Client) -> Self {
        KeySource::RemoteJwks(Arc::new(RemoteJwks::new(url, client)))
    }

    /// The key with this `kid`, fetching the remote JWKS when it is unknown (rate-limited).
    pub async fn key(&self, kid: &str) -> Result<VerifyKey, String> {
        match self {
            KeySource::Local(keys) => keys
                .get(kid)
                .cloned()
                .ok_or_else(|| format!("unknown kid {kid:?}")),
            KeySource::RemoteJwks(remote) => remote.key(kid).await,
        }
    }
}

/// A cached remote JWKS.
pub struct RemoteJwks {
    /// The JWKS URL.
    pub url: url::Url,
    client: reqwest::Client,
    keys: RwLock<Arc<KeyMap>>,
    /// When the last fetch started (`None`: never); the mutex also makes fetches single-flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteJwks {
    /// Nothing fetched yet; the first token triggers the first fetch.
    pub fn new(url: url::Url, client: reqwest::Client) -> Self {
        RemoteJwks {
            url,
            client,
            keys: RwLock::new(Arc::new(KeyMap::new())),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self, kid: &str) -> Option<VerifyKey> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    async fn key(&self, kid: &str) -> Result<VerifyKey, String> {
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while we waited.
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        if last.is_some_and(|t| t.elapsed() < JWKS_MIN_REFRESH) {
            return Err(format!(
                "unknown kid {kid:?} (JWKS refreshed less than {}s ago)",
                JWKS_MIN_REFRESH.as_secs()
            ));
        }
        *last = Some(Instant::now());
        let keys = self.fetch().await?;
        tracing::debug!(url = %self.url, keys = keys.len(), "JWKS refreshed");
        let found = keys.get(kid).cloned();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        found.ok_or_else(|| format!("unknown kid {kid:?}"))
    }

    async fn fetch(&self) -> Result<KeyMap, String> {
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
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| err(e.to_string()))? {
            if body.len() + chunk.len() > JWKS_MAX_BYTES {
                return Err(err(format!("larger than {JWKS_MAX_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| err(format!("not a JWK Set: {e}")))?;
        Ok(keys_from_set(&set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn symmetric_and_kidless_keys_are_dropped() {
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
             "kid": "ed", "alg": "EdDSA"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
             "kid": "hs", "alg": "HS256"},
        ]});
        let keys = parse_jwks(&doc).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ed"]);
        assert_eq!(keys["ed"].alg, Some(Algorithm::EdDSA));
    }

    #[test]
    fn local_source_without_usable_keys_is_refused() {
        assert!(KeySource::local_jwks(&json!({"keys": []})).is_err());
        assert!(KeySource::local_jwks(&json!({"nope": 1})).is_err());
    }
}

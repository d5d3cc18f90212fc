//! Where token-verification keys come from ([`KeySource`]): the authorization server's keys held
//! in process, or a remote JWKS document (RFC 7517 §5) fetched over HTTPS, cached, and fetched
//! again when a token names an unknown `kid` — at most once per [`JWKS_MIN_REFRESH`].
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

/// A cached remote JWKS.
pub struct RemoteJwks {
    /// The JWKS URL.
    pub url: url::Url,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// When the last fetch started (`None`: never); the mutex also makes fetches single-flight.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteJwks {
    /// Nothing fetched yet; the first token triggers the first fetch.
    pub fn new(url: url::Url, client: reqwest::Client) -> Self {
        RemoteJwks {
            url,
            client,
            keys: RwLock::new(Arc::new(KeySet::default())),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached set's answer, unless the `kid` is unknown to it.
    fn cached(&self, kid: &str, alg: Algorithm) -> Option<Result<VerifyingKey, String>> {
        let keys = Arc::clone(&self.keys.read().unwrap_or_else(|e| e.into_inner()));
        match select(&keys, kid, alg) {
            Err(KeyError::UnknownKid { .. }) => None,
            other => Some(other.map_err(|e| e.to_string())),
        }
    }

    async fn key(&self, kid: &str, alg: Algorithm) -> Result<VerifyingKey, String> {
        if let Some(k) = self.cached(kid, alg) {
            return k;
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while we waited.
        if let Some(k) = self.cached(kid, alg) {
            return k;
        }
        if last.is_some_and(|t| t.elapsed() < JWKS_MIN_REFRESH) {
            return Err(format!(
                "unknown kid {kid:?} (JWKS refreshed less than {}s ago)",
                JWKS_MIN_REFRESH.as_secs()
            ));
        }
        *last = Some(Instant::now());
        let keys = self.fetch().await?;
        tracing::debug!(url = %self.url, keys = keys.len(), usable = keys.usable(), "JWKS refreshed");
        let found = select(&keys, kid, alg).map_err(|e| e.to_string());
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        found
    }

    async fn fetch(&self) -> Result<KeySet, String> {
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
        Ok(KeySet::from_jwks(&set))
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

    #[test]
    fn local_source_without_usable_keys_is_refused() {
        assert!(KeySource::local_jwks(&json!({"keys": []})).is_err());
        assert!(KeySource::local_jwks(&json!({"nope": 1})).is_err());
    }
}

//! `private_key_jwt` client authentication: verifying RFC 7523 client assertions for CIMD
//! clients, with single-use `jti` (docs/architecture.md, *Client authentication at /token*; RFC 7523 §2.2 and §3; RFC 7521 §4.2;
//! draft-ietf-oauth-client-id-metadata-document-02 §4 `jwks`/`jwks_uri`, §8.2; OAuth 2.1 §2.4.1).
//!
//! [`AssertionVerifier::verify`] is one visible pipeline of named steps, each its own function
//! with its own tests:
//!
//! 1. the client's document declares `private_key_jwt` ([`AssertionError::NotPrivateKeyJwtClient`]);
//! 2. size cap, compact JWS shape, header `alg` in the allow-list — `none` and HMAC refused
//!    before any key is looked up — and no `crit` (`jws.rs`);
//! 3. `alg` equals the document's `token_endpoint_auth_signing_alg` when it has one;
//! 4. keys from the inline `jwks` or the cached `jwks_uri` (refresh on unknown `kid`, at most
//!    every [`JWKS_REFRESH_MIN_INTERVAL`]), only RSA/EC/OKP public keys, `alg` matching the key
//!    type and the JWK's `alg` (`keys.rs`, `jwks.rs`);
//! 5. the signature;
//! 6. the claims `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` (`claims.rs`);
//! 7. the `jti` recorded once per client until `exp` + skew ([`ReplayStore`]) — **only after**
//!    the signature and every claim passed, so forged or invalid assertions cannot burn a
//!    client's `jti` values.
//!
//! Step 7 can be left to the caller: the `*_deferred` methods run steps 1–6 and return an
//! [`UnrecordedAssertion`] carrying the `jti` and how long to keep it. The caller **must**
//! record that `jti` itself, atomically with whatever it does with the assertion, in the same
//! replay namespace as the verifier's [`ReplayStore`], and refuse the request if it was already
//! recorded. The authorization server does this at the code exchange, recording the `jti` in
//! the same store transaction that redeems the code, so an exchange costs one durable write
//! instead of two.
//!
//! Non-goals: issuing assertions, `client_secret_jwt` (shared secrets are forbidden for CIMD
//! clients, draft §4.1), keys carried in the JWT header (`jwk`, `jku`, `x5c`, `x5u` are ignored).

pub(crate) mod claims;
mod error;
mod jwks;
pub(crate) mod jws;
mod keys;
mod replay;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;

pub use claims::MAX_JTI_LENGTH;
pub use error::{AssertionError, ReplayStoreError};
pub use jws::ALLOWED_ALGORITHMS;
pub use keys::MIN_RSA_MODULUS_BITS;
pub use replay::{
    DEFAULT_REPLAY_CAPACITY, DEFAULT_REPLAY_CAPACITY_PER_CLIENT, MemoryReplayStore, ReplayStore,
};

use crate::document::{AuthMethod, ClientDocument};
use crate::fetch::Fetcher;

/// Longest accepted assertion lifetime (`exp − iat`), a product limit (docs/architecture.md, *Client authentication at
/// /token*) and the reference
/// implementation's `MAX_ASSERTION_LIFETIME` (fastmcp-cimd.md §2.9).
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// Allowed clock difference between the client and us (docs/architecture.md, *Client authentication at /token*).
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// A `jwks_uri` is refetched for an unknown `kid` at most this often (docs/architecture.md, *Client
/// authentication at /token*).
pub const JWKS_REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Largest accepted `jwks_uri` response, counted while reading (docs/architecture.md, *Fetching (SSRF-safe)*, size caps; a JWK Set
/// of a few RSA-4096 keys is ~3 KB).
pub const MAX_JWKS_BYTES: usize = 65_536;
/// How long a fetched `jwks_uri` key set is used before it is fetched again, like the document
/// cache's default TTL (docs/architecture.md, *Caching*).
pub const JWKS_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Longest accepted `client_assertion` in bytes (an RS512/RSA-4096 assertion is ~1.5 KB).
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;

/// Verifier settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionConfig {
    /// Accepted `aud` values, compared exactly: the token endpoint URL as advertised in the
    /// metadata, and the issuer identifier (RFC 7523 §3 item 3).
    pub audiences: Vec<String>,
    /// Allowed clock skew for `exp`, `iat` and `nbf` (default [`CLOCK_SKEW`]).
    pub skew: Duration,
    /// Longest accepted lifetime (default [`MAX_ASSERTION_LIFETIME`]).
    pub max_lifetime: Duration,
}

impl Default for AssertionConfig {
    fn default() -> Self {
        AssertionConfig {
            audiences: Vec::new(),
            skew: CLOCK_SKEW,
            max_lifetime: MAX_ASSERTION_LIFETIME,
        }
    }
}

impl AssertionConfig {
    /// Defaults with these accepted audiences (token endpoint URL and issuer).
    pub fn new<I, S>(audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AssertionConfig {
            audiences: audiences.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// The parts of a client's registration the verifier needs. Built from a [`ClientDocument`] by
/// [`ClientKeys::from_document`], or directly (e.g. for a locally registered client).
#[derive(Debug, Clone, Copy)]
pub struct ClientKeys<'a> {
    /// The client_id; `iss` and `sub` must equal it.
    pub client_id: &'a str,
    /// Inline keys (used when present).
    pub jwks: Option<&'a JwkSet>,
    /// Remote keys (used when there is no inline `jwks`).
    pub jwks_uri: Option<&'a str>,
    /// The registered `token_endpoint_auth_signing_alg`, if any.
    pub signing_alg: Option<&'a str>,
}

impl<'a> ClientKeys<'a> {
    /// The key material a CIMD document declares.
    pub fn from_document(doc: &'a ClientDocument) -> Self {
        ClientKeys {
            client_id: doc.client_id.as_str(),
            jwks: doc.jwks.as_ref(),
            jwks_uri: doc.jwks_uri.as_ref().map(url::Url::as_str),
            signing_alg: doc.token_endpoint_auth_signing_alg.as_deref(),
        }
    }
}

/// A verified, recorded client assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The authenticated client.
    pub client_id: String,
    /// The assertion's `jti` (now recorded as used; for an [`UnrecordedAssertion`], still to
    /// be recorded by the caller).
    pub jti: String,
    /// The assertion's `exp`.
    pub expires_at: SystemTime,
    /// The signing algorithm.
    pub alg: Algorithm,
    /// The `kid` of the key that verified the signature (the header `kid` when the key has none).
    pub kid: Option<String>,
}

/// An assertion that passed every check except the single-use `jti` record (returned by the
/// `*_deferred` methods of [`AssertionVerifier`]). It does not authenticate the client until
/// the caller has recorded `(assertion.client_id, assertion.jti)` until `keep_until` — new,
/// atomically, in the replay namespace of the verifier's [`ReplayStore`] — and it must refuse
/// the request when the `jti` was already recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the jti must be recorded before the assertion authenticates anything"]
pub struct UnrecordedAssertion {
    /// The verified assertion (its `jti` not yet recorded).
    pub assertion: VerifiedAssertion,
    /// Until when the `jti` must be remembered: one second past `exp` + the allowed clock skew
    /// (the last instant the assertion is accepted), the same time the verifier itself records
    /// it until.
    pub keep_until: SystemTime,
}

/// Whether the verifier records the `jti` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplayMode {
    /// Record through the [`ReplayStore`] as the last step.
    Record,
    /// Leave it to the caller ([`UnrecordedAssertion`]).
    Deferred,
}

/// Verifies client assertions. Build one per authorization server and share it: it caches
/// decoded keys per client and per `jwks_uri`.
pub struct AssertionVerifier {
    cfg: AssertionConfig,
    inline: jwks::InlineKeyCache,
    remote: jwks::RemoteKeyCache,
    replay: Arc<dyn ReplayStore>,
}

impl std::fmt::Debug for AssertionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionVerifier")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn from_unix_secs(secs: i64) -> SystemTime {
    let secs = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    SystemTime::UNIX_EPOCH
        .checked_add(secs)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// How long an assertion's `jti` must be remembered: for as long as the assertion is accepted.
/// Claims are judged in whole seconds (`exp + skew ≥ floor(now)`), so an assertion is accepted
/// until one second past `exp + skew`; remembering it only until `exp + skew` left a one-second
/// window in which it could be used again (review finding F-assert-1). Saturates instead of
/// overflowing for an absurd `exp`.
fn replay_keep_until(exp: i64, skew: Duration) -> SystemTime {
    let base = from_unix_secs(exp);
    base.checked_add(skew + Duration::from_secs(1))
        .unwrap_or(base)
}

impl AssertionVerifier {
    /// A verifier using `fetcher` for `jwks_uri` and `replay` for single-use `jti`.
    pub fn new(cfg: AssertionConfig, fetcher: Arc<Fetcher>, replay: Arc<dyn ReplayStore>) -> Self {
        AssertionVerifier {
            cfg,
            inline: jwks::InlineKeyCache::new(),
            remote: jwks::RemoteKeyCache::new(
                fetcher,
                JWKS_CACHE_TTL,
                JWKS_REFRESH_MIN_INTERVAL,
                MAX_JWKS_BYTES,
            ),
            replay,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AssertionConfig {
        &self.cfg
    }

    /// Verify `assertion` for the CIMD client described by `client`, now.
    pub async fn verify(
        &self,
        assertion: &str,
        client: &ClientDocument,
    ) -> Result<VerifiedAssertion, AssertionError> {
        self.verify_at(assertion, client, SystemTime::now()).await
    }

    /// [`Self::verify_at_deferred`] now: every check but the `jti` record, which the caller
    /// **must** make atomically (see [`UnrecordedAssertion`]).
    pub async fn verify_deferred(
        &self,
        assertion: &str,
        client: &ClientDocument,
    ) -> Result<UnrecordedAssertion, AssertionError> {
        self.verify_at_deferred(assertion, client, SystemTime::now())
            .await
    }

    /// Verify `assertion` for the CIMD client described by `client`, at time `now`.
    pub async fn verify_at(
        &self,
        assertion: &str,
        client: &ClientDocument,
        now: SystemTime,
    ) -> Result<VerifiedAssertion, AssertionError> {
        check_declares_private_key_jwt(client)?;
        self.verify_keys_at(assertion, &ClientKeys::from_document(client), now)
            .await
    }

    /// Like [`Self::verify_at`] but without recording the `jti`: every other check runs (a
    /// forged or invalid assertion is rejected before anything is recorded, and the
    /// [`ReplayStore`] is never touched). The caller **must** record the returned `jti`
    /// atomically, see [`UnrecordedAssertion`].
    pub async fn verify_at_deferred(
        &self,
        assertion: &str,
        client: &ClientDocument,
        now: SystemTime,
    ) -> Result<UnrecordedAssertion, AssertionError> {
        check_declares_private_key_jwt(client)?;
        self.verify_keys_at_deferred(assertion, &ClientKeys::from_document(client), now)
            .await
    }

    /// Verify `assertion` for a client given by its key material, at time `now`. The caller has
    /// established that this client authenticates with `private_key_jwt`.
    pub async fn verify_keys_at(
        &self,
        assertion: &str,
        client: &ClientKeys<'_>,
        now: SystemTime,
    ) -> Result<VerifiedAssertion, AssertionError> {
        self.run(assertion, client, now, ReplayMode::Record)
            .await
            .map(|u| u.assertion)
    }

    /// Like [`Self::verify_keys_at`] but without recording the `jti` (see
    /// [`Self::verify_at_deferred`]). The caller **must** record the returned `jti` atomically,
    /// see [`UnrecordedAssertion`].
    pub async fn verify_keys_at_deferred(
        &self,
        assertion: &str,
        client: &ClientKeys<'_>,
        now: SystemTime,
    ) -> Result<UnrecordedAssertion, AssertionError> {
        self.run(assertion, client, now, ReplayMode::Deferred).await
    }

    /// The pipeline of the module docs; step 7 only in [`ReplayMode::Record`].
    async fn run(
        &self,
        assertion: &str,
        client: &ClientKeys<'_>,
        now: SystemTime,
        mode: ReplayMode,
    ) -> Result<UnrecordedAssertion, AssertionError> {
        if assertion.len() > MAX_ASSERTION_BYTES {
            return Err(AssertionError::TooLarge {
                len: assertion.len(),
                limit: MAX_ASSERTION_BYTES,
            });
        }
        let jws = jws::parse(assertion)?;
        check_registered_alg(jws.alg, client.signing_alg)?;
        let key_set = self.key_set(client, jws.kid.as_deref(), now).await?;
        let key = key_set.select(jws.kid.as_deref(), jws.alg)?;
        let kid = key.kid.clone().or_else(|| jws.kid.clone());
        verify_signature(&jws, key)?;

        let payload = jws::decode_json_object(jws.payload_b64)
            .map_err(|reason| AssertionError::InvalidPayload { reason })?;
        let rules = claims::ClaimRules {
            client_id: client.client_id,
            audiences: &self.cfg.audiences,
            skew: self.cfg.skew,
            max_lifetime: self.cfg.max_lifetime,
            now: unix_secs(now),
        };
        let checked = claims::check(&payload, &rules)?;

        // Last step: only a genuine, valid assertion may use up its jti.
        let keep_until = replay_keep_until(checked.exp, self.cfg.skew);
        if mode == ReplayMode::Record
            && !self
                .replay
                .record_once(client.client_id, &checked.jti, keep_until)
                .await?
        {
            return Err(AssertionError::Replayed { jti: checked.jti });
        }
        Ok(UnrecordedAssertion {
            assertion: VerifiedAssertion {
                client_id: client.client_id.to_owned(),
                jti: checked.jti,
                expires_at: from_unix_secs(checked.exp),
                alg: jws.alg,
                kid,
            },
            keep_until,
        })
    }

    async fn key_set(
        &self,
        client: &ClientKeys<'_>,
        kid: Option<&str>,
        now: SystemTime,
    ) -> Result<Arc<keys::KeySet>, AssertionError> {
        match (client.jwks, client.jwks_uri) {
            (Some(set), _) => Ok(self.inline.keys(client.client_id, set)),
            (None, Some(uri)) => self.remote.keys(uri, kid, now).await,
            (None, None) => Err(AssertionError::NoKeySource {
                client_id: client.client_id.to_owned(),
            }),
        }
    }
}

/// Step 1: the document declares `private_key_jwt`.
fn check_declares_private_key_jwt(client: &ClientDocument) -> Result<(), AssertionError> {
    if client.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
        Ok(())
    } else {
        Err(AssertionError::NotPrivateKeyJwtClient {
            client_id: client.client_id.as_str().to_owned(),
        })
    }
}

/// The header `alg` must equal the registered `token_endpoint_auth_signing_alg`, if any
/// (RFC 7591 §2).
fn check_registered_alg(alg: Algorithm, registered: Option<&str>) -> Result<(), AssertionError> {
    match registered {
        Some(registered) if registered != jws::alg_name(alg) => {
            Err(AssertionError::AlgNotRegistered {
                alg: jws::alg_name(alg).to_owned(),
                registered: registered.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

fn verify_signature(jws: &jws::ParsedJws<'_>, key: &keys::UsableKey) -> Result<(), AssertionError> {
    let verified = jsonwebtoken::crypto::verify(
        jws.signature_b64,
        jws.signing_input.as_bytes(),
        &key.key,
        jws.alg,
    );
    match verified {
        Ok(true) => Ok(()),
        // Ok(false): wrong signature; Err: undecodable signature or a key the backend rejects.
        Ok(false) | Err(_) => Err(AssertionError::BadSignature {
            kid: key.kid.clone().unwrap_or_default(),
            alg: jws::alg_name(jws.alg).to_owned(),
        }),
    }
}

//! Access-token verification for the resource server (docs/architecture.md, *Gateway*; RFC 9068 §4;
//! MCP 2025-11-25 authorization, "Token Handling": servers MUST validate the audience).
//!
//! A token is accepted when, for the first [`TokenSource`] whose issuer equals the token's
//! `iss`: the header's `alg` is in [`ALLOWED_ALGS`] (asymmetric only), the signature verifies
//! with the source's key for the header's `kid`, `typ` is `at+jwt` (RFC 9068 §2.1) when the source
//! requires it, `exp`/`nbf` hold with [`GatewayConfig::clock_skew`](crate::GatewayConfig), `aud`
//! contains this resource exactly, and the token family (`fid`) is not revoked in the store.
//!
//! Hot path: tokens that passed the signature/issuer/expiry checks are kept in a bounded cache
//! keyed by their SHA-256 for `min(exp − now, token_cache_ttl)`. A repeated request costs one
//! SHA-256, one cache lookup, an audience comparison and two revocation-cache lookups (the
//! token's family, and whether an administrator blocked the client it was issued to). Both
//! answers are cached for `revocation_cache_ttl` (default 5 s): that is how stale a revocation
//! or a block can be.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Validation, decode, decode_header};
use serde::Deserialize;
use sha2::Digest;

use cimdgate_store::{ClientStatus, Store};

use crate::config::GatewayConfig;
use crate::keys::{ALLOWED_ALGS, KeySource};

/// Name of the token source for tokens issued by cimdgate's own authorization server.
pub const LOCAL_SOURCE: &str = "cimdgate";

/// One trusted issuer of access tokens (docs/architecture.md, *Gateway*: several token
/// sources per resource).
#[derive(Clone)]
pub struct TokenSource {
    /// Name passed upstream in `X-Forwarded-Token-Source`.
    pub name: String,
    /// Expected `iss`, exactly.
    pub issuer: String,
    /// Verification keys.
    pub keys: KeySource,
    /// Expected `aud` instead of the resource identifier (an enterprise IdP's audience).
    pub audience: Option<String>,
    /// Require the RFC 9068 `typ: at+jwt` header.
    pub require_at_jwt: bool,
    /// Where token-family revocations are recorded (`fid` claim); `None`: no revocation check.
    pub revocation: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("keys", &self.keys)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// cimdgate's own authorization server: in-process keys, `at+jwt`, revocation in `store`.
    pub fn local(issuer: impl Into<String>, keys: KeySource, store: Arc<dyn Store>) -> Self {
        TokenSource {
            name: LOCAL_SOURCE.into(),
            issuer: issuer.into(),
            keys,
            audience: None,
            require_at_jwt: true,
            revocation: Some(store),
        }
    }
}

/// The identity the gateway vouches for, put in the request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user (`sub`).
    pub subject: String,
    /// The OAuth client (`client_id`, else `azp`), if the token names one.
    pub client_id: Option<String>,
    /// Granted scopes (`scope`, space-separated in the token).
    pub scopes: Vec<String>,
    /// Which [`TokenSource`] vouched (its name).
    pub token_source: String,
    /// The token's issuer.
    pub issuer: String,
    /// The token's audiences.
    pub audience: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub expires_at: u64,
    /// Token family (`fid`), used for revocation.
    pub family: Option<String>,
    /// cimdgate's reference to the upstream-IdP sign-in behind this token (`urf`), for
    /// resources that forward the upstream access token. Opaque; useless without the store.
    pub upstream_ref: Option<String>,
}

impl Verified {
    /// Whether every scope in `required` was granted.
    pub fn has_scopes(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.scopes.contains(r))
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// 401 `invalid_token` (RFC 6750 §3.1): malformed, bad signature, wrong issuer/audience,
    /// expired, revoked.
    #[error("{0}")]
    Invalid(String),
    /// The revocation store could not answer: fail closed with 503.
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

fn invalid(s: impl Into<String>) -> VerifyError {
    VerifyError::Invalid(s.into())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Aud,
    exp: u64,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    fid: Option<String>,
    #[serde(default)]
    urf: Option<String>,
}

#[derive(Deserialize)]
struct IssOnly {
    iss: Option<String>,
}

/// The `iss` of a JWT before verification: only used to pick the source whose key then checks
/// it.
fn unverified_iss(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<IssOnly>(&bytes).ok()?.iss
}

struct Cached {
    verified: Arc<Verified>,
    source: usize,
}

struct TokenExpiry {
    max: Duration,
}

impl moka::Expiry<[u8; 32], Arc<Cached>> for TokenExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Cached>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.verified.expires_at.saturating_sub(unix_now());
        Some(self.max.min(Duration::from_secs(left)))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies tokens against the configured sources; shared by every resource of a gateway.
pub struct Verifier {
    sources: Vec<TokenSource>,
    skew: Duration,
    cache: moka::sync::Cache<[u8; 32], Arc<Cached>>,
    revoked: Option<moka::future::Cache<String, bool>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier trying `sources` in order, with the cache settings of `config`.
    pub fn new(sources: Vec<TokenSource>, config: &GatewayConfig) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.token_cache_capacity)
            .expire_after(TokenExpiry {
                max: config.token_cache_ttl,
            })
            .build();
        let revoked = (!config.revocation_cache_ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.token_cache_capacity)
                .time_to_live(config.revocation_cache_ttl)
                .build()
        });
        Verifier {
            sources,
            skew: config.clock_skew,
            cache,
            revoked,
        }
    }

    /// The sources, in order.
    pub fn sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// Verify `token` for the resource `resource_id` (see the module doc for the checks).
    pub async fn verify(
        &self,
        token: &str,
        resource_id: &str,
    ) -> Result<Arc<Verified>, VerifyError> {
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let cached = match self.cache.get(&key) {
            Some(c) if c.verified.expires_at + self.skew.as_secs() >= unix_now() => c,
            _ => {
                let c = Arc::new(self.verify_signed(token).await?);
                self.cache.insert(key, c.clone());
                c
            }
        };
        let source = self
            .sources
            .get(cached.source)
            .ok_or_else(|| invalid("token source is gone"))?;
        let expected = source.audience.as_deref().unwrap_or(resource_id);
        if !cached.verified.audience.iter().any(|a| a == expected) {
            return Err(invalid(format!(
                "the token is not for this resource (aud does not contain {expected})"
            )));
        }
        self.check_revocation(source, &cached.verified).await?;
        Ok(cached.verified.clone())
    }

    async fn check_revocation(
        &self,
        source: &TokenSource,
        verified: &Verified,
    ) -> Result<(), VerifyError> {
        let (Some(store), Some(fid)) = (&source.revocation, &verified.family) else {
            return Ok(());
        };
        let ask = async {
            store
                .is_family_revoked(fid, SystemTime::now())
                .await
                .map_err(|e| VerifyError::Unavailable(format!("revocation store: {e}")))
        };
        let revoked = match &self.revoked {
            Some(cache) => {
                let key = format!("{}\u{0}{fid}", source.name);
                cache
                    .try_get_with(key, ask)
                    .await
                    .map_err(|e: Arc<VerifyError>| (*e).clone())?
            }
            None => ask.await?,
        };
        if revoked {
            return Err(invalid("the token has been revoked"));
        }
        self.check_client_status(source, store, verified).await
    }

    /// The client a token was issued to must not be blocked or denied by an administrator
    /// (the store's inventory; cached like revocations, so a block reaches every instance
    /// within `revocation_cache_ttl`).
    async fn check_client_status(
        &self,
        source: &TokenSource,
        store: &Arc<dyn Store>,
        verified: &Verified,
    ) -> Result<(), VerifyError> {
        let Some(client_id) = &verified.client_id else {
            return Ok(());
        };
        let ask = async {
            store
                .client_status(client_id)
                .await
                .map(|s| matches!(s, Some(ClientStatus::Blocked | ClientStatus::Denied)))
                .map_err(|e| VerifyError::Unavailable(format!("client status: {e}")))
        };
        let refused = match &self.revoked {
            Some(cache) => {
                let key = format!("{}\u{1}{client_id}", source.name);
                cache
                    .try_get_with(key, ask)
                    .await
                    .map_err(|e: Arc<VerifyError>| (*e).clone())?
            }
            None => ask.await?,
        };
        if refused {
            return Err(invalid(
                "the client this token was issued to has been blocked by an administrator",
            ));
        }
        Ok(())
    }

    /// Signature, `alg`, `typ`, `iss`, `exp`, `nbf` — everything that depends on the token
    /// alone, so the result can be cached.
    async fn verify_signed(&self, token: &str) -> Result<Cached, VerifyError> {
        let header = decode_header(token).map_err(|e| invalid(format!("malformed token: {e}")))?;
        if !ALLOWED_ALGS.contains(&header.alg) {
            return Err(invalid(format!("alg {:?} is not allowed", header.alg)));
        }
        let iss = unverified_iss(token).ok_or_else(|| invalid("malformed token: no iss"))?;
        let mut last = None;
        for (i, source) in self.sources.iter().enumerate() {
            if source.issuer != iss {
                continue;
            }
            match self.verify_with(source, &header, token).await {
                Ok(verified) => {
                    return Ok(Cached {
                        verified: Arc::new(verified),
                        source: i,
                    });
                }
                Err(e) => {
                    tracing::debug!(source = %source.name, error = %e, "token source refused the token");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| invalid(format!("issuer {iss:?} is not trusted"))))
    }

    async fn verify_with(
        &self,
        source: &TokenSource,
        header: &jsonwebtoken::Header,
        token: &str,
    ) -> Result<Verified, VerifyError> {
        if source.require_at_jwt
            && !header.typ.as_deref().is_some_and(|t| {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            })
        {
            return Err(invalid("typ is not at+jwt"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| invalid("the token has no kid"))?;
        let key = source.keys.key(kid, header.alg).await.map_err(invalid)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&source.issuer]);
        validation.validate_aud = false; // checked per resource, exactly
        validation.validate_nbf = true;
        validation.leeway = self.skew.as_secs();
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let claims = decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| invalid(format!("invalid token: {e}")))?
            .claims;
        Ok(Verified {
            subject: claims.sub,
            client_id: claims.client_id.or(claims.azp),
            scopes: claims
                .scope
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            token_source: source.name.clone(),
            issuer: claims.iss,
            audience: match claims.aud {
                Aud::One(a) => vec![a],
                Aud::Many(v) => v,
            },
            expires_at: claims.exp,
            family: claims.fid,
            upstream_ref: claims.urf,
        })
    }
}

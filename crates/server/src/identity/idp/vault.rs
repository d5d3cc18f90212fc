//! The user's upstream-IdP access token for resources with `forward_upstream_token = true`
//! (docs/architecture.md, *Gateway*: forwarded only where a resource asks for it).
//!
//! After an upstream sign-in, `/upstream/callback` stores the IdP's tokens sealed (AES-256-GCM-SIV,
//! [`Purpose::IdpTokens`]) under a random reference, and every access token of that grant
//! carries the reference as its `urf` claim. For each proxied request the gateway asks
//! [`IdpTokenVault::token_for`], which:
//! 1. honours `urf` only in tokens this server issued (another trusted issuer's token naming a
//!    reference must not reach someone else's IdP token);
//! 2. reads and opens the sealed tokens; nothing stored → `None` (the gateway answers 401 and
//!    the client signs in again);
//! 3. returns the access token while it has more than [`RENEW_MARGIN_SECS`] left, else renews it
//!    with the IdP's refresh token and stores the result under the same reference (an IdP that
//!    refuses the refresh → `None`, and the stored sign-in is ended so that cimdgate's refresh
//!    grant refuses too; an IdP or store that cannot answer → `Err`, the gateway's 503);
//! 4. keeps the answer in a small per-instance cache for at most [`CACHE_SECS`] and never past
//!    the renewal point, with concurrent requests for one reference coalesced into one load (so
//!    one instance never spends a rotating refresh token twice).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cimdgate_gateway::{UpstreamTokens as ForwardedTokenSource, Verified};

use crate::identity::Identity;
use crate::identity::idp::{IdpError, IdpTokens};
use crate::seal::{Purpose, Sealer};
use crate::secret::ExposeSecret;
use crate::services::Services;

/// An upstream access token with less than this left is renewed before it is forwarded.
pub const RENEW_MARGIN_SECS: u64 = 10;
/// Longest time one instance reuses a token it read, without looking at the store again.
pub const CACHE_SECS: u64 = 60;
/// Most references held in the per-instance cache.
const CACHE_CAPACITY: u64 = 100_000;

/// Why no token could be produced.
#[derive(Debug, Clone)]
enum Miss {
    /// Nothing to forward: no stored tokens, or the IdP refused to renew them.
    Gone(String),
    /// The store or the IdP cannot answer now.
    Unavailable(String),
}

#[derive(Clone)]
struct Held {
    access_token: String,
    /// When to stop reusing it (renewal point or cache bound).
    until: Instant,
}

struct HeldExpiry;

impl moka::Expiry<String, Held> for HeldExpiry {
    fn expire_after_create(&self, _: &String, v: &Held, now: Instant) -> Option<Duration> {
        Some(v.until.saturating_duration_since(now))
    }
}

/// The gateway's provider of upstream-IdP tokens, backed by the store.
pub struct IdpTokenVault {
    services: Arc<Services>,
    identity: Arc<Identity>,
    cache: moka::future::Cache<String, Held>,
}

impl std::fmt::Debug for IdpTokenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpTokenVault").finish_non_exhaustive()
    }
}

impl IdpTokenVault {
    /// A vault reading the store and sealer of `services`, renewing at the IdP of `identity`.
    pub fn new(services: Arc<Services>, identity: Arc<Identity>) -> Self {
        IdpTokenVault {
            services,
            identity,
            cache: moka::future::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .expire_after(HeldExpiry)
                .build(),
        }
    }

    async fn load(&self, reference: &str) -> Result<Held, Miss> {
        let store = &self.services.store;
        let sealed = store
            .get_idp_tokens(reference, SystemTime::now())
            .await
            .map_err(|e| Miss::Unavailable(format!("store: {e}")))?
            .ok_or_else(|| Miss::Gone("no upstream tokens are stored for this sign-in".into()))?;
        let mut tokens = open_tokens(&self.services.sealer, &sealed)
            .ok_or_else(|| Miss::Gone("the stored upstream tokens cannot be opened".into()))?;
        let now = crate::time::now_secs();
        if needs_renewal(&tokens, now) {
            tokens = self.renew(reference, &tokens).await?;
        }
        Ok(Held {
            until: reuse_until(&tokens, crate::time::now_secs()),
            access_token: tokens.access_token.expose_secret().to_owned(),
        })
    }

    async fn renew(&self, reference: &str, old: &IdpTokens) -> Result<IdpTokens, Miss> {
        let Identity::Idp(idp) = &*self.identity else {
            return Err(Miss::Gone("identity.mode is not upstream".into()));
        };
        let new = match idp.refresh(old).await {
            Ok(new) => new,
            Err(e @ (IdpError::Unavailable { .. } | IdpError::Discovery { .. })) => {
                return Err(Miss::Unavailable(e.to_string()));
            }
            Err(refused) => {
                // The IdP will not renew (refresh token revoked or expired there): end the
                // sign-in here too, so cimdgate's refresh grant sends the client to sign in
                // again instead of minting tokens this resource can only refuse.
                let gone = SystemTime::now() - Duration::from_secs(1);
                if let Err(e) = self
                    .services
                    .store
                    .put_idp_tokens(reference, b"", gone)
                    .await
                {
                    tracing::warn!(error = %e, "cannot end a refused upstream sign-in");
                }
                crate::audit!(event = "upstream_token_refused", host = %idp.provider_host(),
                    reason = %refused);
                return Err(Miss::Gone(refused.to_string()));
            }
        };
        // The IdP has already renewed (and may have rotated its refresh token): use the new
        // access token even if storing it fails, rather than throw it away with a 503. The
        // stored copy then keeps the old tokens, so a later renewal may be refused and end the
        // sign-in.
        if let Err(e) = store_tokens(&self.services, reference, &new).await {
            tracing::warn!(error = %e, "cannot store renewed upstream tokens");
        }
        crate::audit!(event = "upstream_token_refreshed", host = %idp.provider_host());
        Ok(new)
    }
}

/// Seal `tokens` (AES-256-GCM-SIV, [`Purpose::IdpTokens`]) and store them under `reference`.
/// The record lives as long as a refresh token and slides with each renewal, like cimdgate's
/// own refresh tokens do on rotation.
pub async fn store_tokens(
    services: &Services,
    reference: &str,
    tokens: &IdpTokens,
) -> Result<(), String> {
    let ttl = services.config.tokens.refresh_token_ttl_secs;
    let sealed = services
        .sealer
        .seal(Purpose::IdpTokens, tokens, ttl)
        .map_err(|_| "cannot seal the IdP tokens".to_owned())?;
    services
        .store
        .put_idp_tokens(
            reference,
            sealed.as_bytes(),
            crate::time::after(SystemTime::now(), ttl),
        )
        .await
        .map_err(|e| e.to_string())
}

/// Open sealed IdP tokens read from the store; `None` when they are not ours, tampered with or
/// expired.
pub fn open_tokens(sealer: &Sealer, sealed: &[u8]) -> Option<IdpTokens> {
    let s = std::str::from_utf8(sealed).ok()?;
    sealer.open(Purpose::IdpTokens, s).ok()
}

#[async_trait::async_trait]
impl ForwardedTokenSource for IdpTokenVault {
    async fn token_for(&self, who: &Verified) -> Result<Option<String>, String> {
        let Some(reference) = honoured_reference(who, &self.services.issuer) else {
            return Ok(None);
        };
        let held = self
            .cache
            .try_get_with(reference.to_owned(), self.load(reference))
            .await;
        match held {
            Ok(h) => Ok(Some(h.access_token)),
            Err(miss) => match &*miss {
                Miss::Gone(why) => {
                    tracing::info!(subject = %who.subject, reason = %why,
                        "no upstream token to forward; the client must sign in again");
                    Ok(None)
                }
                Miss::Unavailable(why) => Err(why.clone()),
            },
        }
    }
}

/// The upstream sign-in reference of `who`, only if this server (`own_issuer`) issued the
/// token: another trusted issuer's token naming a reference must never reach a user's IdP token.
fn honoured_reference<'a>(who: &'a Verified, own_issuer: &str) -> Option<&'a str> {
    who.upstream_ref
        .as_deref()
        .filter(|_| who.issuer == own_issuer)
}

/// Whether `tokens` must be renewed before use at `now` (unix seconds). A token without a
/// stated lifetime is used as is: only the IdP can tell, by refusing it upstream.
fn needs_renewal(tokens: &IdpTokens, now: u64) -> bool {
    tokens
        .expires_at
        .is_some_and(|exp| exp <= now.saturating_add(RENEW_MARGIN_SECS))
}

/// How long an instance may reuse `tokens` read at `now`: until the renewal point, at most
/// [`CACHE_SECS`].
fn reuse_until(tokens: &IdpTokens, now: u64) -> Instant {
    let left = tokens.expires_at.map_or(CACHE_SECS, |exp| {
        exp.saturating_sub(now.saturating_add(RENEW_MARGIN_SECS))
    });
    Instant::now() + Duration::from_secs(left.min(CACHE_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(expires_at: Option<u64>) -> IdpTokens {
        IdpTokens {
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            id_token: None,
            expires_at,
        }
    }

    #[test]
    fn only_this_servers_tokens_name_an_upstream_sign_in() {
        let who = |issuer: &str, urf: Option<&str>| Verified {
            subject: "alice".into(),
            client_id: None,
            scopes: vec![],
            token_source: "x".into(),
            issuer: issuer.into(),
            audience: vec![],
            expires_at: 0,
            family: None,
            upstream_ref: urf.map(Into::into),
        };
        let own = "https://as.example";
        // (issuer of the token, its urf, what is honoured)
        let cases = [
            (own, Some("ref-1"), Some("ref-1")),
            (own, None, None),
            ("https://idp.corp", Some("ref-1"), None),
            ("https://as.example/", Some("ref-1"), None),
        ];
        for (issuer, urf, want) in cases {
            assert_eq!(
                honoured_reference(&who(issuer, urf), own),
                want,
                "{issuer} {urf:?}"
            );
        }
    }

    #[test]
    fn renewal_and_reuse_windows() {
        let now = 1_000_000;
        // (expires_at, must renew, longest reuse in seconds)
        let cases = [
            (None, false, CACHE_SECS),
            (Some(now + 3600), false, CACHE_SECS),
            (Some(now + RENEW_MARGIN_SECS + 5), false, 5),
            (Some(now + RENEW_MARGIN_SECS), true, 0),
            (Some(now + 1), true, 0),
            (Some(now - 100), true, 0),
        ];
        for (exp, renew, reuse) in cases {
            let t = tokens(exp);
            assert_eq!(needs_renewal(&t, now), renew, "{exp:?}");
            let until = reuse_until(&t, now);
            let secs = until
                .saturating_duration_since(Instant::now())
                .as_secs_f64();
            assert!(
                secs <= reuse as f64 && secs > reuse as f64 - 1.0 || reuse == 0 && secs == 0.0,
                "{exp:?}: reuse {secs} s, expected about {reuse} s"
            );
        }
    }
}

//! The tokens this server issues and verifies: access tokens (RFC 9068 JWTs, [`access`]) signed
//! with the keys of [`keys`], and opaque refresh tokens (ordered tokens whose store record
//! carries the grant).
//!
//! [`Tokens::prepare`] signs an access token and builds the next refresh token and its record
//! without storing anything: the caller's single store write (code redemption or refresh
//! rotation) stores it, and only then are the tokens sent ([`PreparedTokens::respond`]).
//! [`Tokens::verify`] checks an access token of ours: signature, `typ`, `iss`, `exp`, and that
//! its family was not revoked.

pub mod access;
pub mod keys;

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use cimdgate_store::{Grant, RefreshRecord, Scopes, Store, TokenHash};

pub use access::{AccessClaims, TokenError, VERIFY_LEEWAY_SECS, sign_access_token, verify_signed};
pub use keys::{KeyRing, SigningKey};

use crate::audit;
use crate::config::{OFFLINE_ACCESS, TokenConfig};
use crate::error::{OAuthError, StartError};
use crate::secret::{ExposeSecret, SecretString};
use crate::time::{after, unix};

/// Signing keys and the rules of issuing and verifying tokens.
pub struct Tokens {
    /// Access-token signing and verification keys.
    pub keys: KeyRing,
    issuer: String,
    store: Arc<dyn Store>,
    access_ttl_secs: u64,
    refresh_ttl_secs: u64,
}

impl Tokens {
    /// Load (or create) the signing keys.
    pub async fn load(
        cfg: &TokenConfig,
        issuer: &str,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        Ok(Tokens {
            keys: KeyRing::load(cfg, store.as_ref()).await?,
            issuer: issuer.to_owned(),
            store,
            access_ttl_secs: cfg.access_token_ttl_secs,
            refresh_ttl_secs: cfg.refresh_token_ttl_secs,
        })
    }

    /// Verify an access token we issued: signature with our keys, `typ`, `iss`, `exp`, and
    /// that its family has not been revoked. The audience is the caller's to check.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let claims = self.verify_signed(token)?;
        match self
            .store
            .is_family_revoked(&claims.fid, SystemTime::now())
            .await
        {
            Ok(false) => Ok(claims),
            Ok(true) => Err(TokenError::Revoked),
            Err(e) => Err(TokenError::Store(e.to_string())),
        }
    }

    /// Signature, `typ`, `iss` and `exp` only (no revocation check).
    pub fn verify_signed(&self, token: &str) -> Result<AccessClaims, TokenError> {
        verify_signed(&self.keys, &self.issuer, token)
    }

    /// Until when a family must stay revoked: the longest lifetime of anything issued in it.
    pub fn family_revoke_until(&self, now: SystemTime) -> SystemTime {
        after(now, self.refresh_ttl_secs.max(self.access_ttl_secs))
    }

    /// Sign an access token for `grant` with `scope` (the grant's, or narrower at refresh)
    /// and, when `mint_refresh`, build the next refresh token of the family and its record
    /// (not stored: see [`PreparedTokens::new_refresh`]).
    pub fn prepare(
        &self,
        grant: &Grant,
        scope: &Scopes,
        now: SystemTime,
        mint_refresh: bool,
    ) -> Result<PreparedTokens, OAuthError> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.subject.clone(),
            aud: grant.resource.clone(),
            client_id: grant.client_id.clone(),
            // offline_access is the authorization server's (a refresh token), not a permission
            // at the resource: the resource never sees it (MCP 2026-07-28, "Refresh Tokens").
            scope: Scopes::from_tokens(scope.iter().filter(|s| *s != OFFLINE_ACCESS)).to_string(),
            exp: unix(now) + self.access_ttl_secs,
            iat: unix(now),
            jti: crate::rand::token(16),
            fid: grant.family_id.clone(),
            urf: grant.idp_ref.clone(),
        };
        let access_token = sign_access_token(&self.keys, &claims).map_err(|e| {
            tracing::error!(error = %e, "cannot sign an access token");
            OAuthError::server_error("cannot sign the access token")
        })?;
        let (refresh_token, new_refresh) = if mint_refresh {
            let t = crate::rand::ordered_token();
            let record = RefreshRecord {
                grant: grant.clone(),
                issued_at: now,
                expires_at: after(now, self.refresh_ttl_secs),
            };
            let hash = TokenHash::of(&t);
            (Some(t), Some((hash, record)))
        } else {
            (None, None)
        };
        Ok(PreparedTokens {
            claims,
            granted: scope.to_string(),
            access_token: access_token.into(),
            access_ttl: self.access_ttl_secs,
            refresh_token: refresh_token.map(Into::into),
            new_refresh,
        })
    }
}

/// Tokens signed and built but not yet sent ([`Tokens::prepare`] → store write →
/// [`PreparedTokens::respond`]).
#[derive(Debug)]
pub struct PreparedTokens {
    claims: AccessClaims,
    /// The scope of the grant as the response reports it (with `offline_access` when held).
    granted: String,
    access_token: SecretString,
    access_ttl: u64,
    refresh_token: Option<SecretString>,
    /// The new refresh token's hash and record, for the caller's store write to store.
    pub new_refresh: Option<(TokenHash, RefreshRecord)>,
}

impl PreparedTokens {
    /// Audit `token_issued` and build the RFC 6749 §5.1 response body. Call only once the
    /// tokens are stored.
    pub fn respond(self) -> serde_json::Value {
        let claims = self.claims;
        audit!(
            event = "token_issued",
            client_id = %claims.client_id,
            sub = %claims.sub,
            scope = %claims.scope,
            aud = %claims.aud,
            jti = %claims.jti,
            refresh = self.refresh_token.is_some()
        );
        let mut body = json!({
            "access_token": self.access_token.expose_secret(),
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "scope": self.granted,
        });
        if let Some(t) = self.refresh_token {
            body["refresh_token"] = json!(t.expose_secret());
        }
        body
    }
}

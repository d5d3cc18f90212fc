//! Access tokens: the RFC 9068 JWT profile.
//!
//! Access token: header `{alg, kid, typ: "at+jwt"}` (RFC 9068 §2.1); claims `iss`, `sub`, `aud`
//! (the RFC 8707 resource), `client_id`, `scope`, `exp`, `iat`, `jti`, and `fid`, the token
//! family, so revoking a family (code reuse, refresh reuse, RFC 7009) revokes its access tokens;
//! and `urf` after an upstream sign-in (see [`AccessClaims::urf`]).
//!
//! Refresh tokens and authorization codes are opaque ordered tokens (`crate::rand::ordered_token`);
//! only their store key — the time prefix and the SHA-256 — is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;

/// Allowed clock difference when verifying `exp`/`iat` (RFC 7519 §4.1.4 allows "some small
/// leeway").
pub const VERIFY_LEEWAY_SECS: u64 = 30;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer identifier.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The resource (RFC 8707) the token is for.
    pub aud: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Unique id.
    pub jti: String,
    /// Token family (one per code exchange).
    pub fid: String,
    /// Reference to the upstream-IdP sign-in behind this grant (upstream identity mode only),
    /// for resources that forward the user's IdP token. A random store key: it reveals nothing
    /// and opens nothing without the store and the sealing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urf: Option<String>,
}

/// Why an access token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, bad header, unknown `kid`, wrong `typ`.
    #[error("malformed access token: {0}")]
    Malformed(String),
    /// Signature, issuer or expiry check failed.
    #[error("invalid access token: {0}")]
    Invalid(String),
    /// Its family has been revoked.
    #[error("access token has been revoked")]
    Revoked,
    /// The store could not answer the revocation check.
    #[error("cannot check revocation: {0}")]
    Store(String),
}

/// Sign an access token with the ring's current key.
pub fn sign_access_token(keys: &KeyRing, claims: &AccessClaims) -> Result<String, String> {
    let key = keys.signing();
    let payload = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(512);
    out.push_str(&key.header_b64);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    Ok(out)
}

/// Check signature (our keys only), `typ`, `iss` and `exp`; not revocation (see
/// [`super::Tokens::verify`]).
pub fn verify_signed(
    keys: &KeyRing,
    issuer: &str,
    token: &str,
) -> Result<AccessClaims, TokenError> {
    let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"))
    {
        return Err(TokenError::Malformed("typ is not at+jwt".into()));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| TokenError::Malformed("no kid".into()))?;
    let key = keys
        .by_kid(kid)
        .ok_or_else(|| TokenError::Malformed(format!("unknown kid {kid:?}")))?;
    if header.alg != key.alg {
        return Err(TokenError::Malformed("alg does not match the key".into()));
    }
    let mut validation = Validation::new(key.alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false; // each resource checks its own audience
    validation.leeway = VERIFY_LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    decode::<AccessClaims>(token, &key.decoding, &validation)
        .map(|d| d.claims)
        .map_err(|e| TokenError::Invalid(e.to_string()))
}

//! Access tokens (RFC 9068 JWT profile; SPEC §4) and opaque refresh tokens.
//!
//! Access token: header `{alg, kid, typ: "at+jwt"}` (RFC 9068 §2.1); claims `iss`, `sub`, `aud`
//! (the RFC 8707 resource), `client_id`, `scope`, `exp`, `iat`, `jti`, and `fid`, the token
//! family, so revoking a family (code reuse, refresh reuse, RFC 7009) revokes its access tokens;
//! and `urf` after an upstream sign-in (see [`AccessClaims::urf`]).
//!
//! Refresh token and authorization code: ordered tokens (a time prefix and 24 random bytes,
//! base64url); only their store key — the time prefix and the SHA-256 — is stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;

/// Allowed clock difference when verifying `exp`/`iat` (SPEC §5: small skew).
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

/// Seconds since the epoch.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Fill `buf` from the system RNG.
fn fill_random(buf: &mut [u8]) {
    // aws-lc's RNG fails only when the OS entropy source is broken. A predictable token must
    // never be handed out, so that is fatal.
    if aws_lc_rs::rand::fill(buf).is_err() {
        tracing::error!("system random number generator failed");
        std::process::abort();
    }
}

/// `n` random bytes, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

/// A new ordered token: 192 random bits behind a time prefix, so that store keys sort by issue
/// time (see [`cimdgate_store::ORDERED_TOKEN_VERSION`]). Authorization codes and refresh tokens.
pub fn new_ordered_token() -> String {
    let mut random = [0u8; 24];
    fill_random(&mut random);
    cimdgate_store::TokenHash::ordered_token(SystemTime::now(), &random)
}

/// A new opaque refresh token ([`new_ordered_token`]).
pub fn new_refresh_token() -> String {
    new_ordered_token()
}

/// A new authorization code ([`new_ordered_token`]).
pub fn new_code() -> String {
    new_ordered_token()
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
/// [`super::BackState::verify_access_token`]).
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

/// `now + secs`.
pub fn after(now: SystemTime, secs: u64) -> SystemTime {
    now + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cimdgate_store::TokenHash;

    #[test]
    fn codes_and_refresh_tokens_are_unique_ordered_tokens() {
        let minted: Vec<String> = (0..200)
            .map(|i| {
                if i % 2 == 0 {
                    new_code()
                } else {
                    new_refresh_token()
                }
            })
            .collect();
        let unique: std::collections::HashSet<&String> = minted.iter().collect();
        assert_eq!(unique.len(), minted.len());
        let keys: Vec<String> = minted.iter().map(|t| TokenHash::of(t).0).collect();
        for (t, k) in minted.iter().zip(&keys) {
            assert_eq!(t.len(), 44, "{t}");
            assert_eq!(k.len(), 16 + 64, "time prefix + SHA-256: {k}");
        }
        // Minted one after another: the time prefixes never go backwards.
        assert!(keys.windows(2).all(|w| w[0][..16] <= w[1][..16]));
    }
}

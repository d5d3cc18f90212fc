//! Sealed, expiring values for browser-carried state (the issue's "pre-login state must not
//! grow server state"): pending authorization requests, user sessions, upstream sign-ins, the
//! admin console's sign-in.
//!
//! A sealed value is `base64url(nonce ‖ AES-256-GCM-SIV(JSON {exp, v}) ‖ tag)` with a random
//! 96-bit nonce and the **purpose** as associated data, so a value sealed for one purpose
//! ("session") cannot be replayed as another ("pending-auth"). GCM-SIV (RFC 8452) keeps random
//! nonces safe at high volume: a nonce collision reveals only whether two plaintexts are equal.
//!
//! CSRF tokens are HMAC-SHA256 tags over `purpose ‖ 0 ‖ binding…` with a separate key.
//! Both keys derive from one 32-byte secret kept in the store (`init_secret`, so every replica
//! uses the same one).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

/// Name of the store secret the keys derive from.
pub const SECRET_NAME: &str = "front-seal-key-v1";

/// What a sealed value is for (the AEAD associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A pending authorization request (login/consent forms).
    PendingAuth,
    /// The user session cookie.
    Session,
    /// An upstream sign-in in progress (cookie between /authorize and /upstream/callback).
    IdpSignIn,
    /// Upstream IdP tokens at rest in the store.
    IdpTokens,
    /// The admin console's sign-in cookie (admin listener).
    AdminSession,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::PendingAuth => b"cimdgate/pending-auth/v1",
            Purpose::Session => b"cimdgate/session/v1",
            Purpose::IdpSignIn => b"cimdgate/upstream/v1",
            Purpose::IdpTokens => b"cimdgate/upstream-tokens/v1",
            Purpose::AdminSession => b"cimdgate/admin-session/v1",
        }
    }
}

/// Why a sealed value was refused. Deliberately coarse: tampered, wrong purpose and garbage
/// look the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not produced by this server for this purpose, or altered.
    #[error("invalid or tampered value")]
    Invalid,
    /// Produced by us but past its expiry.
    #[error("expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    exp: u64,
    v: T,
}

/// Seals and opens values; computes CSRF tags.
pub struct Sealer {
    aead: LessSafeKey,
    csrf: hmac::Key,
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `n` random bytes, base64url without padding.
pub fn random_b64(n: usize) -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

impl Sealer {
    /// Derive both keys from `secret` (any length ≥ 32 bytes of randomness).
    pub fn new(secret: &[u8]) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let aead_key = hmac::sign(&root, b"cimdgate front aead key");
        let csrf_key = hmac::sign(&root, b"cimdgate front csrf key");
        Ok(Sealer {
            aead: LessSafeKey::new(UnboundKey::new(&AES_256_GCM_SIV, aead_key.as_ref())?),
            csrf: hmac::Key::new(hmac::HMAC_SHA256, csrf_key.as_ref()),
        })
    }

    /// Seal `value` for `purpose`, valid for `ttl_secs`.
    pub fn seal<T: Serialize>(
        &self,
        purpose: Purpose,
        value: &T,
        ttl_secs: u64,
    ) -> Result<String, aws_lc_rs::error::Unspecified> {
        let env = Envelope {
            exp: now_secs().saturating_add(ttl_secs),
            v: value,
        };
        let json = serde_json::to_vec(&env).map_err(|_| aws_lc_rs::error::Unspecified)?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)?;
        let mut buf = Vec::with_capacity(NONCE_LEN + json.len() + 16);
        buf.extend_from_slice(&nonce);
        let mut body = json;
        self.aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(purpose.aad()),
            &mut body,
        )?;
        buf.extend_from_slice(&body);
        Ok(URL_SAFE_NO_PAD.encode(buf))
    }

    /// Open a value sealed for `purpose`; refuses other purposes, tampering and expiry.
    pub fn open<T: DeserializeOwned>(
        &self,
        purpose: Purpose,
        sealed: &str,
    ) -> Result<T, OpenError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.trim())
            .map_err(|_| OpenError::Invalid)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(OpenError::Invalid);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Invalid)?;
        let mut body = body.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(purpose.aad()), &mut body)
            .map_err(|_| OpenError::Invalid)?;
        let env: Envelope<T> = serde_json::from_slice(plain).map_err(|_| OpenError::Invalid)?;
        if env.exp < now_secs() {
            return Err(OpenError::Expired);
        }
        Ok(env.v)
    }

    /// A CSRF token binding `parts` (e.g. session id and request id) for `purpose`.
    pub fn csrf_token(&self, purpose: &str, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.csrf);
        ctx.update(purpose.as_bytes());
        for p in parts {
            ctx.update(&[0]);
            ctx.update(p.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
    }

    /// Constant-time check of a CSRF token.
    pub fn csrf_ok(&self, purpose: &str, parts: &[&str], token: &str) -> bool {
        let expected = self.csrf_token(purpose, parts);
        expected.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn sealed_value_round_trips_for_its_purpose_only() {
        let s = sealer();
        let v = s.seal(Purpose::PendingAuth, &"hello", 60).unwrap();
        assert_eq!(s.open::<String>(Purpose::PendingAuth, &v).unwrap(), "hello");
        assert_eq!(
            s.open::<String>(Purpose::Session, &v),
            Err(OpenError::Invalid)
        );
        assert_ne!(
            v,
            s.seal(Purpose::PendingAuth, &"hello", 60).unwrap(),
            "random nonce"
        );
    }

    #[test]
    fn tampered_garbage_other_key_and_expired_values_are_refused() {
        let s = sealer();
        let v = s.seal(Purpose::Session, &1u32, 60).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&v).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let cases = [
            URL_SAFE_NO_PAD.encode(&bytes),
            "not base64!".to_owned(),
            String::new(),
            Sealer::new(&[8u8; 32])
                .unwrap()
                .seal(Purpose::Session, &1u32, 60)
                .unwrap(),
        ];
        for c in cases {
            assert_eq!(
                s.open::<u32>(Purpose::Session, &c),
                Err(OpenError::Invalid),
                "{c}"
            );
        }
        let env = Envelope {
            exp: now_secs() - 1,
            v: 1u32,
        };
        let mut body = serde_json::to_vec(&env).unwrap();
        let nonce = [1u8; NONCE_LEN];
        s.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Purpose::Session.aad()),
                &mut body,
            )
            .unwrap();
        let expired = URL_SAFE_NO_PAD.encode([nonce.as_slice(), &body].concat());
        assert_eq!(
            s.open::<u32>(Purpose::Session, &expired),
            Err(OpenError::Expired)
        );
    }

    #[test]
    fn csrf_token_is_bound_to_purpose_and_parts() {
        let s = sealer();
        let t = s.csrf_token("consent", &["sid", "rid"]);
        assert!(s.csrf_ok("consent", &["sid", "rid"], &t));
        assert!(!s.csrf_ok("login", &["sid", "rid"], &t));
        assert!(!s.csrf_ok("consent", &["sid2", "rid"], &t));
        assert!(
            !s.csrf_ok("consent", &["sidr", "id"], &t),
            "parts are delimited"
        );
        assert!(!s.csrf_ok("consent", &["sid", "rid"], ""));
    }
}

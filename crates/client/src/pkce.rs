//! PKCE (RFC 7636) with S256 only, and the random `state` value (RFC 6749 §10.12).

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use crate::ClientError;

/// Random bytes behind a verifier: 32 bytes → 43 base64url characters (RFC 7636 §4.1
/// recommends exactly this).
pub const VERIFIER_BYTES: usize = 32;

/// A PKCE code verifier. Redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct PkceVerifier(SecretString);

impl PkceVerifier {
    /// A fresh random verifier.
    pub fn generate() -> Result<Self, ClientError> {
        random_b64(VERIFIER_BYTES).map(|v| PkceVerifier(v.into()))
    }

    /// The verifier (sent to the token endpoint).
    pub fn secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// RFC 7636 §4.2: `BASE64URL(SHA256(verifier))`.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest(&SHA256, self.secret().as_bytes()))
    }
}

/// `n` random bytes, base64url without padding.
pub fn random_b64(n: usize) -> Result<String, ClientError> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| ClientError::protocol("randomness", "the system has no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        let v = PkceVerifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(v.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn verifiers_are_43_chars_and_distinct() {
        let a = PkceVerifier::generate().unwrap();
        let b = PkceVerifier::generate().unwrap();
        assert_eq!(a.secret().len(), 43);
        assert_ne!(a.secret(), b.secret());
        assert!(!format!("{a:?}").contains(a.secret()));
    }
}

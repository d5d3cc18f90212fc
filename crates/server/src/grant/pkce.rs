//! PKCE (RFC 7636, as OAuth 2.1 §4.1.1 and §4.1.3 require it): `S256` only.
//!
//! - at `/authorize`, [`CodeChallenge::from_request`]: a challenge is required and the method must
//!   be `S256` — `plain`, and an absent method (which RFC 7636 §4.3 would read as `plain`), are
//!   refused; the challenge is the 43-character base64url SHA-256 of a verifier;
//! - at `/token`, [`check_verifier_syntax`] before the code is spent (RFC 7636 §4.1: 43–128
//!   characters of `A-Z a-z 0-9 - . _ ~`), then [`CodeChallenge::verify`]:
//!   `BASE64URL(SHA-256(code_verifier)) == code_challenge` (§4.6), compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::error::OAuthError;

/// An `S256` code challenge that passed the /authorize rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// The challenge of an authorization request (`code_challenge`, `code_challenge_method`).
    pub fn from_request(challenge: Option<&str>, method: Option<&str>) -> Result<Self, OAuthError> {
        let Some(challenge) = challenge.filter(|c| !c.is_empty()) else {
            return Err(OAuthError::invalid_request(
                "code_challenge is required (PKCE with S256)",
            ));
        };
        match method {
            Some("S256") => {}
            None => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method is required and must be S256 (plain is not supported)",
                ));
            }
            Some(m) => {
                return Err(OAuthError::invalid_request(format!(
                    "code_challenge_method {m:?} is not supported; use S256"
                )));
            }
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(OAuthError::invalid_request(
                "code_challenge must be the base64url (no padding) SHA-256 of the verifier: 43 characters",
            ));
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    /// A challenge as stored with a code (it passed [`CodeChallenge::from_request`] then).
    pub fn from_stored(challenge: String) -> Self {
        CodeChallenge(challenge)
    }

    /// The challenge string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: the verifier hashes to this challenge (constant-time compare).
    pub fn verify(&self, verifier: &str) -> Result<(), OAuthError> {
        let computed = s256(verifier);
        if bool::from(computed.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge (PKCE S256)",
            ))
        }
    }
}

/// RFC 7636 §4.2: the `S256` challenge of a verifier, `BASE64URL(SHA256(verifier))` (also what
/// this server sends as a client of its identity provider).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: a verifier is 43–128 characters of `A-Z a-z 0-9 - . _ ~`. Checked before the
/// code is spent, so a malformed request does not burn it.
pub fn check_verifier_syntax(verifier: &str) -> Result<(), OAuthError> {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if well_formed {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn authorize_requires_an_s256_challenge() {
        let short = "a".repeat(42);
        let plus = format!("{}+", "a".repeat(42));
        let cases: [(Option<&str>, Option<&str>, bool); 7] = [
            (Some(CHALLENGE), Some("S256"), true),
            (None, Some("S256"), false),
            (Some(""), Some("S256"), false),
            (Some(CHALLENGE), None, false),
            (Some(CHALLENGE), Some("plain"), false),
            (Some(&short), Some("S256"), false),
            (Some(&plus), Some("S256"), false),
        ];
        for (challenge, method, ok) in cases {
            let got = CodeChallenge::from_request(challenge, method);
            assert_eq!(got.is_ok(), ok, "{challenge:?} {method:?}");
            if let Err(e) = got {
                assert_eq!(e.code, ErrorCode::InvalidRequest);
            }
        }
    }

    #[test]
    fn verifier_syntax_is_checked_before_the_code_is_spent() {
        let cases = [
            ("a".repeat(43), true),
            ("a".repeat(128), true),
            ("a".repeat(42), false),
            ("a".repeat(129), false),
            (format!("{}+", "a".repeat(43)), false),
            (format!("{}-._~", "a".repeat(40)), true),
        ];
        for (v, ok) in cases {
            assert_eq!(check_verifier_syntax(&v).is_ok(), ok, "{v}");
        }
    }

    #[test]
    fn s256_must_match() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = CodeChallenge::from_request(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(c.verify(verifier).is_ok());
        let other = CodeChallenge::from_stored(format!("{}N", &CHALLENGE[..42]));
        assert_eq!(
            other.verify(verifier).unwrap_err().code,
            ErrorCode::InvalidGrant
        );
        assert_eq!(
            c.verify(&"b".repeat(43)).unwrap_err().code,
            ErrorCode::InvalidGrant
        );
    }
}

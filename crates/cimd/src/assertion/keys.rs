//! A client's key set for client assertions: the key rules of [`crate::jose`], with the name of
//! where the set came from (the document's `jwks` or its `jwks_uri`) in every error.

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;

use super::error::AssertionError;
use crate::jose::{self, KeyError};

pub use crate::jose::MIN_RSA_MODULUS_BITS;
/// A decoded public key (see [`jose::VerifyingKey`]).
pub(crate) type UsableKey = jose::VerifyingKey;

/// A client's keys, decoded, with the name of where they came from.
#[derive(Debug, Clone)]
pub(crate) struct KeySet {
    source_name: String,
    keys: jose::KeySet,
}

impl KeySet {
    /// Decode every key of `set`.
    pub(crate) fn from_jwks(set: &JwkSet, source_name: impl Into<String>) -> Self {
        KeySet {
            source_name: source_name.into(),
            keys: jose::KeySet::from_jwks(set),
        }
    }

    /// Whether the set has a key (usable or not) with this `kid`; `None` always counts.
    pub(crate) fn has_kid(&self, kid: Option<&str>) -> bool {
        self.keys.has_kid(kid)
    }

    /// Number of keys in the set (usable or not).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Pick the key for an assertion with header `kid` and `alg`.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&UsableKey, AssertionError> {
        let source_name = || self.source_name.clone();
        self.keys.select(kid, alg).map_err(|e| match e {
            KeyError::UnknownKid { kid } => AssertionError::UnknownKid {
                kid,
                source_name: source_name(),
            },
            KeyError::DuplicateKid { kid, count } => AssertionError::DuplicateKid {
                kid,
                count,
                source_name: source_name(),
            },
            KeyError::NoUsableKeys => AssertionError::NoUsableKeys {
                source_name: source_name(),
            },
            KeyError::KidRequired { count } => AssertionError::KidRequired {
                source_name: source_name(),
                count,
            },
            KeyError::SymmetricKey { kid } => AssertionError::SymmetricKey { kid },
            KeyError::UnusableKey { kid, reason } => AssertionError::UnusableKey { kid, reason },
            KeyError::AlgKeyMismatch { alg, kid, key_type } => {
                AssertionError::AlgKeyMismatch { alg, kid, key_type }
            }
            KeyError::JwkAlgMismatch { alg, jwk_alg, kid } => {
                AssertionError::JwkAlgMismatch { alg, jwk_alg, kid }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa(kid: &str, bits: usize) -> serde_json::Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[0] = 0xC5;
        json!({"kty":"RSA","kid":kid,"n":b64(&n),"e":"AQAB"})
    }
    fn ec(kid: &str, crv: &str, len: usize) -> serde_json::Value {
        json!({"kty":"EC","kid":kid,"crv":crv,"x":b64(&vec![1u8; len]),"y":b64(&vec![2u8; len])})
    }
    fn okp(kid: &str) -> serde_json::Value {
        json!({"kty":"OKP","kid":kid,"crv":"Ed25519","x":b64(&[3u8; 32])})
    }
    fn set(keys: Vec<serde_json::Value>) -> KeySet {
        let jwks: JwkSet = serde_json::from_value(json!({ "keys": keys })).expect("jwks");
        KeySet::from_jwks(&jwks, "jwks")
    }

    #[test]
    fn rejects_alg_key_type_mismatch() {
        let ks = set(vec![
            rsa("r", 2048),
            ec("p256", "P-256", 32),
            ec("p384", "P-384", 48),
            okp("ed"),
        ]);
        let cases: &[(&str, Algorithm, bool)] = &[
            ("r", Algorithm::ES256, false),
            ("r", Algorithm::EdDSA, false),
            ("r", Algorithm::RS256, true),
            ("r", Algorithm::PS384, true),
            ("p256", Algorithm::RS256, false),
            ("p256", Algorithm::ES384, false),
            ("p256", Algorithm::ES256, true),
            ("p384", Algorithm::ES256, false),
            ("p384", Algorithm::ES384, true),
            ("ed", Algorithm::ES256, false),
            ("ed", Algorithm::EdDSA, true),
        ];
        for (kid, alg, ok) in cases {
            let r = ks.select(Some(kid), *alg);
            if *ok {
                assert!(r.is_ok(), "{kid} {alg:?}: {r:?}");
            } else {
                assert!(
                    matches!(r, Err(AssertionError::AlgKeyMismatch { .. })),
                    "{kid} {alg:?}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn rejects_jwk_alg_mismatch() {
        let mut k = rsa("r", 2048);
        k["alg"] = json!("RS256");
        let ks = set(vec![k]);
        assert!(ks.select(Some("r"), Algorithm::RS256).is_ok());
        let err = ks.select(Some("r"), Algorithm::PS256).unwrap_err();
        assert!(
            matches!(err, AssertionError::JwkAlgMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("RS256"), "{err}");
    }

    #[test]
    fn rejects_oct_key_in_jwks() {
        let oct = json!({"kty":"oct","kid":"s","k":b64(b"a shared secret that is long enough!")});
        // Alone, with a kid: named precisely.
        let ks = set(vec![oct.clone()]);
        for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let r = ks.select(Some("s"), alg);
            assert!(
                matches!(r, Err(AssertionError::SymmetricKey { .. })),
                "{r:?}"
            );
            let r = ks.select(None, alg);
            assert!(
                matches!(r, Err(AssertionError::SymmetricKey { .. })),
                "{r:?}"
            );
        }
        // Next to a real key, the oct key is not counted as usable.
        let ks = set(vec![oct, okp("ed")]);
        assert!(ks.select(None, Algorithm::EdDSA).is_ok());
        assert!(matches!(
            ks.select(Some("s"), Algorithm::EdDSA),
            Err(AssertionError::SymmetricKey { .. })
        ));
    }

    #[test]
    fn rejects_unusable_keys_table() {
        let mut enc = okp("enc");
        enc["use"] = json!("enc");
        let mut sign_only = okp("sign-only");
        sign_only["key_ops"] = json!(["sign"]);
        let cases = vec![
            (
                "small-rsa",
                rsa("small-rsa", 1024),
                Algorithm::RS256,
                "1024 bits",
            ),
            ("p521", ec("p521", "P-521", 66), Algorithm::ES256, "P521"),
            (
                "short-x",
                ec("short-x", "P-256", 31),
                Algorithm::ES256,
                "32 bytes",
            ),
            ("enc", enc, Algorithm::EdDSA, "use"),
            ("sign-only", sign_only, Algorithm::EdDSA, "key_ops"),
            (
                "x25519",
                json!({"kty":"OKP","kid":"x25519","crv":"X25519","x":b64(&[3u8; 32])}),
                Algorithm::EdDSA,
                "X25519",
            ),
        ];
        for (kid, jwk, alg, needle) in cases {
            let ks = set(vec![jwk]);
            let err = ks.select(Some(kid), alg).unwrap_err();
            assert!(
                matches!(err, AssertionError::UnusableKey { .. }),
                "{kid}: {err:?}"
            );
            assert!(err.to_string().contains(needle), "{kid}: {err}");
        }
    }

    #[test]
    fn rejects_unknown_kid_with_multiple_keys() {
        let ks = set(vec![okp("a"), okp("b")]);
        assert_eq!(ks.len(), 2);
        assert!(matches!(
            ks.select(Some("c"), Algorithm::EdDSA),
            Err(AssertionError::UnknownKid { kid, .. }) if kid == "c"
        ));
        assert!(matches!(
            ks.select(None, Algorithm::EdDSA),
            Err(AssertionError::KidRequired { count: 2, .. })
        ));
        assert!(ks.select(Some("b"), Algorithm::EdDSA).is_ok());
    }

    #[test]
    fn single_key_kid_rules() {
        let ks = set(vec![okp("only")]);
        // Header without kid: the single key is used.
        assert!(ks.select(None, Algorithm::EdDSA).is_ok());
        // Header kid present but different: rejected, no single-key fallback.
        assert!(matches!(
            ks.select(Some("other"), Algorithm::EdDSA),
            Err(AssertionError::UnknownKid { .. })
        ));
        // A key without kid is only reachable without a header kid.
        let mut no_kid = okp("x");
        no_kid.as_object_mut().map(|o| o.remove("kid"));
        let ks = set(vec![no_kid]);
        assert!(ks.select(None, Algorithm::EdDSA).is_ok());
        assert!(ks.select(Some("x"), Algorithm::EdDSA).is_err());
    }

    #[test]
    fn rejects_duplicate_kid() {
        let ks = set(vec![okp("a"), ec("a", "P-256", 32)]);
        assert!(matches!(
            ks.select(Some("a"), Algorithm::EdDSA),
            Err(AssertionError::DuplicateKid { count: 2, .. })
        ));
    }

    #[test]
    fn empty_set_has_no_usable_keys() {
        let ks = set(vec![]);
        assert!(matches!(
            ks.select(None, Algorithm::RS256),
            Err(AssertionError::NoUsableKeys { .. })
        ));
    }
}

//! Turning a client's JWK Set into verification keys, and picking the key for one assertion.
//!
//! Rules (SPEC §3.7, RFC 7517, RFC 7518 §3):
//! - only public asymmetric keys are ever used: RSA (≥ 2048 bits), EC P-256 / P-384 and OKP
//!   Ed25519. A `kty: oct` key is **never** handed to `DecodingKey::from_jwk`, which would turn it
//!   into an HMAC key (crates.md gotcha 2);
//! - a key whose `use` is not `sig`, or whose `key_ops` lacks `verify`, is not used;
//! - the header `alg` must fit the key type (RSA ↔ RS*/PS*, P-256 ↔ ES256, P-384 ↔ ES384,
//!   Ed25519 ↔ EdDSA) and equal the JWK's own `alg` when it has one;
//! - a header `kid` must name exactly one key; without a `kid` the set must hold exactly one
//!   usable key.
//!
//! Keys are decoded once per key set (the set is cached by the caller), not once per assertion.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::error::AssertionError;
use super::jws::alg_name;

/// Smallest accepted RSA modulus, in bits (RFC 7518 §3.3 and §3.5: "2048 bits or larger").
pub const MIN_RSA_MODULUS_BITS: usize = 2048;

/// The kinds of public keys we verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "OKP Ed25519",
        }
    }

    /// Whether `alg` may be used with this key type.
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyType::Rsa => alg.family() == AlgorithmFamily::Rsa,
            KeyType::EcP256 => alg == Algorithm::ES256,
            KeyType::EcP384 => alg == Algorithm::ES384,
            KeyType::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// A decoded public key ready for signature verification.
#[derive(Debug, Clone)]
pub(crate) struct UsableKey {
    pub kid: Option<String>,
    pub key_type: KeyType,
    pub jwk_alg: Option<KeyAlgorithm>,
    pub key: DecodingKey,
}

/// Why a JWK in the set is not used.
#[derive(Debug, Clone)]
enum Unusable {
    Symmetric,
    Other(String),
}

#[derive(Debug, Clone)]
enum KeyEntry {
    Usable(UsableKey),
    Unusable { kid: Option<String>, why: Unusable },
}

impl KeyEntry {
    fn kid(&self) -> Option<&str> {
        match self {
            KeyEntry::Usable(k) => k.kid.as_deref(),
            KeyEntry::Unusable { kid, .. } => kid.as_deref(),
        }
    }
}

/// A client's keys, decoded, with the name of where they came from (for error messages).
#[derive(Debug, Clone)]
pub(crate) struct KeySet {
    source_name: String,
    entries: Vec<KeyEntry>,
}

fn b64(field: &str, value: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|e| format!("member {field} is not base64url ({e})"))
}

fn bit_length(big_endian: &[u8]) -> usize {
    let trimmed: &[u8] = match big_endian.iter().position(|b| *b != 0) {
        Some(i) => &big_endian[i..],
        None => &[],
    };
    match trimmed.first() {
        Some(first) => (trimmed.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

fn convert(jwk: &Jwk) -> Result<UsableKey, Unusable> {
    let other = |s: String| Unusable::Other(s);
    if let Some(key_use) = &jwk.common.public_key_use
        && *key_use != PublicKeyUse::Signature
    {
        return Err(other(format!("its use is {key_use:?}, not \"sig\"")));
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err(other("its key_ops do not include \"verify\"".to_owned()));
    }
    let (key_type, key) = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => return Err(Unusable::Symmetric),
        AlgorithmParameters::RSA(p) => {
            let n = b64("n", &p.n).map_err(other)?;
            let e = b64("e", &p.e).map_err(other)?;
            let bits = bit_length(&n);
            if bits < MIN_RSA_MODULUS_BITS {
                return Err(other(format!(
                    "its RSA modulus is {bits} bits; at least {MIN_RSA_MODULUS_BITS} are required \
                     (RFC 7518 §3.3)"
                )));
            }
            if e.is_empty() {
                return Err(other("its RSA exponent is empty".to_owned()));
            }
            (KeyType::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (key_type, len) = match p.curve {
                EllipticCurve::P256 => (KeyType::EcP256, 32),
                EllipticCurve::P384 => (KeyType::EcP384, 48),
                ref curve => {
                    return Err(other(format!(
                        "EC curve {curve:?} is not supported (use P-256 or P-384)"
                    )));
                }
            };
            let x = b64("x", &p.x).map_err(other)?;
            let y = b64("y", &p.y).map_err(other)?;
            if x.len() != len || y.len() != len {
                return Err(other(format!(
                    "its {} coordinates must be {len} bytes each",
                    key_type.name()
                )));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (key_type, DecodingKey::from_ec_der(&point))
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err(other(format!(
                    "OKP curve {:?} is not supported (use Ed25519)",
                    p.curve
                )));
            }
            let x = b64("x", &p.x).map_err(other)?;
            if x.len() != 32 {
                return Err(other("its Ed25519 public key must be 32 bytes".to_owned()));
            }
            (KeyType::Ed25519, DecodingKey::from_ed_der(&x))
        }
        AlgorithmParameters::Other(p) => {
            let member = |name: &str| {
                p.fields
                    .get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or("(none)")
                    .to_owned()
            };
            return Err(other(format!(
                "kty {:?} with crv {:?} is not supported (use RSA, EC P-256/P-384 or OKP Ed25519)",
                member("kty"),
                member("crv")
            )));
        }
        _ => return Err(other("its kty is not RSA, EC or OKP".to_owned())),
    };
    Ok(UsableKey {
        kid: jwk.common.key_id.clone(),
        key_type,
        jwk_alg: jwk.common.key_algorithm,
        key,
    })
}

impl KeySet {
    /// Decode every key of `set`. Keys that cannot be used are remembered (with the reason) so
    /// that an assertion naming them gets a precise error.
    pub(crate) fn from_jwks(set: &JwkSet, source_name: impl Into<String>) -> Self {
        let entries = set
            .keys
            .iter()
            .map(|jwk| match convert(jwk) {
                Ok(k) => KeyEntry::Usable(k),
                Err(why) => KeyEntry::Unusable {
                    kid: jwk.common.key_id.clone(),
                    why,
                },
            })
            .collect();
        KeySet {
            source_name: source_name.into(),
            entries,
        }
    }

    /// Whether the set has a key (usable or not) with this `kid`; `None` always counts as found
    /// (selection then decides).
    pub(crate) fn has_kid(&self, kid: Option<&str>) -> bool {
        match kid {
            None => true,
            Some(kid) => self.entries.iter().any(|e| e.kid() == Some(kid)),
        }
    }

    /// Number of keys in the set (usable or not).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Pick the key for an assertion with header `kid` and `alg`.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&UsableKey, AssertionError> {
        let entry = match kid {
            Some(kid) => {
                let mut found = self.entries.iter().filter(|e| e.kid() == Some(kid));
                let first = found.next().ok_or_else(|| AssertionError::UnknownKid {
                    kid: kid.to_owned(),
                    source_name: self.source_name.clone(),
                })?;
                let extra = found.count();
                if extra > 0 {
                    return Err(AssertionError::DuplicateKid {
                        kid: kid.to_owned(),
                        count: extra + 1,
                        source_name: self.source_name.clone(),
                    });
                }
                first
            }
            None => {
                let usable: Vec<&KeyEntry> = self
                    .entries
                    .iter()
                    .filter(|e| matches!(e, KeyEntry::Usable(_)))
                    .collect();
                match (usable.as_slice(), self.entries.as_slice()) {
                    ([only], _) => only,
                    ([], [only]) => only, // a lone unusable key: report why precisely
                    ([], _) => {
                        return Err(AssertionError::NoUsableKeys {
                            source_name: self.source_name.clone(),
                        });
                    }
                    (many, _) => {
                        return Err(AssertionError::KidRequired {
                            source_name: self.source_name.clone(),
                            count: many.len(),
                        });
                    }
                }
            }
        };
        let key = match entry {
            KeyEntry::Usable(key) => key,
            KeyEntry::Unusable {
                kid,
                why: Unusable::Symmetric,
            } => {
                return Err(AssertionError::SymmetricKey {
                    kid: kid.clone().unwrap_or_default(),
                });
            }
            KeyEntry::Unusable {
                kid,
                why: Unusable::Other(reason),
            } => {
                return Err(AssertionError::UnusableKey {
                    kid: kid.clone().unwrap_or_default(),
                    reason: reason.clone(),
                });
            }
        };
        check_alg(key, alg)?;
        Ok(key)
    }
}

/// The header `alg` must fit the key type and equal the JWK's own `alg` when present.
fn check_alg(key: &UsableKey, alg: Algorithm) -> Result<(), AssertionError> {
    let kid = || key.kid.clone().unwrap_or_default();
    if !key.key_type.fits(alg) {
        return Err(AssertionError::AlgKeyMismatch {
            alg: alg_name(alg).to_owned(),
            kid: kid(),
            key_type: key.key_type.name(),
        });
    }
    if let Some(jwk_alg) = key.jwk_alg
        && jwk_alg != KeyAlgorithm::from(alg)
    {
        return Err(AssertionError::JwkAlgMismatch {
            alg: alg_name(alg).to_owned(),
            jwk_alg: jwk_alg.to_string(),
            kid: kid(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(bit_length(&[0, 0, 0x01]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[]), 0);
    }
}

//! JOSE for every signature this crate's users verify: client assertions (`crate::assertion`),
//! the gateway's access tokens, the identity provider's id_tokens. One rule set, here:
//!
//! - **algorithms**: asymmetric only ([`ALLOWED_ALGORITHMS`]): never `none`, never HMAC
//!   (RFC 8725 §3.1–§3.2: the verifier, not the token, chooses the algorithms);
//! - **keys** ([`verifying_key`]): public asymmetric keys only — RSA with a modulus of at least
//!   [`MIN_RSA_MODULUS_BITS`] (RFC 7518 §3.3, §3.5), EC P-256 / P-384 with coordinates of the
//!   curve's size (RFC 7518 §6.2), OKP Ed25519 (RFC 8037 §2). A `kty: oct` key is **never** handed
//!   to `DecodingKey::from_jwk`, which would turn it into an HMAC key; a key whose `use` is not
//!   `sig` or whose `key_ops` lacks `verify` is not used (RFC 7517 §4.2–§4.3);
//! - **the key for a token** ([`KeySet::select`]): the header `alg` must fit the key type (RSA ↔
//!   RS*/PS*, P-256 ↔ ES256, P-384 ↔ ES384, Ed25519 ↔ EdDSA) and equal the JWK's own `alg` when
//!   it has one (RFC 7517 §4.4); a header `kid` must name exactly one key; without a `kid` the
//!   set must hold exactly one usable key.
//!
//! Keys are decoded once per key set (callers cache the set), not once per token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// The signature algorithms accepted anywhere (asymmetric only). ES512 is absent because
/// jsonwebtoken cannot verify it.
pub const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The canonical name of an algorithm as it appears in a JOSE header.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // `Algorithm` is non_exhaustive; a future variant is simply not in the allow-list.
        _ => "unknown",
    }
}

/// Why no key of a set verifies a token. `Display` is a phrase for error messages; callers add
/// where the key set came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The header `kid` is not in the set.
    #[error("unknown kid {kid:?}: no key of the set has it")]
    UnknownKid {
        /// The header kid.
        kid: String,
    },
    /// The header `kid` names several keys.
    #[error("{count} keys have kid {kid:?}")]
    DuplicateKid {
        /// The kid.
        kid: String,
        /// How many keys have it.
        count: usize,
    },
    /// The set has no usable key.
    #[error("no usable key")]
    NoUsableKeys,
    /// No header `kid`, and the set has several usable keys.
    #[error("no kid, and {count} usable keys to choose from")]
    KidRequired {
        /// Usable keys in the set.
        count: usize,
    },
    /// The key named is symmetric.
    #[error("key {kid:?} is symmetric (kty oct)")]
    SymmetricKey {
        /// The key's kid (empty when it has none).
        kid: String,
    },
    /// The key named breaks another rule.
    #[error("key {kid:?} cannot verify signatures: {reason}")]
    UnusableKey {
        /// The key's kid (empty when it has none).
        kid: String,
        /// Which rule.
        reason: String,
    },
    /// The header `alg` does not fit the key type.
    #[error("alg {alg} does not fit key {kid:?} ({key_type})")]
    AlgKeyMismatch {
        /// The header alg.
        alg: String,
        /// The key's kid.
        kid: String,
        /// The key's type.
        key_type: &'static str,
    },
    /// The header `alg` differs from the JWK's own `alg`.
    #[error("alg {alg} differs from key {kid:?}'s alg {jwk_alg}")]
    JwkAlgMismatch {
        /// The header alg.
        alg: String,
        /// The JWK's alg.
        jwk_alg: String,
        /// The key's kid.
        kid: String,
    },
}

/// Smallest accepted RSA modulus, in bits (RFC 7518 §3.3 and §3.5: "2048 bits or larger").
pub const MIN_RSA_MODULUS_BITS: usize = 2048;

/// The kinds of public keys we verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA (RS256/384/512, PS256/384/512).
    Rsa,
    /// EC P-256 (ES256).
    EcP256,
    /// EC P-384 (ES384).
    EcP384,
    /// OKP Ed25519 (EdDSA).
    Ed25519,
}

impl KeyType {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "OKP Ed25519",
        }
    }

    /// Whether `alg` may be used with this key type.
    pub fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyType::Rsa => alg.family() == AlgorithmFamily::Rsa,
            KeyType::EcP256 => alg == Algorithm::ES256,
            KeyType::EcP384 => alg == Algorithm::ES384,
            KeyType::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// A decoded public key ready for signature verification.
#[derive(Clone)]
pub struct VerifyingKey {
    /// Its `kid`, if it has one.
    pub kid: Option<String>,
    /// Its type.
    pub key_type: KeyType,
    /// The `alg` the JWK pins, if any.
    pub jwk_alg: Option<KeyAlgorithm>,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `DecodingKey` is a public key, but its Debug dump is noise in logs.
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("jwk_alg", &self.jwk_alg)
            .finish_non_exhaustive()
    }
}

/// Why a JWK is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// A symmetric (`kty: oct`) key: never a verification key here.
    Symmetric,
    /// Any other rule: the reason, as a phrase ("its use is Encryption, not \"sig\"").
    Other(String),
}

#[derive(Debug, Clone)]
enum KeyEntry {
    Usable(VerifyingKey),
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

/// A JWK Set, decoded once: the usable keys, and for the others why not (so a token naming one
/// gets a precise error).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
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

/// Turn one JWK into a verification key, under every rule of the module doc.
pub fn verifying_key(jwk: &Jwk) -> Result<VerifyingKey, Unusable> {
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
    Ok(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        key_type,
        jwk_alg: jwk.common.key_algorithm,
        key,
    })
}

impl KeySet {
    /// Decode every key of `set`. Keys that cannot be used are remembered (with the reason) so
    /// that a token naming them gets a precise error.
    pub fn from_jwks(set: &JwkSet) -> Self {
        let entries = set
            .keys
            .iter()
            .map(|jwk| match verifying_key(jwk) {
                Ok(k) => KeyEntry::Usable(k),
                Err(why) => KeyEntry::Unusable {
                    kid: jwk.common.key_id.clone(),
                    why,
                },
            })
            .collect();
        KeySet { entries }
    }

    /// Whether the set has a key (usable or not) with this `kid`; `None` always counts as found
    /// (selection then decides).
    pub fn has_kid(&self, kid: Option<&str>) -> bool {
        match kid {
            None => true,
            Some(kid) => self.entries.iter().any(|e| e.kid() == Some(kid)),
        }
    }

    /// Number of keys in the set (usable or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set has no key at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of usable keys.
    pub fn usable(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, KeyEntry::Usable(_)))
            .count()
    }

    /// Pick the key for a JWS with header `kid` and `alg`: a `kid` names exactly one key; without
    /// one the set must hold exactly one usable key; the key must be usable and fit `alg`.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyingKey, KeyError> {
        let entry = match kid {
            Some(kid) => {
                let mut found = self.entries.iter().filter(|e| e.kid() == Some(kid));
                let first = found.next().ok_or_else(|| KeyError::UnknownKid {
                    kid: kid.to_owned(),
                })?;
                let extra = found.count();
                if extra > 0 {
                    return Err(KeyError::DuplicateKid {
                        kid: kid.to_owned(),
                        count: extra + 1,
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
                    ([], _) => return Err(KeyError::NoUsableKeys),
                    (many, _) => return Err(KeyError::KidRequired { count: many.len() }),
                }
            }
        };
        let key = match entry {
            KeyEntry::Usable(key) => key,
            KeyEntry::Unusable {
                kid,
                why: Unusable::Symmetric,
            } => {
                return Err(KeyError::SymmetricKey {
                    kid: kid.clone().unwrap_or_default(),
                });
            }
            KeyEntry::Unusable {
                kid,
                why: Unusable::Other(reason),
            } => {
                return Err(KeyError::UnusableKey {
                    kid: kid.clone().unwrap_or_default(),
                    reason: reason.clone(),
                });
            }
        };
        key.check_alg(alg)?;
        Ok(key)
    }
}

impl VerifyingKey {
    /// The header `alg` must fit the key type and equal the JWK's own `alg` when present.
    pub fn check_alg(&self, alg: Algorithm) -> Result<(), KeyError> {
        let kid = || self.kid.clone().unwrap_or_default();
        if !self.key_type.fits(alg) {
            return Err(KeyError::AlgKeyMismatch {
                alg: alg_name(alg).to_owned(),
                kid: kid(),
                key_type: self.key_type.name(),
            });
        }
        if let Some(jwk_alg) = self.jwk_alg
            && jwk_alg != KeyAlgorithm::from(alg)
        {
            return Err(KeyError::JwkAlgMismatch {
                alg: alg_name(alg).to_owned(),
                jwk_alg: jwk_alg.to_string(),
                kid: kid(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cimdgate_test_support::keys::TestKey;
    use serde_json::{Value, json};

    fn jwk(v: Value) -> Jwk {
        serde_json::from_value(v).unwrap()
    }

    fn with(base: &TestKey, extra: Value) -> Jwk {
        let mut v = base.jwk.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        jwk(v)
    }

    /// An RSA public JWK with a modulus of `bits` bits (the key rule reads only the length).
    fn rsa_bits(bits: usize) -> Value {
        let mut n = vec![0xa5u8; bits / 8];
        n[0] = 0xc1;
        json!({"kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
    }

    #[test]
    fn every_key_rule_has_its_case() {
        let es = TestKey::es256("es");
        let ed = TestKey::ed25519("ed");
        let rs = TestKey::rsa("rs", Algorithm::RS256, 0);
        let x = es.jwk["x"].as_str().unwrap().to_owned();
        // (case, JWK, None = usable, Some(words the refusal names))
        let cases: Vec<(&str, Jwk, Option<&str>)> = vec![
            ("EC P-256", with(&es, json!({})), None),
            ("Ed25519", with(&ed, json!({})), None),
            ("RSA 2048", with(&rs, json!({})), None),
            ("use sig", with(&es, json!({"use": "sig"})), None),
            (
                "use enc",
                with(&es, json!({"use": "enc"})),
                Some("not \"sig\""),
            ),
            (
                "key_ops verify",
                with(&es, json!({"key_ops": ["verify"]})),
                None,
            ),
            (
                "key_ops sign only",
                with(&es, json!({"key_ops": ["sign"]})),
                Some("verify"),
            ),
            ("RSA 1024", jwk(rsa_bits(1024)), Some("1024 bits")),
            ("RSA 2040", jwk(rsa_bits(2040)), Some("at least 2048")),
            ("RSA 2048 by length", jwk(rsa_bits(2048)), None),
            (
                "symmetric",
                jwk(json!({"kty": "oct", "k": "c2VjcmV0"})),
                Some("symmetric"),
            ),
            (
                "EC P-521",
                with(&es, json!({"crv": "P-521", "y": x.clone()})),
                Some("not supported"),
            ),
            (
                "EC short coordinate",
                with(&es, json!({"x": "AAAA"})),
                Some("32 bytes"),
            ),
            (
                "OKP X25519",
                with(&ed, json!({"crv": "X25519"})),
                Some("not supported"),
            ),
            (
                "OKP short key",
                with(&ed, json!({"x": "AAAA"})),
                Some("32 bytes"),
            ),
        ];
        for (name, jwk, want) in cases {
            let got = verifying_key(&jwk);
            match (got, want) {
                (Ok(_), None) => {}
                (Err(Unusable::Symmetric), Some("symmetric")) => {}
                (Err(Unusable::Other(why)), Some(words)) => {
                    assert!(why.contains(words), "{name}: {why}")
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn selecting_the_key_for_a_token() {
        let es = TestKey::es256("es");
        let es2 = TestKey::es256("es2");
        let rs = TestKey::rsa("rs", Algorithm::RS256, 0);
        let set = |keys: Vec<Value>| KeySet::from_jwks(&jwk_set(keys));
        fn jwk_set(keys: Vec<Value>) -> JwkSet {
            serde_json::from_value(json!({ "keys": keys })).unwrap()
        }
        let pinned = {
            let mut v = rs.jwk.clone();
            v["alg"] = json!("RS256");
            v
        };
        let oct = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let enc = {
            let mut v = es2.jwk.clone();
            v["use"] = json!("enc");
            v
        };
        type Case<'a> = (
            &'a str,
            KeySet,
            Option<&'a str>,
            Algorithm,
            Result<&'a str, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "by kid",
                set(vec![es.jwk.clone(), rs.jwk.clone()]),
                Some("rs"),
                Algorithm::RS256,
                Ok("rs"),
            ),
            (
                "only key without kid",
                set(vec![es.jwk.clone()]),
                None,
                Algorithm::ES256,
                Ok("es"),
            ),
            (
                "one usable among unusable",
                set(vec![es.jwk.clone(), oct.clone()]),
                None,
                Algorithm::ES256,
                Ok("es"),
            ),
            (
                "unknown kid",
                set(vec![es.jwk.clone()]),
                Some("x"),
                Algorithm::ES256,
                Err("unknown kid"),
            ),
            (
                "duplicate kid",
                set(vec![es.jwk.clone(), es.jwk.clone()]),
                Some("es"),
                Algorithm::ES256,
                Err("2 keys"),
            ),
            (
                "no kid, two keys",
                set(vec![es.jwk.clone(), rs.jwk.clone()]),
                None,
                Algorithm::ES256,
                Err("no kid"),
            ),
            (
                "no usable key",
                set(vec![oct.clone(), enc.clone()]),
                None,
                Algorithm::ES256,
                Err("no usable key"),
            ),
            (
                "kid names a symmetric key",
                set(vec![oct.clone(), es.jwk.clone()]),
                Some("hmac"),
                Algorithm::ES256,
                Err("symmetric"),
            ),
            (
                "kid names an encryption key",
                set(vec![enc.clone()]),
                Some("es2"),
                Algorithm::ES256,
                Err("cannot verify"),
            ),
            (
                "alg does not fit the key",
                set(vec![es.jwk.clone()]),
                Some("es"),
                Algorithm::RS256,
                Err("does not fit"),
            ),
            (
                "alg differs from the JWK's",
                set(vec![pinned]),
                Some("rs"),
                Algorithm::PS256,
                Err("differs"),
            ),
        ];
        for (name, keys, kid, alg, want) in cases {
            let got = keys.select(kid, alg);
            match (got, want) {
                (Ok(k), Ok(kid)) => assert_eq!(k.kid.as_deref(), Some(kid), "{name}"),
                (Err(e), Err(words)) => assert!(e.to_string().contains(words), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(bit_length(&[0, 0, 0x01]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[]), 0);
    }
}

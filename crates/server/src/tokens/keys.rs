//! Access-token signing keys: EdDSA or ES256, from a configured key or generated into the
//! store, rotated with overlap by `kid` (RFC 9068 §2.1, RFC 7517 §4.5).
//!
//! Where keys come from, in order:
//! 1. `tokens.signing_key_file`: a PKCS#8 PEM private key (Ed25519 → `EdDSA`, P-256 → `ES256`);
//!    it signs, and any keys already in the store stay published for verification (so moving
//!    from a generated key to a file key does not invalidate live tokens);
//! 2. otherwise the store: [`cimdgate_store::Store::init_signing_key`]
//!    with a freshly generated candidate of `tokens.signing_alg`. Every instance and every
//!    restart ends up with the same key; the newest stored key signs, older ones verify.
//!
//! The `kid` is the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key. Public JWKs
//! (RFC 7517 §4, RFC 8037 §2 for OKP) are built here from the raw public key: jsonwebtoken's
//! `Jwk::from_encoding_key` rejects PKCS#8 v2 Ed25519 keys (crates.md gotcha 3).
//!
//! Signing uses the parsed aws-lc-rs key pair directly (parsed once at startup), not
//! `jsonwebtoken::encode`, which re-parses the PKCS#8 document on every call.

use std::time::SystemTime;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};
use sha2::Digest;

use cimdgate_store::{SigningKeyRecord, Store};

use crate::config::{SigningAlg, TokenConfig};
use crate::error::StartError;
use crate::secret::ExposeSecret;

fn init_err(reason: impl Into<String>) -> StartError {
    StartError::Init {
        component: "token signing key",
        reason: reason.into(),
    }
}

enum Pair {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
}

/// One key: its private half (signing) and public half (JWK, verification).
pub struct SigningKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: Algorithm,
    pair: Pair,
    /// The public JWK as published in `/jwks.json`.
    pub jwk: Value,
    /// Verification key.
    pub decoding: DecodingKey,
    /// base64url of the access-token header `{"alg","kid","typ":"at+jwt"}` (rendered once).
    pub header_b64: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The RFC 9068 §2.1 header of our access tokens, base64url.
fn header_b64(alg: &str, kid: &str) -> String {
    b64u(
        json!({"alg": alg, "kid": kid, "typ": "at+jwt"})
            .to_string()
            .as_bytes(),
    )
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
fn thumbprint(canonical: &str) -> String {
    b64u(&sha2::Sha256::digest(canonical.as_bytes()))
}

impl SigningKey {
    /// Parse a PKCS#8 DER private key: Ed25519 (v1 or v2) or ECDSA P-256.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
            let x = b64u(pair.public_key().as_ref());
            let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
            let decoding = DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid,
                             "alg": "EdDSA", "use": "sig"});
            return Ok(SigningKey {
                header_b64: header_b64("EdDSA", &kid),
                kid,
                alg: Algorithm::EdDSA,
                pair: Pair::Ed(pair),
                jwk,
                decoding,
            });
        }
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            // Uncompressed SEC1 point: 0x04 || X (32) || Y (32).
            let point = pair.public_key().as_ref();
            let (Some(xb), Some(yb)) = (point.get(1..33), point.get(33..65)) else {
                return Err("unexpected P-256 public key encoding".into());
            };
            let (x, y) = (b64u(xb), b64u(yb));
            let kid = thumbprint(&format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
            ));
            let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid,
                             "alg": "ES256", "use": "sig"});
            return Ok(SigningKey {
                header_b64: header_b64("ES256", &kid),
                kid,
                alg: Algorithm::ES256,
                pair: Pair::Ec(pair),
                jwk,
                decoding,
            });
        }
        Err("not an unencrypted PKCS#8 Ed25519 or ECDSA P-256 private key".into())
    }

    /// Generate a new key of `alg` (PKCS#8 DER).
    pub fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        let doc = match alg {
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
        }
        .map_err(|_| "key generation failed".to_owned())?;
        Ok(doc.as_ref().to_vec())
    }

    /// The JOSE `alg` name.
    pub fn alg_name(&self) -> &'static str {
        match self.alg {
            Algorithm::ES256 => "ES256",
            _ => "EdDSA",
        }
    }

    /// Sign `input` (the JWS signing input); the raw JWS signature (RFC 7518 §3.4 for ES256).
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        match &self.pair {
            Pair::Ed(p) => Ok(p.sign(input).as_ref().to_vec()),
            Pair::Ec(p) => p
                .sign(&SystemRandom::new(), input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
        }
    }
}

/// Decode a PEM file holding one `PRIVATE KEY` (PKCS#8) block.
pub fn pkcs8_from_pem(pem: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let start = pem.find(BEGIN).ok_or_else(|| {
        format!("no {BEGIN} block (expected an unencrypted PKCS#8 key; convert with `openssl pkcs8 -topk8 -nocrypt`)")
    })?;
    let body = &pem[start + BEGIN.len()..];
    let end = body.find(END).ok_or_else(|| format!("no {END} line"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("bad base64 in PEM: {e}"))
}

/// All keys: the signing key plus every key kept for verification.
#[derive(Debug)]
pub struct KeyRing {
    /// Signs new tokens.
    signing: usize,
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// Load the configured key, or init/load keys from the store (see the module doc).
    pub async fn load(cfg: &TokenConfig, store: &dyn Store) -> Result<Self, StartError> {
        let stored = if let Some(path) = &cfg.signing_key_file {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                init_err(format!("tokens.signing_key_file {}: {e}", path.display()))
            })?;
            let key = pkcs8_from_pem(&pem)
                .and_then(|der| SigningKey::from_pkcs8(&der))
                .map_err(|e| {
                    init_err(format!("tokens.signing_key_file {}: {e}", path.display()))
                })?;
            let stored = store
                .signing_keys()
                .await
                .map_err(|e| init_err(e.to_string()))?;
            let mut keys = decode_records(&stored)?;
            keys.retain(|k| k.kid != key.kid);
            keys.push(key);
            return Ok(KeyRing {
                signing: keys.len() - 1,
                keys,
            });
        } else {
            let der = SigningKey::generate_pkcs8(cfg.signing_alg).map_err(init_err)?;
            let key = SigningKey::from_pkcs8(&der).map_err(init_err)?;
            let candidate = SigningKeyRecord {
                kid: key.kid.clone(),
                alg: key.alg_name().to_owned(),
                private_pkcs8_b64: STANDARD.encode(&der).into(),
                created_at: SystemTime::now(),
            };
            store
                .init_signing_key(&candidate)
                .await
                .map_err(|e| init_err(e.to_string()))?
        };
        let keys = decode_records(&stored)?;
        if keys.is_empty() {
            return Err(init_err("the store returned no signing key"));
        }
        Ok(KeyRing {
            signing: keys.len() - 1,
            keys,
        })
    }

    /// Build from keys directly (tests); the last one signs.
    pub fn from_keys(keys: Vec<SigningKey>) -> Option<Self> {
        let signing = keys.len().checked_sub(1)?;
        Some(KeyRing { signing, keys })
    }

    /// The key that signs new tokens.
    pub fn signing(&self) -> &SigningKey {
        // `signing` is always a valid index: set from a non-empty vector that never shrinks.
        &self.keys[self.signing]
    }

    /// The key with this `kid`.
    pub fn by_kid(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The JWK Set document (RFC 7517 §5), newest key first.
    pub fn jwks(&self) -> Value {
        let keys: Vec<&Value> = self.keys.iter().rev().map(|k| &k.jwk).collect();
        json!({ "keys": keys })
    }
}

fn decode_records(records: &[SigningKeyRecord]) -> Result<Vec<SigningKey>, StartError> {
    records
        .iter()
        .map(|r| {
            STANDARD
                .decode(r.private_pkcs8_b64.expose_secret())
                .map_err(|e| e.to_string())
                .and_then(|der| SigningKey::from_pkcs8(&der))
                .map_err(|e| init_err(format!("stored key {}: {e}", r.kid)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_rfc7638_thumbprint_for_ed25519() {
        // RFC 8037 Appendix A.3: the thumbprint of the example Ed25519 key.
        let kid = thumbprint(
            r#"{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        );
        assert_eq!(kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn generated_keys_round_trip_for_both_algorithms() {
        for alg in [SigningAlg::EdDSA, SigningAlg::ES256] {
            let der = SigningKey::generate_pkcs8(alg).unwrap();
            let a = SigningKey::from_pkcs8(&der).unwrap();
            let b = SigningKey::from_pkcs8(&der).unwrap();
            assert_eq!(a.kid, b.kid, "kid is deterministic");
            assert_eq!(a.jwk["kid"], a.kid.as_str());
            assert!(a.jwk.get("d").is_none(), "no private members published");
            assert!(!a.sign(b"x").unwrap().is_empty());
        }
    }

    #[test]
    fn pem_without_pkcs8_block_is_refused_with_a_hint() {
        let err = pkcs8_from_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n").unwrap_err();
        assert!(err.contains("PKCS#8"), "{err}");
        assert!(SigningKey::from_pkcs8(b"junk").is_err());
    }
}

//! Test keys and assertion signing for client-assertion tests.
//!
//! Shared by the client-assertion tests of `cimd` (unit, integration, benches) and the token
//! endpoint, gateway and multi-instance tests of `cimdgate-server`. Keys are generated with
//! rcgen (aws-lc-rs); public JWKs are built from the raw public key for EC and OKP
//! (jsonwebtoken's `Jwk::from_encoding_key` rejects rcgen's PKCS#8 v2 Ed25519 keys) and by
//! jsonwebtoken for RSA.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// A private signing key with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    /// The algorithm this key signs with by default.
    pub alg: Algorithm,
    /// The kid put in the JWK and (by [`TestKey::sign`]) in the header.
    pub kid: String,
    /// The private key.
    pub encoding: EncodingKey,
    /// The public JWK (with `kid`, without `alg`).
    pub jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ec_jwk(kp: &rcgen::KeyPair, crv: &str, len: usize) -> Value {
    let raw = kp.public_key_raw();
    assert_eq!(raw.len(), 1 + 2 * len, "uncompressed EC point");
    json!({"kty": "EC", "crv": crv, "x": b64(&raw[1..1 + len]), "y": b64(&raw[1 + len..])})
}

/// RSA key generation is slow in debug builds; tests share two keys.
fn rsa_keypair(slot: usize) -> &'static rcgen::KeyPair {
    static KEYS: [OnceLock<rcgen::KeyPair>; 2] = [OnceLock::new(), OnceLock::new()];
    KEYS[slot].get_or_init(|| rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa"))
}

impl TestKey {
    /// A fresh EC P-256 key for ES256.
    pub fn es256(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256");
        let encoding = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).expect("ec pem");
        Self::with_jwk(Algorithm::ES256, kid, encoding, ec_jwk(&kp, "P-256", 32))
    }

    /// A fresh EC P-384 key for ES384.
    pub fn es384(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("p384");
        let encoding = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).expect("ec pem");
        Self::with_jwk(Algorithm::ES384, kid, encoding, ec_jwk(&kp, "P-384", 48))
    }

    /// A fresh Ed25519 key for EdDSA.
    pub fn ed25519(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519");
        let encoding = EncodingKey::from_ed_der(&kp.serialize_der());
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key_raw())});
        Self::with_jwk(Algorithm::EdDSA, kid, encoding, jwk)
    }

    /// An RSA-2048 key (one of two shared ones, `slot` 0 or 1) signing with `alg` (RS*/PS*).
    pub fn rsa(kid: &str, alg: Algorithm, slot: usize) -> Self {
        let kp = rsa_keypair(slot);
        let encoding = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).expect("rsa pem");
        let jwk = Jwk::from_encoding_key(&encoding, alg).expect("rsa jwk");
        let mut jwk = serde_json::to_value(jwk).expect("jwk json");
        jwk.as_object_mut().expect("object").remove("alg");
        Self::with_jwk(alg, kid, encoding, jwk)
    }

    fn with_jwk(alg: Algorithm, kid: &str, encoding: EncodingKey, mut jwk: Value) -> Self {
        jwk["kid"] = json!(kid);
        TestKey {
            alg,
            kid: kid.to_owned(),
            encoding,
            jwk,
        }
    }

    /// The same key published under another kid.
    pub fn with_kid(&self, kid: &str) -> Self {
        let mut k = self.clone();
        k.kid = kid.to_owned();
        k.jwk["kid"] = json!(kid);
        k
    }

    /// The header this key signs with by default: `{"alg", "kid", "typ": "JWT"}`.
    pub fn header(&self) -> Value {
        json!({"alg": alg_str(self.alg), "kid": self.kid, "typ": "JWT"})
    }

    /// Sign `claims` with the default header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&self.header(), claims)
    }

    /// Sign `claims` under an arbitrary `header`, using the header's `alg` when this key can sign
    /// with it, else the key's own algorithm.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<Algorithm>().ok())
            .filter(|a| a.family() == self.alg.family())
            .unwrap_or(self.alg);
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        // A header alg this key cannot produce (e.g. ES384 for a P-256 key): sign with the
        // key's own algorithm, the verifier must reject the header before checking it anyway.
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, alg)
            .or_else(|_| jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg))
            .expect("sign");
        format!("{input}.{sig}")
    }
}

/// The JOSE name of an algorithm, as `jsonwebtoken` serializes it (the fixture does not depend on
/// `cimd`, whose `jose::alg_name` is the code under test).
pub fn alg_str(alg: Algorithm) -> String {
    match serde_json::to_value(alg) {
        Ok(serde_json::Value::String(name)) => name,
        other => panic!("{alg:?} serialized as {other:?}"),
    }
}

/// `{"keys": [...]}` as JSON.
pub fn jwks_json(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// A JwkSet of the public keys.
pub fn jwk_set(keys: &[&TestKey]) -> JwkSet {
    serde_json::from_value(jwks_json(keys)).expect("jwk set")
}

/// A process-unique jti.
pub fn fresh_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "jti-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Seconds since the epoch.
pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs() as i64
}

/// Valid claims for `client_id` and `aud` at `now`: iat now, exp now + 60, a fresh jti.
pub fn claims(client_id: &str, aud: &str, now: SystemTime) -> Value {
    let now = unix(now);
    json!({"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
           "jti": fresh_jti()})
}

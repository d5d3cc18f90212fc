//! Verifier-level tests for key selection (inline `jwks`), the registered signing alg and the
//! `ClientDocument` entry point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::SystemTime;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::test_keys::{self, TestKey, jwk_set};
use super::{CID, claims_with, client, verifier, verify};
use crate::assertion::{AssertionError, ClientKeys};

#[tokio::test]
async fn rejects_alg_key_type_mismatch() {
    let rsa = TestKey::rsa("rsa", Algorithm::RS256, 0);
    let p256 = TestKey::es256("p256");
    let p384 = TestKey::es384("p384");
    let jwks = jwk_set(&[&rsa, &p256, &p384]);
    let v = verifier();
    let cases = [
        ("ES256", &rsa),
        ("RS256", &p256),
        ("PS256", &p256),
        ("ES384", &p256),
        ("ES256", &p384),
        ("EdDSA", &p256),
    ];
    for (alg, key) in cases {
        let mut header = key.header();
        header["alg"] = json!(alg);
        let err = verify(
            &v,
            &jwks,
            &key.sign_with_header(&header, &claims_with(json!({}))),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, AssertionError::AlgKeyMismatch { .. }),
            "{alg} with {}: {err}",
            key.kid
        );
    }
}

#[tokio::test]
async fn rejects_jwk_alg_mismatch() {
    let mut key = TestKey::rsa("rsa", Algorithm::PS256, 1);
    key.jwk["alg"] = json!("RS256");
    let jwks = jwk_set(&[&key]);
    let err = verify(&verifier(), &jwks, &key.sign(&claims_with(json!({}))))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AssertionError::JwkAlgMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn rejects_oct_key_in_jwks() {
    // Document validation rejects such a document; the verifier must not trust that.
    let secret = b"0123456789abcdef0123456789abcdef";
    let jwks: JwkSet = serde_json::from_value(json!({"keys": [{
        "kty": "oct", "kid": "s",
        "k": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret)
    }]}))
    .unwrap();
    let v = verifier();
    let hmac = TestKey {
        alg: Algorithm::HS256,
        kid: "s".into(),
        encoding: EncodingKey::from_secret(secret),
        jwk: json!({}),
    };
    let err = verify(&v, &jwks, &hmac.sign(&claims_with(json!({}))))
        .await
        .unwrap_err();
    assert!(matches!(err, AssertionError::AlgHmac { .. }), "{err}");
    // An asymmetric alg naming the oct key: the key is refused, never turned into HMAC.
    let ed = TestKey::ed25519("s");
    for header in [json!({"alg": "EdDSA", "kid": "s"}), json!({"alg": "EdDSA"})] {
        let err = verify(
            &v,
            &jwks,
            &ed.sign_with_header(&header, &claims_with(json!({}))),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, AssertionError::SymmetricKey { .. }), "{err}");
    }
}

#[tokio::test]
async fn rejects_unknown_kid_with_multiple_keys() {
    let a = TestKey::es256("a");
    let b = TestKey::ed25519("b");
    let jwks = jwk_set(&[&a, &b]);
    let v = verifier();
    let err = verify(&v, &jwks, &a.with_kid("c").sign(&claims_with(json!({}))))
        .await
        .unwrap_err();
    assert!(matches!(err, AssertionError::UnknownKid { .. }), "{err}");
    let err = verify(
        &v,
        &jwks,
        &a.sign_with_header(&json!({"alg": "ES256"}), &claims_with(json!({}))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, AssertionError::KidRequired { count: 2, .. }),
        "{err}"
    );
    assert!(
        verify(&v, &jwks, &b.sign(&claims_with(json!({}))))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn single_key_without_header_kid_is_used() {
    let key = TestKey::es256("only");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    let ok = verify(
        &v,
        &jwks,
        &key.sign_with_header(&json!({"alg": "ES256"}), &claims_with(json!({}))),
    )
    .await
    .unwrap();
    assert_eq!(ok.kid.as_deref(), Some("only"));
    // A header kid that does not match the single key is rejected (no fallback).
    let err = verify(
        &v,
        &jwks,
        &key.with_kid("other").sign(&claims_with(json!({}))),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AssertionError::UnknownKid { .. }), "{err}");
}

#[tokio::test]
async fn rejects_alg_not_registered() {
    let key = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    let token = key.sign(&claims_with(json!({})));
    let mut c = client(CID, &jwks);
    c.signing_alg = Some("ES384");
    let err = v
        .verify_keys_at(&token, &c, SystemTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AssertionError::AlgNotRegistered { .. }),
        "{err}"
    );
    c.signing_alg = Some("ES256");
    assert!(
        v.verify_keys_at(&token, &c, SystemTime::now())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn rejects_client_without_key_source() {
    let key = TestKey::es256("k");
    let c = ClientKeys {
        client_id: CID,
        jwks: None,
        jwks_uri: None,
        signing_alg: None,
    };
    let err = verifier()
        .verify_keys_at(&key.sign(&claims_with(json!({}))), &c, SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(err, AssertionError::NoKeySource { .. }), "{err}");
}

#[tokio::test]
async fn inline_key_cache_follows_document_changes() {
    let old = TestKey::es256("k");
    let new = TestKey::es256("k");
    let v = verifier();
    assert!(
        verify(&v, &jwk_set(&[&old]), &old.sign(&claims_with(json!({}))))
            .await
            .is_ok()
    );
    // Same client, new document keys: the cached old key must not be used.
    let err = verify(&v, &jwk_set(&[&new]), &old.sign(&claims_with(json!({}))))
        .await
        .unwrap_err();
    assert!(matches!(err, AssertionError::BadSignature { .. }), "{err}");
    assert!(
        verify(&v, &jwk_set(&[&new]), &new.sign(&claims_with(json!({}))))
            .await
            .is_ok()
    );
}

fn document(auth: &str, extra: Value) -> crate::document::ClientDocument {
    let mut doc = json!({
        "client_id": CID,
        "client_name": "Test client",
        "redirect_uris": ["https://app.example.com/callback"],
        "token_endpoint_auth_method": auth,
    });
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let id = crate::ClientIdUrl::parse(CID).expect("client id");
    crate::document::validate_document(doc.to_string().as_bytes(), Some(&id), crate::Profile::Mcp)
        .unwrap_or_else(|r| panic!("document: {r}"))
        .document
}

#[tokio::test]
async fn verifies_with_client_document() {
    let key = TestKey::ed25519("k");
    let doc = document(
        "private_key_jwt",
        json!({"jwks": test_keys::jwks_json(&[&key]), "token_endpoint_auth_signing_alg": "EdDSA"}),
    );
    let v = verifier();
    let ok = v
        .verify(&key.sign(&claims_with(json!({}))), &doc)
        .await
        .unwrap();
    assert_eq!(ok.client_id, CID);
    // The document's signing alg is enforced.
    let es = TestKey::es256("k");
    let doc = document(
        "private_key_jwt",
        json!({"jwks": test_keys::jwks_json(&[&es]), "token_endpoint_auth_signing_alg": "EdDSA"}),
    );
    let err = v
        .verify(&es.sign(&claims_with(json!({}))), &doc)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AssertionError::AlgNotRegistered { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn rejects_non_private_key_jwt_client() {
    let key = TestKey::ed25519("k");
    let mut doc = document("none", json!({}));
    let err = verifier()
        .verify(&key.sign(&claims_with(json!({}))), &doc)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AssertionError::NotPrivateKeyJwtClient { .. }),
        "{err}"
    );
    // Keys alone do not make a public client a private_key_jwt client.
    doc.jwks = Some(jwk_set(&[&key]));
    let err = verifier()
        .verify(&key.sign(&claims_with(json!({}))), &doc)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AssertionError::NotPrivateKeyJwtClient { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn deferred_mode_with_client_document_checks_the_declared_method() {
    let key = TestKey::ed25519("k");
    let v = verifier();
    let doc = document(
        "private_key_jwt",
        json!({"jwks": test_keys::jwks_json(&[&key])}),
    );
    let token = key.sign(&claims_with(json!({})));
    let u = v.verify_deferred(&token, &doc).await.unwrap();
    assert_eq!(u.assertion.client_id, CID);
    // Not recorded: the record-mode call still accepts it once.
    assert!(v.verify(&token, &doc).await.is_ok());
    let mut public = document("none", json!({}));
    public.jwks = Some(jwk_set(&[&key]));
    let err = v
        .verify_deferred(&key.sign(&claims_with(json!({}))), &public)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AssertionError::NotPrivateKeyJwtClient { .. }),
        "{err}"
    );
}

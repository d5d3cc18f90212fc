//! Verifier-level tests: every rule of docs/architecture.md, *Client authentication at
//! /token*, through [`AssertionVerifier`], with real keys
//! and signatures (inline `jwks`; `jwks_uri` is covered by `tests/assertion.rs`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use cimdgate_test_support::keys as test_keys;

mod keys_and_documents;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use test_keys::{TestKey, claims, fresh_jti, jwk_set, unix};

use super::*;
use crate::fetch::{FetchConfig, Fetcher};

const CID: &str = "https://app.example.com/oauth/client.json";
const OTHER_CID: &str = "https://other.example.net/client.json";
const TOKEN_EP: &str = "https://as.example.com/token";
const ISSUER: &str = "https://as.example.com";

fn verifier_with(replay: Arc<dyn ReplayStore>) -> AssertionVerifier {
    let fetcher = Fetcher::new(FetchConfig::default()).expect("fetcher");
    AssertionVerifier::new(
        AssertionConfig::new([TOKEN_EP, ISSUER]),
        Arc::new(fetcher),
        replay,
    )
}

fn verifier() -> AssertionVerifier {
    verifier_with(Arc::new(MemoryReplayStore::new()))
}

fn client<'a>(client_id: &'a str, jwks: &'a JwkSet) -> ClientKeys<'a> {
    ClientKeys {
        client_id,
        jwks: Some(jwks),
        jwks_uri: None,
        signing_alg: None,
    }
}

/// Claims for CID at now, with `patch` applied (null removes a claim).
fn claims_with(patch: Value) -> Value {
    let mut c = claims(CID, TOKEN_EP, SystemTime::now());
    if let (Some(obj), Some(p)) = (c.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

async fn verify(
    v: &AssertionVerifier,
    jwks: &JwkSet,
    token: &str,
) -> Result<VerifiedAssertion, AssertionError> {
    v.verify_keys_at(token, &client(CID, jwks), SystemTime::now())
        .await
}

fn now_secs() -> i64 {
    unix(SystemTime::now())
}

#[tokio::test]
async fn accepts_every_allowed_algorithm() {
    let keys = vec![
        TestKey::es256("es256"),
        TestKey::es384("es384"),
        TestKey::ed25519("ed"),
        TestKey::rsa("rs256", Algorithm::RS256, 0),
        TestKey::rsa("rs384", Algorithm::RS384, 0),
        TestKey::rsa("rs512", Algorithm::RS512, 0),
        TestKey::rsa("ps256", Algorithm::PS256, 0),
        TestKey::rsa("ps384", Algorithm::PS384, 0),
        TestKey::rsa("ps512", Algorithm::PS512, 0),
    ];
    let jwks = jwk_set(&keys.iter().collect::<Vec<_>>());
    let v = verifier();
    for key in &keys {
        let c = claims_with(json!({}));
        let ok = verify(&v, &jwks, &key.sign(&c))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.kid));
        assert_eq!(ok.alg, key.alg);
        assert_eq!(ok.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(ok.client_id, CID);
        assert_eq!(Value::String(ok.jti), c["jti"]);
        assert_eq!(unix(ok.expires_at), c["exp"].as_i64().unwrap());
    }
}

#[tokio::test]
async fn rejects_hs256_assertion() {
    let key = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        // A real HMAC signature, keyed with the public JWK (the classic alg-confusion attack).
        let secret = EncodingKey::from_secret(key.jwk.to_string().as_bytes());
        let header = json!({"alg": test_keys::alg_str(alg), "kid": "k"});
        let hs = TestKey {
            alg,
            kid: "k".into(),
            encoding: secret,
            jwk: json!({}),
        };
        let err = verify(
            &v,
            &jwks,
            &hs.sign_with_header(&header, &claims_with(json!({}))),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, AssertionError::AlgHmac { .. }),
            "{alg:?}: {err}"
        );
        assert!(err.to_string().contains("HMAC"), "{err}");
    }
}

#[tokio::test]
async fn rejects_alg_none() {
    let key = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    let c = claims_with(json!({}));
    let b64 = |v: &Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    for alg in ["none", "None"] {
        let unsigned = format!("{}.{}.", b64(&json!({"alg": alg})), b64(&c));
        let err = verify(&verifier(), &jwks, &unsigned).await.unwrap_err();
        assert!(matches!(err, AssertionError::AlgNone), "{err}");
    }
}

#[tokio::test]
async fn rejects_crit_header() {
    let key = TestKey::ed25519("k");
    let jwks = jwk_set(&[&key]);
    let mut header = key.header();
    header["crit"] = json!(["b64"]);
    header["b64"] = json!(false);
    let err = verify(
        &verifier(),
        &jwks,
        &key.sign_with_header(&header, &claims_with(json!({}))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, AssertionError::CritUnsupported { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn rejects_unsupported_alg() {
    let key = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    let mut header = key.header();
    header["alg"] = json!("ES512");
    let err = verify(
        &verifier(),
        &jwks,
        &key.sign_with_header(&header, &claims_with(json!({}))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, AssertionError::AlgUnsupported { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn rejects_oversized_assertion() {
    let key = TestKey::ed25519("k");
    let jwks = jwk_set(&[&key]);
    let token = key.sign(&claims_with(
        json!({"pad": "x".repeat(MAX_ASSERTION_BYTES)}),
    ));
    let err = verify(&verifier(), &jwks, &token).await.unwrap_err();
    assert!(matches!(err, AssertionError::TooLarge { .. }), "{err}");
}

/// One test per claim rule through the full verifier, each signed with a genuine key (the
/// boundaries on both sides are in `claims::tests::claim_rules_table`).
macro_rules! claim_rule_test {
    ($name:ident, $patch:expr, $expected:pat) => {
        #[tokio::test]
        async fn $name() {
            let key = TestKey::es256("k");
            let jwks = jwk_set(&[&key]);
            let patch: fn(i64) -> Value = $patch;
            // One fixed clock for building and checking, so the 1 s boundaries are exact.
            let at = SystemTime::now();
            let token = key.sign(&claims_with(patch(unix(at))));
            let err = verifier()
                .verify_keys_at(&token, &client(CID, &jwks), at)
                .await
                .unwrap_err();
            assert!(matches!(err, $expected), "unexpected {err:?}");
            assert_eq!(err.oauth_error(), "invalid_client");
        }
    };
}

claim_rule_test!(
    rejects_iss_mismatch,
    |_| json!({"iss": OTHER_CID}),
    AssertionError::IssMismatch { .. }
);
claim_rule_test!(
    rejects_sub_mismatch,
    |_| json!({"sub": OTHER_CID}),
    AssertionError::SubMismatch { .. }
);
claim_rule_test!(
    rejects_missing_jti,
    |_| json!({"jti": null}),
    AssertionError::MissingClaim { claim: "jti" }
);
claim_rule_test!(
    rejects_empty_jti,
    |_| json!({"jti": ""}),
    AssertionError::InvalidClaim { claim: "jti", .. }
);
claim_rule_test!(
    rejects_missing_exp,
    |_| json!({"exp": null}),
    AssertionError::MissingClaim { claim: "exp" }
);
claim_rule_test!(
    rejects_missing_aud,
    |_| json!({"aud": null}),
    AssertionError::MissingClaim { claim: "aud" }
);
claim_rule_test!(
    rejects_lifetime_over_300s,
    |now| json!({"iat": now, "exp": now + 301}),
    AssertionError::LifetimeTooLong {
        lifetime_secs: 301,
        ..
    }
);
claim_rule_test!(
    rejects_exp_over_300s_without_iat,
    |now| json!({"iat": null, "exp": now + 331}),
    AssertionError::ExpTooFarInFuture { .. }
);
claim_rule_test!(
    rejects_future_iat,
    |now| json!({"iat": now + 31, "exp": now + 90}),
    AssertionError::IatInFuture { .. }
);
claim_rule_test!(
    rejects_nbf_in_future,
    |now| json!({"nbf": now + 31}),
    AssertionError::NotYetValid { .. }
);
claim_rule_test!(
    rejects_expired,
    |now| json!({"iat": now - 200, "exp": now - 31}),
    AssertionError::Expired { .. }
);

#[tokio::test]
async fn rejects_wrong_aud() {
    let key = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    for aud in [
        json!("https://evil.example/token"),
        json!(["https://evil.example"]),
        json!("https://as.example.com/"),
    ] {
        let err = verify(
            &verifier(),
            &jwks,
            &key.sign(&claims_with(json!({"aud": aud}))),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, AssertionError::AudMismatch { .. }), "{err}");
    }
}

#[tokio::test]
async fn accepts_issuer_as_aud() {
    let key = TestKey::ed25519("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    for aud in [
        json!(ISSUER),
        json!(TOKEN_EP),
        json!(["https://elsewhere.example", ISSUER]),
    ] {
        let r = verify(
            &v,
            &jwks,
            &key.sign(&claims_with(json!({"aud": aud.clone()}))),
        )
        .await;
        assert!(r.is_ok(), "{aud}: {r:?}");
    }
}

#[tokio::test]
async fn accepts_within_skew() {
    let key = TestKey::ed25519("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    let now = now_secs();
    // Fixed `now` so the boundaries are exact.
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(now as u64);
    let cases = [
        ("exp 30 s ago", json!({"iat": now - 100, "exp": now - 30})),
        ("iat 30 s ahead", json!({"iat": now + 30, "exp": now + 90})),
        ("nbf 30 s ahead", json!({"nbf": now + 30})),
        (
            "no iat, exp at 300 + 30 s",
            json!({"iat": null, "exp": now + 330}),
        ),
        (
            "lifetime exactly 300 s",
            json!({"iat": now, "exp": now + 300}),
        ),
    ];
    for (name, patch) in cases {
        let r = v
            .verify_keys_at(&key.sign(&claims_with(patch)), &client(CID, &jwks), at)
            .await;
        assert!(r.is_ok(), "{name}: {r:?}");
    }
}

#[tokio::test]
async fn rejects_replayed_jti() {
    let key = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    let token = key.sign(&claims_with(json!({})));
    assert!(verify(&v, &jwks, &token).await.is_ok());
    let err = verify(&v, &jwks, &token).await.unwrap_err();
    assert!(matches!(err, AssertionError::Replayed { .. }), "{err}");
    // A different assertion reusing the jti is a replay too.
    let c = claims_with(json!({}));
    assert!(verify(&v, &jwks, &key.sign(&c)).await.is_ok());
    let mut again = c.clone();
    again["exp"] = json!(c["exp"].as_i64().unwrap() + 1);
    let err = verify(&v, &jwks, &key.sign(&again)).await.unwrap_err();
    assert!(matches!(err, AssertionError::Replayed { .. }), "{err}");
}

#[tokio::test]
async fn replay_namespace_is_per_client() {
    let key = TestKey::ed25519("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    let jti = fresh_jti();
    let now = SystemTime::now();
    for cid in [CID, OTHER_CID] {
        let mut c = claims(cid, TOKEN_EP, now);
        c["jti"] = json!(jti);
        let r = v
            .verify_keys_at(&key.sign(&c), &client(cid, &jwks), now)
            .await;
        assert!(r.is_ok(), "{cid}: {r:?}");
    }
}

#[tokio::test]
async fn replay_store_refuses_when_full() {
    let key = TestKey::ed25519("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier_with(Arc::new(MemoryReplayStore::with_capacity(1, 1)));
    assert!(
        verify(&v, &jwks, &key.sign(&claims_with(json!({}))))
            .await
            .is_ok()
    );
    let err = verify(&v, &jwks, &key.sign(&claims_with(json!({}))))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AssertionError::ReplayStore(ReplayStoreError::ClientFull { .. })
        ),
        "{err}"
    );
    let v = verifier_with(Arc::new(MemoryReplayStore::with_capacity(1, 10)));
    assert!(
        verify(&v, &jwks, &key.sign(&claims_with(json!({}))))
            .await
            .is_ok()
    );
    let err = verify(&v, &jwks, &key.sign(&claims_with(json!({}))))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AssertionError::ReplayStore(ReplayStoreError::Full { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn forged_assertion_does_not_burn_jti() {
    let key = TestKey::es256("k");
    let attacker = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    let c = claims_with(json!({}));
    // Forged signature: rejected, jti untouched.
    let err = verify(&v, &jwks, &attacker.sign(&c)).await.unwrap_err();
    assert!(matches!(err, AssertionError::BadSignature { .. }), "{err}");
    // Genuine signature but an invalid claim: rejected, jti untouched.
    let mut bad_aud = c.clone();
    bad_aud["aud"] = json!("https://evil.example/token");
    assert!(verify(&v, &jwks, &key.sign(&bad_aud)).await.is_err());
    // The client's real assertion with that jti still works.
    assert!(verify(&v, &jwks, &key.sign(&c)).await.is_ok());
}

#[tokio::test]
async fn rejects_bad_signature() {
    let key = TestKey::ed25519("k");
    let other = TestKey::ed25519("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    let err = verify(&v, &jwks, &other.sign(&claims_with(json!({}))))
        .await
        .unwrap_err();
    assert!(matches!(err, AssertionError::BadSignature { .. }), "{err}");
    // Tampered payload, original signature.
    let token = key.sign(&claims_with(json!({})));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let forged = claims(CID, TOKEN_EP, SystemTime::now());
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        forged.to_string(),
    );
    let err = verify(&v, &jwks, &parts.join(".")).await.unwrap_err();
    assert!(matches!(err, AssertionError::BadSignature { .. }), "{err}");
    // Garbage signature.
    parts[1] = token.split('.').nth(1).unwrap().to_owned();
    parts[2] = "!!!".to_owned();
    let err = verify(&v, &jwks, &parts.join(".")).await.unwrap_err();
    assert!(matches!(err, AssertionError::BadSignature { .. }), "{err}");
}

/// A replay store that counts calls (and records nothing), to prove the deferred mode never
/// touches it.
#[derive(Default)]
struct CountingReplay(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl ReplayStore for CountingReplay {
    async fn record_once(
        &self,
        _client_id: &str,
        _jti: &str,
        _expires_at: SystemTime,
    ) -> Result<bool, ReplayStoreError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(true)
    }
}

impl CountingReplay {
    fn calls(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn deferred_mode_returns_the_jti_to_record_and_records_nothing() {
    let key = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    let counting = Arc::new(CountingReplay::default());
    let v = verifier_with(counting.clone());
    let c = claims_with(json!({}));
    let token = key.sign(&c);
    let now = SystemTime::now();
    for _ in 0..2 {
        let u = v
            .verify_keys_at_deferred(&token, &client(CID, &jwks), now)
            .await
            .unwrap();
        assert_eq!(u.assertion.client_id, CID);
        assert_eq!(u.assertion.jti, c["jti"].as_str().unwrap());
        let exp = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(c["exp"].as_i64().unwrap()).unwrap());
        assert_eq!(u.assertion.expires_at, exp);
        assert_eq!(
            u.keep_until,
            exp + CLOCK_SKEW + Duration::from_secs(1),
            "kept as long as record mode keeps it: until the last second it is accepted"
        );
        assert_eq!(u.assertion.kid.as_deref(), Some("k"));
    }
    assert_eq!(counting.calls(), 0, "the replay store is never touched");
    // The same verifier in record mode does record.
    assert!(verify(&v, &jwks, &token).await.is_ok());
    assert_eq!(counting.calls(), 1);
}

#[tokio::test]
async fn deferred_mode_leaves_the_jti_usable_in_record_mode() {
    let key = TestKey::ed25519("k");
    let jwks = jwk_set(&[&key]);
    let v = verifier();
    let token = key.sign(&claims_with(json!({})));
    let _ = v
        .verify_keys_at_deferred(&token, &client(CID, &jwks), SystemTime::now())
        .await
        .unwrap();
    assert!(verify(&v, &jwks, &token).await.is_ok(), "jti not burned");
    // And a jti recorded already is not the deferred mode's business: it still verifies; the
    // caller's atomic record is what refuses it.
    assert!(
        v.verify_keys_at_deferred(&token, &client(CID, &jwks), SystemTime::now())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn deferred_mode_rejects_forged_and_invalid_assertions() {
    let key = TestKey::es256("k");
    let attacker = TestKey::es256("k");
    let jwks = jwk_set(&[&key]);
    let counting = Arc::new(CountingReplay::default());
    let v = verifier_with(counting.clone());
    let now = SystemTime::now();
    let c = claims_with(json!({}));
    let deferred = |token: String| {
        let v = &v;
        let jwks = &jwks;
        async move {
            v.verify_keys_at_deferred(&token, &client(CID, jwks), now)
                .await
        }
    };
    let err = deferred(attacker.sign(&c)).await.unwrap_err();
    assert!(matches!(err, AssertionError::BadSignature { .. }), "{err}");
    let cases = [
        ("wrong aud", json!({"aud": "https://evil.example/token"})),
        (
            "expired",
            json!({"exp": now_secs() - 3600, "iat": now_secs() - 3700}),
        ),
        ("other iss", json!({"iss": OTHER_CID})),
        ("no jti", json!({"jti": null})),
    ];
    for (name, patch) in cases {
        let err = deferred(key.sign(&claims_with(patch))).await;
        assert!(err.is_err(), "{name}: {err:?}");
    }
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert!(deferred(hs).await.is_err(), "HMAC refused");
    assert_eq!(counting.calls(), 0);
}

/// Review finding F-assert-1: claims are judged in whole seconds, so an assertion is accepted
/// until one second past `exp + skew`; its `jti` must be remembered at least that long. An
/// absurd `exp` saturates instead of panicking.
#[test]
fn jti_is_remembered_for_as_long_as_the_assertion_is_accepted() {
    let skew = Duration::from_secs(30);
    let keep = super::replay_keep_until(1_000, skew);
    let last_accepted = SystemTime::UNIX_EPOCH + Duration::from_millis(1_030_999);
    assert!(keep > last_accepted, "{keep:?}");
    assert_eq!(keep, SystemTime::UNIX_EPOCH + Duration::from_secs(1_031));
    let _ = super::replay_keep_until(i64::MAX, Duration::from_secs(u64::MAX / 2));
    assert_eq!(
        super::replay_keep_until(-5, skew),
        SystemTime::UNIX_EPOCH + Duration::from_secs(31)
    );
}

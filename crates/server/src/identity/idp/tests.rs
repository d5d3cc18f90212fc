//! Unit tests for the upstream IdP client: id_token rules (table-driven, keys generated here),
//! callback checks, and a mock IdP on 127.0.0.1 for discovery and the code exchange.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::client::*;
use super::oidc::{IdTokenProblem, IdTokenRules, validate_id_token};
use super::types::*;
use super::*;
use crate::config::{IdpConfig, IdpPreset};
use crate::secret::ExposeSecret;
use url::Url;

const ISS: &str = "https://idp.example";
const CLIENT: &str = "cimdgate";
const NONCE: &str = "n-0S6_WzA2Mj";

/// A P-256 key generated for the test: signing key and its public JWK.
struct TestKey {
    enc: EncodingKey,
    jwk: Value,
    x: Vec<u8>,
}

fn test_key(kid: &str) -> TestKey {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let public = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    let (x, y) = (&public[1..33], &public[33..65]);
    TestKey {
        enc: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                    "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
        x: x.to_vec(),
    }
}

fn now() -> u64 {
    crate::time::now_secs()
}

fn good_claims() -> Value {
    json!({"iss": ISS, "sub": "alice", "aud": CLIENT, "exp": now() + 300, "iat": now(),
           "nonce": NONCE, "name": "Alice", "email": "alice@example.com"})
}

fn sign(key: &TestKey, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &key.enc).unwrap()
}

fn set_of(keys: &[&TestKey]) -> JwkSet {
    serde_json::from_value(json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}))
        .unwrap()
}

fn rules() -> IdTokenRules<'static> {
    IdTokenRules {
        issuer: ISS,
        client_id: CLIENT,
        nonce: NONCE,
        algorithms: &[Algorithm::ES256, Algorithm::RS256],
    }
}

fn with(claims: Value, patch: Value) -> Value {
    let mut c = claims;
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn unsigned(header: Value, claims: &Value) -> String {
    let b = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.", b(&header), b(claims))
}

#[test]
fn id_token_rules() {
    let key = test_key("k1");
    let other = test_key("k1"); // same kid, different key
    let set = set_of(&[&key]);
    let hs_with_public_key = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &good_claims(), &EncodingKey::from_secret(&key.x)).unwrap()
    };
    // (rule, token, expected: Ok / UnknownKey / Invalid containing text)
    let cases: Vec<(&str, String, Result<(), &str>)> = vec![
        ("valid", sign(&key, "k1", &good_claims()), Ok(())),
        (
            "wrong_iss",
            sign(
                &key,
                "k1",
                &with(good_claims(), json!({"iss": "https://evil"})),
            ),
            Err("iss"),
        ),
        (
            "missing_iss",
            sign(&key, "k1", &with(good_claims(), json!({"iss": null}))),
            Err("iss"),
        ),
        (
            "wrong_aud",
            sign(
                &key,
                "k1",
                &with(good_claims(), json!({"aud": "someone-else"})),
            ),
            Err("aud"),
        ),
        (
            "aud_list_without_azp",
            sign(
                &key,
                "k1",
                &with(good_claims(), json!({"aud": [CLIENT, "x"]})),
            ),
            Err("azp"),
        ),
        (
            "aud_list_with_azp",
            sign(
                &key,
                "k1",
                &with(good_claims(), json!({"aud": [CLIENT, "x"], "azp": CLIENT})),
            ),
            Ok(()),
        ),
        (
            "wrong_azp",
            sign(&key, "k1", &with(good_claims(), json!({"azp": "x"}))),
            Err("azp"),
        ),
        (
            "wrong_nonce",
            sign(&key, "k1", &with(good_claims(), json!({"nonce": "other"}))),
            Err("nonce"),
        ),
        (
            "missing_nonce",
            sign(&key, "k1", &with(good_claims(), json!({"nonce": null}))),
            Err("nonce"),
        ),
        (
            "expired",
            sign(
                &key,
                "k1",
                &with(good_claims(), json!({"exp": now() - 3600})),
            ),
            Err("expired"),
        ),
        (
            "expired_within_skew",
            sign(&key, "k1", &with(good_claims(), json!({"exp": now() - 10}))),
            Ok(()),
        ),
        (
            "missing_exp",
            sign(&key, "k1", &with(good_claims(), json!({"exp": null}))),
            Err("exp"),
        ),
        (
            "missing_sub",
            sign(&key, "k1", &with(good_claims(), json!({"sub": null}))),
            Err("sub"),
        ),
        (
            "alg_none",
            unsigned(json!({"alg": "none", "kid": "k1"}), &good_claims()),
            Err("header"),
        ),
        (
            "hs256_keyed_with_public_key",
            hs_with_public_key,
            Err("HS256"),
        ),
        (
            "signed_by_other_key",
            sign(&other, "k1", &good_claims()),
            Err("signature"),
        ),
        (
            "unknown_kid",
            sign(&key, "k2", &good_claims()),
            Err("unknown-key"),
        ),
        ("garbage", "not.a.jwt".into(), Err("header")),
    ];
    for (rule, token, expected) in cases {
        let got = validate_id_token(&token, &set, &rules());
        match (expected, got) {
            (Ok(()), Ok(claims)) => assert_eq!(claims.sub, "alice", "{rule}"),
            (Err("unknown-key"), Err(IdTokenProblem::UnknownKey(kid))) => {
                assert_eq!(kid.as_deref(), Some("k2"), "{rule}")
            }
            (Err(text), Err(IdTokenProblem::Invalid(reason))) => {
                assert!(
                    reason.contains(text),
                    "{rule}: reason {reason:?} lacks {text:?}"
                )
            }
            (want, got) => panic!("{rule}: expected {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn id_token_alg_must_be_advertised_by_the_idp() {
    let key = test_key("k1");
    let r = IdTokenRules {
        algorithms: &[Algorithm::RS256],
        ..rules()
    };
    let got = validate_id_token(&sign(&key, "k1", &good_claims()), &set_of(&[&key]), &r);
    assert!(
        matches!(got, Err(IdTokenProblem::Invalid(ref s)) if s.contains("ES256")),
        "{got:?}"
    );
}

#[test]
fn id_token_without_kid_uses_the_only_key() {
    let key = test_key("k1");
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &good_claims(), &key.enc).unwrap();
    assert!(validate_id_token(&token, &set_of(&[&key]), &rules()).is_ok());
    let two = test_key("k2");
    let got = validate_id_token(&token, &set_of(&[&key, &two]), &rules());
    assert!(
        matches!(got, Err(IdTokenProblem::UnknownKey(None))),
        "{got:?}"
    );
}

fn pending() -> IdpPending {
    IdpPending {
        state: "the-state".into(),
        nonce: NONCE.into(),
        pkce_verifier: "v".repeat(43).into(),
        created_at: now(),
    }
}

#[test]
fn callback_state_rules() {
    let p = pending();
    let params = |state: Option<&str>, code: Option<&str>, error: Option<&str>| CallbackParams {
        state: state.map(Into::into),
        code: code.map(Into::into),
        error: error.map(Into::into),
        ..CallbackParams::default()
    };
    let cases = [
        (
            "matching_state",
            params(Some("the-state"), Some("c"), None),
            true,
        ),
        ("wrong_state", params(Some("other"), Some("c"), None), false),
        (
            "prefix_of_state",
            params(Some("the-stat"), Some("c"), None),
            false,
        ),
        (
            "missing_state_with_code",
            params(None, Some("c"), None),
            false,
        ),
        (
            "wrong_state_with_error",
            params(Some("x"), None, Some("access_denied")),
            false,
        ),
        (
            "missing_state_error_only",
            params(None, None, Some("access_denied")),
            true,
        ),
    ];
    for (rule, params, ok) in cases {
        let got = check_state(&params, &p);
        assert_eq!(got.is_ok(), ok, "{rule}: {got:?}");
        if !ok {
            assert!(matches!(got, Err(IdpError::StateMismatch)), "{rule}");
            assert_eq!(IdpError::StateMismatch.status(), StatusCode::BAD_REQUEST);
        }
    }
}

#[test]
fn stale_pending_sign_in_is_refused() {
    let mut p = pending();
    assert!(check_age(&p, now()).is_ok());
    p.created_at = now() - MAX_PENDING_AGE_SECS - 1;
    assert!(matches!(check_age(&p, now()), Err(IdpError::Expired)));
}

#[test]
fn error_parameter_maps_to_denied_with_sanitised_text() {
    let params = CallbackParams {
        error: Some("access_denied".into()),
        error_description: Some("User said \"no\"\n<script>".into()),
        ..CallbackParams::default()
    };
    let err = check_error(&params).unwrap_err();
    match &err {
        IdpError::Denied { error, description } => {
            assert_eq!(error, "access_denied");
            // '"' and '\n' are outside RFC 6749's error_description charset.
            assert_eq!(description.as_deref(), Some("User said no<script>"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    assert!(err.to_string().contains("access_denied"));
}

#[test]
fn tokens_debug_is_redacted() {
    let t = IdpTokens {
        access_token: "AT-SECRET".into(),
        refresh_token: Some("RT-SECRET".into()),
        id_token: None,
        expires_at: Some(1),
    };
    let s = format!("{t:?} {:?}", pending());
    assert!(
        !s.contains("SECRET") && !s.contains("the-state") && !s.contains(NONCE),
        "{s}"
    );
}

#[test]
fn config_rules_at_startup() {
    let base = |f: &dyn Fn(&mut IdpConfig)| {
        let mut c = IdpConfig {
            issuer: Some(Url::parse(ISS).unwrap()),
            client_id: CLIENT.into(),
            ..IdpConfig::default()
        };
        f(&mut c);
        Idp::new(&c, "http://127.0.0.1:1/upstream/callback".into()).map(|_| ())
    };
    type Case = (&'static str, Box<dyn Fn(&mut IdpConfig)>, bool);
    let cases: Vec<Case> = vec![
        ("oidc_ok", Box::new(|_| {}), true),
        (
            "loopback_http_ok",
            Box::new(|c| c.issuer = Some(Url::parse("http://127.0.0.1:9").unwrap())),
            true,
        ),
        (
            "plain_http_refused",
            Box::new(|c| c.issuer = Some(Url::parse("http://idp.example").unwrap())),
            false,
        ),
        (
            "client_id_required",
            Box::new(|c| c.client_id.clear()),
            false,
        ),
        (
            "issuer_and_preset",
            Box::new(|c| c.preset = Some(IdpPreset::Github)),
            false,
        ),
        (
            "github_ok",
            Box::new(|c| {
                c.issuer = None;
                c.preset = Some(IdpPreset::Github)
            }),
            true,
        ),
        ("nothing_configured", Box::new(|c| c.issuer = None), false),
        (
            "missing_ca_file",
            Box::new(|c| c.extra_ca_file = Some("/nonexistent/ca.pem".into())),
            false,
        ),
    ];
    for (rule, f, ok) in cases {
        let got = base(&*f);
        assert_eq!(got.is_ok(), ok, "{rule}: {:?}", got.err());
    }
}

#[tokio::test]
async fn github_begin_uses_preset_endpoints_and_scopes() {
    let cfg = IdpConfig {
        preset: Some(IdpPreset::Github),
        client_id: "gh-client".into(),
        ..IdpConfig::default()
    };
    let idp = Idp::new(&cfg, "https://as.example/upstream/callback".into()).unwrap();
    let (url, p) = idp.begin().await.unwrap();
    assert!(url.as_str().starts_with(github::AUTHORIZE), "{url}");
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "read:user user:email");
    assert_eq!(q["state"], p.state.expose_secret());
    assert_eq!(
        q["code_challenge"],
        crate::grant::pkce::s256(p.pkce_verifier.expose_secret())
    );
    assert!(!q.contains_key("nonce"));
}

mod mock;

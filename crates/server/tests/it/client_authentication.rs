//! Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2, OAuth 2.1 §2.4):
//! `private_key_jwt` with inline keys and a `jwks_uri`, every refusal as 401 `invalid_client`,
//! single-use assertions (`jti`) even when the exchange fails, CIMD clients never using a secret,
//! DCR clients with `client_secret_basic` and `client_secret_post`.

use crate::back_util::{self, assertion_form, code_unused, pkjwt_client, redirect};
use crate::common;
use cimdgate_test_support::keys as test_keys;
use std::time::{Duration, SystemTime};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use back_util::{basic, exchange, mint_code, post, verify};
use common::TestEnv;
use test_keys::{TestKey, claims, jwks_json};

#[tokio::test]
async fn private_key_jwt_es256_inline_jwks_and_rs256_jwks_uri_get_tokens() {
    let env = TestEnv::start().await;
    let es = TestKey::es256("es");
    let es_id = env.publish_client(
        "pkjwt-es",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_json(&[&es])}),
    );
    let m = mint_code(&env, &es_id, &redirect(), |_| {}).await;
    // client_id omitted: taken from the assertion; aud = the token endpoint as advertised.
    let a = es.sign(&claims(&es_id, &env.url("/token"), SystemTime::now()));
    let r = post(&env, "/token", &assertion_form(&m, &a), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        verify(&env, r.body["access_token"].as_str().unwrap())
            .await
            .unwrap()
            .client_id,
        es_id
    );

    let rs = TestKey::rsa("rs", Algorithm::RS256, 0);
    env.set_document("/keys/rs.json", &jwks_json(&[&rs]));
    let jwks_uri = env.cimd.url("cimd.test", "/keys/rs.json");
    let rs_id = env.publish_client(
        "pkjwt-rs",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri}),
    );
    let m = mint_code(&env, &rs_id, &redirect(), |_| {}).await;
    // aud = the issuer is accepted too; client_id sent and equal.
    let a = rs.sign(&claims(&rs_id, &env.base, SystemTime::now()));
    let mut form = assertion_form(&m, &a);
    form.push(("client_id", &rs_id));
    let r = post(&env, "/token", &form, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn private_key_jwt_failures_are_401_invalid_client() {
    let env = TestEnv::start().await;
    let key = TestKey::es256("k");
    let id = env.publish_client(
        "pkjwt",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_json(&[&key])}),
    );
    let token_ep = env.url("/token");

    // Replayed jti: the first use works, the second is refused.
    let m1 = mint_code(&env, &id, &redirect(), |_| {}).await;
    let a = key.sign(&claims(&id, &token_ep, SystemTime::now()));
    assert_eq!(
        post(&env, "/token", &assertion_form(&m1, &a), None)
            .await
            .status,
        200
    );
    let m2 = mint_code(&env, &id, &redirect(), |_| {}).await;
    let r = post(&env, "/token", &assertion_form(&m2, &a), None).await;
    r.assert_error(401, "invalid_client");
    assert!(
        r.description().contains("already used"),
        "{}",
        r.description()
    );

    // Wrong aud.
    let a = key.sign(&claims(
        &id,
        "https://elsewhere.example/token",
        SystemTime::now(),
    ));
    let r = post(&env, "/token", &assertion_form(&m2, &a), None).await;
    r.assert_error(401, "invalid_client");
    assert!(r.description().contains("aud"), "{}", r.description());

    // Assertion missing for a client whose document declares private_key_jwt.
    let r = exchange(&env, &m2, &[]).await;
    r.assert_error(401, "invalid_client");
    assert!(
        r.description().contains("private_key_jwt"),
        "{}",
        r.description()
    );

    // The code was not spent by any of the failures: it still works.
    let a = key.sign(&claims(&id, &token_ep, SystemTime::now()));
    assert_eq!(
        post(&env, "/token", &assertion_form(&m2, &a), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn cimd_client_sending_a_client_secret_is_401() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let r = exchange(&env, &m, &[("client_secret", "s3cret")]).await;
    r.assert_error(401, "invalid_client");
    assert!(r.description().contains("secret"), "{}", r.description());
    let r = post(
        &env,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &m.code),
            ("code_verifier", &m.verifier),
        ],
        Some(&basic(&id, "s3cret")),
    )
    .await;
    r.assert_error(401, "invalid_client");
}

async fn register(env: &TestEnv, body: Value) -> Value {
    let resp = common::http_client()
        .post(env.url("/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn dcr_client_with_secret_basic_and_post_gets_tokens() {
    let env = TestEnv::start_with(|c| c.dcr.enabled = Some(true)).await;
    let cb = "http://127.0.0.1:9999/cb";
    let reg = register(&env, json!({"redirect_uris": [cb], "client_name": "cli"})).await;
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    let id = reg["client_id"].as_str().unwrap();
    let secret = reg["client_secret"].as_str().unwrap();
    assert!(id.starts_with("dcr_"));
    let m = mint_code(&env, id, cb, |_| {}).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", m.code.as_str()),
        ("code_verifier", m.verifier.as_str()),
        ("redirect_uri", cb),
    ];
    // Wrong secret first (does not spend the code), then the right one.
    post(&env, "/token", &form, Some(&basic(id, "wrong")))
        .await
        .assert_error(401, "invalid_client");
    post(&env, "/token", &form, None)
        .await
        .assert_error(401, "invalid_client");
    let r = post(&env, "/token", &form, Some(&basic(id, secret))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap();

    let reg = register(
        &env,
        json!({"redirect_uris": [cb], "token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let id2 = reg["client_id"].as_str().unwrap();
    let secret2 = reg["client_secret"].as_str().unwrap();
    let m = mint_code(&env, id2, cb, |_| {}).await;
    let r = exchange(&env, &m, &[("client_secret", secret2)]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Refresh with Basic works; a refresh token of client 1 presented by client 2 does not.
    let r = post(
        &env,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", id2),
            ("client_secret", secret2),
        ],
        None,
    )
    .await;
    r.assert_error(400, "invalid_grant");
    let r = post(
        &env,
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some(&basic(id, secret)),
    )
    .await;
    assert_eq!(
        r.status, 200,
        "another client could not burn it: {}",
        r.body
    );
}

#[tokio::test]
async fn replayed_jti_at_the_code_grant_is_401_and_does_not_consume_the_code() {
    let env = TestEnv::start().await;
    let key = TestKey::es256("k");
    let id = pkjwt_client(&env, &key);
    let token_ep = env.url("/token");

    // A jti already used elsewhere (here: recorded in the store, as /revoke or a refresh would).
    let c = claims(&id, &token_ep, SystemTime::now());
    let used = key.sign(&c);
    let keep = SystemTime::now() + Duration::from_secs(600);
    let store = &env.server().state.services.store;
    assert!(
        store
            .record_jti(&id, c["jti"].as_str().unwrap(), keep)
            .await
            .unwrap()
    );
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let r = post(&env, "/token", &assertion_form(&m, &used), None).await;
    r.assert_error(401, "invalid_client");
    assert!(
        r.description().contains("already used"),
        "{}",
        r.description()
    );
    assert!(
        code_unused(&env, &m).await,
        "the replay did not consume the code"
    );

    // The code works with a fresh assertion; replaying THAT one at the now used code is a 401
    // too, and does not count as code reuse (the first tokens stay valid).
    let fresh = key.sign(&claims(&id, &token_ep, SystemTime::now()));
    let ok = post(&env, "/token", &assertion_form(&m, &fresh), None).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let r = post(&env, "/token", &assertion_form(&m, &fresh), None).await;
    r.assert_error(401, "invalid_client");
    assert!(
        verify(&env, ok.body["access_token"].as_str().unwrap())
            .await
            .is_ok(),
        "a replayed assertion is not a code reuse"
    );
}

#[tokio::test]
async fn failed_checks_after_a_good_assertion_keep_the_code_and_use_up_the_jti() {
    let env = TestEnv::start().await;
    let key = TestKey::es256("k");
    let id = pkjwt_client(&env, &key);
    let token_ep = env.url("/token");
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let wrong_verifier = "x".repeat(43);
    let other_redirect = format!("{}x", m.record.redirect_uri);
    let cases: [(&str, &str, u16, &str); 3] = [
        ("code_verifier", &wrong_verifier, 400, "invalid_grant"),
        ("redirect_uri", &other_redirect, 400, "invalid_grant"),
        ("code", "never-issued", 400, "invalid_grant"),
    ];
    for (field, value, status, error) in cases {
        let a = key.sign(&claims(&id, &token_ep, SystemTime::now()));
        let mut form = assertion_form(&m, &a);
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        post(&env, "/token", &form, None)
            .await
            .assert_error(status, error);
        assert!(code_unused(&env, &m).await, "{field}: code kept");
        // The assertion is used up all the same (single-use whatever the outcome).
        let r = post(&env, "/token", &assertion_form(&m, &a), None).await;
        r.assert_error(401, "invalid_client");
        assert!(
            r.description().contains("already used"),
            "{field}: {}",
            r.description()
        );
        assert!(
            code_unused(&env, &m).await,
            "{field}: code kept after the replay"
        );
    }
    let a = key.sign(&claims(&id, &token_ep, SystemTime::now()));
    let r = post(&env, "/token", &assertion_form(&m, &a), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

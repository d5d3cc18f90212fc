//! `/token`: code exchange, PKCE, code reuse, resource binding, document changes, client
//! authentication (none, private_key_jwt, DCR secrets) — over real HTTP against a running server
//! with a real HTTPS CIMD host. Codes are minted directly in the store (white-box), so these
//! tests do not depend on the login pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod back_util;
mod common;
use cimdgate_test_support::keys as test_keys;

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use back_util::{basic, exchange, mint_code, post, refresh, verify};
use cimdgate_server::tokens::TokenError;
use common::TestEnv;
use test_keys::{TestKey, claims, jwks_json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn redirect() -> String {
    TestEnv::default_redirect("cimd.test")
}

#[tokio::test]
async fn code_exchange_issues_verifiable_token_bound_to_resource() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let r = exchange(&env, &m, &[("resource", &env.resource())]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.assert_no_store();
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["scope"], "mcp");
    assert_eq!(r.body["expires_in"], 3600);
    assert!(r.body["refresh_token"].as_str().unwrap().len() >= 43);
    let at = r.body["access_token"].as_str().unwrap();
    let claims = verify(&env, at).await.unwrap();
    assert_eq!(claims.aud, env.resource());
    assert_eq!(claims.iss, env.base);
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.client_id, id);
    assert_eq!(claims.fid, m.record.grant.family_id);
    assert!(claims.exp > claims.iat && !claims.jti.is_empty());

    // The published JWKS verifies it (as a resource server would), header typ at+jwt.
    let header = jsonwebtoken::decode_header(at).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, Algorithm::EdDSA);
    let jwks: jsonwebtoken::jwk::JwkSet = common::http_client()
        .get(env.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in jwks");
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[env.resource()]);
    v.set_issuer(&[env.base.as_str()]);
    let data = jsonwebtoken::decode::<Value>(at, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    assert_eq!(data.claims["scope"], "mcp");
}

#[tokio::test]
async fn pkce_mismatch_is_invalid_grant() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let wrong = "x".repeat(43);
    let r = exchange(&env, &m, &[("code_verifier", &wrong)]).await;
    r.assert_error(400, "invalid_grant");
    assert!(
        r.description().contains("code_verifier"),
        "{}",
        r.description()
    );
}

#[tokio::test]
async fn code_reuse_revokes_tokens_from_first_use() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let first = exchange(&env, &m, &[]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let at = first.body["access_token"].as_str().unwrap();
    let rt = first.body["refresh_token"].as_str().unwrap();
    assert!(verify(&env, at).await.is_ok());

    let second = exchange(&env, &m, &[]).await;
    second.assert_error(400, "invalid_grant");
    assert!(
        second.description().contains("already used"),
        "{}",
        second.description()
    );
    assert_eq!(verify(&env, at).await, Err(TokenError::Revoked));
    refresh(&env, &id, rt, &[])
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |r| {
        r.expires_at = SystemTime::now() - Duration::from_secs(1);
    })
    .await;
    exchange(&env, &m, &[])
        .await
        .assert_error(400, "invalid_grant");
    let unknown = back_util::Minted {
        code: "never-issued".into(),
        ..m
    };
    exchange(&env, &unknown, &[])
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn redirect_uri_mismatch_is_invalid_grant() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let r = exchange(&env, &m, &[("redirect_uri", "https://cimd.test/other")]).await;
    r.assert_error(400, "invalid_grant");
    assert!(r.description().contains("redirect_uri"));
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_at_token() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let r = exchange(&env, &m, &[("redirect_uri", "")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn resource_mismatch_is_invalid_target() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let other = env.url("/other");
    exchange(&env, &m, &[("resource", &other)])
        .await
        .assert_error(400, "invalid_target");
}

#[tokio::test]
async fn code_issued_to_another_client_is_invalid_grant() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let other = env.publish_client("other", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    exchange(&env, &m, &[("client_id", &other)])
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn unsupported_grant_and_non_form_bodies_are_refused_with_no_store() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    post(
        &env,
        "/token",
        &[("grant_type", "client_credentials"), ("client_id", &id)],
        None,
    )
    .await
    .assert_error(400, "unsupported_grant_type");
    let resp = common::http_client()
        .post(env.url("/token"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["cache-control"], "no-store");
}

/// The document served now differs from the one approved at /authorize (simulated by binding
/// the code to an older document: `patch` is how the older one differed). The grant keeps the
/// older document's digest and, when the patch names it, its auth method.
fn older_snapshot(m: &mut cimdgate_store::CodeRecord, patch: Value) {
    let binding = m.grant.document.as_mut().unwrap();
    use sha2::Digest;
    let older = format!("{}{patch}", binding.digest);
    binding.digest = cimdgate_store::hex(&sha2::Sha256::digest(older.as_bytes()));
    if let Some(method) = patch["token_endpoint_auth_method"].as_str() {
        binding.auth_method = method.to_owned();
    }
}

#[tokio::test]
async fn document_changed_between_authorize_and_token_never_widens() {
    let env = TestEnv::start().await;
    // The current document asks for more scopes; the approved one (bound to the code) did not.
    let id = env.publish_client("app", json!({"scope": "mcp admin"}));
    let m = mint_code(&env, &id, &redirect(), |r| {
        older_snapshot(r, json!({"scope": "mcp"}))
    })
    .await;
    let r = exchange(&env, &m, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "mcp", "approved scope only");

    // The approved redirect URI is no longer registered.
    let id2 = env.publish_client("moved", json!({"redirect_uris": ["https://cimd.test/new"]}));
    let m = mint_code(&env, &id2, "https://cimd.test/old", |r| {
        older_snapshot(r, json!({"redirect_uris": ["https://cimd.test/old"]}))
    })
    .await;
    let r = exchange(&env, &m, &[]).await;
    r.assert_error(400, "invalid_grant");
    assert!(r.description().contains("changed"), "{}", r.description());

    // The auth method changed (private_key_jwt approved, now none).
    let id3 = env.publish_client("downgraded", json!({}));
    let m = mint_code(&env, &id3, &redirect(), |r| {
        older_snapshot(r, json!({"token_endpoint_auth_method": "private_key_jwt"}))
    })
    .await;
    let r = exchange(&env, &m, &[]).await;
    r.assert_error(400, "invalid_grant");
    assert!(
        r.description().contains("token_endpoint_auth_method"),
        "{}",
        r.description()
    );
}

fn assertion_form<'a>(m: &'a back_util::Minted, assertion: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", &m.code),
        ("code_verifier", &m.verifier),
        ("redirect_uri", &m.record.redirect_uri),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ]
}

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
    let env = TestEnv::start().await;
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
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let r0 = exchange(&env, &m, &[]).await;
    let rt0 = r0.body["refresh_token"].as_str().unwrap().to_owned();

    let r1 = refresh(&env, &id, &rt0, &[]).await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    r1.assert_no_store();
    let rt1 = r1.body["refresh_token"].as_str().unwrap().to_owned();
    let at1 = r1.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rt0, rt1);
    assert_eq!(verify(&env, &at1).await.unwrap().aud, env.resource());

    // Reuse of the spent token: refused, and the whole family dies.
    let reuse = refresh(&env, &id, &rt0, &[]).await;
    reuse.assert_error(400, "invalid_grant");
    assert!(
        reuse.description().contains("reuse"),
        "{}",
        reuse.description()
    );
    refresh(&env, &id, &rt1, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(verify(&env, &at1).await, Err(TokenError::Revoked));
}

#[tokio::test]
async fn refresh_works_for_cimd_client_listing_only_authorization_code() {
    let env = TestEnv::start().await;
    let id = env.publish_client("plain", json!({"grant_types": ["authorization_code"]}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let r = exchange(&env, &m, &[]).await;
    let rt = r.body["refresh_token"]
        .as_str()
        .expect("refresh token issued");
    let r = refresh(&env, &id, rt, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn refresh_scope_may_narrow_but_not_widen_and_resource_must_match() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let rt = exchange(&env, &m, &[]).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    refresh(&env, &id, &rt, &[("scope", "mcp admin")])
        .await
        .assert_error(400, "invalid_scope");
    let other = env.url("/other");
    refresh(&env, &id, &rt, &[("resource", &other)])
        .await
        .assert_error(400, "invalid_target");
    // Neither failure spent the token.
    let r = refresh(&env, &id, &rt, &[("scope", "mcp")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Whether the minted code is still unused (white-box read of the store).
async fn code_unused(env: &TestEnv, m: &back_util::Minted) -> bool {
    let got = env
        .server()
        .state
        .services
        .store
        .get_code(&cimdgate_store::TokenHash::of(&m.code), SystemTime::now())
        .await
        .unwrap();
    matches!(got, Some((_, false)))
}

fn pkjwt_client(env: &TestEnv, key: &TestKey) -> String {
    env.publish_client(
        "pkjwt",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_json(&[key])}),
    )
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

#[tokio::test]
async fn concurrent_exchanges_of_one_code_issue_once_and_revoke_the_winner() {
    let env = TestEnv::start().await;
    let key = TestKey::es256("k");
    let id = pkjwt_client(&env, &key);
    let token_ep = env.url("/token");
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let assertions: Vec<String> = (0..8)
        .map(|_| key.sign(&claims(&id, &token_ep, SystemTime::now())))
        .collect();
    let forms: Vec<_> = assertions.iter().map(|a| assertion_form(&m, a)).collect();
    let responses =
        futures_util::future::join_all(forms.iter().map(|f| post(&env, "/token", f, None))).await;
    let winners: Vec<&back_util::Resp> = responses.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one exchange succeeds");
    for r in responses.iter().filter(|r| r.status != 200) {
        r.assert_error(400, "invalid_grant");
    }
    // The losers were code reuse: the winner's tokens are revoked (OAuth 2.1 §4.1.3).
    let at = winners[0].body["access_token"].as_str().unwrap();
    assert_eq!(verify(&env, at).await, Err(TokenError::Revoked));
}

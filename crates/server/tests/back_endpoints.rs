//! `/revoke`, `/register`, metadata, `/jwks.json` and signing keys — over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod back_util;
mod common;
use cimdgate_test_support::keys as test_keys;

use std::time::SystemTime;

use serde_json::{Value, json};

use back_util::{exchange, mint_code, post, refresh, verify};
use cimdgate_server::tokens::TokenError;
use common::{TestEnv, http_client};
use test_keys::{TestKey, claims, jwks_json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn redirect() -> String {
    TestEnv::default_redirect("cimd.test")
}

async fn tokens(env: &TestEnv, id: &str) -> (String, String) {
    let m = mint_code(env, id, &redirect(), |_| {}).await;
    let r = exchange(env, &m, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    (
        r.body["access_token"].as_str().unwrap().to_owned(),
        r.body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn get_json(env: &TestEnv, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = http_client().get(env.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let (at, rt) = tokens(&env, &id).await;
    let r = post(
        &env,
        "/revoke",
        &[
            ("token", &rt),
            ("token_type_hint", "refresh_token"),
            ("client_id", &id),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    r.assert_no_store();
    refresh(&env, &id, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(verify(&env, &at).await, Err(TokenError::Revoked));
}

#[tokio::test]
async fn revoking_an_access_token_revokes_its_family() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let (at, rt) = tokens(&env, &id).await;
    // Wrong hint: the hint is only a hint.
    let r = post(
        &env,
        "/revoke",
        &[
            ("token", &at),
            ("token_type_hint", "refresh_token"),
            ("client_id", &id),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(verify(&env, &at).await, Err(TokenError::Revoked));
    refresh(&env, &id, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn revoke_authenticates_private_key_jwt_clients() {
    let env = TestEnv::start().await;
    let key = TestKey::es256("k");
    let id = env.publish_client(
        "pkjwt",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_json(&[&key])}),
    );
    let m = mint_code(&env, &id, &redirect(), |_| {}).await;
    let a = key.sign(&claims(&id, &env.url("/token"), SystemTime::now()));
    let r = post(
        &env,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &m.code),
            ("code_verifier", &m.verifier),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap();
    let at = r.body["access_token"].as_str().unwrap();

    // Without authentication: refused, nothing revoked.
    post(&env, "/revoke", &[("token", rt), ("client_id", &id)], None)
        .await
        .assert_error(401, "invalid_client");
    assert!(verify(&env, at).await.is_ok());
    // With an assertion whose aud is the issuer.
    let a = key.sign(&claims(&id, &env.base, SystemTime::now()));
    let r = post(
        &env,
        "/revoke",
        &[
            ("token", rt),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &a),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(verify(&env, at).await, Err(TokenError::Revoked));
}

#[tokio::test]
async fn revoke_unknown_token_is_200_and_other_clients_tokens_are_refused() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let other = env.publish_client("other", json!({}));
    let (at, rt) = tokens(&env, &id).await;
    let r = post(
        &env,
        "/revoke",
        &[("token", "no-such-token"), ("client_id", &id)],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    post(
        &env,
        "/revoke",
        &[("token", &rt), ("client_id", &other)],
        None,
    )
    .await
    .assert_error(400, "unauthorized_client");
    post(
        &env,
        "/revoke",
        &[("token", &at), ("client_id", &other)],
        None,
    )
    .await
    .assert_error(400, "unauthorized_client");
    assert!(verify(&env, &at).await.is_ok(), "still alive");
    post(&env, "/revoke", &[("client_id", &id)], None)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn metadata_advertises_cimd_and_endpoints() {
    let env = TestEnv::start().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, headers, m) = get_json(&env, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["cache-control"], "public, max-age=300");
        assert_eq!(m["issuer"], env.base);
        assert_eq!(m["authorization_endpoint"], env.url("/authorize"));
        assert_eq!(m["token_endpoint"], env.url("/token"));
        assert_eq!(m["registration_endpoint"], env.url("/register"));
        assert_eq!(m["revocation_endpoint"], env.url("/revoke"));
        assert_eq!(m["jwks_uri"], env.url("/jwks.json"));
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(
            m["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        let methods = json!([
            "none",
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post"
        ]);
        assert_eq!(m["token_endpoint_auth_methods_supported"], methods);
        assert_eq!(m["revocation_endpoint_auth_methods_supported"], methods);
        let algs = m["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap();
        for alg in ["RS256", "ES256", "EdDSA"] {
            assert!(algs.contains(&json!(alg)), "{alg}");
        }
        assert_eq!(m["scopes_supported"], json!(["mcp"]));
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    }
    // No path-inserted document for an issuer without a path.
    let (status, _, _) = get_json(&env, "/.well-known/oauth-authorization-server/tenant").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn metadata_is_path_inserted_for_an_issuer_with_a_path() {
    let env = TestEnv::start_with(|c| {
        let url = format!(
            "{}/tenant",
            c.server.public_url.as_str().trim_end_matches('/')
        );
        c.server.public_url = url.parse().unwrap();
    })
    .await;
    let issuer = env.url("/tenant");
    for path in [
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
    ] {
        let (status, _, m) = get_json(&env, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(m["issuer"], issuer, "{path}");
        assert_eq!(m["token_endpoint"], format!("{issuer}/token"));
    }
    for path in [
        "/.well-known/oauth-authorization-server/other",
        "/other/.well-known/openid-configuration",
    ] {
        assert_eq!(get_json(&env, path).await.0, 404, "{path}");
    }
}

#[tokio::test]
async fn jwks_publishes_public_keys_only_with_cache_header() {
    let env = TestEnv::start().await;
    let (status, headers, jwks) = get_json(&env, "/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert!(keys[0].get("d").is_none());
}

#[tokio::test]
async fn restart_keeps_the_signing_key_and_issued_tokens() {
    let mut env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let (at, rt) = tokens(&env, &id).await;
    let before = get_json(&env, "/jwks.json").await.2;
    env.restart().await;
    assert_eq!(
        get_json(&env, "/jwks.json").await.2,
        before,
        "same kid after restart"
    );
    assert!(verify(&env, &at).await.is_ok());
    assert_eq!(refresh(&env, &id, &rt, &[]).await.status, 200);
}

#[tokio::test]
async fn es256_signing_key_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let path = dir.path().join("signing.pem");
    std::fs::write(&path, kp.serialize_pem()).unwrap();
    let env = TestEnv::start_with(|c| c.tokens.signing_key_file = Some(path.clone())).await;
    let id = env.publish_client("app", json!({}));
    let (at, _) = tokens(&env, &id).await;
    let header = jsonwebtoken::decode_header(&at).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwks = get_json(&env, "/jwks.json").await.2;
    let first = &jwks["keys"][0];
    assert_eq!(first["kty"], "EC");
    assert_eq!(first["kid"].as_str(), header.kid.as_deref());
    assert!(verify(&env, &at).await.is_ok());
}

#[tokio::test]
async fn register_errors_name_the_problem() {
    let env = TestEnv::start().await;
    let cases = [
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
    ];
    for (body, code) in cases {
        let resp = http_client()
            .post(env.url("/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], code, "{body}");
        assert!(!v["error_description"].as_str().unwrap().is_empty());
    }
    // A public DCR client gets no secret and can use the code grant without one.
    let resp = http_client()
        .post(env.url("/register"))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:7777/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let reg: Value = resp.json().await.unwrap();
    assert!(reg.get("client_secret").is_none());
    let id = reg["client_id"].as_str().unwrap();
    let m = mint_code(&env, id, "http://127.0.0.1:7777/cb", |_| {}).await;
    assert_eq!(exchange(&env, &m, &[]).await.status, 200);
}

/// SPEC §4: requests that can trigger a fetch are rate-limited per source IP — `/token` and
/// `/revoke` included (client authentication may fetch a document or a `jwks_uri`).
#[tokio::test]
async fn token_and_revoke_are_rate_limited_per_source_ip() {
    let env = TestEnv::start_with(|c| c.limits.per_ip_per_second = 1).await;
    // Burst of two seconds' worth (2), then 429 with an OAuth error body.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body) = env.token(&[("grant_type", "authorization_code")]).await;
        statuses.push((
            status.as_u16(),
            body["error"].as_str().unwrap_or("").to_owned(),
        ));
    }
    assert_ne!(
        statuses[0].0, 429,
        "first requests pass the limit: {statuses:?}"
    );
    assert_eq!(statuses[3].0, 429, "{statuses:?}");
    assert_eq!(statuses[3].1, "temporarily_unavailable");
    let (status, body) = env.post_json("/revoke", &[("token", "x")], None).await;
    assert_eq!(
        status, 429,
        "the same address is still over its limit: {body}"
    );
}

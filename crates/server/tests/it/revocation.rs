//! Token revocation (RFC 7009): a refresh or an access token revokes its whole family,
//! `private_key_jwt` clients authenticate as at `/token`, unknown tokens are 200 and other
//! clients' tokens are refused.

use crate::back_util::{self, JWT_BEARER, redirect, tokens};
use crate::common;
use cimdgate_test_support::keys as test_keys;
use std::time::SystemTime;

use serde_json::json;

use back_util::{mint_code, post, refresh, verify};
use cimdgate_server::tokens::TokenError;
use common::TestEnv;
use test_keys::{TestKey, claims, jwks_json};

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

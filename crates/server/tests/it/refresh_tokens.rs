//! The refresh-token grant (RFC 6749 §6, OAuth 2.1 §4.3.1): rotation, reuse revokes the family,
//! CIMD clients may refresh, scope may only narrow and the resource must match.

use crate::back_util::{self, redirect};
use crate::common;

use serde_json::json;

use back_util::{exchange, mint_code, refresh, verify};
use cimdgate_server::tokens::TokenError;
use common::TestEnv;

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

/// A grant ends a fixed time after the user approved it, however often it is refreshed (review
/// finding M3): an approval older than `tokens.grant_lifetime_secs` refreshes no more.
#[tokio::test]
async fn a_grant_older_than_its_lifetime_refreshes_no_more() {
    let env = TestEnv::start_with(|c| c.tokens.grant_lifetime_secs = 3600).await;
    let id = env.publish_client("app", json!({}));
    let fresh = mint_code(&env, &id, &redirect(), |r| {
        r.grant.created_at = Some(std::time::SystemTime::now());
    })
    .await;
    let rt = exchange(&env, &fresh, &[]).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(refresh(&env, &id, &rt, &[]).await.status, 200);

    let old = mint_code(&env, &id, &redirect(), |r| {
        r.grant.created_at =
            Some(std::time::SystemTime::now() - std::time::Duration::from_secs(3601));
    })
    .await;
    let rt = exchange(&env, &old, &[]).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = refresh(&env, &id, &rt, &[]).await;
    r.assert_error(400, "invalid_grant");
    assert!(
        r.description().contains("sign in again"),
        "{}",
        r.description()
    );
}

//! The authorization-code exchange at `/token` (RFC 6749 §4.1.3, OAuth 2.1 §4.1.3, RFC 7636
//! §4.6, RFC 8707 §2.2): a verifiable token bound to the resource, PKCE, single use and reuse
//! revocation, the redirect URI and resource binding, a changed client document, concurrent
//! exchanges. Codes are minted in the store (white-box) so these tests do not depend on the
//! login pages; the login flow itself is tested in `authorization_request` and
//! `login_and_consent`.

use crate::back_util::{self, assertion_form, pkjwt_client, redirect};
use crate::common;
use cimdgate_test_support::keys as test_keys;
use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use back_util::{exchange, mint_code, post, refresh, verify};
use cimdgate_server::tokens::TokenError;
use common::TestEnv;
use test_keys::{TestKey, claims};

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

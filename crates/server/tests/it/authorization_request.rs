//! `GET /authorize` over real HTTP: each named check, proven by a test named after its rule.

use crate::common;

use std::time::SystemTime;

use axum::http::StatusCode;
use cimdgate_store::{CodeRedemption, TokenHash};
use common::{Page, STATE, TestEnv, pkce_pair, query_map};

/// Assert `page` redirects to `redirect` with `error`, the original `state` and our `iss`.
fn assert_error_redirect(env: &TestEnv, page: &Page, redirect: &str, error: &str) {
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let loc = page.location().expect("Location");
    assert!(loc.starts_with(redirect), "{loc}");
    let q = query_map(&loc);
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{loc}");
    assert!(
        q.get("error_description").is_some_and(|d| !d.is_empty()),
        "{loc}"
    );
    assert_eq!(q.get("state").map(String::as_str), Some(STATE), "{loc}");
    assert_eq!(
        q.get("iss"),
        Some(&env.base),
        "RFC 9207 iss on error: {loc}"
    );
    assert!(!q.contains_key("code"));
}

/// Assert `page` is an error page (no redirect) whose text contains `needle`.
fn assert_error_page(page: &Page, status: StatusCode, needle: &str) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(
        page.location().is_none(),
        "must never redirect: {:?}",
        page.location()
    );
    assert!(
        page.body.contains(needle),
        "page should say {needle:?}: {}",
        page.body
    );
}

fn with(params: &[(String, String)], key: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = params.iter().filter(|(k, _)| k != key).cloned().collect();
    if let Some(v) = value {
        p.push((key.to_owned(), v.to_owned()));
    }
    p
}

#[tokio::test]
async fn cimd_public_client_reaches_client_redirect_with_code_state_and_iss() {
    let env = TestEnv::start().await;
    let client_id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (code, _verifier) = env.authorize_code(&client_id, &redirect).await;
    match env
        .store()
        .take_code(&TokenHash::of(&code), SystemTime::now())
        .await
        .unwrap()
    {
        CodeRedemption::Redeemed(r) => {
            assert_eq!(r.grant.client_id, client_id);
            assert_eq!(r.redirect_uri, redirect);
            assert_eq!(r.grant.resource, env.resource());
            assert_eq!(r.grant.scope.to_string(), "mcp");
            assert_eq!(r.grant.subject, "alice");
            assert!(
                r.grant
                    .document
                    .as_ref()
                    .is_some_and(|d| d.digest.len() == 64 && d.auth_method == "none")
            );
            assert!(r.expires_at <= SystemTime::now() + std::time::Duration::from_secs(60));
        }
        other => panic!("code not stored: {other:?}"),
    }
}

#[tokio::test]
async fn redirect_uri_mismatch_shows_error_page_without_redirect() {
    let env = TestEnv::start().await;
    let client_id = env.publish_client("app", serde_json::json!({}));
    let (_, challenge) = pkce_pair();
    let base = env.authorize_params(&client_id, "https://evil.test/callback", &challenge);
    let b = env.browser();
    let page = b.get(&env.authorize_url(&base)).await;
    assert_error_page(&page, StatusCode::BAD_REQUEST, "not registered");
    assert!(page.body.contains("evil.test"));
    // API callers get JSON saying the same.
    let page = b
        .get_with(&env.authorize_url(&base), &[("accept", "application/json")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.location().is_none());
    let json: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert!(
        json["error_description"]
            .as_str()
            .unwrap()
            .contains("not registered"),
        "{json}"
    );
}

#[tokio::test]
async fn invalid_client_shows_error_page_saying_what_is_wrong() {
    let env = TestEnv::start().await;
    let (_, challenge) = pkce_pair();
    let missing = env.client_url("missing");
    let cases = [
        (Some("http://cimd.test/app"), "https"),
        (Some(missing.as_str()), "cannot be used"),
        (Some("unknown-dcr-id"), "unknown client_id"),
        (None, "no client_id"),
    ];
    for (client_id, needle) in cases {
        let params = env.authorize_params(
            client_id.unwrap_or(""),
            "https://cimd.test/callback",
            &challenge,
        );
        let params = with(&params, "client_id", client_id);
        let page = env.browser().get(&env.authorize_url(&params)).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{client_id:?}: {}",
            page.body
        );
        assert!(page.location().is_none(), "{client_id:?}");
        assert!(
            page.body.contains(needle),
            "{client_id:?} should say {needle:?}: {}",
            page.body
        );
    }
}

#[tokio::test]
async fn blocked_domain_shows_error_page_and_is_never_fetched() {
    let env = TestEnv::start_with(|c| c.cimd.blocked_domains = vec!["blocked.test".into()]).await;
    let client_id = env.publish_client_on("blocked.test", "app", serde_json::json!({}));
    let (_, challenge) = pkce_pair();
    let params = env.authorize_params(&client_id, "https://blocked.test/callback", &challenge);
    let page = env.browser().get(&env.authorize_url(&params)).await;
    assert_error_page(&page, StatusCode::FORBIDDEN, "not allowed");
    assert_eq!(env.cimd.hits("/app"), 0, "a blocked host is never fetched");
    assert_eq!(env.cimd.connections(), 0, "not even connected to");
}

/// A client on an allowed host whose `jwks_uri` is on a blocked host is refused too (review
/// Low finding: blocked domains apply to `jwks_uri`); the key set is never fetched.
#[tokio::test]
async fn a_jwks_uri_on_a_blocked_domain_refuses_the_client() {
    let env = TestEnv::start_with(|c| c.cimd.blocked_domains = vec!["*.blocked.test".into()]).await;
    let port = env.cimd.port();
    let client_id = env.publish_client(
        "app",
        serde_json::json!({
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": format!("https://keys.blocked.test:{port}/jwks.json"),
        }),
    );
    let (_, challenge) = pkce_pair();
    let params = env.authorize_params(
        &client_id,
        &TestEnv::default_redirect("cimd.test"),
        &challenge,
    );
    let page = env.browser().get(&env.authorize_url(&params)).await;
    assert_error_page(&page, StatusCode::FORBIDDEN, "jwks_uri");
    assert_eq!(
        env.cimd.hits("/jwks.json"),
        0,
        "the blocked key host is never fetched"
    );
}

#[tokio::test]
async fn unknown_resource_redirects_with_invalid_target() {
    let env = TestEnv::start().await;
    let client_id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (_, challenge) = pkce_pair();
    let params = env.authorize_params(&client_id, &redirect, &challenge);
    for bad in ["https://evil.test/mcp", &env.url("/other")] {
        let page = env
            .browser()
            .get(&env.authorize_url(&with(&params, "resource", Some(bad))))
            .await;
        assert_error_redirect(&env, &page, &redirect, "invalid_target");
    }
    // Absent resource → the only configured one.
    let page = env
        .browser()
        .get(&env.authorize_url(&with(&params, "resource", None)))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

#[tokio::test]
async fn pkce_plain_or_missing_challenge_is_refused_with_invalid_request() {
    let env = TestEnv::start().await;
    let client_id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (verifier, challenge) = pkce_pair();
    let params = env.authorize_params(&client_id, &redirect, &challenge);
    let plain = with(
        &with(&params, "code_challenge_method", Some("plain")),
        "code_challenge",
        Some(&verifier),
    );
    let cases = [
        ("plain method refused", plain),
        (
            "missing code_challenge",
            with(&params, "code_challenge", None),
        ),
        (
            "missing method (defaults to plain)",
            with(&params, "code_challenge_method", None),
        ),
    ];
    for (name, p) in cases {
        let page = env.browser().get(&env.authorize_url(&p)).await;
        assert_eq!(page.status, StatusCode::FOUND, "{name}");
        assert_error_redirect(&env, &page, &redirect, "invalid_request");
    }
}

#[tokio::test]
async fn scope_outside_resource_or_document_is_invalid_scope() {
    let env =
        TestEnv::start_with(|c| c.resources[0].scopes = vec!["mcp".into(), "extra".into()]).await;
    let redirect = TestEnv::default_redirect("cimd.test");
    let narrow = env.publish_client("narrow", serde_json::json!({ "scope": "mcp" }));
    let wide = env.publish_client("wide", serde_json::json!({ "scope": "mcp admin" }));
    let (_, challenge) = pkce_pair();
    let cases = [
        (&narrow, "mcp", None),
        (&narrow, "extra", Some("invalid_scope")), // not declared by the document
        (&wide, "admin", Some("invalid_scope")),   // declared, but not offered: no bypass
        (&wide, "mcp extra", Some("invalid_scope")),
        (&wide, "nonsense", Some("invalid_scope")),
    ];
    for (client, scope, want) in cases {
        let params = with(
            &env.authorize_params(client, &redirect, &challenge),
            "scope",
            Some(scope),
        );
        let page = env.browser().get(&env.authorize_url(&params)).await;
        match want {
            None => assert_eq!(page.status, StatusCode::OK, "{scope}: {}", page.body),
            Some(e) => assert_error_redirect(&env, &page, &redirect, e),
        }
    }
}

#[tokio::test]
async fn error_redirects_carry_state_and_iss() {
    let env = TestEnv::start().await;
    let client_id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (_, challenge) = pkce_pair();
    let params = env.authorize_params(&client_id, &redirect, &challenge);
    let mut dup = params.clone();
    dup.push(("scope".into(), "mcp".into()));
    let cases = [
        (
            with(&params, "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (with(&params, "response_type", None), "invalid_request"),
        (dup, "invalid_request"),
    ];
    for (p, error) in cases {
        let page = env.browser().get(&env.authorize_url(&p)).await;
        assert_error_redirect(&env, &page, &redirect, error);
    }
}

#[tokio::test]
async fn pages_carry_anti_framing_csp_and_no_store_headers() {
    let env = TestEnv::start().await;
    let client_id = env.publish_client("app", serde_json::json!({}));
    let (_, challenge) = pkce_pair();
    let good = env.authorize_params(
        &client_id,
        &TestEnv::default_redirect("cimd.test"),
        &challenge,
    );
    let bad = with(&good, "redirect_uri", Some("https://evil.test/cb"));
    for params in [good, bad] {
        let page = env.browser().get(&env.authorize_url(&params)).await;
        assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
        let csp = page.header("content-security-policy").unwrap();
        for part in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{csp}");
        }
        assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(
            page.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
        assert!(!page.body.contains("<script"), "no JavaScript");
    }
}

fn store_fingerprint(env: &TestEnv) -> Vec<(String, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(env.dir.path().join("store")).unwrap() {
        let e = e.unwrap();
        let bytes = std::fs::read(e.path()).unwrap();
        out.push((
            e.file_name().to_string_lossy().into_owned(),
            bytes.len() as u64,
            bytes,
        ));
    }
    out.sort();
    out
}

#[tokio::test]
async fn unauthenticated_authorize_does_not_write_to_the_store() {
    let env = TestEnv::start().await;
    let client_id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (_, challenge) = pkce_pair();
    // Warm-up: the first sight of a client writes the inventory once.
    let first = env
        .browser()
        .get(&env.authorize_url(&env.authorize_params(&client_id, &redirect, &challenge)))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let before = store_fingerprint(&env);
    let client = common::http_client();
    for i in 0..200 {
        let mut params = env.authorize_params(&client_id, &redirect, &challenge);
        params.push(("nonce".into(), format!("n{i}")));
        params = with(&params, "state", Some(&format!("state-{i}")));
        let r = client.get(env.authorize_url(&params)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        before == store_fingerprint(&env),
        "200 unauthenticated GET /authorize changed the store"
    );
}

#[tokio::test]
async fn cookies_drop_secure_and_host_prefix_on_http_loopback() {
    let env = TestEnv::start().await;
    let client_id = env.publish_client("app", serde_json::json!({}));
    let (_, challenge) = pkce_pair();
    let url = env.authorize_url(&env.authorize_params(
        &client_id,
        &TestEnv::default_redirect("cimd.test"),
        &challenge,
    ));
    let b = env.browser();
    let login = b.get(&url).await;
    let after = b.login(&login).await;
    let cookies: Vec<String> = login
        .set_cookies()
        .into_iter()
        .chain(after.set_cookies())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("cimdgate_session=")),
        "{cookies:?}"
    );
    for c in &cookies {
        assert!(!c.contains("Secure") && !c.starts_with("__Host-"), "{c}");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"),
            "{c}"
        );
    }
}

/// An error after the redirect URI is verified is sent back to it only when it is `http`,
/// `https` or a reverse-DNS app scheme (review finding M7): anyone can publish a client whose
/// registered redirect is a protocol handler, and an error needs no user interaction.
#[tokio::test]
async fn errors_are_never_auto_redirected_to_other_protocol_handlers() {
    let env = TestEnv::start().await;
    let (_, challenge) = pkce_pair();
    for (name, redirect, redirected) in [
        ("handler", "ms-msdt:/id", false),
        ("short-scheme", "myapp:/cb", false),
        ("native", "com.example.app:/cb", true),
    ] {
        let client_id = env.publish_client(name, serde_json::json!({"redirect_uris": [redirect]}));
        let params = env.authorize_params(&client_id, redirect, &challenge);
        let page = env
            .browser()
            .get(&env.authorize_url(&with(&params, "response_type", Some("token"))))
            .await;
        if redirected {
            assert_eq!(page.status, StatusCode::FOUND, "{name}: {}", page.body);
            assert!(page.location().unwrap().starts_with(redirect), "{name}");
        } else {
            assert_error_page(&page, StatusCode::BAD_REQUEST, "response_type");
        }
    }
}

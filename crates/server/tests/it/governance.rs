//! Governance of clients, in process: the inventory a real login fills, and what an
//! administrator's block, revocation, approval (with a scope ceiling) and a changed document do
//! to `/authorize`, `/token`, refresh and the gateway. (The same through the shipped binary, the
//! admin API and two instances on one Redis: `crates/cimdgate/tests/governance.rs`.)

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, TestEnv, pkce_pair, query_map};
use cimdgate_store::ClientStatus;

/// Log in with `client_id` (approving), exchange the code: `(access, refresh)`.
async fn sign_in(env: &TestEnv, client_id: &str) -> (String, String) {
    let redirect = TestEnv::default_redirect("cimd.test");
    let (code, verifier) = env.authorize_code(client_id, &redirect).await;
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", client_id),
            ("redirect_uri", &redirect),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(env: &TestEnv, client_id: &str, rt: &str) -> (StatusCode, Value) {
    env.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", client_id),
    ])
    .await
}

/// GET /authorize for `client_id`: the response status and body, and the `Location` if any.
async fn authorize(env: &TestEnv, client_id: &str, scope: &str) -> common::Page {
    let (_, challenge) = pkce_pair();
    let mut params = env.authorize_params(
        client_id,
        &TestEnv::default_redirect("cimd.test"),
        &challenge,
    );
    for p in &mut params {
        if p.0 == "scope" {
            p.1 = scope.to_owned();
        }
    }
    env.browser().get(&env.authorize_url(&params)).await
}

/// Whether the gateway lets `token` through to the MCP server (the demo server may still
/// answer 406 to the bare test request: anything but the gateway's 401).
async fn gateway_accepts(env: &TestEnv, token: &str) -> bool {
    env.call_resource(token).await.0 != StatusCode::UNAUTHORIZED
}

/// Poll the gateway with `token` until it accepts (`want`) or refuses it (at most `within`).
async fn gateway_answers(env: &TestEnv, token: &str, want: bool, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if gateway_accepts(env, token).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn a_login_fills_the_inventory_with_the_document_the_user_and_the_grant() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({"contacts": ["ops@cimd.test"]}));
    let (at, _rt) = sign_in(&env, &id).await;
    assert!(gateway_accepts(&env, &at).await);
    let gov = &env.server().state.services.governance;
    gov.flush().await;
    let rec = env.store().get_client_record(&id).await.unwrap().unwrap();
    assert_eq!(rec.admin.status, ClientStatus::Active);
    assert_eq!(rec.host, "cimd.test");
    assert_eq!(rec.snapshot.client_name.as_deref(), Some("Test client app"));
    assert_eq!(rec.snapshot.contacts, ["ops@cimd.test"]);
    assert_eq!(
        rec.snapshot.redirect_uris,
        [TestEnv::default_redirect("cimd.test")]
    );
    assert_eq!(
        rec.snapshot.token_endpoint_auth_method.as_deref(),
        Some("none")
    );
    assert!(rec.snapshot.digest.is_some());
    assert_eq!(rec.users, [common::USERNAME]);
    assert_eq!(
        rec.tokens_issued, 1,
        "one code exchange, counted by the flush"
    );
    assert!(rec.last_fetch.is_some_and(|f| f.ok));
    let grants = env
        .store()
        .list_grants(&id, std::time::SystemTime::now())
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grant.subject, common::USERNAME);
}

#[tokio::test]
async fn a_blocked_client_is_refused_at_authorize_token_refresh_and_the_gateway_until_unblocked() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let (at, rt) = sign_in(&env, &id).await;
    let gov = &env.server().state.services.governance;
    gov.block(&id, Some("leaked key"), "127.0.0.1")
        .await
        .unwrap();

    let page = authorize(&env, &id, "mcp").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.location().is_none(), "never a redirect");
    assert!(
        page.body.contains("blocked by an administrator"),
        "{}",
        page.body
    );
    assert!(page.body.contains("leaked key"), "{}", page.body);
    let (status, body) = refresh(&env, &id, &rt).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        gateway_answers(&env, &at, false, Duration::from_secs(6)).await,
        "the gateway refuses the blocked client's access token within 5 s"
    );

    gov.unblock(&id, "127.0.0.1").await.unwrap();
    assert!(
        gateway_answers(&env, &at, true, Duration::from_secs(6)).await,
        "unblocking restores the access token"
    );
    let (status, body) = refresh(&env, &id, &rt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn revoking_a_client_ends_its_grants_and_asks_the_user_again() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let (at, rt) = sign_in(&env, &id).await;
    let (_, rt2) = sign_in(&env, &id).await;
    let gov = &env.server().state.services.governance;

    let none = gov.revoke(&id, Some("nobody"), "127.0.0.1").await.unwrap();
    assert_eq!(
        none.grants_revoked, 0,
        "another user's grants are untouched"
    );
    assert_eq!(refresh(&env, &id, &rt2).await.0, StatusCode::OK);

    let all = gov
        .revoke(&id, Some(common::USERNAME), "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(all.grants_revoked, 2);
    let (status, body) = refresh(&env, &id, &rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        gateway_answers(&env, &at, false, Duration::from_secs(6)).await,
        "the revoked grant's access token is refused within 5 s"
    );
    assert!(
        env.store()
            .list_grants(&id, std::time::SystemTime::now())
            .await
            .unwrap()
            .is_empty()
    );
    let unknown = gov
        .revoke("https://cimd.test/none", None, "127.0.0.1")
        .await;
    assert!(
        unknown.is_err(),
        "an unknown client is an error, not a silent no-op"
    );
}

#[tokio::test]
async fn approval_mode_shows_a_pending_page_until_approved_and_applies_the_scope_ceiling() {
    let env = TestEnv::start_with(|c| {
        c.cimd.mode = cimd::policy::TrustMode::Approval;
        c.resources[0].scopes = vec!["mcp".into(), "admin".into()];
    })
    .await;
    let id = env.publish_client("app", json!({}));
    let page = authorize(&env, &id, "mcp").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.location().is_none(), "no redirect, no code");
    assert!(
        page.body.contains("Awaiting administrator approval"),
        "{}",
        page.body
    );
    let rec = env.store().get_client_record(&id).await.unwrap().unwrap();
    assert_eq!(rec.admin.status, ClientStatus::Pending);

    let gov = &env.server().state.services.governance;
    gov.approve(&id, Some("mcp"), "127.0.0.1").await.unwrap();
    let beyond = authorize(&env, &id, "mcp admin").await;
    let location = beyond.location().expect("an error redirect once approved");
    let q = query_map(&location);
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("invalid_scope"),
        "{location}"
    );
    let (at, _) = sign_in(&env, &id).await;
    assert!(gateway_accepts(&env, &at).await);

    gov.deny(&id, None, "127.0.0.1").await.unwrap();
    let page = authorize(&env, &id, "mcp").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("not approved"), "{}", page.body);
}

#[tokio::test]
async fn a_changed_document_is_recorded_in_the_history_and_the_user_is_asked_again() {
    let env = TestEnv::start_with(|c| {
        c.cimd.cache_min_ttl_secs = 0;
        c.cimd.cache_default_ttl_secs = 0;
    })
    .await;
    let id = env.publish_client("app", json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let browser = env.browser();
    let (_, challenge) = pkce_pair();
    let url = env.authorize_url(&env.authorize_params(&id, &redirect, &challenge));
    browser.login_and_consent(&url, true, true).await;
    // Remembered: the next authorization redirects at once.
    let again = browser.get(&url).await;
    assert!(again.status.is_redirection(), "{}", again.body);

    env.publish_client(
        "app",
        json!({"redirect_uris": [redirect, "https://cimd.test/other"]}),
    );
    let page = browser.get(&url).await;
    assert!(
        page.status.is_success() && page.form().is_some_and(|f| f.has("decision")),
        "the consent page again after the document changed: {} {}",
        page.status,
        page.body
    );
    let rec = env.store().get_client_record(&id).await.unwrap().unwrap();
    assert_eq!(rec.history.len(), 1, "{:?}", rec.history);
    let change = &rec.history[0].changes[0];
    assert_eq!(change.field, "redirect_uris");
    assert!(change.new.contains("https://cimd.test/other"), "{change:?}");
    assert!(
        !change.old.contains("https://cimd.test/other"),
        "{change:?}"
    );
}

/// Review finding M8: every valid document URL on a wildcard domain would add a record; the
/// inventory stops at `[cimd] inventory_max_clients` (the client still signs in when the policy
/// admits it, unrecorded).
#[tokio::test]
async fn the_inventory_stops_growing_at_its_bound() {
    let env = TestEnv::start_with(|c| c.cimd.inventory_max_clients = 1).await;
    let first = env.publish_client("first", json!({}));
    let second = env.publish_client("second", json!({}));
    sign_in(&env, &first).await;
    sign_in(&env, &second).await;
    let all = env.store().list_client_records().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.client_id.as_str()).collect();
    assert_eq!(ids, [first.as_str()]);
}

/// `[cimd] reapprove_on_change`: an approved client whose redirect URIs change waits for an
/// administrator again; a new name alone does not.
#[tokio::test]
async fn with_reapprove_on_change_a_changed_redirect_returns_an_approved_client_to_pending() {
    let env = TestEnv::start_with(|c| {
        c.cimd.mode = cimd::policy::TrustMode::Approval;
        c.cimd.reapprove_on_change = true;
        c.cimd.cache_min_ttl_secs = 0;
        c.cimd.cache_default_ttl_secs = 0;
    })
    .await;
    let id = env.publish_client("app", json!({}));
    assert_eq!(
        authorize(&env, &id, "mcp").await.status,
        StatusCode::FORBIDDEN
    );
    let gov = &env.server().state.services.governance;
    gov.approve(&id, None, "127.0.0.1").await.unwrap();
    sign_in(&env, &id).await;

    env.publish_client("app", json!({"client_name": "Renamed"}));
    let page = authorize(&env, &id, "mcp").await;
    assert_ne!(
        page.status,
        StatusCode::FORBIDDEN,
        "a new name is not material: {}",
        page.body
    );

    env.publish_client(
        "app",
        json!({"client_name": "Renamed", "redirect_uris": [TestEnv::default_redirect("cimd.test"), "https://cimd.test/new"]}),
    );
    let page = authorize(&env, &id, "mcp").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("Awaiting administrator approval"),
        "{}",
        page.body
    );
    let rec = env.store().get_client_record(&id).await.unwrap().unwrap();
    assert_eq!(rec.admin.status, ClientStatus::Pending);
    assert!(
        rec.admin
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("redirect_uris")),
        "{:?}",
        rec.admin
    );
    assert_eq!(rec.history.len(), 2, "{:?}", rec.history);
}

/// A known client's failing document is recorded as its last fetch (outcome and reason).
#[tokio::test]
async fn a_failed_fetch_of_a_known_client_is_recorded_as_its_last_fetch() {
    let env = TestEnv::start_with(|c| {
        c.cimd.cache_min_ttl_secs = 0;
        c.cimd.cache_default_ttl_secs = 0;
        c.cimd.negative_ttl_secs = 0;
    })
    .await;
    let id = env.publish_client("app", json!({}));
    sign_in(&env, &id).await;
    env.set_response("/app", StatusCode::NOT_FOUND, &[], "gone");
    let page = authorize(&env, &id, "mcp").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    let rec = env.store().get_client_record(&id).await.unwrap().unwrap();
    let fetch = rec.last_fetch.expect("a last fetch");
    assert!(!fetch.ok);
    assert!(
        fetch.reason.as_deref().is_some_and(|r| r.contains("404")),
        "{fetch:?}"
    );
}

//! The admin listener (`[admin]`): `/metrics`, `/healthz`, `/readyz` without a token, the
//! `/admin/` area only with it (constant-time check, 401 JSON otherwise, per-IP 429), and the
//! Prometheus metrics a login flow moves — parsed with a Prometheus text parser.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::back_util::{self, redirect};
use crate::common::{self, TestEnv};

/// A 43-character admin token (the length a generated one has).
const TOKEN: &str = "adm-0123456789abcdefghijklmnopqrstuvwxyzABCD";

async fn with_token() -> TestEnv {
    TestEnv::start_with(|c| c.admin.token = Some(TOKEN.into())).await
}

fn admin_url(env: &TestEnv, path: &str) -> String {
    let addr = env.server().admin_addr.expect("admin listener on");
    format!("http://{addr}{path}")
}

async fn get(url: &str, auth: Option<&str>) -> (u16, String) {
    let mut req = common::http_client().get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn admin_area_needs_the_admin_token() {
    let env = with_token().await;
    let whoami = admin_url(&env, "/admin/v1/whoami");
    let wrong_same_length = format!("Bearer {}X", &TOKEN[..TOKEN.len() - 1]);
    for auth in [
        None,
        Some("Bearer"),
        Some("Bearer "),
        Some("Basic YWRtaW46YWRtaW4="),
        Some(wrong_same_length.as_str()),
        Some(&*format!("Bearer {TOKEN}x")),
        Some(&*format!("Bearer {}", &TOKEN[..20])),
    ] {
        let (status, body) = get(&whoami, auth).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "unauthorized", "{auth:?}: {body}");
        assert!(v.get("ok").is_none(), "no data without the token: {body}");
    }
    // Unknown admin paths are refused the same way before the token is checked.
    let (status, _) = get(&admin_url(&env, "/admin/v1/nope"), None).await;
    assert_eq!(status, 401);

    let (status, body) = get(&whoami, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"ok": true})
    );
    // The scheme is case-insensitive (RFC 7235 §2.1).
    let (status, _) = get(&whoami, Some(&format!("bearer {TOKEN}"))).await;
    assert_eq!(status, 200);
    let (status, body) = get(
        &admin_url(&env, "/admin/v1/nope"),
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn admin_area_is_closed_without_a_configured_token() {
    let env = TestEnv::start().await;
    let (status, body) = get(
        &admin_url(&env, "/admin/v1/whoami"),
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn admin_requests_are_rate_limited_per_ip() {
    let env = with_token().await;
    let url = admin_url(&env, "/admin/v1/whoami");
    // The burst allowance is 2 × ADMIN_PER_IP_PER_SECOND: 10 × that at once must exceed it,
    // even on a loaded machine.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..(cimdgate_server::admin::ADMIN_PER_IP_PER_SECOND * 10) {
        let url = url.clone();
        set.spawn(async move { get(&url, Some("Bearer wrong")).await.0 });
    }
    let statuses = set.join_all().await;
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    // The public listener is not affected.
    let (status, _) = get(&env.url("/healthz"), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn metrics_and_health_are_on_the_admin_listener_only() {
    let env = TestEnv::start().await;
    let (status, body) = get(&admin_url(&env, "/metrics"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&admin_url(&env, "/healthz"), None).await;
    assert_eq!(status, 200);
    let (status, body) = get(&admin_url(&env, "/readyz"), None).await;
    assert_eq!((status, body.as_str()), (200, "ready"));
    let (status, _) = get(&env.url("/metrics"), None).await;
    assert_eq!(status, 404, "/metrics must not be public");
    let (status, _) = get(
        &env.url("/admin/v1/whoami"),
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, 404, "/admin must not be public");
}

#[tokio::test]
async fn admin_listener_needs_its_own_port() {
    let env = TestEnv::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = env.config.clone();
    config.server.listen = listener.local_addr().unwrap();
    config.admin.listen = cimdgate_server::config::AdminListen::Addr(config.server.listen);
    let err = cimdgate_server::config::Config::check(&config).unwrap_err();
    assert!(err.to_string().contains("admin.listen"), "{err}");
}

/// Every sample of the process's `/metrics`, keyed by `name{sorted labels}`; histograms by
/// their `_count`.
async fn scrape(env: &TestEnv) -> HashMap<String, f64> {
    let (status, text) = get(&admin_url(env, "/metrics"), None).await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let mut out = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    out
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn a_login_flow_moves_the_counters() {
    let env = TestEnv::start().await;
    let id = env.publish_client("metrics-app", json!({}));
    let before = scrape(&env).await;

    // Browser login + consent (fetches the document), the code exchange, a refresh, a replayed
    // refresh token, a call through the gateway, a revocation, an unmatched path.
    let (code, verifier) = env.authorize_code(&id, &redirect()).await;
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", &redirect()),
            ("client_id", &id),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let rt0 = body["refresh_token"].as_str().unwrap().to_owned();
    let at = body["access_token"].as_str().unwrap().to_owned();
    let status = common::http_client()
        .post(env.resource())
        .bearer_auth(&at)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let r1 = back_util::refresh(&env, &id, &rt0, &[]).await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    back_util::refresh(&env, &id, &rt0, &[])
        .await
        .assert_error(400, "invalid_grant");
    let (status, _) = env
        .post_json("/revoke", &[("token", &at), ("client_id", &id)], None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = get(&env.url("/no/such/path-4711"), None).await;
    assert_eq!(status, 404);

    let after = scrape(&env).await;
    for (key, at_least) in [
        ("cimdgate_http_requests_total{route=/token,status=200}", 2.0),
        (
            "cimdgate_http_requests_total{route=/authorize,status=200}",
            1.0,
        ),
        (
            "cimdgate_http_requests_total{route=unmatched,status=404}",
            1.0,
        ),
        ("cimdgate_http_request_duration_seconds{route=/token}", 2.0),
        (
            "cimdgate_tokens_issued_total{grant_type=authorization_code}",
            1.0,
        ),
        (
            "cimdgate_tokens_issued_total{grant_type=refresh_token}",
            1.0,
        ),
        ("cimdgate_tokens_revoked_total{}", 1.0),
        ("cimdgate_replays_blocked_total{kind=refresh}", 1.0),
        ("cimdgate_cimd_cache_total{result=miss}", 1.0),
        ("cimdgate_cimd_cache_total{result=hit}", 1.0),
        ("cimdgate_cimd_fetch_total{outcome=ok}", 1.0),
        ("cimdgate_cimd_fetch_duration_seconds{}", 1.0),
        (
            "cimdgate_store_operation_duration_seconds{op=redeem_code}",
            1.0,
        ),
        (
            "cimdgate_store_operation_duration_seconds{op=rotate_refresh}",
            1.0,
        ),
        (
            "cimdgate_gateway_requests_total{outcome=ok,resource=/mcp}",
            1.0,
        ),
    ] {
        let d = delta(&before, &after, key);
        assert!(
            d >= at_least,
            "{key} moved by {d}, expected at least {at_least}; after: {:?}",
            after
                .keys()
                .filter(|k| k.starts_with(key.split('{').next().unwrap()))
                .collect::<Vec<_>>()
        );
    }
    assert!(
        after.keys().any(|k| k.starts_with("cimdgate_clients{")),
        "client gauge missing: {:?}",
        after.keys().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn metrics_carry_no_client_id_or_raw_path() {
    let env = TestEnv::start().await;
    let id = env.publish_client("secret-name-app", json!({}));
    let _ = env.authorize_code(&id, &redirect()).await;
    let probe = "/probe-path-8d41c2";
    let _ = get(&env.url(probe), None).await;
    let _ = get(&env.url(&format!("/authorize?client_id={id}")), None).await;
    let (_, text) = get(&admin_url(&env, "/metrics"), None).await;
    for needle in [id.as_str(), "secret-name-app", "cimd.test", probe] {
        assert!(!text.contains(needle), "{needle:?} in /metrics");
    }
    assert!(text.contains("route=\"unmatched\""), "{text}");
}

//! Requests that can trigger a fetch are rate-limited per source IP: `/token` and `/revoke`
//! answer 429 `temporarily_unavailable` past the burst.

use crate::common;

use common::TestEnv;

/// Requests that can trigger a fetch are rate-limited per source IP — `/token` and
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

/// POST `/token` with an `X-Forwarded-For` header; the status.
async fn token_from(env: &TestEnv, forwarded_for: &str) -> u16 {
    common::http_client()
        .post(env.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", forwarded_for)
        .body("grant_type=authorization_code")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Behind a load balancer every request comes from its address: with `server.trusted_proxies`
/// each client is counted by the address the proxy forwarded for (review finding M1); without
/// it, `X-Forwarded-For` is the client's own word and changes nothing.
#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_counted_apart() {
    let behind = TestEnv::start_with(|c| {
        c.limits.per_ip_per_second = 1;
        c.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let mut last = 0;
    for _ in 0..3 {
        last = token_from(&behind, "198.51.100.1").await;
    }
    assert_eq!(last, 429, "one client over its limit");
    assert_ne!(
        token_from(&behind, "198.51.100.2").await,
        429,
        "another client is not"
    );

    let direct = TestEnv::start_with(|c| c.limits.per_ip_per_second = 1).await;
    let mut last = 0;
    for i in 0..3 {
        last = token_from(&direct, &format!("198.51.100.{i}")).await;
    }
    assert_eq!(
        last, 429,
        "an untrusted X-Forwarded-For does not split the budget"
    );
}

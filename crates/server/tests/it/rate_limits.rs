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

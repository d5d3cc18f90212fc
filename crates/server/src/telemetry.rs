//! Metrics (Prometheus text on the admin listener's `/metrics`): every metric name, its labels
//! and the one place that records it.
//!
//! The `metrics` facade records into one process-wide Prometheus recorder, installed on first
//! use by [`install`] (several servers in one process — tests — share it; counters only grow,
//! so tests assert deltas). When the embedding program installed its own recorder first, ours
//! is not installed: the values go to theirs and `/metrics` says so.
//!
//! **Labels never carry client-controlled strings of unbounded cardinality**: no client_id, no
//! raw path, no error text. Routes are axum's route templates (`/token`, `/mcp/{*rest}`) or
//! `unmatched`; resources are the configured paths; reasons and outcomes are fixed words.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | [`HTTP_REQUESTS`] | counter | `route`, `status` | every HTTP response of the public listener |
//! | [`HTTP_DURATION`] | histogram | `route` | time to the response head, seconds |
//! | [`cimd::metrics::CACHE`] | counter | `result`: hit, miss, stale, negative | CIMD document cache look-ups |
//! | [`cimd::metrics::FETCH`] | counter | `outcome`: ok or a fixed reason | CIMD document fetches |
//! | [`cimd::metrics::FETCH_DURATION`] | histogram | | CIMD document fetch time, seconds |
//! | [`TOKENS_ISSUED`] | counter | `grant_type` | access tokens issued by `/token` |
//! | [`TOKENS_REVOKED`] | counter | | tokens (families) revoked through `/revoke` or the admin API |
//! | [`REPLAYS_BLOCKED`] | counter | `kind`: jti, code, refresh | replays refused |
//! | [`RATE_LIMITED`] | counter | `route` | requests refused with 429 |
//! | [`STORE_DURATION`] | histogram | `op` (the `Store` method) | store operation time, seconds |
//! | [`STORE_ERRORS`] | counter | `op` | store operations that failed |
//! | [`CLIENTS`] | gauge | `status` | known clients by status ([`set_client_gauges`]) |
//! | [`GATEWAY_REQUESTS`] | counter | `resource` (configured path), `outcome` | requests to protected resources |
//! | [`UPSTREAM_DURATION`] | histogram | | time the MCP upstream took to answer, seconds |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter `route`, `status`: HTTP responses of the public listener.
pub const HTTP_REQUESTS: &str = "cimdgate_http_requests_total";
/// Histogram `route`: seconds until the response head was ready.
pub const HTTP_DURATION: &str = "cimdgate_http_request_duration_seconds";
/// Counter `grant_type` (`authorization_code`, `refresh_token`): access tokens issued.
pub const TOKENS_ISSUED: &str = "cimdgate_tokens_issued_total";
/// Counter: revocations that revoked something.
pub const TOKENS_REVOKED: &str = "cimdgate_tokens_revoked_total";
/// Counter `kind` ([`Replay`]): replays refused.
pub const REPLAYS_BLOCKED: &str = "cimdgate_replays_blocked_total";
/// Counter `route`: requests answered 429.
pub const RATE_LIMITED: &str = "cimdgate_rate_limited_total";
/// Histogram `op`: seconds per store operation.
pub const STORE_DURATION: &str = "cimdgate_store_operation_duration_seconds";
/// Counter `op`: store operations that returned an error.
pub const STORE_ERRORS: &str = "cimdgate_store_errors_total";
/// Gauge `status`: clients known to the inventory.
pub const CLIENTS: &str = "cimdgate_clients";
/// Counter `resource`, `outcome`: requests to a protected resource.
pub const GATEWAY_REQUESTS: &str = "cimdgate_gateway_requests_total";
/// Histogram: seconds the upstream MCP server took (re-exported from the gateway crate).
pub const UPSTREAM_DURATION: &str = cimdgate_gateway::metrics::UPSTREAM_DURATION;

/// Route label of a request that matched no route (never the raw path).
pub const UNMATCHED: &str = "unmatched";

/// Histogram buckets, seconds: 1 ms … 10 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once; later calls return the same handle).
/// `None` when another recorder was installed first (the embedding program's).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS);
            let handle = match builder {
                Ok(b) => b.install_recorder(),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: bad histogram buckets");
                    return None;
                }
            };
            match handle {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// The Prometheus text exposition of every metric of this process.
pub fn render() -> String {
    match install() {
        Some(h) => h.render(),
        None => "# metrics are recorded by the embedding program's recorder\n".into(),
    }
}

/// Housekeeping of the histograms (call every few seconds; the server's sweep does).
pub fn upkeep() {
    if let Some(h) = install() {
        h.run_upkeep();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP responses by route template and status");
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to the response head"
    );
    describe_counter!(
        cimd::metrics::CACHE,
        "CIMD document cache look-ups by result"
    );
    describe_counter!(cimd::metrics::FETCH, "CIMD document fetches by outcome");
    describe_histogram!(
        cimd::metrics::FETCH_DURATION,
        metrics::Unit::Seconds,
        "CIMD document fetch time"
    );
    describe_counter!(TOKENS_ISSUED, "Access tokens issued by grant type");
    describe_counter!(TOKENS_REVOKED, "Revocations that revoked a token family");
    describe_counter!(REPLAYS_BLOCKED, "Replays refused (jti, code, refresh)");
    describe_counter!(RATE_LIMITED, "Requests refused with 429 by route");
    describe_histogram!(
        STORE_DURATION,
        metrics::Unit::Seconds,
        "Store operation time"
    );
    describe_counter!(STORE_ERRORS, "Store operations that failed");
    describe_gauge!(CLIENTS, "Known clients by status");
    describe_counter!(
        GATEWAY_REQUESTS,
        "Requests to protected resources by resource and outcome"
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        metrics::Unit::Seconds,
        "Upstream MCP server response time"
    );
}

/// One HTTP response: `route` is the route template or [`UNMATCHED`].
pub fn http_request(route: &str, status: u16, seconds: f64) {
    let route = route.to_owned();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.clone()).record(seconds);
    if status == 429 {
        metrics::counter!(RATE_LIMITED, "route" => route).increment(1);
    }
}

/// One request to a protected resource (`resource`: its configured path).
pub fn gateway_request(resource: &str, outcome: &'static str) {
    metrics::counter!(GATEWAY_REQUESTS, "resource" => resource.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// The gateway outcome label of a response status (a fixed word).
pub fn gateway_outcome(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        401 => "unauthorized",
        403 => "forbidden",
        413 => "too_large",
        429 => "rate_limited",
        502 | 504 => "upstream_error",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

/// An access token issued through `grant_type` (`authorization_code` or `refresh_token`).
pub fn token_issued(grant_type: &'static str) {
    metrics::counter!(TOKENS_ISSUED, "grant_type" => grant_type).increment(1);
}

/// A token family revoked (`/revoke`, or an administrator's revocation of a client's grants).
pub fn token_revoked() {
    metrics::counter!(TOKENS_REVOKED).increment(1);
}

/// What kind of replay was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// A client assertion's `jti` used twice (RFC 7523 §3).
    Jti,
    /// An authorization code redeemed twice (OAuth 2.1 §4.1.3).
    Code,
    /// A rotated refresh token used again (OAuth 2.1 §4.3.1).
    Refresh,
}

impl Replay {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Replay::Jti => "jti",
            Replay::Code => "code",
            Replay::Refresh => "refresh",
        }
    }
}

/// A replay refused.
pub fn replay_blocked(kind: Replay) {
    metrics::counter!(REPLAYS_BLOCKED, "kind" => kind.label()).increment(1);
}

/// One store operation (`op`: the `Store` method's name).
pub fn store_op(op: &'static str, seconds: f64, failed: bool) {
    metrics::histogram!(STORE_DURATION, "op" => op).record(seconds);
    if failed {
        metrics::counter!(STORE_ERRORS, "op" => op).increment(1);
    }
}

/// Set the client gauges: one `(status, count)` per status (`active`, `blocked`, `pending`…,
/// a fixed set chosen by the inventory). Statuses not named keep their last value.
pub fn set_client_gauges(counts: &[(&'static str, u64)]) {
    for (status, n) in counts {
        // Counts of clients stay far below 2^53: exact as f64.
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(CLIENTS, "status" => *status).set(*n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_outcomes_are_fixed_words() {
        assert_eq!(gateway_outcome(200), "ok");
        assert_eq!(gateway_outcome(401), "unauthorized");
        assert_eq!(gateway_outcome(502), "upstream_error");
        assert_eq!(gateway_outcome(418), "client_error");
    }
}

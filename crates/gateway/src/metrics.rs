//! Metric names this crate records through the `metrics` facade (the embedding program
//! installs the recorder).

use std::time::Duration;

/// Histogram: seconds until the upstream MCP server answered with its response head (or the
/// request failed or timed out).
pub const UPSTREAM_DURATION: &str = "cimdgate_upstream_duration_seconds";

/// One upstream request's time to its response head.
pub(crate) fn upstream_duration(took: Duration) {
    metrics::histogram!(UPSTREAM_DURATION).record(took.as_secs_f64());
}

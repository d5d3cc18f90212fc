//! Metric names this crate records through the `metrics` facade (no recorder here: the
//! embedding program installs one; without one, recording costs nothing). Labels are fixed
//! words, never a client_id or an error text.

use std::time::Duration;

use crate::fetch::FetchError;

/// Counter `result` (`hit`, `miss`, `stale`, `negative`): document cache look-ups.
pub const CACHE: &str = "cimdgate_cimd_cache_total";
/// Counter `outcome` (`ok` or [`fetch_outcome`]): document fetches sent.
pub const FETCH: &str = "cimdgate_cimd_fetch_total";
/// Histogram: seconds per document fetch.
pub const FETCH_DURATION: &str = "cimdgate_cimd_fetch_duration_seconds";

/// A cache look-up's result.
pub(crate) fn cache(result: &'static str) {
    metrics::counter!(CACHE, "result" => result).increment(1);
}

/// One document fetch and how long it took.
pub(crate) fn fetch(outcome: Result<(), &FetchError>, took: Duration) {
    let outcome = match outcome {
        Ok(()) => "ok",
        Err(e) => fetch_outcome(e),
    };
    metrics::counter!(FETCH, "outcome" => outcome).increment(1);
    metrics::histogram!(FETCH_DURATION).record(took.as_secs_f64());
}

/// The fixed label of a fetch failure.
pub fn fetch_outcome(e: &FetchError) -> &'static str {
    match e {
        FetchError::InvalidUrl { .. } => "invalid_url",
        FetchError::BlockedAddress { .. } => "blocked_address",
        FetchError::Dns { .. } => "dns",
        FetchError::NoAddresses { .. } => "no_addresses",
        FetchError::Connect { .. } => "connect",
        FetchError::Tls { .. } => "tls",
        FetchError::Timeout { .. } => "timeout",
        FetchError::Redirect { .. } => "redirect",
        FetchError::HttpStatus { .. } => "http_status",
        FetchError::ContentType { .. } => "content_type",
        FetchError::HeadersTooLarge { .. } => "headers_too_large",
        FetchError::TooLarge { .. } => "too_large",
        FetchError::RateLimited { .. } => "rate_limited",
        FetchError::Io { .. } => "io",
        FetchError::Config { .. } => "config",
        FetchError::Remembered { .. } => "remembered",
    }
}

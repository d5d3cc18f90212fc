//! Freshness lifetime of a fetched document: RFC 9111 §4.2 via `http_cache_semantics`, plus our
//! clamps (draft §5.2 AS-imposed bounds; docs/architecture.md, *Caching*).
//!
//! `http_cache_semantics` is built with `shared: false` (a private cache: `private` is storable,
//! `s-maxage` ignored) and `cache_heuristic: 0.0` (no heuristic freshness from `Last-Modified`,
//! RFC 9111 §4.2.2 — we use our explicit [`CacheConfig::default_ttl`] instead).

use std::time::{Duration, SystemTime};

use http::header::{ACCEPT, CACHE_CONTROL, EXPIRES, PRAGMA};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};

use super::{CacheConfig, add_or_same};

/// What to do with a response, decided at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// `no-store` (RFC 9111 §5.2.2.5): do not store, and evict any stored entry.
    NoStore,
    /// Store; usable without revalidation while `now < fresh_until`.
    Store {
        /// End of freshness (`== now` for `no-cache`: revalidate on every use).
        fresh_until: SystemTime,
    },
}

/// Cache options for a private, non-heuristic cache.
pub(crate) fn cache_options() -> CacheOptions {
    CacheOptions {
        shared: false,
        cache_heuristic: 0.0,
        ..CacheOptions::default()
    }
}

/// The request the policy is keyed on: `GET <client_id>` with `Accept: application/json`, the
/// same every time so `before_request` always matches the stored policy.
pub(crate) fn policy_request(client_id: &str) -> Request<()> {
    let mut req = Request::new(());
    if let Ok(uri) = client_id.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req.headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
    req
}

/// A response head for the policy.
pub(crate) fn policy_response(status: StatusCode, headers: &HeaderMap) -> Response<()> {
    let mut res = Response::new(());
    *res.status_mut() = status;
    *res.headers_mut() = headers.clone();
    res
}

/// Builds the policy for a 200 response received at `now` (headers already [`normalised`]).
pub(crate) fn new_policy(client_id: &str, headers: &HeaderMap, now: SystemTime) -> CachePolicy {
    CachePolicy::new_options(
        &policy_request(client_id),
        &policy_response(StatusCode::OK, headers),
        now,
        cache_options(),
    )
}

/// A copy of `headers` with `Cache-Control` and `Pragma` directive names lower-cased.
///
/// RFC 9111 §5.2: directive names are case-insensitive, but `http_cache_semantics` compares
/// them case-sensitively, so `No-Store` would otherwise be ignored (and stored). Values (e.g.
/// quoted field names) are left alone; a value that is not visible ASCII is kept as is.
pub(crate) fn normalised(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in [CACHE_CONTROL, PRAGMA] {
        let values: Vec<HeaderValue> = headers
            .get_all(&name)
            .iter()
            .map(|v| match v.to_str() {
                Ok(text) => HeaderValue::from_str(&lower_directive_names(text))
                    .unwrap_or_else(|_| v.clone()),
                Err(_) => v.clone(),
            })
            .collect();
        if values.is_empty() {
            continue;
        }
        out.remove(&name);
        for v in values {
            out.append(&name, v);
        }
    }
    out
}

/// `"Max-Age=60, No-Cache"` → `"max-age=60, no-cache"` (names only).
fn lower_directive_names(text: &str) -> String {
    text.split(',')
        .map(|d| match d.split_once('=') {
            Some((k, v)) => format!("{}={v}", k.to_ascii_lowercase()),
            None => d.to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Lower-cased `Cache-Control` directive names.
fn directives(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            d.split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// Decides whether and how long to keep a response whose `policy` and (merged) response
/// `headers` are given, at `now`.
///
/// - not storable (`no-store`) → [`Freshness::NoStore`];
/// - `no-cache` (or `Pragma: no-cache` without `Cache-Control`) → fresh until `now`, i.e.
///   revalidate on every use; `min_ttl` is deliberately NOT applied;
/// - `max-age` / `Expires` / `immutable` present → the policy's remaining lifetime (after `Age`),
///   clamped to `[min_ttl, max_ttl]` (so `max-age=0` and past `Expires` become `min_ttl`);
/// - otherwise (silent) → `default_ttl`, clamped the same way.
pub(crate) fn freshness(
    policy: &CachePolicy,
    headers: &HeaderMap,
    now: SystemTime,
    cfg: &CacheConfig,
) -> Freshness {
    if !policy.is_storable() {
        return Freshness::NoStore;
    }
    let mut no_cache = false;
    let mut explicit = headers.contains_key(EXPIRES);
    for d in directives(headers) {
        match d.as_str() {
            "no-cache" => no_cache = true,
            "max-age" | "immutable" => explicit = true,
            _ => {}
        }
    }
    if !headers.contains_key(CACHE_CONTROL)
        && headers
            .get_all(PRAGMA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("no-cache"))
    {
        no_cache = true;
    }
    if no_cache {
        return Freshness::Store { fresh_until: now };
    }
    let ttl = if explicit {
        policy.time_to_live(now)
    } else {
        cfg.default_ttl
    };
    Freshness::Store {
        fresh_until: add_or_same(now, clamp(ttl, cfg)),
    }
}

/// `ttl` clamped to `[min_ttl, max_ttl]`; `max_ttl` wins a misconfiguration (no panic).
fn clamp(ttl: Duration, cfg: &CacheConfig) -> Duration {
    ttl.max(cfg.min_ttl).min(cfg.max_ttl)
}

/// Validators for a conditional request (`If-None-Match`, `If-Modified-Since`), as
/// `http_cache_semantics` computes them for the stored policy (RFC 9111 §4.3.1).
///
/// Our clamps can make an entry stale while the policy still calls it fresh (`max_ttl`); then
/// the stored response's own `ETag` / `Last-Modified` are used.
pub(crate) fn validators(
    policy: &CachePolicy,
    client_id: &str,
    now: SystemTime,
) -> (Option<String>, Option<String>) {
    let header =
        |h: &HeaderMap, name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match policy.before_request(&policy_request(client_id), now) {
        BeforeRequest::Stale { request, .. } => (
            header(&request.headers, "if-none-match"),
            header(&request.headers, "if-modified-since"),
        ),
        BeforeRequest::Fresh(response) => (
            header(&response.headers, "etag"),
            header(&response.headers, "last-modified"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tue, 14 Nov 2023 22:13:20 GMT.
    const NOW_SECS: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn cfg() -> CacheConfig {
        CacheConfig::default()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ttl_of(pairs: &[(&'static str, &'static str)], cfg: &CacheConfig) -> Option<Duration> {
        let h = normalised(&headers(pairs));
        let policy = new_policy("https://app.example/client.json", &h, now());
        match freshness(&policy, &h, now(), cfg) {
            Freshness::NoStore => None,
            Freshness::Store { fresh_until } => Some(fresh_until.duration_since(now()).unwrap()),
        }
    }

    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Option<Duration>,
    );

    const DATE: (&str, &str) = ("date", "Tue, 14 Nov 2023 22:13:20 GMT");

    #[test]
    fn ttl_follows_rfc9111_with_clamps_and_default() {
        let s = Duration::from_secs;
        let cases: &[Case] = &[
            (
                "max-age honoured",
                &[("cache-control", "max-age=600")],
                Some(s(600)),
            ),
            (
                "max-age case-insensitive",
                &[("cache-control", "Max-Age=600")],
                Some(s(600)),
            ),
            (
                "Age subtracted from max-age",
                &[("cache-control", "max-age=600"), ("age", "100")],
                Some(s(500)),
            ),
            (
                "Age beyond max-age clamps to min_ttl",
                &[("cache-control", "max-age=60"), ("age", "100")],
                Some(s(30)),
            ),
            (
                "Expires relative to Date",
                &[DATE, ("expires", "Tue, 14 Nov 2023 22:23:20 GMT")],
                Some(s(600)),
            ),
            (
                "max-age beats Expires",
                &[
                    DATE,
                    ("cache-control", "max-age=120"),
                    ("expires", "Tue, 14 Nov 2023 22:23:20 GMT"),
                ],
                Some(s(120)),
            ),
            (
                "Expires in the past clamps to min_ttl",
                &[DATE, ("expires", "Tue, 14 Nov 2023 21:00:00 GMT")],
                Some(s(30)),
            ),
            (
                "invalid Expires is already expired",
                &[("expires", "0")],
                Some(s(30)),
            ),
            (
                "max-age=0 clamps to min_ttl",
                &[("cache-control", "max-age=0")],
                Some(s(30)),
            ),
            (
                "max-age=1 clamps to min_ttl",
                &[("cache-control", "max-age=1")],
                Some(s(30)),
            ),
            (
                "huge max-age clamps to max_ttl",
                &[("cache-control", "max-age=999999")],
                Some(s(24 * 3600)),
            ),
            ("silent response gets default_ttl", &[], Some(s(3600))),
            (
                "Last-Modified alone gives no heuristic lifetime, default instead",
                &[DATE, ("last-modified", "Mon, 01 Jan 2001 00:00:00 GMT")],
                Some(s(3600)),
            ),
            (
                "no-store is not stored",
                &[("cache-control", "no-store")],
                None,
            ),
            (
                "No-Store is case-insensitive",
                &[("cache-control", "No-Store")],
                None,
            ),
            (
                "No-Cache is case-insensitive",
                &[("cache-control", "Max-Age=600, No-Cache")],
                Some(s(0)),
            ),
            (
                "no-store in a second Cache-Control line",
                &[
                    ("cache-control", "max-age=600"),
                    ("cache-control", "no-store"),
                ],
                None,
            ),
            (
                "no-store wins over max-age",
                &[("cache-control", "max-age=600, no-store")],
                None,
            ),
            (
                "no-cache revalidates every time despite min_ttl",
                &[("cache-control", "no-cache")],
                Some(s(0)),
            ),
            (
                "no-cache wins over max-age",
                &[("cache-control", "max-age=600, no-cache")],
                Some(s(0)),
            ),
            (
                "Pragma no-cache without Cache-Control",
                &[("pragma", "no-cache")],
                Some(s(0)),
            ),
            (
                "private is storable in a private cache",
                &[("cache-control", "private, max-age=600")],
                Some(s(600)),
            ),
            (
                "s-maxage ignored by a private cache",
                &[("cache-control", "s-maxage=5000, max-age=600")],
                Some(s(600)),
            ),
        ];
        for (name, pairs, want) in cases {
            assert_eq!(ttl_of(pairs, &cfg()), *want, "{name}");
        }
    }

    #[test]
    fn ttl_clamps_follow_configuration() {
        let c = CacheConfig {
            min_ttl: Duration::from_secs(5),
            max_ttl: Duration::from_secs(100),
            default_ttl: Duration::from_secs(50),
            ..CacheConfig::default()
        };
        let s = Duration::from_secs;
        assert_eq!(ttl_of(&[("cache-control", "max-age=1")], &c), Some(s(5)));
        assert_eq!(ttl_of(&[("cache-control", "max-age=7")], &c), Some(s(7)));
        assert_eq!(
            ttl_of(&[("cache-control", "max-age=1000")], &c),
            Some(s(100))
        );
        assert_eq!(ttl_of(&[], &c), Some(s(50)));
        // Default outside the bounds is clamped too.
        let c2 = CacheConfig {
            default_ttl: Duration::from_secs(1000),
            ..c.clone()
        };
        assert_eq!(ttl_of(&[], &c2), Some(s(100)));
        // Misconfigured min > max: max wins, no panic.
        let bad = CacheConfig {
            min_ttl: s(500),
            max_ttl: s(100),
            ..c
        };
        assert_eq!(
            ttl_of(&[("cache-control", "max-age=1")], &bad),
            Some(s(100))
        );
    }

    #[test]
    fn validators_come_from_etag_and_last_modified() {
        let h = headers(&[
            ("cache-control", "max-age=0"),
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 13 Nov 2023 00:00:00 GMT"),
        ]);
        let id = "https://app.example/client.json";
        let p = new_policy(id, &h, now());
        let (inm, ims) = validators(&p, id, now() + Duration::from_secs(1));
        assert_eq!(inm.as_deref(), Some("\"v1\""));
        assert_eq!(ims.as_deref(), Some("Mon, 13 Nov 2023 00:00:00 GMT"));

        // Still fresh for the policy (beyond our max clamp): validators come from the response.
        let h = headers(&[("cache-control", "max-age=999999"), ("etag", "\"v2\"")]);
        let p = new_policy(id, &h, now());
        let (inm, ims) = validators(&p, id, now() + Duration::from_secs(90_000));
        assert_eq!(inm.as_deref(), Some("\"v2\""));
        assert_eq!(ims, None);

        // No validators: unconditional request.
        let h = headers(&[("cache-control", "max-age=0")]);
        let p = new_policy(id, &h, now());
        assert_eq!(validators(&p, id, now()), (None, None));
    }
}

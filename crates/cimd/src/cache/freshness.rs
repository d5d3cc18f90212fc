//! Freshness lifetime of a fetched document: RFC 9111 §4.2 via `http_cache_semantics`, plus our
//! clamps (draft §5.2 AS-imposed bounds; docs/architecture.md, *Caching*).
//!
//! `http_cache_semantics` is built with `shared: false` (a private cache: `private` is storable,
//! `s-maxage` ignored) and `cache_heuristic: 0.0` (no heuristic freshness from `Last-Modified`,
//! RFC 9111 §4.2.2 — we use our explicit [`CacheConfig::default_ttl`] instead).

use std::time::{Duration, SystemTime};

use http::header::{
    ACCEPT, AGE, CACHE_CONTROL, DATE, ETAG, EXPIRES, HeaderName, LAST_MODIFIED, PRAGMA, VARY,
};
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

/// The response headers a cache entry may keep (RFC 9111 §4: what freshness, revalidation and
/// `Vary` need). Everything else a document host sends is dropped before it reaches the policy,
/// the memory cache or the shared store.
pub const CACHE_HEADERS: [HeaderName; 8] = [
    CACHE_CONTROL,
    PRAGMA,
    EXPIRES,
    DATE,
    AGE,
    ETAG,
    LAST_MODIFIED,
    VARY,
];

/// Longest value kept of one cache header; a longer one is dropped (a real `ETag` or
/// `Cache-Control` is a few dozen bytes).
pub const MAX_CACHE_HEADER_BYTES: usize = 512;

/// Most header bytes (names and values) one entry keeps; headers past it are dropped. Entry
/// weights count this much (`store::ENTRY_OVERHEAD_BYTES`), so the cache's byte bound holds
/// whatever a host sends.
pub const MAX_CACHE_HEADERS_TOTAL: usize = 2048;

/// Largest number of seconds kept in `Age`, `max-age` and `s-maxage`: ten years, far beyond
/// any clamp, and small enough that no time arithmetic on it can overflow (http-cache-semantics
/// adds `Age` to a `Duration` without a check: `Age: 18446744073709551615` panicked).
pub const MAX_DELTA_SECONDS: u64 = 10 * 365 * 86_400;

/// The cache-relevant part of a response's headers ([`CACHE_HEADERS`], each at most
/// [`MAX_CACHE_HEADER_BYTES`], [`MAX_CACHE_HEADERS_TOTAL`] in all), with `Cache-Control` and
/// `Pragma` directive names lower-cased and every delta-seconds value clamped to
/// [`MAX_DELTA_SECONDS`].
///
/// RFC 9111 §5.2: directive names are case-insensitive, but `http_cache_semantics` compares
/// them case-sensitively, so `No-Store` would otherwise be ignored (and stored). Values (e.g.
/// quoted field names) are left alone; a value that is not visible ASCII is kept as is.
pub(crate) fn normalised(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    let mut total = 0usize;
    for name in CACHE_HEADERS {
        for v in headers.get_all(&name) {
            if v.len() > MAX_CACHE_HEADER_BYTES {
                continue;
            }
            let v = if name == CACHE_CONTROL || name == PRAGMA {
                match v.to_str() {
                    Ok(text) => HeaderValue::from_str(&lower_directive_names(text))
                        .unwrap_or_else(|_| v.clone()),
                    Err(_) => v.clone(),
                }
            } else if name == AGE {
                // RFC 9111 §5.1: Age is delta-seconds; anything else is ignored.
                match v.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok()) {
                    Some(secs) => HeaderValue::from(secs.min(MAX_DELTA_SECONDS)),
                    None => continue,
                }
            } else {
                v.clone()
            };
            total = total.saturating_add(name.as_str().len() + v.len());
            if total > MAX_CACHE_HEADERS_TOTAL {
                return out;
            }
            out.append(&name, v);
        }
    }
    out
}

/// `"Max-Age=60, No-Cache"` → `"max-age=60, no-cache"` (names only), with `max-age`,
/// `s-maxage` and the other delta-seconds arguments clamped to [`MAX_DELTA_SECONDS`].
fn lower_directive_names(text: &str) -> String {
    text.split(',')
        .map(|d| match d.split_once('=') {
            Some((k, v)) => {
                let digits = v.trim();
                let too_big = !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && digits
                        .parse::<u64>()
                        .map_or(true, |n| n > MAX_DELTA_SECONDS);
                let v = if too_big {
                    MAX_DELTA_SECONDS.to_string()
                } else {
                    v.to_owned()
                };
                format!("{}={v}", k.to_ascii_lowercase())
            }
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

    /// Review finding F-cache-1: `Age: u64::MAX` made http-cache-semantics overflow a `Duration`
    /// and panic once the entry went stale. Clamped, it is only a very old response.
    #[test]
    fn a_huge_age_or_max_age_never_panics() {
        let id = "https://app.example/client.json";
        for (cc, age) in [
            ("max-age=60", "18446744073709551615"),
            ("max-age=18446744073709551615", "18446744073709551615"),
            ("max-age=99999999999999999999999999999999999999999999", "1"),
            ("Max-Age=60", "99999999999999999999999999"),
        ] {
            let mut raw = HeaderMap::new();
            raw.insert(CACHE_CONTROL, HeaderValue::from_static(cc));
            raw.insert(AGE, HeaderValue::from_str(age).unwrap());
            let h = normalised(&raw);
            let p = new_policy(id, &h, now());
            // Stale well after the clamps: computing the validators must not panic.
            for later in [60, 3600, 86_400 * 400] {
                let _ = validators(&p, id, now() + Duration::from_secs(later));
            }
            let _ = freshness(&p, &h, now(), &CacheConfig::default());
        }
    }

    /// Review finding F-cache-2: only cache-relevant headers are kept, each capped, in all at
    /// most [`MAX_CACHE_HEADERS_TOTAL`] bytes.
    #[test]
    fn only_capped_cache_headers_are_kept() {
        let mut raw = HeaderMap::new();
        raw.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        raw.insert(ETAG, HeaderValue::from_static("\"v1\""));
        raw.insert(AGE, HeaderValue::from_static("not-a-number"));
        raw.insert("x-pad", HeaderValue::from_str(&"A".repeat(60_000)).unwrap());
        raw.insert("set-cookie", HeaderValue::from_static("a=b"));
        raw.insert(
            LAST_MODIFIED,
            HeaderValue::from_str(&"B".repeat(MAX_CACHE_HEADER_BYTES + 1)).unwrap(),
        );
        for _ in 0..20 {
            raw.append(VARY, HeaderValue::from_str(&"v".repeat(400)).unwrap());
        }
        let h = normalised(&raw);
        assert_eq!(h.get(CACHE_CONTROL).unwrap(), "max-age=60");
        assert_eq!(h.get(ETAG).unwrap(), "\"v1\"");
        for gone in ["x-pad", "set-cookie", "age", "last-modified"] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
        let total: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
        assert!(total <= MAX_CACHE_HEADERS_TOTAL, "{total}");
        assert!(h.get_all(VARY).iter().count() < 20);
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

//! `Cache-Control` / `Pragma` / `Age` / `Expires` / `Date` handling of a fetched client metadata
//! document (RFC 9111 via http-cache-semantics plus our clamps, crates/cimd/src/cache/
//! freshness.rs), and the key-set lifetime built on it (`cimd::cache::key_set_lifetime`).
//!
//! Input: 4 bytes of clock offset, then `Name: value` lines. Invariants: no panic (an `Age` of
//! u64::MAX once overflowed inside http-cache-semantics); the kept headers respect the per-value
//! and total caps; a stored document is fresh for at most `max_ttl`, at least `min_ttl` unless
//! `no-cache`; a key set lives within `[min, max]`.
#![no_main]

use std::time::{Duration, SystemTime};

use cimd::cache::{CacheConfig, key_set_lifetime};
use cimd::fuzzing::{MAX_CACHE_HEADER_BYTES, MAX_CACHE_HEADERS_TOTAL, document_freshness};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const CLIENT_ID: &str = "https://app.example.com/client.json";

fuzz_target!(|data: &[u8]| {
    let Some((clock, text)) = data.split_first_chunk::<4>() else {
        return;
    };
    // Any time from 2001 to 2137: dates in the headers land before and after it.
    let now = SystemTime::UNIX_EPOCH
        + Duration::from_secs(1_000_000_000 + u64::from(u32::from_le_bytes(*clock)));
    let mut headers = HeaderMap::new();
    for line in text.split(|b| *b == b'\n').take(64) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }

    let cfg = CacheConfig::default();
    let decision = document_freshness(CLIENT_ID, &headers, now, &cfg);
    let mut total = 0;
    for (name, value) in &decision.kept {
        assert!(value.len() <= MAX_CACHE_HEADER_BYTES);
        total += name.as_str().len() + value.len();
    }
    assert!(total <= MAX_CACHE_HEADERS_TOTAL);
    if let Some(fresh_for) = decision.fresh_for {
        assert!(fresh_for <= cfg.max_ttl, "{fresh_for:?} for {headers:?}");
        assert!(
            fresh_for == Duration::ZERO || fresh_for >= cfg.min_ttl,
            "{fresh_for:?} for {headers:?}"
        );
    }

    let (min, max) = (Duration::from_secs(30), Duration::from_secs(86_400));
    let lifetime = key_set_lifetime("https://app.example.com/jwks.json", &headers, now, min, max);
    assert!(
        lifetime >= min && lifetime <= max,
        "{lifetime:?} for {headers:?}"
    );
});

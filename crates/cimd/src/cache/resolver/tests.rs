//! Resolver decisions with a fake clock; every fetch is refused before connecting.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;
use crate::fetch::FetchConfig;

const ID: &str = "https://blocked.test/client.json";

/// `blocked.test` is pinned to 10.0.0.1 (private-use): the fetcher refuses it before
/// connecting, so these tests fail every fetch without any traffic leaving the process.
fn resolver(cfg: CacheConfig) -> Resolver {
    let fetcher = Fetcher::new(FetchConfig {
        resolve: HashMap::from([(
            "blocked.test".to_owned(),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        )]),
        ..FetchConfig::default()
    })
    .unwrap();
    Resolver::in_memory(Arc::new(fetcher), cfg, Profile::Mcp)
}

fn id() -> ClientIdUrl {
    ClientIdUrl::parse(ID).unwrap()
}

fn body() -> Bytes {
    Bytes::from(
        serde_json::json!({
            "client_id": ID,
            "client_name": "Blocked",
            "redirect_uris": ["http://127.0.0.1/cb"],
        })
        .to_string(),
    )
}

/// A valid entry fetched at `t0`, fresh for `fresh`, kept `stale` longer.
fn entry(r: &Resolver, t0: SystemTime, fresh: Duration) -> StoredDocument {
    let fresh_until = t0 + fresh;
    let mut e = StoredDocument {
        body: body(),
        policy: new_policy(ID, &HeaderMap::new(), t0),
        fetched_at: t0,
        fresh_until,
        keep_until: fresh_until + r.config().stale_if_error,
        resolved: None,
    };
    e.resolved = Some(r.inner.materialise(&id(), &e).unwrap());
    e
}

#[tokio::test]
async fn negative_entry_returns_same_error_until_negative_ttl() {
    let r = resolver(CacheConfig {
        negative_ttl: Duration::from_secs(10),
        ..CacheConfig::default()
    });
    let t0 = SystemTime::now();
    let e1 = r.resolve_at(&id(), t0, false).await.unwrap_err();
    assert!(
        matches!(e1, ResolveError::Fetch(FetchError::BlockedAddress { .. })),
        "{e1:?}"
    );
    assert_eq!(r.stats().fetches, 1);
    let e2 = r
        .resolve_at(&id(), t0 + Duration::from_secs(9), false)
        .await
        .unwrap_err();
    assert_eq!(e2.to_string(), e1.to_string(), "same reason");
    assert_eq!(r.stats().fetches, 1, "no fetch within negative_ttl");
    assert_eq!(r.stats().negative_hits, 1);
    r.resolve_at(&id(), t0 + Duration::from_secs(11), false)
        .await
        .unwrap_err();
    assert_eq!(r.stats().fetches, 2, "fetched again after negative_ttl");
}

#[tokio::test]
async fn fresh_entry_is_served_without_fetch_until_fresh_until() {
    let r = resolver(CacheConfig::default());
    let t0 = SystemTime::now();
    let e = Arc::new(entry(&r, t0, Duration::from_secs(60)));
    r.inner.store.put(ID, Arc::clone(&e)).await.unwrap();
    let hit = r
        .resolve_at(&id(), t0 + Duration::from_secs(59), false)
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&hit, e.resolved.as_ref().unwrap()));
    assert_eq!(r.stats().fetches, 0);
    r.resolve_at(&id(), t0 + Duration::from_secs(60), false)
        .await
        .unwrap_err();
    assert_eq!(r.stats().fetches, 1, "stale at fresh_until: refetch");
}

#[tokio::test]
async fn entry_without_memo_is_revalidated_from_body() {
    // What a shared (serialising) backend returns: no memoised document.
    let r = resolver(CacheConfig::default());
    let t0 = SystemTime::now();
    let mut e = entry(&r, t0, Duration::from_secs(60));
    e.resolved = None;
    r.inner.store.put(ID, Arc::new(e)).await.unwrap();
    let hit = r.resolve_at(&id(), t0, false).await.unwrap();
    assert_eq!(hit.document.client_id, id());
    assert_eq!(r.stats().fetches, 0);
}

#[tokio::test]
async fn stale_if_error_only_within_window_and_only_for_fetch_errors() {
    let r = resolver(CacheConfig {
        stale_if_error: Duration::from_secs(100),
        ..CacheConfig::default()
    });
    let t0 = SystemTime::now();
    let e = entry(&r, t0, Duration::from_secs(60));
    let fetch_err = ResolveError::Fetch(FetchError::Io {
        message: "down".to_owned(),
    });
    let invalid = ResolveError::Invalid(ValidationReport::default());
    let s = Duration::from_secs;
    let cases: &[(&str, Duration, &ResolveError, bool)] = &[
        ("just stale, fetch error", s(61), &fetch_err, true),
        ("end of window", s(159), &fetch_err, true),
        ("past window", s(160), &fetch_err, false),
        ("invalid new document", s(61), &invalid, false),
    ];
    for (name, at, err, want) in cases {
        let got = r.inner.stale_fallback(&id(), Some(&e), t0 + *at, err);
        assert_eq!(got.is_some(), *want, "{name}");
    }
    assert!(
        r.inner
            .stale_fallback(&id(), None, t0, &fetch_err)
            .is_none()
    );
}

#[tokio::test]
async fn allow_stale_serves_stale_entry_when_fetch_fails_but_resolve_does_not() {
    let r = resolver(CacheConfig::default());
    let t0 = SystemTime::now();
    let e = Arc::new(entry(&r, t0, Duration::from_secs(60)));
    r.inner.store.put(ID, Arc::clone(&e)).await.unwrap();
    let later = t0 + Duration::from_secs(120);
    let stale = r.resolve_at(&id(), later, true).await.unwrap();
    assert!(Arc::ptr_eq(&stale, e.resolved.as_ref().unwrap()));
    assert!(r.resolve_at(&id(), later, false).await.is_err());
    assert_eq!(r.stats().stale_served, 1);
}

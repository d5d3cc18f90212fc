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

/// Review finding F-fetch-2: what a caller is told names the class of the failure, never the
/// internal address a name resolved to or its range; the details stay in `Debug` (logs, audit).
#[tokio::test]
async fn failures_shown_to_callers_do_not_reveal_internal_addresses() {
    let r = resolver(CacheConfig::default());
    let e = r
        .resolve_at(&id(), SystemTime::now(), false)
        .await
        .unwrap_err();
    let shown = e.to_string();
    for secret in ["10.0.0.1", "10.0.0.0/8", "private"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("blocked.test") && shown.contains("never fetched"),
        "{shown}"
    );
    let detail = format!("{e:?}");
    assert!(
        detail.contains("10.0.0.1"),
        "details kept for logs: {detail}"
    );
    // The negative cache answers with the same public text.
    let again = r
        .resolve_at(&id(), SystemTime::now(), false)
        .await
        .unwrap_err();
    assert_eq!(again.to_string(), shown);
    // Every transport failure class, shown without its OS or resolver message.
    let cases = [
        FetchError::Dns {
            host: "h.test".into(),
            message: "SERVFAIL from 10.1.1.1".into(),
        },
        FetchError::Connect {
            host: "h.test".into(),
            message: "connection refused".into(),
        },
        FetchError::Tls {
            host: "h.test".into(),
            message: "internal CA cert".into(),
        },
        FetchError::Io {
            message: "tcp 10.1.1.1:22 reset".into(),
        },
    ];
    for e in cases {
        let m = e.public_message();
        for secret in ["10.1.1.1", "refused", "internal CA", "reset", "SERVFAIL"] {
            assert!(!m.contains(secret), "{secret} in {m}");
        }
    }
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
        // A withdrawn document (or key) must stop working: 404/410 are not "host down".
        (
            "document gone (404)",
            s(61),
            &ResolveError::Fetch(FetchError::HttpStatus { status: 404 }),
            false,
        ),
        (
            "document gone (410)",
            s(61),
            &ResolveError::Fetch(FetchError::HttpStatus { status: 410 }),
            false,
        ),
        (
            "host failing (503)",
            s(61),
            &ResolveError::Fetch(FetchError::HttpStatus { status: 503 }),
            true,
        ),
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

/// Review finding F-fetch-1: anyone can send client_ids nobody fetched before on a real client's
/// host. Those first fetches have their own per-host budget, so they cannot use up the one that
/// refreshes documents already held; our own throttle is never remembered as the document's
/// failure; and when a refresh is throttled, the held document is served stale even at
/// `/authorize` (the host did nothing wrong).
#[tokio::test]
async fn draining_a_hosts_fetch_budget_never_locks_out_its_known_clients() {
    let fetcher = Fetcher::new(FetchConfig {
        resolve: HashMap::from([(
            "blocked.test".to_owned(),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        )]),
        per_host_per_minute: 1,
        ..FetchConfig::default()
    })
    .unwrap();
    let r = Resolver::in_memory(Arc::new(fetcher), CacheConfig::default(), Profile::Mcp);
    let t0 = SystemTime::now();
    let unknown = |n: u32| ClientIdUrl::parse(&format!("https://blocked.test/x{n}.json")).unwrap();

    // The attacker's first unknown URL uses the host's "new" budget (and fails: blocked
    // address); the next one is throttled — and the throttle is not remembered.
    let e = r.resolve_at(&unknown(1), t0, false).await.unwrap_err();
    assert!(
        matches!(e, ResolveError::Fetch(FetchError::BlockedAddress { .. })),
        "{e:?}"
    );
    for _ in 0..2 {
        let e = r.resolve_at(&unknown(2), t0, false).await.unwrap_err();
        assert!(
            matches!(e, ResolveError::Fetch(FetchError::RateLimited { .. })),
            "{e:?}"
        );
    }
    assert_eq!(
        r.stats().negative_hits,
        0,
        "a throttle is never negatively cached"
    );

    // A known client's refresh still has its budget: the fetch is attempted (and fails for
    // its own reason here), not throttled.
    let known = Arc::new(entry(&r, t0, Duration::from_secs(60)));
    r.inner.store.put(ID, Arc::clone(&known)).await.unwrap();
    let later = t0 + Duration::from_secs(120);
    let e = r.resolve_at(&id(), later, false).await.unwrap_err();
    assert!(
        matches!(e, ResolveError::Fetch(FetchError::BlockedAddress { .. })),
        "{e:?}"
    );

    // With the refresh budget used up too, a second known client is served stale at
    // /authorize rather than refused.
    let id2 = "https://blocked.test/c2.json";
    let mut e2 = entry(&r, t0, Duration::from_secs(60));
    e2.body = Bytes::from(
        serde_json::json!({
            "client_id": id2,
            "client_name": "Second",
            "redirect_uris": ["http://127.0.0.1/cb"],
        })
        .to_string(),
    );
    e2.resolved = None;
    r.inner.store.put(id2, Arc::new(e2)).await.unwrap();
    let got = r
        .resolve_at(&ClientIdUrl::parse(id2).unwrap(), later, false)
        .await;
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(r.stats().stale_served, 1);
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

/// What a shared backend looks like to the resolver: entries come back without the memo (as
/// after a serde round trip), and every call is counted.
#[derive(Default)]
struct SharedLike {
    docs: Mutex<HashMap<String, Arc<StoredDocument>>>,
    gets: AtomicU64,
    negative_gets: AtomicU64,
}

impl SharedLike {
    /// Written "by another instance": straight into the shared store.
    fn put_direct(&self, doc: StoredDocument) {
        let mut doc = doc;
        doc.resolved = None;
        lock(&self.docs).insert(ID.to_owned(), Arc::new(doc));
    }
    fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl DocumentStore for SharedLike {
    async fn get(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<StoredDocument>>, super::super::StoreError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        Ok(lock(&self.docs).get(client_id).map(|d| {
            let mut d = StoredDocument::clone(d);
            d.resolved = None;
            Arc::new(d)
        }))
    }
    async fn put(
        &self,
        client_id: &str,
        doc: Arc<StoredDocument>,
    ) -> Result<(), super::super::StoreError> {
        lock(&self.docs).insert(client_id.to_owned(), doc);
        Ok(())
    }
    async fn remove(&self, client_id: &str) -> Result<(), super::super::StoreError> {
        lock(&self.docs).remove(client_id);
        Ok(())
    }
    async fn get_negative(
        &self,
        _client_id: &str,
    ) -> Result<Option<Arc<NegativeEntry>>, super::super::StoreError> {
        self.negative_gets.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }
    async fn put_negative(
        &self,
        _client_id: &str,
        _entry: Arc<NegativeEntry>,
    ) -> Result<(), super::super::StoreError> {
        Ok(())
    }
}

fn shared_resolver(cfg: CacheConfig) -> (Resolver, Arc<SharedLike>) {
    let fetcher = Fetcher::new(FetchConfig {
        resolve: HashMap::from([(
            "blocked.test".to_owned(),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        )]),
        ..FetchConfig::default()
    })
    .unwrap();
    let store = Arc::new(SharedLike::default());
    let r = Resolver::shared(Arc::new(fetcher), store.clone(), cfg, Profile::Mcp);
    (r, store)
}

/// A valid entry with `name` as client_name, fetched at `t0`, fresh for `fresh`.
fn named_entry(name: &str, t0: SystemTime, fresh: Duration) -> StoredDocument {
    let body = serde_json::json!({
        "client_id": ID,
        "client_name": name,
        "redirect_uris": ["http://127.0.0.1/cb"],
    })
    .to_string();
    StoredDocument {
        body: Bytes::from(body),
        policy: new_policy(ID, &HeaderMap::new(), t0),
        fetched_at: t0,
        fresh_until: t0 + fresh,
        keep_until: t0 + fresh + Duration::from_secs(3600),
        resolved: None,
    }
}

fn name_of(r: &ResolvedClient) -> Option<&str> {
    r.document.client_name.as_deref()
}

#[tokio::test]
async fn shared_store_l1_hit_does_no_store_read_and_no_validation() {
    let (r, store) = shared_resolver(CacheConfig {
        local_ttl: Duration::from_secs(10),
        ..CacheConfig::default()
    });
    let t0 = SystemTime::now();
    store.put_direct(named_entry("A", t0, Duration::from_secs(3600)));
    let first = r.resolve_at(&id(), t0, false).await.unwrap();
    assert_eq!(name_of(&first), Some("A"));
    assert_eq!((store.gets(), r.stats().validations), (1, 1));
    for s in [1, 5, 9] {
        let at = t0 + Duration::from_secs(s);
        let hit = r.resolve_at(&id(), at, false).await.unwrap();
        assert!(Arc::ptr_eq(&hit, &first), "served from the L1 at +{s}s");
        let peek = r.peek_fresh(&id()).await.unwrap();
        assert!(Arc::ptr_eq(&peek, &first));
    }
    assert_eq!(
        store.gets(),
        1,
        "L1 hits read nothing from the shared store"
    );
    assert_eq!(store.negative_gets.load(Ordering::Relaxed), 0);
    assert_eq!(r.stats().validations, 1);
    assert_eq!(r.stats().fetches, 0);
}

#[tokio::test]
async fn shared_store_change_by_another_instance_is_seen_after_local_ttl() {
    let (r, store) = shared_resolver(CacheConfig {
        local_ttl: Duration::from_secs(10),
        ..CacheConfig::default()
    });
    let s = Duration::from_secs;
    let t0 = SystemTime::now();
    store.put_direct(named_entry("A", t0, s(3600)));
    assert_eq!(
        name_of(&r.resolve_at(&id(), t0, false).await.unwrap()),
        Some("A")
    );
    // Another instance refetched a new version into the shared store.
    store.put_direct(named_entry("B", t0 + s(2), s(3600)));
    let before = r.resolve_at(&id(), t0 + s(9), false).await.unwrap();
    assert_eq!(name_of(&before), Some("A"), "within local_ttl: the L1 copy");
    let after = r.resolve_at(&id(), t0 + s(10), false).await.unwrap();
    assert_eq!(name_of(&after), Some("B"), "at local_ttl: the shared entry");
    assert_eq!(after.fetched_at, t0 + s(2));
    assert_eq!((store.gets(), r.stats().validations), (2, 2));
    // ...and the new copy is used for the next local_ttl.
    r.resolve_at(&id(), t0 + s(19), false).await.unwrap();
    assert_eq!(store.gets(), 2);
    assert_eq!(r.stats().fetches, 0);
}

#[tokio::test]
async fn shared_store_unchanged_body_is_not_validated_again() {
    let (r, store) = shared_resolver(CacheConfig {
        local_ttl: Duration::from_secs(10),
        ..CacheConfig::default()
    });
    let s = Duration::from_secs;
    let t0 = SystemTime::now();
    store.put_direct(named_entry("A", t0, s(3600)));
    r.resolve_at(&id(), t0, false).await.unwrap();
    // Another instance revalidated it (304): same body, new times.
    store.put_direct(named_entry("A", t0 + s(5), s(7200)));
    let hit = r.resolve_at(&id(), t0 + s(11), false).await.unwrap();
    assert_eq!(store.gets(), 2, "one store read after local_ttl");
    assert_eq!(
        r.stats().validations,
        1,
        "memoised by body: no re-validation"
    );
    assert_eq!((hit.fetched_at, hit.fresh_until), (t0 + s(5), t0 + s(7205)));
    assert_eq!(name_of(&hit), Some("A"));
}

#[tokio::test]
async fn shared_store_l1_never_serves_past_freshness_nor_an_evicted_entry() {
    let (r, store) = shared_resolver(CacheConfig {
        local_ttl: Duration::from_secs(30),
        ..CacheConfig::default()
    });
    let s = Duration::from_secs;
    let t0 = SystemTime::now();
    store.put_direct(named_entry("A", t0, s(5)));
    r.resolve_at(&id(), t0, false).await.unwrap();
    r.resolve_at(&id(), t0 + s(4), false).await.unwrap();
    assert_eq!(store.gets(), 1);
    // Past fresh_until (< local_ttl): not from the L1; the refetch fails (blocked host).
    assert!(
        r.peek_fresh(&id()).await.is_some(),
        "real clock: still fresh"
    );
    r.resolve_at(&id(), t0 + s(5), false).await.unwrap_err();
    assert!(
        store.gets() >= 2,
        "stale in the L1: the shared store is read"
    );
    assert_eq!(r.stats().fetches, 1);

    // An entry evicted by this instance (invalid new version) leaves the L1 too.
    let (r, store) = shared_resolver(CacheConfig::default());
    store.put_direct(named_entry("A", t0, s(3600)));
    r.resolve_at(&id(), t0, false).await.unwrap();
    r.inner.evict(ID).await;
    assert!(r.peek_fresh(&id()).await.is_none());
}

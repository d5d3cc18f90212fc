//! Integration tests for the document cache (docs/architecture.md: *Fetching (SSRF-safe)*
//! coalescing + negative cache, *Caching* RFC 9111 caching, clamps, stale-if-error) against a REAL
//! HTTPS host on 127.0.0.1 from the test-support crate. Waits are short and bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cimd::cache::{CacheConfig, DocumentStore, MemoryDocumentStore, ResolveError, Resolver};
use cimd::fetch::{FetchConfig, FetchError, Fetcher};
use cimd::{ClientIdUrl, Profile};
use cimdgate_test_support::{HttpsHost, TestCa};

const PATH: &str = "/client.json";
const HOST: &str = "cimd.test";

/// What the document host answers next.
#[derive(Clone)]
enum Reply {
    /// A 200 document (valid unless `client_id` is overridden) with optional cache headers.
    Doc {
        cache_control: Option<&'static str>,
        etag: Option<&'static str>,
        last_modified: Option<&'static str>,
        client_id: Option<&'static str>,
        delay: Duration,
    },
    /// A bare status code (after `delay`).
    Status(u16, Duration),
    /// Conditional requests get a 304 carrying a validator that matches nothing we stored;
    /// unconditional ones a `no-cache` document with `ETag: "v2"`.
    MismatchedNotModified,
}

fn doc(cache_control: Option<&'static str>) -> Reply {
    Reply::Doc {
        cache_control,
        etag: None,
        last_modified: None,
        client_id: None,
        delay: Duration::ZERO,
    }
}

struct Site {
    port: OnceLock<u16>,
    hits: AtomicUsize,
    conditional: AtomicUsize,
    reply: Mutex<Reply>,
}

impl Site {
    fn set(&self, r: Reply) {
        *self.reply.lock().unwrap() = r;
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    fn conditional(&self) -> usize {
        self.conditional.load(Ordering::SeqCst)
    }
}

fn client_id_for(port: u16) -> String {
    format!("https://{HOST}:{port}{PATH}")
}

fn body_for(client_id: &str) -> String {
    serde_json::json!({
        "client_id": client_id,
        "client_name": "Cache Test Client",
        "redirect_uris": ["http://127.0.0.1/callback"],
    })
    .to_string()
}

async fn serve(site: Arc<Site>, req_headers: HeaderMap) -> Response {
    site.hits.fetch_add(1, Ordering::SeqCst);
    let inm = req_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let ims = req_headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok());
    if inm.is_some() || ims.is_some() {
        site.conditional.fetch_add(1, Ordering::SeqCst);
    }
    let reply = site.reply.lock().unwrap().clone();
    match reply {
        Reply::MismatchedNotModified => {
            let mut h = HeaderMap::new();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            if inm.is_some() || ims.is_some() {
                h.insert(header::ETAG, HeaderValue::from_static("\"other\""));
                return (StatusCode::NOT_MODIFIED, h).into_response();
            }
            h.insert(header::ETAG, HeaderValue::from_static("\"v2\""));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let port = *site.port.get().unwrap();
            (StatusCode::OK, h, body_for(&client_id_for(port))).into_response()
        }
        Reply::Status(code, delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::from_u16(code).unwrap().into_response()
        }
        Reply::Doc {
            cache_control,
            etag,
            last_modified,
            client_id,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let mut h = HeaderMap::new();
            if let Some(cc) = cache_control {
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
            }
            if let Some(e) = etag {
                h.insert(header::ETAG, HeaderValue::from_static(e));
            }
            if let Some(lm) = last_modified {
                h.insert(header::LAST_MODIFIED, HeaderValue::from_static(lm));
            }
            let not_modified = match (etag, inm, last_modified, ims) {
                (Some(e), Some(i), _, _) => e == i,
                (_, None, Some(lm), Some(i)) => lm == i,
                _ => false,
            };
            if not_modified {
                return (StatusCode::NOT_MODIFIED, h).into_response();
            }
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let port = *site.port.get().unwrap();
            let id = client_id.map_or_else(|| client_id_for(port), str::to_owned);
            (StatusCode::OK, h, body_for(&id)).into_response()
        }
    }
}

struct Fixture {
    _ca: TestCa,
    _host: HttpsHost,
    site: Arc<Site>,
    store: Arc<MemoryDocumentStore>,
    resolver: Resolver,
    id: ClientIdUrl,
}

async fn fixture(cfg: CacheConfig, first: Reply) -> Fixture {
    let ca = TestCa::new();
    let site = Arc::new(Site {
        port: OnceLock::new(),
        hits: AtomicUsize::new(0),
        conditional: AtomicUsize::new(0),
        reply: Mutex::new(first),
    });
    let s = Arc::clone(&site);
    let router = Router::new().route(PATH, get(move |h: HeaderMap| serve(Arc::clone(&s), h)));
    let host = HttpsHost::start(&ca, &[HOST], router).await;
    site.port.set(host.port()).unwrap();
    let fetcher = Fetcher::new(FetchConfig {
        dev_allow_loopback: true,
        extra_ca_pem: vec![ca.cert_pem().as_bytes().to_vec()],
        resolve: HashMap::from([(HOST.to_owned(), IpAddr::V4(Ipv4Addr::LOCALHOST))]),
        per_host_per_minute: 10_000,
        ..FetchConfig::default()
    })
    .unwrap();
    let store = Arc::new(MemoryDocumentStore::new(&cfg));
    let resolver = Resolver::new(
        Arc::new(fetcher),
        Arc::clone(&store) as Arc<dyn DocumentStore>,
        cfg,
        Profile::Mcp,
    );
    let id = ClientIdUrl::parse(&client_id_for(host.port())).unwrap();
    Fixture {
        _ca: ca,
        _host: host,
        site,
        store,
        resolver,
        id,
    }
}

fn short_ttls() -> CacheConfig {
    CacheConfig {
        min_ttl: Duration::from_secs(1),
        ..CacheConfig::default()
    }
}

/// Freshness capped at [`FAST_TTL`] by `max_ttl`, so expiry tests wait half a second.
fn fast_expiry() -> CacheConfig {
    CacheConfig {
        min_ttl: Duration::ZERO,
        max_ttl: FAST_TTL,
        ..CacheConfig::default()
    }
}

const FAST_TTL: Duration = Duration::from_millis(300);
const PAST_FAST_TTL: Duration = Duration::from_millis(450);

#[tokio::test]
async fn fresh_document_is_fetched_once_then_served_from_cache() {
    let f = fixture(CacheConfig::default(), doc(Some("max-age=300"))).await;
    let a = f.resolver.resolve(&f.id).await.unwrap();
    let b = f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 1);
    assert!(Arc::ptr_eq(&a, &b), "a hit returns the memoised document");
    assert_eq!(a.document.client_id, f.id);
    assert_eq!(
        a.fresh_until.duration_since(a.fetched_at).unwrap(),
        Duration::from_secs(300)
    );
}

#[tokio::test]
async fn silent_response_gets_default_ttl() {
    let f = fixture(CacheConfig::default(), doc(None)).await;
    let a = f.resolver.resolve(&f.id).await.unwrap();
    f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 1);
    assert_eq!(
        a.fresh_until.duration_since(a.fetched_at).unwrap(),
        Duration::from_secs(3600)
    );
}

#[tokio::test]
async fn max_age_is_honoured_then_refetched() {
    let f = fixture(short_ttls(), doc(Some("max-age=1"))).await;
    f.resolver.resolve(&f.id).await.unwrap();
    f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 1, "fresh within max-age");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 2, "refetched after max-age");
}

#[tokio::test]
async fn max_age_is_clamped_to_max_ttl() {
    let cfg = CacheConfig {
        max_ttl: Duration::from_secs(60),
        ..CacheConfig::default()
    };
    let f = fixture(cfg, doc(Some("max-age=999999"))).await;
    let a = f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(
        a.fresh_until.duration_since(a.fetched_at).unwrap(),
        Duration::from_secs(60)
    );
}

#[tokio::test]
async fn max_age_zero_is_clamped_to_min_ttl_and_cached() {
    let f = fixture(CacheConfig::default(), doc(Some("max-age=0"))).await;
    let a = f.resolver.resolve(&f.id).await.unwrap();
    f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 1, "max-age=0 is cached for min_ttl");
    assert_eq!(
        a.fresh_until.duration_since(a.fetched_at).unwrap(),
        Duration::from_secs(30)
    );
}

#[tokio::test]
async fn no_store_fetches_every_time() {
    let f = fixture(CacheConfig::default(), doc(Some("no-store"))).await;
    for _ in 0..3 {
        f.resolver.resolve(&f.id).await.unwrap();
    }
    assert_eq!(f.site.hits(), 3);
    assert!(f.store.get(f.id.as_str()).await.unwrap().is_none());
}

#[tokio::test]
async fn no_store_evicts_the_stored_document() {
    let f = fixture(fast_expiry(), doc(Some("max-age=1"))).await;
    f.resolver.resolve(&f.id).await.unwrap();
    assert!(f.store.get(f.id.as_str()).await.unwrap().is_some());
    f.site.set(doc(Some("no-store")));
    tokio::time::sleep(PAST_FAST_TTL).await;
    f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 2);
    assert!(
        f.store.get(f.id.as_str()).await.unwrap().is_none(),
        "no-store evicts"
    );
}

#[tokio::test]
async fn no_cache_revalidates_every_time_with_etag_and_keeps_document() {
    let first = Reply::Doc {
        cache_control: Some("no-cache"),
        etag: Some("\"v1\""),
        last_modified: None,
        client_id: None,
        delay: Duration::ZERO,
    };
    let f = fixture(CacheConfig::default(), first).await;
    let a = f.resolver.resolve(&f.id).await.unwrap();
    let b = f.resolver.resolve(&f.id).await.unwrap();
    let c = f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 3, "no-cache: every use revalidates");
    assert_eq!(f.site.conditional(), 2, "revalidations carry If-None-Match");
    assert_eq!(f.resolver.stats().not_modified, 2, "answered 304");
    assert_eq!(b.document.client_id, a.document.client_id);
    assert_eq!(c.document.redirect_uris, a.document.redirect_uris);
    assert!(b.fetched_at >= a.fetched_at, "304 refreshes the times");
    assert!(
        f.store.get(f.id.as_str()).await.unwrap().is_some(),
        "document kept"
    );
}

#[tokio::test]
async fn stale_entry_revalidates_with_if_modified_since() {
    let first = Reply::Doc {
        cache_control: Some("max-age=1"),
        etag: None,
        last_modified: Some("Mon, 13 Nov 2023 00:00:00 GMT"),
        client_id: None,
        delay: Duration::ZERO,
    };
    let f = fixture(fast_expiry(), first).await;
    let a = f.resolver.resolve(&f.id).await.unwrap();
    tokio::time::sleep(PAST_FAST_TTL).await;
    let b = f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 2);
    assert_eq!(f.site.conditional(), 1);
    assert_eq!(f.resolver.stats().not_modified, 1);
    assert!(b.fresh_until > a.fresh_until, "304 extends freshness");
    f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 2, "fresh again after the 304");
}

#[tokio::test]
async fn not_modified_for_another_validator_falls_back_to_unconditional_fetch() {
    let first = Reply::Doc {
        cache_control: Some("no-cache"),
        etag: Some("\"v1\""),
        last_modified: None,
        client_id: None,
        delay: Duration::ZERO,
    };
    let f = fixture(CacheConfig::default(), first).await;
    f.resolver.resolve(&f.id).await.unwrap();
    f.site.set(Reply::MismatchedNotModified);
    f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(
        f.site.hits(),
        3,
        "initial, conditional (304 mismatch), unconditional"
    );
    assert_eq!(f.site.conditional(), 1);
    assert_eq!(
        f.resolver.stats().not_modified,
        0,
        "a mismatched 304 is not used"
    );
    // Every revalidation costs at most two requests (no retry loop).
    f.resolver.resolve(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 5);
}

#[tokio::test]
async fn concurrent_resolves_share_one_fetch() {
    let first = Reply::Doc {
        cache_control: Some("max-age=300"),
        etag: None,
        last_modified: None,
        client_id: None,
        delay: Duration::from_millis(200),
    };
    let f = fixture(CacheConfig::default(), first).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let r = f.resolver.clone();
            let id = f.id.clone();
            tokio::spawn(async move { r.resolve(&id).await })
        })
        .collect();
    let mut docs = Vec::new();
    for t in tasks {
        docs.push(t.await.unwrap().unwrap());
    }
    assert_eq!(f.site.hits(), 1, "one fetch for 50 concurrent resolves");
    assert!(docs.iter().all(|d| Arc::ptr_eq(d, &docs[0])));
}

#[tokio::test]
async fn concurrent_failures_share_one_fetch_and_error() {
    let f = fixture(
        CacheConfig::default(),
        Reply::Status(404, Duration::from_millis(200)),
    )
    .await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let r = f.resolver.clone();
            let id = f.id.clone();
            tokio::spawn(async move { r.resolve(&id).await })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        errors.push(t.await.unwrap().unwrap_err().to_string());
    }
    assert_eq!(f.site.hits(), 1);
    assert!(errors.iter().all(|e| e == &errors[0]));
}

#[tokio::test]
async fn negative_cache_remembers_failure_for_negative_ttl() {
    let cfg = CacheConfig {
        negative_ttl: Duration::from_millis(500),
        ..CacheConfig::default()
    };
    let f = fixture(cfg, Reply::Status(404, Duration::ZERO)).await;
    let e1 = f.resolver.resolve(&f.id).await.unwrap_err();
    assert!(
        matches!(
            e1,
            ResolveError::Fetch(FetchError::HttpStatus { status: 404, .. })
        ),
        "{e1:?}"
    );
    let e2 = f.resolver.resolve(&f.id).await.unwrap_err();
    assert_eq!(
        f.site.hits(),
        1,
        "second failure served from the negative cache"
    );
    assert_eq!(e1.to_string(), e2.to_string(), "same reason");
    assert_eq!(f.resolver.stats().negative_hits, 1);
    tokio::time::sleep(Duration::from_millis(650)).await;
    f.resolver.resolve(&f.id).await.unwrap_err();
    assert_eq!(f.site.hits(), 2, "fetched again after negative_ttl");
}

#[tokio::test]
async fn client_id_mismatch_is_invalid_and_not_cached_as_document() {
    let first = Reply::Doc {
        cache_control: Some("max-age=300"),
        etag: None,
        last_modified: None,
        client_id: Some("https://other.test/client.json"),
        delay: Duration::ZERO,
    };
    let f = fixture(CacheConfig::default(), first).await;
    let e = f.resolver.resolve(&f.id).await.unwrap_err();
    let ResolveError::Invalid(report) = &e else {
        panic!("expected Invalid, got {e:?}");
    };
    assert!(report.errors().any(|p| p.field == "client_id"), "{report}");
    assert!(
        f.store.get(f.id.as_str()).await.unwrap().is_none(),
        "never stored"
    );
    let again = f.resolver.resolve(&f.id).await.unwrap_err();
    assert_eq!(f.site.hits(), 1, "invalid document negatively cached");
    assert_eq!(again.to_string(), e.to_string());
}

#[tokio::test]
async fn invalid_new_version_evicts_old_document_and_is_never_served_stale() {
    let f = fixture(fast_expiry(), doc(Some("max-age=1"))).await;
    f.resolver.resolve(&f.id).await.unwrap();
    f.site.set(Reply::Doc {
        cache_control: Some("max-age=300"),
        etag: None,
        last_modified: None,
        client_id: Some("https://other.test/client.json"),
        delay: Duration::ZERO,
    });
    tokio::time::sleep(PAST_FAST_TTL).await;
    let e = f.resolver.resolve_allow_stale(&f.id).await.unwrap_err();
    assert!(matches!(e, ResolveError::Invalid(_)), "{e:?}");
    assert!(
        f.store.get(f.id.as_str()).await.unwrap().is_none(),
        "old entry evicted"
    );
    assert!(matches!(
        f.resolver.resolve_allow_stale(&f.id).await,
        Err(ResolveError::Invalid(_))
    ));
    assert_eq!(f.resolver.stats().stale_served, 0);
}

#[tokio::test]
async fn stale_if_error_serves_previous_document_only_to_allow_stale() {
    let f = fixture(fast_expiry(), doc(Some("max-age=1"))).await;
    let good = f.resolver.resolve(&f.id).await.unwrap();
    f.site.set(Reply::Status(500, Duration::ZERO));
    tokio::time::sleep(PAST_FAST_TTL).await;

    // Fetch path: the refetch fails, the stale document is served.
    let stale = f.resolver.resolve_allow_stale(&f.id).await.unwrap();
    assert!(Arc::ptr_eq(&stale, &good));
    assert_eq!(f.site.hits(), 2);
    // /authorize never gets it (negative cache hit, same failure).
    assert!(matches!(
        f.resolver.resolve(&f.id).await,
        Err(ResolveError::Fetch(_))
    ));
    // Negative-cache path: still served stale without another fetch.
    f.resolver.resolve_allow_stale(&f.id).await.unwrap();
    assert_eq!(f.site.hits(), 2);
    assert_eq!(f.resolver.stats().stale_served, 2);
}

#[tokio::test]
async fn stale_if_error_window_is_bounded() {
    let cfg = CacheConfig {
        stale_if_error: Duration::from_millis(300),
        negative_ttl: Duration::from_millis(100),
        ..fast_expiry()
    };
    let f = fixture(cfg, doc(Some("max-age=1"))).await;
    f.resolver.resolve(&f.id).await.unwrap();
    f.site.set(Reply::Status(503, Duration::ZERO));
    tokio::time::sleep(FAST_TTL * 2 + Duration::from_millis(200)).await;
    assert!(matches!(
        f.resolver.resolve_allow_stale(&f.id).await,
        Err(ResolveError::Fetch(_))
    ));
}

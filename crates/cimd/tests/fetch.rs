//! Integration tests for the SSRF-safe fetcher against a real HTTPS host on 127.0.0.1.
//!
//! Host names such as `cimd.test` are mapped to loopback with `FetchConfig::resolve` (or the
//! test DNS server) and trusted through the test CA. Only loopback-family addresses
//! (127.0.0.0/8, ::1, 0.0.0.0, ::) ever appear, so no test can send traffic off the machine.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cimd::fetch::{FetchConfig, FetchError, FetchRequest, Fetcher};
use cimd::ip::IpPolicy;
use cimdgate_test_support::{DnsServer, HttpsHost, TestCa};
use futures_util::StreamExt;

const HOST: &str = "cimd.test";
const CAP: usize = 5120;
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn json(body: impl Into<Body>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

async fn echo(headers: HeaderMap, uri: Uri) -> Response {
    let get = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    // HTTP/1.1 carries `Host`; HTTP/2 carries `:authority` (the request URI's authority).
    let host = get(header::HOST).or_else(|| uri.authority().map(|a| a.to_string()));
    json(
        serde_json::json!({
            "host": host,
            "user_agent": get(header::USER_AGENT),
            "accept": get(header::ACCEPT),
            "cookie": get(header::COOKIE),
            "authorization": get(header::AUTHORIZATION),
        })
        .to_string(),
    )
}

fn router() -> Router {
    Router::new()
        .route("/doc", get(|| async { json(r#"{"client_id":"x"}"#) }))
        .route("/echo", get(echo))
        .route(
            "/redirect",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "https://cimd.test/target")],
                )
            }),
        )
        .route("/target", get(|| async { json("{}") }))
        .route(
            "/bloated-headers",
            get(|| async {
                // A valid document behind ~40 KiB of junk headers (review finding F-cache-2).
                let mut r = json(r#"{"client_id":"x"}"#);
                for i in 0..100 {
                    r.headers_mut().insert(
                        header::HeaderName::from_bytes(format!("x-pad-{i}").as_bytes()).unwrap(),
                        header::HeaderValue::from_str(&"A".repeat(400)).unwrap(),
                    );
                }
                r
            }),
        )
        .route(
            "/long-location",
            get(|| async {
                let target = format!("https://cimd.test/{}", "a".repeat(10_000));
                (StatusCode::FOUND, [(header::LOCATION, target)])
            }),
        )
        .route(
            "/long-content-type",
            get(|| async {
                let ct = format!("text/{}", "x".repeat(10_000));
                ([(header::CONTENT_TYPE, ct)], "{}").into_response()
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/big-chunked",
            get(|| async {
                // 12 chunks of 512 bytes, no Content-Length: the cap must be enforced on the stream.
                let chunks = futures_util::stream::iter(
                    (0..12).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])),
                );
                json(Body::from_stream(chunks))
            }),
        )
        .route("/big-length", get(|| async { json(vec![b' '; CAP + 1]) }))
        .route("/exact-cap", get(|| async { json(vec![b' '; CAP]) }))
        .route(
            "/stall",
            get(|| async {
                let first = futures_util::stream::once(async {
                    Ok::<_, std::io::Error>(b"{\"a\":".to_vec())
                });
                json(Body::from_stream(
                    first.chain(futures_util::stream::pending()),
                ))
            }),
        )
        .route(
            "/html",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/html")], "<html></html>").into_response()
            }),
        )
        .route(
            "/plus-json",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/jwk-set+json; charset=utf-8",
                    )],
                    r#"{"keys":[]}"#,
                )
                    .into_response()
            }),
        )
        .route(
            "/no-content-type",
            get(|| async { Response::new(Body::from("{}")) }),
        )
        .route(
            "/conditional",
            // Always 304: a 304 is only acceptable when the request carried a validator.
            get(|| async { StatusCode::NOT_MODIFIED }),
        )
}

struct Env {
    ca: TestCa,
    host: HttpsHost,
}

async fn env() -> Env {
    let ca = TestCa::new();
    let host = HttpsHost::start(&ca, &[HOST], router()).await;
    Env { ca, host }
}

impl Env {
    /// Dev config: `cimd.test` → 127.0.0.1, loopback allowed, test CA trusted, short timeouts.
    fn config(&self) -> FetchConfig {
        FetchConfig {
            connect_timeout: Duration::from_secs(1),
            total_timeout: Duration::from_secs(1),
            dev_allow_loopback: true,
            extra_ca_pem: vec![self.ca.cert_pem().as_bytes().to_vec()],
            resolve: HashMap::from([(HOST.to_string(), LOOPBACK)]),
            ..FetchConfig::default()
        }
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher::new(self.config()).unwrap()
    }

    fn url(&self, path: &str) -> String {
        self.host.url(HOST, path)
    }

    fn assert_untouched(&self) {
        assert_eq!(
            self.host.connections(),
            0,
            "the host must see no connection"
        );
        assert_eq!(self.host.requests(), 0, "the host must see no request");
    }
}

async fn fetch(f: &Fetcher, url: &str) -> Result<cimd::fetch::FetchResponse, FetchError> {
    f.fetch(&FetchRequest::new(url, CAP)).await
}

#[tokio::test]
async fn fetches_json_document_over_https() {
    let e = env().await;
    let resp = fetch(&e.fetcher(), &e.url("/doc")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], br#"{"client_id":"x"}"#);
    assert_eq!(resp.url, e.url("/doc"));
    assert_eq!(e.host.hits("/doc"), 1);
}

#[tokio::test]
async fn accepts_plus_json_content_type_with_parameters() {
    let e = env().await;
    let resp = fetch(&e.fetcher(), &e.url("/plus-json")).await.unwrap();
    assert_eq!(&resp.body[..], br#"{"keys":[]}"#);
}

#[tokio::test]
async fn sends_accept_user_agent_and_host_with_port_and_no_credentials() {
    let e = env().await;
    let resp = fetch(&e.fetcher(), &e.url("/echo")).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["accept"], "application/json");
    assert_eq!(v["user_agent"], cimd::fetch::DEFAULT_USER_AGENT);
    assert!(
        v["user_agent"]
            .as_str()
            .unwrap()
            .starts_with(concat!("cimdgate/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(v["host"], format!("{HOST}:{}", e.host.port()));
    assert!(v["cookie"].is_null() && v["authorization"].is_null());
}

/// Every fetch gets its own connection and none is kept afterwards, so the number of hosts
/// fetched from never decides how many connections (and how much TLS state) are held.
#[tokio::test]
async fn no_connection_is_kept_after_a_fetch() {
    let e = env().await;
    let f = e.fetcher();
    for _ in 0..3 {
        fetch(&f, &e.url("/doc")).await.unwrap();
    }
    assert_eq!(e.host.requests(), 3);
    // One connection per fetch: none is kept idle afterwards (an idle connection per distinct
    // host grew memory and descriptors without bound under wildcard names).
    assert_eq!(e.host.connections(), 3, "no idle connection is reused");
}

#[tokio::test]
async fn redirect_is_not_followed_and_names_location() {
    let e = env().await;
    let err = fetch(&e.fetcher(), &e.url("/redirect")).await.unwrap_err();
    match &err {
        FetchError::Redirect { status, location } => {
            assert_eq!(*status, 302);
            assert_eq!(location.as_deref(), Some("https://cimd.test/target"));
        }
        other => panic!("expected Redirect, got {other:?}"),
    }
    assert!(err.to_string().contains("https://cimd.test/target"));
    assert_eq!(
        e.host.hits("/target"),
        0,
        "the redirect target must not be requested"
    );
}

/// A host chooses neither the size of what is kept of its response nor of the errors that are
/// cached and shown: a bloated header block is refused, long header values are quoted cut short.
#[tokio::test]
async fn header_bloat_is_refused_and_quoted_values_are_capped() {
    let e = env().await;
    let f = e.fetcher();
    // Over HTTP/2 the transport's own header-list limit (16 KiB) already refuses it; over
    // HTTP/1.1 the fetcher's MAX_RESPONSE_HEADER_BYTES does (unit test in `fetch.rs`). Refused
    // either way, with a short error.
    let err = fetch(&f, &e.url("/bloated-headers")).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::HeadersTooLarge { .. } | FetchError::Io { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().len() < 1024, "{err}");
    for path in ["/long-location", "/long-content-type"] {
        let err = fetch(&f, &e.url(path)).await.unwrap_err();
        let quoted = match &err {
            FetchError::Redirect { location, .. } => location.clone(),
            FetchError::ContentType { found } => found.clone(),
            other => panic!("{path}: {other:?}"),
        }
        .unwrap();
        assert!(
            quoted.chars().count() <= cimd::fetch::MAX_QUOTED_HEADER_CHARS + 1,
            "{path}: {} chars",
            quoted.chars().count()
        );
        assert!(
            err.to_string().len() < 1024,
            "{path}: {}",
            err.to_string().len()
        );
    }
}

#[tokio::test]
async fn non_200_status_is_an_error() {
    let e = env().await;
    let err = fetch(&e.fetcher(), &e.url("/missing")).await.unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 404 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn not_modified_only_with_a_validator() {
    let e = env().await;
    let f = e.fetcher();
    let url = e.url("/conditional");
    let err = fetch(&f, &url).await.unwrap_err();
    assert!(
        matches!(err, FetchError::HttpStatus { status: 304 }),
        "{err:?}"
    );
    let req = FetchRequest {
        if_none_match: Some("\"v1\""),
        ..FetchRequest::new(&url, CAP)
    };
    let resp = f.fetch(&req).await.unwrap();
    assert_eq!(resp.status, 304);
    assert!(resp.body.is_empty());
}

#[tokio::test]
async fn streamed_body_over_cap_without_content_length_is_too_large() {
    let e = env().await;
    let err = fetch(&e.fetcher(), &e.url("/big-chunked"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: CAP }),
        "{err:?}"
    );
}

#[tokio::test]
async fn content_length_over_cap_is_too_large() {
    let e = env().await;
    let err = fetch(&e.fetcher(), &e.url("/big-length"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: CAP }),
        "{err:?}"
    );
}

#[tokio::test]
async fn body_of_exactly_the_cap_is_accepted() {
    let e = env().await;
    let resp = fetch(&e.fetcher(), &e.url("/exact-cap")).await.unwrap();
    assert_eq!(resp.body.len(), CAP);
}

#[tokio::test]
async fn stalled_body_times_out_within_total_deadline() {
    let e = env().await;
    let start = Instant::now();
    let err = fetch(&e.fetcher(), &e.url("/stall")).await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(err, FetchError::Timeout { phase: "total", .. }),
        "{err:?}"
    );
    assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(900), "took {elapsed:?}");
}

#[tokio::test]
async fn wrong_content_type_is_rejected() {
    let e = env().await;
    let err = fetch(&e.fetcher(), &e.url("/html")).await.unwrap_err();
    match err {
        FetchError::ContentType { found } => assert_eq!(found.as_deref(), Some("text/html")),
        other => panic!("expected ContentType, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_content_type_is_rejected() {
    let e = env().await;
    let err = fetch(&e.fetcher(), &e.url("/no-content-type"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::ContentType { found: None }),
        "{err:?}"
    );
}

/// A name mapped (like a DNS answer) to a blocked address is refused before any connection.
#[tokio::test]
async fn name_resolving_to_blocked_address_never_connects() {
    let e = env().await;
    let cases: [(IpAddr, bool); 5] = [
        (LOOPBACK, false), // loopback without the dev hook
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), true),
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), false),
        (IpAddr::V6(Ipv6Addr::LOCALHOST), false),
        (IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), false),
    ];
    for (ip, dev) in cases {
        let cfg = FetchConfig {
            dev_allow_loopback: dev,
            resolve: HashMap::from([(HOST.to_string(), ip)]),
            ..e.config()
        };
        let err = fetch(&Fetcher::new(cfg).unwrap(), &e.url("/doc"))
            .await
            .unwrap_err();
        match &err {
            FetchError::BlockedAddress { host, blocked } => {
                assert_eq!(host, HOST);
                assert_eq!(blocked.ip, ip);
            }
            other => panic!("{ip} (dev={dev}): expected BlockedAddress, got {other:?}"),
        }
        e.assert_untouched();
    }
}

#[tokio::test]
async fn ip_literal_urls_are_rejected_without_connecting() {
    let e = env().await;
    let port = e.host.port();
    let strict = Fetcher::new(FetchConfig {
        dev_allow_loopback: false,
        ..e.config()
    })
    .unwrap();
    for url in [
        format!("https://127.0.0.1:{port}/doc"),
        format!("https://[::1]:{port}/doc"),
        format!("https://127.1:{port}/doc"),
        format!("https://2130706433:{port}/doc"),
        format!("https://0x7f.0.0.1:{port}/doc"),
        format!("https://0177.0.0.1:{port}/doc"),
        format!("https://[::ffff:127.0.0.1]:{port}/doc"),
        format!("https://0.0.0.0:{port}/doc"),
        format!("https://0:{port}/doc"),
    ] {
        let err = fetch(&strict, &url).await.unwrap_err();
        assert!(
            matches!(err, FetchError::BlockedAddress { .. }),
            "{url}: {err:?}"
        );
    }
    // With the dev hook, non-canonical spellings are still refused (as invalid URLs).
    let dev = e.fetcher();
    for url in [
        format!("https://127.1:{port}/doc"),
        format!("https://2130706433:{port}/doc"),
    ] {
        let err = fetch(&dev, &url).await.unwrap_err();
        assert!(
            matches!(err, FetchError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
    }
    e.assert_untouched();
}

#[tokio::test]
async fn dev_loopback_allows_canonical_loopback_literal() {
    let e = env().await;
    let url = e.host.url("127.0.0.1", "/doc");
    let resp = fetch(&e.fetcher(), &url).await.unwrap();
    assert_eq!(resp.status, 200);
}

/// No traffic: the dev hook never opens private or link-local ranges.
#[test]
fn dev_allow_loopback_does_not_allow_private_or_link_local() {
    let policy = FetchConfig {
        dev_allow_loopback: true,
        ..FetchConfig::default()
    }
    .ip_policy();
    for ip in [
        "10.0.0.1",
        "169.254.169.254",
        "192.168.1.1",
        "100.64.0.1",
        "fe80::1",
        "fc00::1",
    ] {
        assert!(policy.check(ip.parse().unwrap()).is_err(), "{ip}");
    }
    assert!(policy.check(LOOPBACK).is_ok());
    assert_eq!(IpPolicy::default(), IpPolicy::STRICT);
}

/// Any blocked answer rejects the host, even when another answer is allowed: the allowed
/// loopback answer would have reached the host, which must see nothing.
#[tokio::test]
async fn any_blocked_dns_answer_rejects_the_host() {
    let e = env().await;
    let dns = DnsServer::start(vec![
        ("mixed.test", LOOPBACK),
        ("mixed.test", IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ("mixed.test", IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ])
    .await;
    let cfg = FetchConfig {
        dns_server: Some(dns.addr()),
        resolve: HashMap::new(),
        ..e.config()
    };
    let err = fetch(
        &Fetcher::new(cfg).unwrap(),
        &e.host.url("mixed.test", "/doc"),
    )
    .await
    .unwrap_err();
    match &err {
        FetchError::BlockedAddress { host, blocked } => {
            assert_eq!(host, "mixed.test");
            assert!(blocked.ip.is_unspecified(), "{blocked}");
        }
        other => panic!("expected BlockedAddress, got {other:?}"),
    }
    assert!(dns.queries() >= 1, "the DNS server must have been asked");
    e.assert_untouched();
}

#[tokio::test]
async fn dns_server_hook_is_used_for_lookups() {
    let ca = TestCa::new();
    let host = HttpsHost::start(&ca, &["dns.test"], router()).await;
    let dns = DnsServer::start(vec![("dns.test", LOOPBACK)]).await;
    let cfg = FetchConfig {
        connect_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(3),
        dev_allow_loopback: true,
        extra_ca_pem: vec![ca.cert_pem().as_bytes().to_vec()],
        dns_server: Some(dns.addr()),
        ..FetchConfig::default()
    };
    let f = Fetcher::new(cfg).unwrap();
    let resp = fetch(&f, &host.url("dns.test", "/doc")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(dns.queries() >= 1);
    // A name the server does not know has no addresses.
    let err = fetch(&f, &host.url("unknown.test", "/doc"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::NoAddresses { .. } | FetchError::Dns { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn certificate_is_verified_for_the_original_host_name() {
    let e = env().await;
    // other.test maps to the same server, whose certificate does not name it.
    let cfg = FetchConfig {
        resolve: HashMap::from([("other.test".to_string(), LOOPBACK)]),
        ..e.config()
    };
    let err = fetch(
        &Fetcher::new(cfg).unwrap(),
        &e.host.url("other.test", "/doc"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    assert_eq!(e.host.requests(), 0);
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error() {
    let e = env().await;
    let cfg = FetchConfig {
        extra_ca_pem: Vec::new(),
        ..e.config()
    };
    let err = fetch(&Fetcher::new(cfg).unwrap(), &e.url("/doc"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
    assert_eq!(e.host.requests(), 0);
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let e = env().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = fetch(&e.fetcher(), &format!("https://{HOST}:{port}/doc"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn outbound_fetches_are_rate_limited_per_host() {
    let e = env().await;
    let cfg = FetchConfig {
        per_host_per_minute: 2,
        resolve: HashMap::from([
            (HOST.to_string(), LOOPBACK),
            ("b.test".to_string(), LOOPBACK),
        ]),
        ..e.config()
    };
    let f = Fetcher::new(cfg).unwrap();
    fetch(&f, &e.url("/doc")).await.unwrap();
    fetch(&f, &e.url("/doc")).await.unwrap();
    let err = fetch(&f, &e.url("/doc")).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::RateLimited { host } if host == HOST),
        "{err:?}"
    );
    assert_eq!(e.host.requests(), 2, "the limited fetch sends nothing");
    // Another host has its own budget (it fails TLS, which proves it got past the limiter).
    let err = fetch(&f, &e.host.url("b.test", "/doc")).await.unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn non_https_urls_are_rejected() {
    let e = env().await;
    let err = fetch(
        &e.fetcher(),
        &format!("http://{HOST}:{}/doc", e.host.port()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::InvalidUrl { .. }), "{err:?}");
    e.assert_untouched();
}

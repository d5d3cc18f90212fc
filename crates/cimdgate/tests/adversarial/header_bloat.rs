//! Review findings H3 (cimd F-cache-2: response headers kept whole) and M10 (cimd F-cache-1:
//! `Age: 18446744073709551615` panicked on revalidation) through the binary: a document host
//! answering with hundreds of large headers, a huge `Set-Cookie`, `Cache-Control` with
//! thousands of directives, absurd `Age` / `max-age`, redirects and content types of 15 KiB.
//! Each is a clean refusal (a 400 page, never a redirect, never quoting the junk) or an
//! accepted document with a bounded cache entry; the `Age` document is revalidated several
//! times past its (one-second) lifetime.
//!
//! Fails if: any request answers 5xx or not at all, a refusal redirects or echoes more than a
//! short quote of the attacker's header, an accepted case is refused (or the reverse), the
//! server panics (stderr), or `/healthz` stops answering within a second.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cimdgate_test_support::{HttpsHost, TestCa};

use crate::harness::{Gate, Setup, Tally, body, fetch_hooks, plain_client, write_ca};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// Distinct redirecting client_ids (each a negative cache entry).
const REDIRECTS: usize = 100;

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap()
}

/// The answer for `path`: a valid document for `client_id` decorated by the case, or a refusal.
fn bloated(path: &str, client_id: &str) -> Response {
    let doc = serde_json::json!({
        "client_id": client_id,
        "client_name": "Bloated Client",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
    })
    .to_string();
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, hv("application/json"));
    let junk = |n: usize| "a".repeat(n);
    match path {
        "/age.json" => {
            h.insert(header::AGE, hv("18446744073709551615"));
            h.insert(header::CACHE_CONTROL, hv("max-age=60"));
            h.insert(header::ETAG, hv("\"v1\""));
        }
        "/huge-max-age.json" => {
            h.insert(
                header::CACHE_CONTROL,
                hv("max-age=999999999999999999999999999999, s-maxage=-5"),
            );
            h.insert(header::EXPIRES, hv("not a date at all"));
            h.insert(header::AGE, hv("-1"));
        }
        "/directives.json" => {
            // ~29 KiB of directives: over the fetcher's 16 KiB header cap.
            let d: Vec<String> = (0..3000).map(|i| format!("d{i}")).collect();
            h.insert(header::CACHE_CONTROL, hv(&d.join(", ")));
        }
        "/directives-small.json" => {
            // ~3 KiB: under the cap, over the 512 B kept per header.
            let mut d: Vec<String> = (0..1000).map(|i| format!("x{i}")).collect();
            d.push("max-age=3600".into());
            h.insert(header::CACHE_CONTROL, hv(&d.join(",")));
            h.insert(header::ETAG, hv(&format!("\"{}\"", junk(8000))));
            h.insert(header::VARY, hv("*"));
        }
        "/many-headers.json" => {
            for i in 0..90 {
                h.insert(
                    HeaderName::from_bytes(format!("x-pad-{i}").as_bytes()).unwrap(),
                    hv(&junk(1024)),
                );
            }
        }
        "/too-many-headers.json" => {
            for i in 0..300 {
                h.insert(
                    HeaderName::from_bytes(format!("x-n-{i}").as_bytes()).unwrap(),
                    hv("1"),
                );
            }
        }
        "/cookie.json" => {
            h.insert(header::SET_COOKIE, hv(&format!("a={}", junk(60_000))));
        }
        "/cookies.json" => {
            for i in 0..80 {
                h.append(header::SET_COOKIE, hv(&format!("c{i}={}", junk(140))));
            }
        }
        "/content-type.json" => {
            h.insert(
                header::CONTENT_TYPE,
                hv(&format!("application/{}", junk(15_000))),
            );
        }
        p if p.starts_with("/r") => {
            h.insert(
                header::LOCATION,
                hv(&format!("https://elsewhere.test/{}", junk(15_000))),
            );
            return (StatusCode::FOUND, h).into_response();
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    }
    (h, doc).into_response()
}

fn document_router() -> axum::Router {
    axum::Router::new().fallback(|uri: Uri, headers: HeaderMap| async move {
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        bloated(uri.path(), &format!("https://{authority}{}", uri.path()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_bloat_is_refused_or_bounded_and_never_crashes() {
    let ca = TestCa::new();
    let host = HttpsHost::start(&ca, &["bloat.test", "redirects.test"], document_router()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_ca(dir.path(), ca.cert_pem());
    let fetch = fetch_hooks(&ca_file, &["bloat.test", "redirects.test"], "");
    let mut gate = Gate::start(Setup {
        server: "",
        // A one-second minimum lifetime, so the Age document is revalidated within the test.
        body: body(&fetch, "[cimd]\ncache_min_ttl_secs = 1\n"),
        env: vec![],
    })
    .await;
    let http = plain_client();
    let tally = Tally::default();
    let authorize = |client_id: String| {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/authorize", gate.base),
            &[
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", "http://127.0.0.1/callback"),
                ("state", "s"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        )
        .unwrap();
        let http = http.clone();
        let tally = tally.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            tally.add(status);
            let redirected = r.headers().contains_key(header::LOCATION);
            let text = r.text().await.unwrap_or_default();
            assert!(!redirected, "{client_id}: redirected ({status})");
            assert!(
                !text.contains(&"a".repeat(300)),
                "{client_id}: the page quotes the attacker's header at length"
            );
            (status, text)
        }
    };
    let url = |name: &str, path: &str| host.url(name, path);

    // Some(true): accepted (a login page); Some(false): refused (a 400 page); None: either.
    for (path, accepted) in [
        ("/age.json", Some(true)),
        ("/huge-max-age.json", Some(true)),
        ("/directives-small.json", Some(true)),
        ("/cookies.json", Some(true)),
        ("/directives.json", Some(false)),
        ("/many-headers.json", Some(false)),
        ("/cookie.json", Some(false)),
        ("/content-type.json", Some(false)),
        // Under the byte cap: HTTP/2 takes it (only cache headers are kept), HTTP/1.1 clients
        // refuse more than 100 headers.
        ("/too-many-headers.json", None),
    ] {
        let (status, text) = authorize(url("bloat.test", path)).await;
        match accepted {
            Some(true) => assert_eq!(status, 200, "{path}: {text}"),
            Some(false) => assert_eq!(status, 400, "{path}: {text}"),
            None => assert!(status == 200 || status == 400, "{path}: {status} {text}"),
        }
        gate.healthz_within(Duration::from_secs(1)).await;
    }
    // The Age document, past its lifetime: revalidated (this used to panic), three times.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (status, text) = authorize(url("bloat.test", "/age.json")).await;
        assert_eq!(status, 200, "/age.json revalidated: {text}");
    }
    // Many distinct redirecting documents: each a refusal, each remembered briefly.
    let before = gate.rss_kib();
    for i in 0..REDIRECTS {
        let (status, text) = authorize(url("redirects.test", &format!("/r{i}.json"))).await;
        assert_eq!(status, 400, "{text}");
    }
    let after = gate.rss_kib();
    println!(
        "header bloat: statuses {:?}; age.json fetched {} times; {REDIRECTS} redirects of \
         15 KiB: RSS {:.1} → {:.1} MiB",
        tally.counts(),
        host.hits("/age.json"),
        crate::harness::mib(before),
        crate::harness::mib(after)
    );
    assert!(
        host.hits("/age.json") >= 2,
        "the Age document was revalidated"
    );
    tally.assert_no_5xx("header bloat");
    gate.healthz_within(Duration::from_secs(1)).await;
    gate.assert_healthy();
}

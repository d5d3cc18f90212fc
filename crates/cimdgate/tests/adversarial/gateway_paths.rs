//! Review finding H1 through the binary: a token for resource `/a` must never reach another path
//! on the upstream origin. Every spelling of a dot segment, a backslash, an encoded slash or
//! backslash and a `..;` path parameter is answered 400 and nothing reaches the upstream.
//!
//! The forwarded request also carries spoofed identity and forwarding headers in every spelling
//! (review finding M5), and a resource whose upstream is down must not name it (server L4).
//!
//! Fails if: any variant is forwarded (the upstream records a path), answers anything but 400,
//! the ordinary path `/a/x` stops being forwarded under `/a`, a spoofed header reaches the
//! upstream, or the 502 names the upstream's address.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cimdgate_client::ExposeSecret;
use cimdgate_client::discovery::discover;
use cimdgate_client::flow::{AuthorizationRequest, register};
use cimdgate_client::form::{FormDriver, Step};

use crate::harness::{Gate, PASSWORD, Setup, body, raw};

/// Sign in as `alice` through a DCR client (the form driver plays the browser) and redeem the
/// code: an access token for `base` + `resource_path` with `scope`.
pub async fn access_token(base: &str, resource_path: &str, scope: &str) -> String {
    let http = cimdgate_client::http_client().unwrap();
    let resource = url::Url::parse(&format!("{base}{resource_path}")).unwrap();
    let d = discover(&http, &resource).await.unwrap();
    let endpoint = d.metadata.registration_endpoint.clone().unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let client_id = register(&http, &endpoint, "adversary", redirect, Some(scope))
        .await
        .unwrap();
    let req = AuthorizationRequest::new(&d, &client_id, redirect, Some(scope)).unwrap();
    let driver = FormDriver::new().unwrap();
    let Step::Login(form) = driver.open(req.url.as_str()).await.unwrap() else {
        panic!("expected the login page")
    };
    let Step::Consent(form) = driver.login(&form, "alice", PASSWORD).await.unwrap() else {
        panic!("expected the consent page")
    };
    let Step::Redirect(location) = driver.consent(&form, true).await.unwrap() else {
        panic!("expected the redirect to the client")
    };
    let url = url::Url::parse(&location).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let tokens = req.exchange(&http, &code).await.unwrap();
    tokens.access_token.expose_secret().to_owned()
}

/// Every spelling the review (H1) and the usual servers' quirks give for leaving `/a`.
const ESCAPES: &[&str] = &[
    "/a/../b",
    "/a/../b/secret",
    "/a/x/../../b",
    "/a/%2e%2e/b",
    "/a/%2E%2E/b",
    "/a/.%2E/b",
    "/a/%2e./b",
    "/a/./../b",
    "/a/..;/b",
    "/a/%2e%2e;x=1/b",
    "/a/..%5cb",
    "/a/%5c..%5cb",
    "/a/..%2fb",
    "/a/%2F..%2Fb",
    "/a/..\\b",
    "/a/\\..\\b",
    "/a/..",
    "/a/.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_path_traversal_never_reaches_another_upstream_path() {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let received: Arc<Mutex<Vec<axum::http::HeaderMap>>> = Arc::default();
    let (seen, heads) = (hits.clone(), received.clone());
    let upstream = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let (seen, heads) = (seen.clone(), heads.clone());
            async move {
                seen.lock().unwrap().push(uri.path().to_owned());
                heads.lock().unwrap().push(headers);
                "upstream"
            }
        },
    );
    // A port nothing listens on, for a resource whose upstream is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, upstream).await });

    let extra = format!(
        "[[resources]]\npath = \"/a\"\nupstream = \"http://{up}/a\"\nscopes = [\"mcp\"]\n\n\
         [[resources]]\npath = \"/b\"\nupstream = \"http://{up}/b\"\nscopes = [\"admin\"]\n\n\
         [[resources]]\npath = \"/down\"\nupstream = \"http://{down}/down\"\nscopes = [\"mcp\"]\n"
    );
    let mut gate = Gate::start(Setup {
        server: "",
        body: body("", &extra),
        env: vec![],
    })
    .await;
    let token = access_token(&gate.base, "/a", "mcp").await;

    let get = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Accept: application/json, text/event-stream\r\nConnection: close\r\n\r\n",
            addr = gate.addr
        )
    };
    let mut answers = Vec::new();
    for path in ESCAPES {
        let (status, text) = raw(gate.addr, get(path).as_bytes(), Duration::from_secs(10)).await;
        answers.push((*path, status));
        assert_eq!(status, 400, "{path}: {text}");
    }
    // The absolute form of the request target goes through the same check.
    let absolute = format!("http://{}/a/../b", gate.addr);
    let (status, text) = raw(
        gate.addr,
        get(&absolute).as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status, 400, "{absolute}: {text}");
    assert!(
        hits.lock().unwrap().is_empty(),
        "forwarded: {:?}",
        hits.lock().unwrap()
    );

    // The token's own audience is /a: /b itself refuses it (scope and audience checks).
    let (status, text) = raw(gate.addr, get("/b/x").as_bytes(), Duration::from_secs(10)).await;
    assert!(
        status == 401 || status == 403,
        "a token for /a used at /b: {text}"
    );
    // An ordinary path below /a is forwarded, under /a, and only it — without any identity or
    // forwarding header the client made up.
    let spoofed = get("/a/x").replace(
        "Connection: close\r\n",
        "Connection: close\r\nX-Forwarded-User: admin\r\nX_Forwarded_User: admin\r\n\
         x-forwarded-user: root\r\nForwarded: for=1.2.3.4;host=evil.test\r\n\
         X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: evil.test\r\nX-Real-IP: 1.2.3.4\r\n\
         X-Auth-Request-Email: admin@evil.test\r\nX-Forwarded-Groups: admins\r\n",
    );
    let (status, text) = raw(gate.addr, spoofed.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(*hits.lock().unwrap(), vec!["/a/x".to_owned()]);
    let headers = received.lock().unwrap()[0].clone();
    for (name, value) in &headers {
        let v = value.to_str().unwrap_or("");
        assert!(
            !v.contains("admin")
                && !v.contains("root")
                && !v.contains("1.2.3.4")
                && !v.contains("evil.test"),
            "a spoofed value reached the upstream: {name}: {v}"
        );
        assert!(!name.as_str().contains('_'), "{name} reached the upstream");
    }
    assert_eq!(
        headers
            .get("x-forwarded-user")
            .and_then(|v| v.to_str().ok()),
        Some("alice"),
        "the gateway's own identity header: {headers:?}"
    );

    // An upstream that is down: a 502 that does not say where it is.
    let token_down = access_token(&gate.base, "/down", "mcp").await;
    let (status, text) = raw(
        gate.addr,
        get("/down/x").replace(&token, &token_down).as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status, 502, "{text}");
    assert!(
        !text.contains(&down.port().to_string()) && !text.contains("127.0.0.1:"),
        "the 502 names the upstream: {text}"
    );
    println!(
        "gateway traversal: {} variants → {answers:?}",
        ESCAPES.len()
    );
    gate.assert_healthy();
}

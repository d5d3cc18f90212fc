//! The gateway (RFC 9728, RFC 6750; docs/architecture.md, *Gateway*) end to end: a real cimdgate server with `[[resources]]`, real CIMD
//! logins through the browser harness, real upstream servers on 127.0.0.1:0, and the official
//! Rust MCP client (rmcp) — plus raw HTTP where a test needs to see exact headers.

use crate::{common, gateway_util};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use serde_json::{Value, json};

use cimdgate_server::time::unix;
use common::TestEnv;
use gateway_util::*;

/// The exact no-token challenge of `/mcp`.
fn challenge(env: &TestEnv) -> String {
    format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\"",
        env.base
    )
}

fn www_auth(h: &reqwest::header::HeaderMap) -> String {
    h.get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn get_mcp(env: &TestEnv, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("accept", "text/event-stream")];
    if let Some(a) = &auth {
        h.push(("authorization", a));
    }
    send(Method::GET, &env.resource(), &h, None).await
}

/// The 401 for a rejected token, with its exact challenge; returns the description.
async fn assert_invalid_token(env: &TestEnv, token: &str) -> String {
    let (status, h, body) = post_mcp(&env.resource(), token, None, initialize_msg()).await;
    assert_eq!(status, 401, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "invalid_token");
    let why = body["error_description"].as_str().unwrap().to_owned();
    assert_eq!(
        www_auth(&h),
        format!(
            "{}, error=\"invalid_token\", error_description=\"{why}\"",
            challenge(env)
        )
    );
    why
}

#[tokio::test]
async fn cimd_login_then_rmcp_client_calls_echo_and_whoami_on_the_builtin_demo() {
    let env = TestEnv::start().await;
    let t = login(&env, "rmcp-app", "/mcp").await;
    let client = mcp_client(&env.resource(), &t.access).await;
    assert_eq!(
        call_text(&client, "echo", json!({"text": "hello gateway"})).await,
        "hello gateway"
    );
    let who: Value = serde_json::from_str(&call_text(&client, "whoami", json!({})).await).unwrap();
    assert_eq!(
        who,
        json!({"user": "alice", "client_id": t.client_id, "scopes": ["mcp"],
               "token_source": "cimdgate"})
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn raw_initialize_and_tools_call_keep_the_mcp_session_on_the_builtin_demo() {
    let env = TestEnv::start().await;
    let t = login(&env, "raw-app", "/mcp").await;
    let (status, h, body) = post_mcp(&env.resource(), &t.access, None, initialize_msg()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        rpc_result(&body)["result"]["serverInfo"].is_object(),
        "{body}"
    );
    let session = h["mcp-session-id"].to_str().unwrap().to_owned();
    let (s, _, b) = post_mcp(
        &env.resource(),
        &t.access,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "via session"}}});
    let (s, _, b) = post_mcp(&env.resource(), &t.access, Some(&session), call).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        rpc_result(&b)["result"]["content"][0]["text"],
        "via session"
    );
}

#[tokio::test]
async fn rmcp_client_reaches_a_separate_upstream_mcp_server_through_the_proxy() {
    let upstream = spawn_rmcp_upstream().await;
    let env = TestEnv::start_with(|c| c.resources.push(resource("/up", &upstream, &["mcp"]))).await;
    let t = login(&env, "proxy-app", "/up").await;
    let client = mcp_client(&env.url("/up"), &t.access).await;
    assert_eq!(
        call_text(&client, "echo", json!({"text": "through the proxy"})).await,
        "through the proxy"
    );
    // The upstream knows who is calling only from the identity headers the gateway added.
    let who: Value = serde_json::from_str(&call_text(&client, "whoami", json!({})).await).unwrap();
    assert_eq!(
        who,
        json!({"user": "alice", "client_id": t.client_id, "scopes": ["mcp"],
               "token_source": "cimdgate"})
    );
    client.cancel().await.unwrap();

    // Raw: the upstream's Mcp-Session-Id comes back through the proxy and is accepted on the
    // next request.
    let (status, h, body) = post_mcp(&env.url("/up"), &t.access, None, initialize_msg()).await;
    assert_eq!(status, 200, "{body}");
    let session = h["mcp-session-id"].to_str().unwrap().to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let (s, _, b) = post_mcp(&env.url("/up"), &t.access, Some(&session), call).await;
    assert_eq!(s, 200, "{b}");
    assert!(b.contains("whoami"), "{b}");
}

#[tokio::test]
async fn sse_events_reach_the_client_before_the_upstream_finishes() {
    let (upstream, finished) = spawn_echo_upstream().await;
    let env =
        TestEnv::start_with(|c| c.resources.push(resource("/echo", &upstream, &["mcp"]))).await;
    let t = login(&env, "sse-app", "/echo").await;
    let start = Instant::now();
    let mut resp = common::http_client()
        .get(env.url("/echo/sse"))
        .bearer_auth(&t.access)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        arrivals.push((Instant::now(), String::from_utf8_lossy(&chunk).into_owned()));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(text, "data: first\n\ndata: second\n\n");
    let (first_at, first) = &arrivals[0];
    assert_eq!(
        first, "data: first\n\n",
        "the first event arrives alone: {arrivals:?}"
    );
    let done = finished.lock().unwrap().expect("upstream finished");
    assert!(
        *first_at < done,
        "first event only after the upstream finished"
    );
    assert!(
        done.duration_since(*first_at) >= Duration::from_millis(400),
        "first event {:?} after start, upstream done {:?} after start",
        first_at.duration_since(start),
        done.duration_since(start)
    );
}

#[tokio::test]
async fn no_token_gets_the_exact_401_challenge_and_metadata_is_served() {
    let env = TestEnv::start().await;
    let (status, h, _) = get_mcp(&env, None).await;
    assert_eq!(status, 401);
    assert_eq!(www_auth(&h), challenge(&env));
    // A token in the query string is not looked at (RFC 6750 §2.3 not supported).
    let (status, h, _) = send(
        Method::GET,
        &format!("{}?access_token=x", env.resource()),
        &[],
        None,
    )
    .await;
    assert_eq!((status, www_auth(&h)), (401, challenge(&env)));

    let expected = json!({
        "resource": env.resource(),
        "authorization_servers": [env.base],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
    });
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (status, _, body) = send(Method::GET, &env.url(path), &[], None).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            expected,
            "{path}"
        );
    }
}

#[tokio::test]
async fn several_resources_each_get_their_own_metadata_and_no_root_document() {
    let upstream = spawn_rmcp_upstream().await;
    let env = TestEnv::start_with(|c| {
        c.resources.push(resource(
            "/tools",
            &upstream,
            &["tools:read", "tools:write"],
        ))
    })
    .await;
    let (status, h, _) = send(Method::POST, &env.url("/tools"), &[], None).await;
    assert_eq!(status, 401);
    assert_eq!(
        www_auth(&h),
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/tools\", \
             scope=\"tools:read tools:write\"",
            env.base
        )
    );
    let (_, _, body) = send(
        Method::GET,
        &env.url("/.well-known/oauth-protected-resource/tools"),
        &[],
        None,
    )
    .await;
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["resource"], env.url("/tools"));
    assert_eq!(
        doc["scopes_supported"],
        json!(["tools:read", "tools:write"])
    );
    let (status, _, _) = send(
        Method::GET,
        &env.url("/.well-known/oauth-protected-resource"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn garbage_token_gets_invalid_token() {
    let env = TestEnv::start().await;
    let why = assert_invalid_token(&env, "not-a-jwt").await;
    assert!(why.contains("malformed"), "{why}");
}

#[tokio::test]
async fn token_without_the_required_scope_gets_403_insufficient_scope() {
    let env = TestEnv::start().await;
    let mut c = claims(&env);
    c.scope = "other".into();
    let (status, h, body) =
        post_mcp(&env.resource(), &mint(&env, &c), None, initialize_msg()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        www_auth(&h),
        format!(
            "{}, error=\"insufficient_scope\", error_description=\"this request requires scope 'mcp'\"",
            challenge(&env)
        )
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "insufficient_scope"
    );
}

#[tokio::test]
async fn token_for_another_resource_is_rejected() {
    let upstream = spawn_rmcp_upstream().await;
    let env = TestEnv::start_with(|c| c.resources.push(resource("/up", &upstream, &["mcp"]))).await;
    let t = login(&env, "aud-app", "/up").await;
    let why = assert_invalid_token(&env, &t.access).await;
    assert!(why.contains("not for this resource"), "{why}");
    // The same token is good where it belongs.
    let (status, _, body) = post_mcp(&env.url("/up"), &t.access, None, initialize_msg()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn expired_token_is_rejected_beyond_the_skew() {
    let env = TestEnv::start().await;
    let mut c = claims(&env);
    c.exp = unix(SystemTime::now()) - 120; // skew is 30 s
    let why = assert_invalid_token(&env, &mint(&env, &c)).await;
    assert!(why.contains("Expired"), "{why}");
    // Within the skew it still passes (clocks differ a little).
    c.exp = unix(SystemTime::now()) - 5;
    let (status, _, body) =
        post_mcp(&env.resource(), &mint(&env, &c), None, initialize_msg()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn foreign_issuer_and_foreign_key_tokens_are_rejected() {
    let env = TestEnv::start().await;
    let mut c = claims(&env);
    c.iss = "https://evil.example".into();
    let why = assert_invalid_token(&env, &mint_foreign(&c)).await;
    assert!(why.contains("not trusted"), "{why}");
    // Our issuer name, someone else's key.
    let why = assert_invalid_token(&env, &mint_foreign(&claims(&env))).await;
    assert!(why.contains("unknown kid"), "{why}");
    // Our key but another issuer name.
    let why = assert_invalid_token(&env, &mint(&env, &c)).await;
    assert!(why.contains("not trusted"), "{why}");
}

#[tokio::test]
async fn revoked_family_is_rejected_within_the_revocation_cache_bound() {
    let env = TestEnv::start().await;
    let t = login(&env, "revoke-app", "/mcp").await;
    let (status, _, _) = post_mcp(&env.resource(), &t.access, None, initialize_msg()).await;
    assert_eq!(status, 200);
    let (s, b) = env
        .post_json(
            "/revoke",
            &[("token", &t.refresh), ("client_id", &t.client_id)],
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let revoked_at = Instant::now();
    // DEFAULT_REVOCATION_CACHE_TTL = 5 s is the documented staleness bound.
    loop {
        let (status, _, _) = post_mcp(&env.resource(), &t.access, None, initialize_msg()).await;
        if status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_millis(6500),
            "revoked token still accepted after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let why = assert_invalid_token(&env, &t.access).await;
    assert!(why.contains("revoked"), "{why}");

    // A token revoked before its first use is refused at once.
    let t2 = login(&env, "revoke-app-2", "/mcp").await;
    let (s, _) = env
        .post_json(
            "/revoke",
            &[("token", &t2.access), ("client_id", &t2.client_id)],
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        assert_invalid_token(&env, &t2.access)
            .await
            .contains("revoked")
    );
}

#[tokio::test]
async fn upstream_down_is_502_json_without_its_internal_address() {
    let down = closed_port_url().await;
    let env = TestEnv::start_with(|c| c.resources.push(resource("/down", &down, &["mcp"]))).await;
    let t = login(&env, "down-app", "/down").await;
    let (status, h, body) = post_mcp(&env.url("/down"), &t.access, None, initialize_msg()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(h["content-type"], "application/json");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "upstream_unavailable");
    let why = body["error_description"].as_str().unwrap();
    assert!(why.contains("unavailable"), "{why}");
    let host_port = down
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    assert!(
        !why.contains(host_port),
        "internal address disclosed: {why}"
    );
}

#[tokio::test]
async fn oversized_body_is_413_json_with_and_without_content_length() {
    let (upstream, _) = spawn_echo_upstream().await;
    let env =
        TestEnv::start_with(|c| c.resources.push(resource("/echo", &upstream, &["mcp"]))).await;
    let t = login(&env, "big-app", "/echo").await;
    let big = "x".repeat(cimdgate_gateway::config::DEFAULT_MAX_BODY_BYTES + 1);
    // Content-Length: refused by the layer before anything is read.
    let (status, _, body) = post_mcp(
        &env.url("/echo"),
        &t.access,
        None,
        Value::String(big.clone()),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "request_too_large"
    );
    // Chunked (no Content-Length): refused by the proxy while reading.
    let chunks = futures_util::stream::iter(
        big.into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let resp = common::http_client()
        .post(env.url("/echo"))
        .bearer_auth(&t.access)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "request_too_large");
    // And the builtin demo, behind the same layer.
    let big = "x".repeat(cimdgate_gateway::config::DEFAULT_MAX_BODY_BYTES + 1);
    let token = mint(&env, &claims(&env));
    let (status, _, body) = post_mcp(&env.resource(), &token, None, Value::String(big)).await;
    assert_eq!(status, 413, "{body}");
}

#[tokio::test]
async fn authorization_and_cookies_are_not_forwarded_identity_headers_are() {
    let (upstream, _) = spawn_echo_upstream().await;
    let env =
        TestEnv::start_with(|c| c.resources.push(resource("/echo", &upstream, &["mcp"]))).await;
    let t = login(&env, "hdr-app", "/echo").await;
    let auth = format!("Bearer {}", t.access);
    let (status, h, body) = send(
        Method::POST,
        &env.url("/echo/sub/path?x=1"),
        &[
            ("authorization", &auth),
            ("cookie", "__Host-cimdgate=secret"),
            ("x-forwarded-user", "mallory"),
            ("x_forwarded_user", "mallory"),
            ("x-forwarded-scopes", "admin"),
            ("x-forwarded-for", "10.9.9.9"),
            ("forwarded", "for=10.9.9.9"),
            ("x-real-ip", "10.9.9.9"),
            ("x-forwarded-email", "mallory@evil.example"),
            ("mcp-session-id", "client-session"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
        ],
        Some("{}".into()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    let hd = &seen["headers"];
    assert_eq!(seen["method"], "POST");
    assert_eq!(
        seen["path"], "/sub/path",
        "the upstream base is its root here"
    );
    assert_eq!(seen["query"], "x=1");
    assert!(
        hd.get("authorization").is_none(),
        "bearer token forwarded: {hd}"
    );
    assert!(hd.get("cookie").is_none(), "cookie forwarded: {hd}");
    assert!(
        hd.get("x-hop").is_none(),
        "Connection-listed header forwarded: {hd}"
    );
    assert_eq!(hd["x-forwarded-user"], "alice");
    assert_eq!(hd["x-forwarded-client-id"], t.client_id.as_str());
    assert_eq!(hd["x-forwarded-scopes"], "mcp");
    assert_eq!(hd["x-forwarded-token-source"], "cimdgate");
    // Spoofing variants never pass; the forwarding headers are the gateway's own.
    for spoofed in [
        "x_forwarded_user",
        "forwarded",
        "x-real-ip",
        "x-forwarded-email",
    ] {
        assert!(hd.get(spoofed).is_none(), "{spoofed} forwarded: {hd}");
    }
    assert_eq!(hd["x-forwarded-for"], "127.0.0.1");
    assert_eq!(hd["x-forwarded-proto"], "http");
    assert_eq!(hd["mcp-session-id"], "client-session");
    // Back: the upstream's session id passes, its cookie does not.
    assert_eq!(h["mcp-session-id"], "up-session");
    assert!(h.get("set-cookie").is_none());
}

#[tokio::test]
async fn remote_jwks_source_verifies_and_refetches_at_most_every_30_s() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cimdgate_gateway::{
        Gateway, GatewayConfig, KeySource, ResourceSpec, TokenSource, Upstream,
    };

    let env = TestEnv::start().await;
    // A JWKS host that counts fetches, serving the authorization server's public keys.
    let fetches = Arc::new(AtomicUsize::new(0));
    let (f2, jwks) = (fetches.clone(), env.server().state.tokens.keys.jwks());
    let jwks_base = spawn(axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            f2.fetch_add(1, Ordering::SeqCst);
            let j = jwks.clone();
            async move { axum::Json(j) }
        }),
    ))
    .await;
    // A stand-alone gateway on its own listener, trusting that issuer through the remote JWKS.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = GatewayConfig::new(url::Url::parse(&gw_base).unwrap(), vec![env.base.clone()]);
    config.resources.push(ResourceSpec::new(
        "/mcp",
        Upstream::BuiltinDemo,
        vec!["mcp".into()],
    ));
    let source = TokenSource {
        name: "remote-as".into(),
        issuer: env.base.clone(),
        keys: KeySource::remote(
            url::Url::parse(&format!("{jwks_base}/jwks.json")).unwrap(),
            reqwest::Client::new(),
        ),
        audience: None,
        require_at_jwt: true,
        revocation: None,
    };
    let gateway = Gateway::new(config, vec![source]).unwrap();
    let router = gateway.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let mut c = claims(&env);
    c.aud = format!("{gw_base}/mcp");
    let client = mcp_client(&format!("{gw_base}/mcp"), &mint(&env, &c)).await;
    let who: Value = serde_json::from_str(&call_text(&client, "whoami", json!({})).await).unwrap();
    assert_eq!(who["token_source"], "remote-as");
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch, then cached");
    client.cancel().await.unwrap();

    // Unknown kids do not make the gateway hammer the JWKS host.
    for _ in 0..3 {
        let (status, _, _) = post_mcp(
            &format!("{gw_base}/mcp"),
            &mint_foreign(&c),
            None,
            initialize_msg(),
        )
        .await;
        assert_eq!(status, 401);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "refetch rate-limited");
}

/// One raw HTTP/1.1 request with the path exactly as written (HTTP clients resolve `..` before
/// sending, as browsers do; an attacker's client does not). Returns the status line's code and
/// the body.
async fn raw_get(base: &str, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/json, text/event-stream\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

/// A token for resource `/a` reaches only `/a`'s upstream path: `..` in any spelling, a
/// backslash or an encoded slash is refused with 400 before anything is forwarded, so another
/// resource on the same upstream origin (`/b`, which needs the `admin` scope) stays out of reach.
#[tokio::test]
async fn dot_segments_never_take_a_request_to_another_resource() {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = hits.clone();
    let upstream = spawn(axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(uri.path().to_owned());
            "upstream"
        }
    }))
    .await;
    let env = TestEnv::start_with(|c| {
        c.resources
            .push(resource("/a", &format!("{upstream}/a"), &["mcp"]));
        c.resources
            .push(resource("/b", &format!("{upstream}/b"), &["admin"]));
    })
    .await;
    let t = login(&env, "path-app", "/a").await;
    let base = env.url("");
    let base = base.trim_end_matches('/');
    for path in [
        "/a/../b",
        "/a/%2e%2e/b",
        "/a/.%2E/b",
        "/a/x/../../b/secret",
        "/a/..;/b",
        "/a/..%5cb",
        "/a/..%2fb",
    ] {
        let (status, body) = raw_get(base, path, &t.access).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("invalid_request"), "{path}: {body}");
    }
    assert!(
        hits.lock().unwrap().is_empty(),
        "nothing was forwarded: {:?}",
        hits.lock().unwrap()
    );
    // An ordinary path below /a is forwarded, under /a.
    let (status, body) = raw_get(base, "/a/x", &t.access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(*hits.lock().unwrap(), vec!["/a/x".to_owned()]);
}

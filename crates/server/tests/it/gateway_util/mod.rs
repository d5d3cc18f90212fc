//! Fixtures for the gateway tests: tokens through a full CIMD login, minted tokens, upstream
//! servers (a second rmcp server, a header-echo server, an SSE server), and MCP clients.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use cimdgate_server::config::{ResourceConfig, SigningAlg};
use cimdgate_server::time::unix;
use cimdgate_server::tokens::keys::{KeyRing, SigningKey};
use cimdgate_server::tokens::{AccessClaims, sign_access_token};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::common::{TestEnv, http_client, pkce_pair, query_map};

/// Tokens from one login.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub client_id: String,
}

/// A `[[resources]]` entry.
pub fn resource(path: &str, upstream: &str, scopes: &[&str]) -> ResourceConfig {
    ResourceConfig {
        path: path.into(),
        upstream: upstream.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        forward_upstream_token: false,
        required_scopes: None,
        operation_scopes: Vec::new(),
        allowed_origins: Vec::new(),
    }
}

/// Full CIMD login for `resource_path` (publish a client document, /authorize with PKCE, log in
/// and consent in a browser, exchange the code at /token).
pub async fn login(env: &TestEnv, client_name: &str, resource_path: &str) -> Tokens {
    let client_id = env.publish_client(client_name, json!({}));
    let body = authorize_and_redeem(env, &client_id, resource_path, "mcp").await;
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        client_id,
    }
}

/// Authorize the published `client_id` for `resource_path` and `scope` (PKCE, log in and
/// approve in a fresh browser), exchange the code: the token response (asserted 200).
pub async fn authorize_and_redeem(
    env: &TestEnv,
    client_id: &str,
    resource_path: &str,
    scope: &str,
) -> Value {
    let redirect = TestEnv::default_redirect("cimd.test");
    let (verifier, challenge) = pkce_pair();
    let resource = env.url(resource_path);
    let params: Vec<(String, String)> = env
        .authorize_params(client_id, &redirect, &challenge)
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "resource" => (k, resource.clone()),
            "scope" => (k, scope.to_owned()),
            _ => (k, v),
        })
        .collect();
    let location = env
        .login_and_consent(&env.authorize_url(&params), true)
        .await;
    let code = query_map(&location)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {location}"));
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", &redirect),
            ("client_id", client_id),
            ("resource", &resource),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Claims of a token the server would issue for `/mcp`; tests tweak them before [`mint`].
pub fn claims(env: &TestEnv) -> AccessClaims {
    let now = unix(SystemTime::now());
    AccessClaims {
        iss: env.base.clone(),
        sub: "alice".into(),
        aud: env.resource(),
        client_id: env.client_url("minted"),
        scope: "mcp".into(),
        exp: now + 600,
        iat: now,
        jti: format!("jti-{now}"),
        fid: "fam-minted".into(),
        urf: None,
    }
}

/// Sign with the server's own current key.
pub fn mint(env: &TestEnv, claims: &AccessClaims) -> String {
    sign_access_token(&env.server().state.tokens.keys, claims).unwrap()
}

/// Sign with a freshly generated key the server does not know.
pub fn mint_foreign(claims: &AccessClaims) -> String {
    let der = SigningKey::generate_pkcs8(SigningAlg::EdDSA).unwrap();
    let ring = KeyRing::from_keys(vec![SigningKey::from_pkcs8(&der).unwrap()]).unwrap();
    sign_access_token(&ring, claims).unwrap()
}

/// Serve `router` on 127.0.0.1:0; returns `http://127.0.0.1:PORT`.
pub async fn spawn(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// A separate rmcp MCP server (the demo tool set, reading identity from headers) on its own
/// listener; returns its MCP URL.
pub async fn spawn_rmcp_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = url::Url::parse(&format!("http://{addr}")).unwrap();
    let svc = cimdgate_gateway::demo::service(&base, 1 << 20);
    let router = axum::Router::new().route_service("/mcp", svc);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}/mcp")
}

/// An upstream that answers every request with JSON describing it (method, path, query,
/// headers, body), sets `Mcp-Session-Id: up-session` and a cookie (which must not reach the
/// client), and at `/sse` sends one event, waits 500 ms, sends another, and records when it
/// finished in the returned slot.
pub async fn spawn_echo_upstream() -> (String, Arc<Mutex<Option<Instant>>>) {
    let finished: Arc<Mutex<Option<Instant>>> = Arc::default();
    let f2 = finished.clone();
    let sse = move || {
        let finished = f2.clone();
        async move {
            let stream = async_stream(finished);
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    };
    let echo = |req: Request| async move {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
            .collect();
        let doc = json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body_len": body.len(),
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("mcp-session-id", "up-session")
            .header("set-cookie", "upstream=1; Path=/")
            .body(Body::from(doc.to_string()))
            .unwrap()
    };
    let router = axum::Router::new()
        .route("/sse", axum::routing::get(sse))
        .fallback(echo);
    (spawn(router).await, finished)
}

fn async_stream(
    finished: Arc<Mutex<Option<Instant>>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold(0u8, move |step| {
        let finished = finished.clone();
        async move {
            match step {
                0 => Some((Ok(bytes::Bytes::from("data: first\n\n")), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Some((Ok(bytes::Bytes::from("data: second\n\n")), 2))
                }
                _ => {
                    *finished.lock().unwrap() = Some(Instant::now());
                    None
                }
            }
        }
    })
}

/// A URL on this machine where nothing listens.
pub async fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/mcp")
}

/// The official Rust MCP client (rmcp) connected to `url` with a bearer token.
pub async fn mcp_client(url: &str, token: &str) -> RunningService<RoleClient, ClientConfig> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned()),
    );
    ClientConfig::default().serve(transport).await.unwrap()
}

/// `tools/call name args` → the first text content.
pub async fn call_text(
    client: &RunningService<RoleClient, ClientConfig>,
    name: &'static str,
    args: Value,
) -> String {
    let args = args.as_object().cloned().unwrap_or_default();
    let r = client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    r.content[0].as_text().unwrap().text.clone()
}

/// A raw HTTP request to the gateway: `(status, headers, body)`.
pub async fn send(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = http_client().request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// POST a JSON-RPC message as an MCP client would.
pub async fn post_mcp(
    url: &str,
    token: &str,
    session: Option<&str>,
    msg: Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let auth = format!("Bearer {token}");
    let mut h = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    if let Some(s) = session {
        h.push(("mcp-session-id", s));
    }
    send(reqwest::Method::POST, url, &h, Some(msg.to_string())).await
}

/// The JSON-RPC message in a JSON or SSE response body.
pub fn rpc_result(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in {body}"))
}

/// The `initialize` request.
pub fn initialize_msg() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "0"}
    }})
}

//! `McpSession::connect` against small in-test MCP servers on 127.0.0.1:0, one per era sign
//! (MCP 2026-07-28 "Versioning" and Streamable HTTP backward compatibility):
//!
//! - a modern server: `server/discover` lists 2026-07-28 → stateless requests, every one with
//!   `_meta` and the mirrored headers, never `initialize` or a session id;
//! - legacy-only servers whose `server/discover` answer is a plain-text 400 or a 404 → the
//!   2025-11-25 `initialize` session;
//! - a server answering `UnsupportedProtocolVersion` (-32022) without 2026-07-28 → legacy;
//! - a modern server answering 403 `insufficient_scope` → a typed error whose scope the caller
//!   unites with its own (SEP-2350).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use cimdgate_client::mcp::{Era, McpSession};
use cimdgate_client::{ClientError, step_up_scope};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Modern,
    Legacy400,
    Legacy404,
    Unsupported32022,
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    version_header: Option<String>,
    session_header: Option<String>,
    meta_version: Option<String>,
    has_client_info: bool,
}

#[derive(Clone)]
struct Server {
    mode: Mode,
    seen: Arc<Mutex<Vec<Seen>>>,
}

const SESSION: &str = "sess-1";

fn h(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn rpc_error(status: StatusCode, id: &Value, code: i64, data: Value) -> Response {
    let body =
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": "e", "data": data}});
    (status, axum::Json(body)).into_response()
}

fn decode(v: &str) -> String {
    match v
        .strip_prefix("=?base64?")
        .and_then(|s| s.strip_suffix("?="))
    {
        Some(b) => {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
        }
        None => v.to_owned(),
    }
}

fn echo_result(id: &Value, params: &Value) -> Value {
    let text = params["arguments"]["text"]
        .as_str()
        .map_or_else(|| params["name"].to_string(), str::to_owned);
    json!({"jsonrpc": "2.0", "id": id, "result": {
        "content": [{"type": "text", "text": text}], "isError": false, "resultType": "complete"
    }})
}

async fn mcp(State(s): State<Server>, headers: HeaderMap, body: Bytes) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap();
    let method = msg["method"].as_str().unwrap_or_default().to_owned();
    let id = msg["id"].clone();
    let params = msg["params"].clone();
    let meta = &params["_meta"];
    s.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        version_header: h(&headers, "mcp-protocol-version"),
        session_header: h(&headers, "mcp-session-id"),
        meta_version: meta["io.modelcontextprotocol/protocolVersion"]
            .as_str()
            .map(str::to_owned),
        has_client_info: meta["io.modelcontextprotocol/clientInfo"]["name"].is_string(),
    });
    if s.mode == Mode::Modern {
        if method == "initialize" {
            return rpc_error(StatusCode::NOT_FOUND, &id, -32601, Value::Null);
        }
        // Server validation (2026-07-28 Streamable HTTP): headers mirror the body.
        let version = meta["io.modelcontextprotocol/protocolVersion"].as_str();
        let name_ok = match method.as_str() {
            "tools/call" => {
                h(&headers, "mcp-name").map(|v| decode(&v)).as_deref() == params["name"].as_str()
            }
            _ => true,
        };
        if version != Some("2026-07-28")
            || h(&headers, "mcp-protocol-version").as_deref() != version
            || h(&headers, "mcp-method").as_deref() != Some(method.as_str())
            || !meta["io.modelcontextprotocol/clientCapabilities"].is_object()
            || !name_ok
        {
            return rpc_error(StatusCode::BAD_REQUEST, &id, -32020, Value::Null);
        }
        return match method.as_str() {
            "server/discover" => axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {
                "supportedVersions": ["2026-07-28", "2025-11-25"],
                "capabilities": {"tools": {}},
                "resultType": "complete",
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern-test", "version": "1"}},
            }}))
            .into_response(),
            "tools/call" if params["name"] == "admin" => (
                StatusCode::FORBIDDEN,
                [(
                    header::WWW_AUTHENTICATE,
                    "Bearer error=\"insufficient_scope\", scope=\"mcp:write\", \
                     resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource\"",
                )],
            )
                .into_response(),
            // Answer as a short SSE stream, as servers may.
            "tools/call" => (
                [(header::CONTENT_TYPE, "text/event-stream")],
                format!("event: message\ndata: {}\n\n", echo_result(&id, &params)),
            )
                .into_response(),
            _ => rpc_error(StatusCode::NOT_FOUND, &id, -32601, Value::Null),
        };
    }
    match method.as_str() {
        "server/discover" => match s.mode {
            Mode::Legacy400 => (
                StatusCode::BAD_REQUEST,
                "Bad Request: Session ID is required",
            )
                .into_response(),
            Mode::Legacy404 => (StatusCode::NOT_FOUND, "Not Found").into_response(),
            _ => rpc_error(
                StatusCode::BAD_REQUEST,
                &id,
                -32022,
                json!({"supported": ["2025-11-25", "2025-06-18"], "requested": "2026-07-28"}),
            ),
        },
        "initialize" => (
            [("mcp-session-id", SESSION)],
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": params["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "legacy-test", "version": "1"},
            }})),
        )
            .into_response(),
        _ if h(&headers, "mcp-session-id").as_deref() != Some(SESSION) => {
            (StatusCode::BAD_REQUEST, "no session").into_response()
        }
        "notifications/initialized" => StatusCode::ACCEPTED.into_response(),
        "tools/call" => axum::Json(echo_result(&id, &params)).into_response(),
        _ => rpc_error(StatusCode::OK, &id, -32601, Value::Null),
    }
}

async fn start(mode: Mode) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().route("/mcp", post(mcp)).with_state(Server {
        mode,
        seen: seen.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/mcp"), seen)
}

#[tokio::test]
async fn modern_server_gets_stateless_requests_with_meta_and_headers() {
    let (url, seen) = start(Mode::Modern).await;
    let http = cimdgate_client::http_client().unwrap();
    let mut s = McpSession::connect(&http, &url, "tok").await.unwrap();
    assert_eq!(s.era(), Era::Modern);
    assert_eq!(s.protocol_version(), "2026-07-28");
    assert_eq!(s.describe(), "2026-07-28 stateless");
    assert_eq!(s.server_name(), Some("modern-test"));
    let r = s.call_tool("echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(McpSession::first_text(&r), Some("hi"));
    // A name that is not header-safe travels base64-wrapped; the server decodes it.
    let r = s.call_tool("météo", json!({})).await.unwrap();
    assert_eq!(McpSession::first_text(&r), Some("\"météo\""));
    let seen = seen.lock().unwrap().clone();
    let methods: Vec<_> = seen.iter().map(|x| x.method.as_str()).collect();
    assert_eq!(methods, ["server/discover", "tools/call", "tools/call"]);
    for x in &seen {
        assert_eq!(x.version_header.as_deref(), Some("2026-07-28"), "{x:?}");
        assert_eq!(x.meta_version.as_deref(), Some("2026-07-28"), "{x:?}");
        assert!(x.has_client_info, "{x:?}");
        assert!(x.session_header.is_none(), "{x:?}");
    }
}

async fn assert_falls_back_to_legacy(mode: Mode) {
    let (url, seen) = start(mode).await;
    let http = cimdgate_client::http_client().unwrap();
    let mut s = McpSession::connect(&http, &url, "tok").await.unwrap();
    assert_eq!(s.era(), Era::Legacy, "{mode:?}");
    assert_eq!(s.protocol_version(), "2025-11-25");
    assert_eq!(s.describe(), "2025-11-25 session");
    assert_eq!(s.server_name(), Some("legacy-test"));
    let r = s.call_tool("echo", json!({"text": "hi"})).await.unwrap();
    assert_eq!(McpSession::first_text(&r), Some("hi"));
    let seen = seen.lock().unwrap().clone();
    let methods: Vec<_> = seen.iter().map(|x| x.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/call"
        ],
        "{mode:?}"
    );
    // After the probe: the session id, the negotiated version, no per-request _meta.
    for x in &seen[2..] {
        assert_eq!(x.session_header.as_deref(), Some(SESSION), "{x:?}");
        assert_eq!(x.version_header.as_deref(), Some("2025-11-25"), "{x:?}");
        assert!(x.meta_version.is_none(), "{x:?}");
    }
}

#[tokio::test]
async fn legacy_server_400_plain_body_falls_back_to_initialize() {
    assert_falls_back_to_legacy(Mode::Legacy400).await;
}

#[tokio::test]
async fn legacy_server_404_for_server_discover_falls_back_to_initialize() {
    assert_falls_back_to_legacy(Mode::Legacy404).await;
}

#[tokio::test]
async fn unsupported_protocol_version_without_2026_falls_back_to_initialize() {
    assert_falls_back_to_legacy(Mode::Unsupported32022).await;
}

#[tokio::test]
async fn insufficient_scope_is_typed_and_steps_up_to_the_union() {
    let (url, _) = start(Mode::Modern).await;
    let http = cimdgate_client::http_client().unwrap();
    let mut s = McpSession::connect(&http, &url, "tok").await.unwrap();
    let err = s.call_tool("admin", json!({})).await.unwrap_err();
    let ClientError::InsufficientScope { challenge, .. } = err else {
        panic!("expected InsufficientScope, got {err:?}");
    };
    assert_eq!(challenge.scope.as_deref(), Some("mcp:write"));
    assert_eq!(
        step_up_scope(Some("mcp:basic"), challenge.scope.as_deref()).as_deref(),
        Some("mcp:basic mcp:write")
    );
}

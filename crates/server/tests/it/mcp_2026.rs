//! MCP 2026-07-28 through the gateway (docs/architecture.md, *Gateway*): stateless Streamable
//! HTTP (no `initialize`, no `Mcp-Session-Id`, `server/discover`, per-request `_meta`), the
//! mirrored `Mcp-Method` / `Mcp-Name` headers checked against the body, per-operation scopes
//! with a 403 step-up, and scope accumulation at re-authorization (SEP-2350). The 2025-era
//! session flow keeps working (gateway.rs, interop_*.rs).

use crate::{common, gateway_util};

use reqwest::Method;
use rmcp::model::{ClientConfig, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use cimdgate_server::config::OperationScopesConfig;
use common::TestEnv;
use gateway_util::*;

const MODERN: &str = "2026-07-28";

/// A 2026-07-28 request body: the version and capabilities in `params._meta`.
fn modern_msg(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-2026", "version": "0"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POST a 2026-07-28 request with the standard headers; `name` → `Mcp-Name`.
async fn post_modern(
    env: &TestEnv,
    token: &str,
    msg: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let auth = format!("Bearer {token}");
    let mut h = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", MODERN),
    ];
    h.extend_from_slice(headers);
    send(Method::POST, &env.resource(), &h, Some(msg.to_string())).await
}

/// The standard headers a 2026-07-28 client derives from `msg`.
fn mirrored(msg: &Value) -> Vec<(&'static str, String)> {
    let method = msg["method"].as_str().unwrap().to_owned();
    let mut h = vec![("mcp-method", method.clone())];
    if method == "tools/call" {
        h.push((
            "mcp-name",
            msg["params"]["name"].as_str().unwrap().to_owned(),
        ));
    }
    h
}

async fn post_modern_mirrored(
    env: &TestEnv,
    token: &str,
    msg: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let h = mirrored(msg);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_modern(env, token, msg, &h).await
}

#[tokio::test]
async fn a_2026_07_28_rmcp_client_discovers_and_calls_tools_with_no_session() {
    let env = TestEnv::start().await;
    let t = login(&env, "modern-app", "/mcp").await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(env.resource()).auth_header(t.access.clone()),
    );
    let client = ClientConfig::default()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover through the gateway");
    let info = client.peer_info().expect("discovered server info");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);
    let args = json!({"text": "stateless hello"})
        .as_object()
        .cloned()
        .unwrap();
    let r = client
        .call_tool(rmcp::model::CallToolRequestParams::new("echo").with_arguments(args))
        .await
        .unwrap();
    assert_eq!(r.content[0].as_text().unwrap().text, "stateless hello");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn raw_2026_07_28_requests_are_stateless_and_get_and_delete_are_405() {
    let env = TestEnv::start().await;
    let t = login(&env, "raw-modern", "/mcp").await;

    let discover = modern_msg(1, "server/discover", json!({}));
    let (status, h, body) = post_modern_mirrored(&env, &t.access, &discover).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        h.get("mcp-session-id").is_none(),
        "a 2026 exchange mints no session"
    );
    let v = rpc_result(&body);
    let versions = v["result"]["supportedVersions"].as_array().unwrap();
    assert!(versions.contains(&json!(MODERN)), "{v}");
    assert!(versions.contains(&json!("2025-11-25")), "dual-era: {v}");

    // tools/call with no initialize and no session.
    let call = modern_msg(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let (status, h, body) = post_modern_mirrored(&env, &t.access, &call).await;
    assert_eq!(status, 200, "{body}");
    assert!(h.get("mcp-session-id").is_none());
    assert_eq!(
        rpc_result(&body)["result"]["content"][0]["text"],
        "hi",
        "{body}"
    );

    for method in [Method::GET, Method::DELETE] {
        let auth = format!("Bearer {}", t.access);
        let (status, _, body) = send(
            method.clone(),
            &env.resource(),
            &[
                ("authorization", &auth),
                ("accept", "text/event-stream"),
                ("mcp-protocol-version", MODERN),
            ],
            None,
        )
        .await;
        assert_eq!(status, 405, "{method} on a 2026-07-28 exchange: {body}");
    }
}

#[tokio::test]
async fn mirrored_headers_that_disagree_with_the_body_are_refused_with_400() {
    let env = TestEnv::start().await;
    let t = login(&env, "mirror-app", "/mcp").await;
    let call = modern_msg(7, "tools/call", json!({"name": "whoami", "arguments": {}}));
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (
            "name differs",
            &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
        ),
        (
            "method differs",
            &[("mcp-method", "tools/list"), ("mcp-name", "whoami")],
        ),
        ("name missing", &[("mcp-method", "tools/call")]),
        ("method missing", &[("mcp-name", "whoami")]),
        (
            "bad base64",
            &[("mcp-method", "tools/call"), ("mcp-name", "=?base64?%%%?=")],
        ),
    ];
    for (what, headers) in cases {
        let (status, _, body) = post_modern(&env, &t.access, &call, headers).await;
        assert_eq!(status, 400, "{what}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], -32020, "{what}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Header mismatch"),
            "{what}: {v}"
        );
    }
    // The same request with truthful headers (the name base64-wrapped, as SDKs may send it).
    let (status, _, body) = post_modern(
        &env,
        &t.access,
        &call,
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?d2hvYW1p?="),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// `/mcp` offering `mcp` and `mcp:admin`, requiring `mcp`, and `whoami` needing `mcp:admin`.
async fn step_up_env() -> TestEnv {
    TestEnv::start_with(|c| {
        let r = &mut c.resources[0];
        r.scopes = vec!["mcp".into(), "mcp:admin".into()];
        r.required_scopes = Some(vec!["mcp".into()]);
        r.operation_scopes = vec![OperationScopesConfig {
            method: "tools/call".into(),
            name: Some("who*".into()),
            scopes: vec!["mcp:admin".into()],
        }];
    })
    .await
}

/// Authorize `client_id` for `/mcp` and `scope`, exchange the code: the token response.
async fn authorize_for(env: &TestEnv, client_id: &str, scope: &str) -> Value {
    authorize_and_redeem(env, client_id, "/mcp", scope).await
}

#[tokio::test]
async fn a_tool_that_needs_more_scope_steps_up_and_re_authorization_keeps_earlier_scopes() {
    let env = step_up_env().await;
    let client_id = env.publish_client("step-up-app", json!({}));
    let first = authorize_for(&env, &client_id, "mcp").await;
    assert_eq!(first["scope"], "mcp");
    let token = first["access_token"].as_str().unwrap();

    // The 401 names the base scope only; PRM never lists offline_access.
    let (status, h, _) = send(Method::POST, &env.resource(), &[], Some("{}".into())).await;
    assert_eq!(status, 401);
    assert!(www(&h).ends_with("scope=\"mcp\""), "{}", www(&h));

    let echo = modern_msg(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let (status, _, body) = post_modern_mirrored(&env, token, &echo).await;
    assert_eq!(status, 200, "{body}");

    // whoami needs mcp:admin: 403 naming every scope the call needs (MCP step-up).
    let whoami = modern_msg(2, "tools/call", json!({"name": "whoami", "arguments": {}}));
    let (status, h, body) = post_modern_mirrored(&env, token, &whoami).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        www(&h),
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", \
             scope=\"mcp mcp:admin\", error=\"insufficient_scope\", \
             error_description=\"this request requires scope 'mcp mcp:admin'\"",
            env.base
        )
    );
    // A 2025-era request (no mirrored headers) is judged on its body the same way.
    let (status, _, body) = post_mcp(
        &env.resource(),
        token,
        None,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "whoami", "arguments": {}}}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Lying headers do not help: the body decides, and the lie is a 400.
    let (status, _, body) = post_modern(
        &env,
        token,
        &whoami,
        &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // A body the gateway cannot read is refused when rules apply (fail closed).
    let auth = format!("Bearer {token}");
    let (status, _, body) = send(
        Method::POST,
        &env.resource(),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Some(r#"{"method":"tools/call","method":"tools/list","params":{"name":"whoami"}}"#.into()),
    )
    .await;
    assert_eq!(status, 400, "duplicate members: {body}");

    // The client re-authorizes for what the challenge named — here only mcp:admin — and the
    // authorization server keeps the mcp the user already granted (SEP-2350).
    let second = authorize_for(&env, &client_id, "mcp:admin").await;
    let scopes: Vec<&str> = second["scope"].as_str().unwrap().split(' ').collect();
    assert!(
        scopes.contains(&"mcp") && scopes.contains(&"mcp:admin"),
        "{second}"
    );
    let token = second["access_token"].as_str().unwrap();
    let (status, _, body) = post_modern_mirrored(&env, token, &whoami).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post_modern_mirrored(&env, token, &echo).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn accumulation_keeps_only_live_grants_however_many_the_user_has() {
    let env = step_up_env().await;
    let client_id = env.publish_client("piled-up", json!({}));
    let first = authorize_for(&env, &client_id, "mcp").await;
    assert_eq!(first["scope"], "mcp");
    let store = env.store();
    let now = std::time::SystemTime::now();
    let template = store.list_grants(&client_id, now).await.unwrap().remove(0);
    // Many earlier grants that add nothing, and one that would add mcp:admin but was revoked.
    for i in 0..300 {
        let mut g = template.clone();
        g.grant.family_id = format!("piled-{i}");
        store.put_grant(&g).await.unwrap();
    }
    let mut revoked = template.clone();
    revoked.grant.family_id = "revoked-admin".into();
    revoked.grant.scope = cimdgate_store::Scopes::parse("mcp mcp:admin");
    store.put_grant(&revoked).await.unwrap();
    store
        .revoke_family("revoked-admin", revoked.expires_at)
        .await
        .unwrap();
    // Another user's grant with mcp:admin is not this user's.
    let mut other = revoked.clone();
    other.grant.family_id = "someone-else".into();
    other.grant.subject = format!("{}-other", template.grant.subject);
    store.put_grant(&other).await.unwrap();

    let again = authorize_for(&env, &client_id, "mcp").await;
    assert_eq!(
        again["scope"], "mcp",
        "revoked or foreign grants widen nothing"
    );

    // A live grant with mcp:admin is kept by the next re-authorization for mcp alone.
    let admin = authorize_for(&env, &client_id, "mcp:admin").await;
    assert!(
        admin["scope"].as_str().unwrap().contains("mcp:admin"),
        "{admin}"
    );
    let kept = authorize_for(&env, &client_id, "mcp").await;
    let scopes: Vec<&str> = kept["scope"].as_str().unwrap().split(' ').collect();
    assert!(
        scopes.contains(&"mcp") && scopes.contains(&"mcp:admin"),
        "{kept}"
    );
}

async fn get_json(url: &str) -> Value {
    let (status, _, body) = send(Method::GET, url, &[], None).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn www(h: &reqwest::header::HeaderMap) -> String {
    h.get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn offline_access_is_advertised_by_the_authorization_server_only_and_yields_a_refresh_token()
{
    let env = TestEnv::start().await;
    let meta = get_json(&env.url("/.well-known/oauth-authorization-server")).await;
    let scopes = meta["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&json!("offline_access")), "{meta}");
    let prm = get_json(&env.url("/.well-known/oauth-protected-resource/mcp")).await;
    assert!(
        !prm["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("offline_access")),
        "{prm}"
    );
    assert!(
        meta.get("registration_endpoint").is_none(),
        "DCR is off by default: {meta}"
    );

    // Claude Code's shape: the challenged scope with " offline_access" appended, by a client
    // whose document lists no refresh_token grant.
    let client_id = env.publish_client(
        "offline-app",
        json!({"grant_types": ["authorization_code"]}),
    );
    let body = authorize_for(&env, &client_id, "mcp  offline_access").await;
    assert_eq!(body["scope"], "mcp offline_access", "{body}");
    let refresh = body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    // The refresh may repeat offline_access; the access token works at the gateway.
    let (status, body) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
            ("scope", " offline_access mcp"),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let echo = modern_msg(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "y"}}),
    );
    let (status, _, body) = post_modern_mirrored(&env, token, &echo).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_browser_origin_other_than_the_gateways_or_an_allowed_one_is_refused_with_403() {
    let env = TestEnv::start_with(|c| {
        c.resources[0].allowed_origins = vec!["https://inspector.example".into()];
    })
    .await;
    let t = login(&env, "origin-app", "/mcp").await;
    let call = modern_msg(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "o"}}),
    );
    let base = mirrored(&call);
    let own = env.base.clone();
    let cases: &[(Option<&str>, u16)] = &[
        (None, 200),
        (Some(own.as_str()), 200),
        (Some("https://inspector.example"), 200),
        (Some("HTTPS://INSPECTOR.EXAMPLE"), 200),
        (Some("https://evil.example"), 403),
        (Some("https://inspector.example.evil.example"), 403),
        (Some("null"), 403),
        // The gateway is on loopback: other loopback origins are the same machine.
        (Some("http://localhost:1234"), 200),
        (Some("http://[::1]"), 200),
        (Some("http://127.0.0.2:1234"), 403),
        (Some("http://localhost.evil.example"), 403),
    ];
    for (origin, want) in cases {
        let mut h: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(o) = origin {
            h.push(("origin", o));
        }
        let (status, _, body) = post_modern(&env, &t.access, &call, &h).await;
        assert_eq!(status, *want, "Origin {origin:?}: {body}");
        if *want == 403 {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], "forbidden_origin", "{v}");
        }
    }
    // Refused before the token is looked at: no token, a foreign origin → 403, not 401.
    let (status, _, _) = send(
        Method::POST,
        &env.resource(),
        &[("origin", "https://evil.example")],
        Some("{}".into()),
    )
    .await;
    assert_eq!(status, 403);
}

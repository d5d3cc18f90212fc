//! Real clients' published CIMD documents (`tests/fixtures/clients/`, provenance in its
//! README), each driven through the flow that client really runs: the document is served at
//! its **real** `client_id` URL (the name mapped to a fresh `127.x.y.z:443` by the fetcher's
//! `resolve` dev hook, a test-CA certificate for the real name, the client's real
//! `Content-Type` and `Cache-Control`), then `/authorize` with the redirect URI shape and port
//! the client uses at runtime, its scope string, PKCE S256 and `resource`; login and consent;
//! the code exchange with its auth method (`none`, or `private_key_jwt` for ChatGPT, signed
//! with a key generated here and served at ChatGPT's `jwks_uri`); a refresh; and an MCP
//! `tools/call` through the gateway with the official Rust SDK.
//!
//! One table ([`CLIENTS`]), one test per client. A case that needs a server feature that is
//! not built yet keeps its real request and fails, naming the feature ([`Case::needs`]).

use std::net::IpAddr;
use std::time::SystemTime;

use axum::http::{StatusCode, header};
use axum::routing::get;
use cimdgate_test_support::keys::{TestKey, claims, jwks_json};
use cimdgate_test_support::{HttpsHost, bind_loopback_443};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::common::{TestEnv, pkce_pair, query_map};
use crate::gateway_util::{call_text, mcp_client};

/// How a client authenticates at `/token`.
#[derive(Clone, Copy, Debug)]
enum Auth {
    /// Public client (`token_endpoint_auth_method: none`).
    None,
    /// RFC 7523 client assertion signed with the key behind the document's `jwks_uri`.
    PrivateKeyJwt,
}

/// The redirect URI a client sends at runtime.
#[derive(Clone, Copy, Debug)]
enum Redirect {
    /// Exactly as registered in the document (web clients; VS Code's fixed port 33418).
    AsRegistered(&'static str),
    /// A registered portless loopback URI with the ephemeral port the client listens on
    /// (RFC 8252 §7.3: only the port may differ).
    EphemeralPort(&'static str),
}

/// One real client.
struct Case {
    /// The case's name (the fixture's stem unless one document has several cases).
    name: &'static str,
    /// Fixture file stem under `tests/fixtures/clients/`.
    fixture: &'static str,
    /// The document's bytes, as published.
    document: &'static str,
    /// `Content-Type` it is served with.
    content_type: &'static str,
    /// `Cache-Control` it is served with.
    cache_control: &'static str,
    redirect: Redirect,
    auth: Auth,
    /// The `scope` parameter exactly as the client sends it (`None`: no parameter).
    scope: Option<&'static str>,
    /// Whether the refresh request repeats `resource` (Codex's refresh omits it:
    /// openai/codex#33403).
    refresh_resource: bool,
    /// `Some(feature)`: a step is expected to fail until that server feature lands; the case
    /// still runs the real request and asserts the failure is the one the feature fixes.
    needs: Option<&'static str>,
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../fixtures/clients/", $name, ".json"))
    };
}

const CHATGPT_HEADERS: (&str, &str) = ("application/json; charset=utf-8", "public, max-age=300");

/// Every client with a published (or reconstructed, see the README) document.
const CLIENTS: &[Case] = &[
    Case {
        name: "claude",
        fixture: "claude",
        document: fixture!("claude"),
        content_type: "application/json",
        cache_control: "public, max-age=300",
        redirect: Redirect::AsRegistered("https://claude.ai/api/mcp/auth_callback"),
        auth: Auth::None,
        // Claude asks for the protected resource's `scopes_supported`.
        scope: Some("mcp"),
        refresh_resource: true,
        needs: None,
    },
    Case {
        name: "claude-code",
        fixture: "claude-code",
        document: fixture!("claude-code"),
        content_type: "application/json",
        cache_control: "public, max-age=300",
        redirect: Redirect::EphemeralPort("http://localhost/callback"),
        auth: Auth::None,
        // Claude Code appends `offline_access` to the advertised scopes on its own.
        scope: Some("mcp offline_access"),
        refresh_resource: true,
        needs: None,
    },
    Case {
        name: "chatgpt",
        fixture: "chatgpt",
        document: fixture!("chatgpt"),
        content_type: CHATGPT_HEADERS.0,
        cache_control: CHATGPT_HEADERS.1,
        redirect: Redirect::AsRegistered("https://chatgpt.com/connector_platform_oauth_redirect"),
        auth: Auth::PrivateKeyJwt,
        scope: Some("mcp"),
        refresh_resource: true,
        needs: None,
    },
    Case {
        name: "chatgpt-2026-09-08",
        fixture: "chatgpt-2026-09-08",
        document: fixture!("chatgpt-2026-09-08"),
        content_type: CHATGPT_HEADERS.0,
        cache_control: CHATGPT_HEADERS.1,
        redirect: Redirect::AsRegistered("https://chatgpt.com/connector_platform_oauth_redirect"),
        auth: Auth::PrivateKeyJwt,
        scope: Some("mcp"),
        refresh_resource: true,
        needs: None,
    },
    Case {
        name: "chatgpt-mcp",
        fixture: "chatgpt-mcp",
        document: fixture!("chatgpt-mcp"),
        content_type: CHATGPT_HEADERS.0,
        cache_control: CHATGPT_HEADERS.1,
        redirect: Redirect::AsRegistered("https://chatgpt.com/connector/oauth/mcp"),
        auth: Auth::PrivateKeyJwt,
        scope: Some("mcp"),
        refresh_resource: true,
        needs: None,
    },
    Case {
        name: "codex",
        fixture: "codex",
        document: fixture!("codex"),
        content_type: CHATGPT_HEADERS.0,
        cache_control: CHATGPT_HEADERS.1,
        redirect: Redirect::EphemeralPort("http://127.0.0.1/callback"),
        auth: Auth::None,
        // By default Codex asks for the server-advertised scopes.
        scope: Some("mcp"),
        refresh_resource: false,
        needs: None,
    },
    Case {
        name: "codex-offline-access",
        fixture: "codex",
        document: fixture!("codex"),
        content_type: CHATGPT_HEADERS.0,
        cache_control: CHATGPT_HEADERS.1,
        redirect: Redirect::EphemeralPort("http://127.0.0.1/callback"),
        auth: Auth::None,
        // `codex mcp login --scopes mcp,offline_access` (the form its users document).
        scope: Some("mcp offline_access"),
        refresh_resource: false,
        needs: None,
    },
    Case {
        name: "vscode",
        fixture: "vscode",
        document: fixture!("vscode"),
        content_type: "application/json",
        cache_control: "public, max-age=3600",
        // The desktop app listens on its fixed, registered port.
        redirect: Redirect::AsRegistered("http://127.0.0.1:33418/"),
        auth: Auth::None,
        scope: Some("mcp"),
        refresh_resource: true,
        needs: None,
    },
    Case {
        name: "opencode",
        fixture: "opencode",
        document: fixture!("opencode"),
        content_type: "application/json",
        cache_control: "public, max-age=300",
        redirect: Redirect::EphemeralPort("http://127.0.0.1/callback"),
        auth: Auth::None,
        scope: Some("mcp"),
        refresh_resource: true,
        needs: None,
    },
];

/// The server feature the clients that ask for `offline_access` wait for: today `/authorize`
/// answers `invalid_scope` ("offline_access is not offered by this resource").
/// ChatGPT's published kid; our generated key is served under it.
const CHATGPT_KID: &str = "cimd-20260428030119";

fn case(name: &str) -> &'static Case {
    CLIENTS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// A free loopback port, as a client's callback listener would get.
fn ephemeral_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Insert `port` into a portless loopback URI: `http://localhost/callback` →
/// `http://localhost:PORT/callback`.
fn with_port(uri: &str, port: u16) -> String {
    let rest = uri.strip_prefix("http://").expect("loopback http URI");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    format!("http://{host}:{port}{path}")
}

/// What the run of one client returned at each step, for the failure message.
struct Run {
    steps: Vec<String>,
}

impl Run {
    fn step(&mut self, s: impl Into<String>) {
        self.steps.push(s.into());
    }
    fn log(&self) -> String {
        self.steps.join("\n  ")
    }
}

/// Serve `c`'s document at its real URL, then run the client's flow end to end.
async fn run(c: &'static Case) {
    let doc: Value = serde_json::from_str(c.document).expect("fixture is JSON");
    let client_id = doc["client_id"].as_str().expect("client_id").to_owned();
    let id_url = url::Url::parse(&client_id).unwrap();
    let host = id_url.host_str().unwrap().to_owned();
    assert!(
        id_url.port().is_none(),
        "real client_ids are portless: {client_id}"
    );

    // The client's host on 127.x.y.z:443, the name mapped there for the server's fetcher.
    let listener = bind_loopback_443();
    let ip: IpAddr = listener.local_addr().unwrap().ip();
    let key = TestKey::rsa(CHATGPT_KID, Algorithm::RS256, 0);
    let mut names = vec![host.clone()];
    let jwks_path = doc["jwks_uri"].as_str().map(|u| {
        let u = url::Url::parse(u).unwrap();
        assert_eq!(
            u.host_str(),
            Some(host.as_str()),
            "jwks_uri on the same host"
        );
        u.path().to_owned()
    });
    if let Some(logo) = doc["logo_uri"].as_str() {
        let h = url::Url::parse(logo)
            .unwrap()
            .host_str()
            .unwrap()
            .to_owned();
        if h != host {
            names.push(h);
        }
    }
    let env = {
        let names = names.clone();
        TestEnv::start_with(move |config| {
            for n in &names {
                config.fetch.resolve.insert(n.clone(), ip);
            }
        })
        .await
    };
    let (ct, cc, body) = (c.content_type, c.cache_control, c.document);
    let mut router = axum::Router::new().route(
        id_url.path(),
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, ct),
                    (header::CACHE_CONTROL, cc),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                body,
            )
        }),
    );
    if let Some(path) = &jwks_path {
        let jwks = jwks_json(&[&key]).to_string();
        router = router.route(
            path,
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    jwks,
                )
            }),
        );
    }
    // Any logo path: a 1×1 PNG is enough.
    let router = router.fallback(get(|| async {
        (
            [(header::CONTENT_TYPE, "image/png")],
            &b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82"[..],
        )
    }));
    let names_ref: Vec<&str> = names.iter().map(String::as_str).collect();
    let cimd_host = HttpsHost::start_on(&env.ca, &names_ref, router, listener).await;

    let mut run = Run { steps: vec![] };
    let result = flow(c, &env, &client_id, &key, &mut run).await;
    assert!(
        cimd_host.hits(id_url.path()) >= 1,
        "the document was fetched from its real URL"
    );
    match (result, c.needs) {
        (Ok(()), None) => {}
        (Ok(()), Some(feature)) => panic!(
            "{}: passes now — drop `needs: {feature:?}` from its case\n  {}",
            c.name,
            run.log()
        ),
        (Err(e), None) => panic!("{}: {e}\n  {}", c.name, run.log()),
        (Err(e), Some(feature)) => panic!(
            "{}: fails as expected until the server has {feature}: {e}\n  {}",
            c.name,
            run.log()
        ),
    }
}

/// The client's flow; `Err` names the first step that failed.
async fn flow(
    c: &Case,
    env: &TestEnv,
    client_id: &str,
    key: &TestKey,
    run: &mut Run,
) -> Result<(), String> {
    let redirect = match c.redirect {
        Redirect::AsRegistered(u) => u.to_owned(),
        Redirect::EphemeralPort(u) => with_port(u, ephemeral_port()),
    };
    let resource = env.resource();
    let (verifier, challenge) = pkce_pair();
    let state = "real-client-state";
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), redirect.clone()),
        ("state".into(), state.into()),
        ("code_challenge".into(), challenge),
        ("code_challenge_method".into(), "S256".into()),
        ("resource".into(), resource.clone()),
    ];
    if let Some(s) = c.scope {
        params.push(("scope".into(), s.into()));
    }
    let authorize = env.authorize_url(&params);
    run.step(format!("authorize {authorize}"));

    // Login + consent through cimdgate's forms.
    let location = env.login_and_consent(&authorize, true).await;
    run.step(format!("redirected to {location}"));
    if !location.starts_with(&redirect) {
        return Err(format!("redirect {location} is not to {redirect}"));
    }
    let q = query_map(&location);
    if let Some(e) = q.get("error") {
        return Err(format!(
            "authorization error {e}: {}",
            q.get("error_description").map_or("", String::as_str)
        ));
    }
    if q.get("state").map(String::as_str) != Some(state) {
        return Err("state not returned".into());
    }
    if q.get("iss") != Some(&env.base) {
        return Err(format!("iss {:?} is not {}", q.get("iss"), env.base));
    }
    let code = q.get("code").ok_or("no code")?.clone();

    // Code exchange.
    let token_url = env.url("/token");
    let assertion = || key.sign(&claims(client_id, &token_url, SystemTime::now()));
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", redirect.clone()),
        ("code_verifier", verifier),
        ("client_id", client_id.into()),
        ("resource", resource.clone()),
    ];
    add_auth(c.auth, &mut form, &assertion);
    let (status, body) = token(env, &form).await;
    run.step(format!("token {status}: {}", redact(&body)));
    if status != StatusCode::OK {
        return Err(format!("code exchange {status}: {body}"));
    }
    let access = str_field(&body, "access_token")?;
    let refresh = str_field(&body, "refresh_token")?;
    if body["token_type"].as_str().map(str::to_ascii_lowercase) != Some("bearer".into()) {
        return Err(format!("token_type {}", body["token_type"]));
    }

    // Refresh (rotating): new access and refresh tokens.
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh.clone()),
        ("client_id", client_id.into()),
    ];
    if c.refresh_resource {
        form.push(("resource", resource.clone()));
    }
    add_auth(c.auth, &mut form, &assertion);
    let (status, body) = token(env, &form).await;
    run.step(format!("refresh {status}: {}", redact(&body)));
    if status != StatusCode::OK {
        return Err(format!("refresh {status}: {body}"));
    }
    let access2 = str_field(&body, "access_token")?;
    if str_field(&body, "refresh_token")? == refresh {
        return Err("refresh token not rotated".into());
    }
    if access2 == access {
        return Err("same access token after refresh".into());
    }

    // tools/call through the gateway (initialize + tools/call, 2025-11-25, the official SDK).
    let mcp = mcp_client(&resource, &access2).await;
    let echoed = call_text(&mcp, "echo", json!({"text": c.fixture})).await;
    run.step(format!("tools/call echo → {echoed}"));
    if echoed != c.fixture {
        return Err(format!("echo returned {echoed}"));
    }
    let who = call_text(&mcp, "whoami", json!({})).await;
    run.step(format!("tools/call whoami → {who}"));
    let who: Value = serde_json::from_str(&who).map_err(|e| format!("whoami: {e}"))?;
    if !who.to_string().contains(client_id) {
        return Err(format!("gateway does not name {client_id}: {who}"));
    }
    let _ = mcp.cancel().await;
    Ok(())
}

fn add_auth(auth: Auth, form: &mut Vec<(&str, String)>, assertion: &dyn Fn() -> String) {
    if let Auth::PrivateKeyJwt = auth {
        form.push((
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ));
        form.push(("client_assertion", assertion()));
    }
}

async fn token(env: &TestEnv, form: &[(&str, String)]) -> (StatusCode, Value) {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.token(&pairs).await
}

fn str_field(body: &Value, name: &str) -> Result<String, String> {
    body[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {name} in {}", redact(body)))
}

/// The token response without its secrets (for the step log).
fn redact(body: &Value) -> Value {
    let mut b = body.clone();
    for k in ["access_token", "refresh_token", "id_token"] {
        if b.get(k).is_some() {
            b[k] = json!("…");
        }
    }
    b
}

#[tokio::test]
async fn claude_web_with_its_https_callback() {
    run(case("claude")).await;
}

#[tokio::test]
async fn claude_code_portless_loopback_on_an_ephemeral_port_with_offline_access() {
    run(case("claude-code")).await;
}

#[tokio::test]
async fn chatgpt_private_key_jwt_from_its_plural_auth_methods() {
    run(case("chatgpt")).await;
}

#[tokio::test]
async fn chatgpt_later_document_with_the_singular_private_key_jwt_too() {
    run(case("chatgpt-2026-09-08")).await;
}

#[tokio::test]
async fn chatgpt_mcp_document_private_key_jwt() {
    run(case("chatgpt-mcp")).await;
}

#[tokio::test]
async fn codex_loopback_on_an_ephemeral_port_refresh_without_resource() {
    run(case("codex")).await;
}

#[tokio::test]
async fn codex_with_offline_access_in_its_scopes() {
    run(case("codex-offline-access")).await;
}

#[tokio::test]
async fn vscode_native_fixed_port_33418() {
    run(case("vscode")).await;
}

#[tokio::test]
async fn opencode_native_loopback_on_an_ephemeral_port() {
    run(case("opencode")).await;
}

#[test]
fn every_fixture_has_a_case_and_matches_its_url_shape() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clients");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let c = CLIENTS
                .iter()
                .find(|c| c.fixture == stem)
                .unwrap_or_else(|| panic!("no case for fixture {stem}"));
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                c.document,
                "{stem}"
            );
        }
    }
    assert_eq!(
        with_port("http://localhost/callback", 5),
        "http://localhost:5/callback"
    );
}

//! `cimdgate demo` (docs/architecture.md, *Command line*): one full CIMD login and tool call, in
//! one process, printed step by step with timings.
//!
//! Everything runs on loopback: the gateway + authorization server (embedded store in a temp
//! folder, removed at exit), the built-in demo MCP server at `/mcp`, an HTTPS host serving a
//! freshly generated Client ID Metadata Document under a throw-away CA ([`https`]), and a
//! scripted client built from `cimdgate-client`'s pieces — the same discovery, PKCE,
//! loopback-callback and token code `cimdgate login` uses, with [`FormDriver`] filling the
//! login and consent forms instead of a person in a browser. Its MCP calls go through the
//! dual-era [`McpSession`]: a `server/discover` probe, then 2026-07-28 stateless requests
//! when the server speaks that revision, else a 2025-11-25 `initialize` session; the tool-call
//! steps name the one used.
//!
//! The fetch dev hooks (`dev_allow_loopback`, an extra CA, `resolve`) are switched on only in
//! this demo's own configuration, so the server can fetch the document from 127.0.0.1.

mod https;

use std::borrow::Cow;
use std::future::Future;
use std::time::{Duration, Instant};

use axum::routing::get;
use base64::Engine;
use cimdgate_client::callback::{CallbackServer, DOCUMENT_REDIRECT_URI};
use cimdgate_client::discovery::{fetch_as_metadata, fetch_prm, probe};
use cimdgate_client::flow::{AuthorizationRequest, ClientChoice, choose_client, refresh};
use cimdgate_client::form::{FormDriver, Step};
use cimdgate_client::mcp::{Era, McpSession};
use cimdgate_client::scope::login_scope;
use cimdgate_client::{Discovery, ExposeSecret, TokenSet};
use cimdgate_server::Config;
use cimdgate_server::config::LocalUser;
use serde_json::json;
use url::Url;

use crate::{EXIT_INVALID, EXIT_USAGE_OR_FETCH, EXIT_VALID};

/// Host name of the demo client's metadata document (resolved to 127.0.0.1 by the demo
/// config's `fetch.resolve`; `.test` is reserved, RFC 2606).
pub const CLIENT_HOST: &str = "demo-client.test";
/// Path of the document on that host.
pub const CLIENT_PATH: &str = "/client.json";
/// The demo user.
pub const DEMO_USER: &str = "demo";
/// Text sent to `echo`.
pub const ECHO_TEXT: &str = "hello from cimdgate demo";

/// Runs each step, timing and printing it; stops at the first failure.
struct Steps {
    n: usize,
    started: Instant,
}

/// The step that failed (already printed).
struct Failed(Cow<'static, str>);

impl Steps {
    async fn run<T>(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        step: impl Future<Output = Result<(T, String), String>>,
    ) -> Result<T, Failed> {
        let name = name.into();
        self.n += 1;
        let t = Instant::now();
        let result = step.await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok((value, detail)) => {
                println!("  ✓ {:>2}. {name:<42} {ms:>8.1} ms   {detail}", self.n);
                Ok(value)
            }
            Err(e) => {
                println!("  ✗ {:>2}. {name:<42} {ms:>8.1} ms   {e}", self.n);
                Err(Failed(name))
            }
        }
    }
}

/// Run the demo; exit 0 when every step passed.
pub fn run() -> u8 {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(runtime) = crate::runtime() else {
        return EXIT_USAGE_OR_FETCH;
    };
    println!("cimdgate demo: one CIMD login and MCP tool call, everything in this process\n");
    let mut steps = Steps {
        n: 0,
        started: Instant::now(),
    };
    let outcome = runtime.block_on(walk(&mut steps));
    let total = steps.started.elapsed().as_secs_f64() * 1000.0;
    // Background tasks (servers) end with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(()) => {
            println!("\ndemo passed: {} steps in {total:.1} ms", steps.n);
            EXIT_VALID
        }
        Err(Failed(step)) => {
            println!("\ndemo FAILED at step {}: {step}", steps.n);
            EXIT_INVALID
        }
    }
}

/// What the "start" step brings up.
struct Running {
    _dir: tempfile::TempDir,
    _host: https::HttpsHost,
    server: cimdgate_server::RunningServer,
    mcp_url: Url,
    client_id: String,
    password: String,
}

async fn walk(steps: &mut Steps) -> Result<(), Failed> {
    let env = steps.run("start", start()).await?;
    let http = cimdgate_client::http_client().map_err(|_| Failed("http client".into()))?;
    let mcp_url = env.mcp_url.clone();

    let challenge = steps
        .run("discovery: 401 challenge", async {
            let c = probe(&http, &mcp_url).await.map_err(|e| e.to_string())?;
            let c = c.ok_or("the 401 has no Bearer challenge")?;
            let rm = c.resource_metadata.clone().ok_or("no resource_metadata")?;
            Ok((c, format!("GET {mcp_url} → 401, resource_metadata={rm}")))
        })
        .await?;
    let (prm_url, prm) = steps
        .run("discovery: resource (PRM)", async {
            let (u, prm) = fetch_prm(&http, &mcp_url, Some(&challenge))
                .await
                .map_err(|e| e.to_string())?;
            let d = format!(
                "resource {}, authorization server {}",
                prm.resource,
                prm.authorization_servers.join(" ")
            );
            Ok(((u, prm), d))
        })
        .await?;
    let discovery = steps
        .run("discovery: AS metadata", async {
            let issuer = prm.authorization_servers.first().ok_or("no AS")?;
            let (u, metadata) = fetch_as_metadata(&http, issuer)
                .await
                .map_err(|e| e.to_string())?;
            match choose_client(&metadata, Some(&env.client_id)).map_err(|e| e.to_string())? {
                ClientChoice::Cimd(_) => {}
                ClientChoice::Register(_) => return Err("the server does not accept CIMD".into()),
            }
            let d =
                format!("{u}: client_id_metadata_document_supported → client_id is the CIMD URL");
            let discovery = Discovery {
                mcp_url: mcp_url.clone(),
                challenge: Some(challenge.clone()),
                prm_url,
                prm: prm.clone(),
                as_metadata_url: u,
                metadata,
            };
            Ok((discovery, d))
        })
        .await?;

    let driver = FormDriver::new().map_err(|_| Failed("form driver".into()))?;
    let callback = CallbackServer::bind()
        .await
        .map_err(|_| Failed("loopback callback".into()))?;
    // The challenge's scope; offline_access only if the AS lists it (SEP-2207).
    let scope = login_scope(&discovery, None, None);
    let request = AuthorizationRequest::new(
        &discovery,
        &env.client_id,
        &callback.redirect_uri(),
        scope.as_deref(),
    )
    .map_err(|_| Failed("authorization request".into()))?;
    let login_form = steps
        .run("/authorize (CIMD fetch)", async {
            match driver
                .open(request.url.as_str())
                .await
                .map_err(|e| e.to_string())?
            {
                Step::Login(f) => Ok((
                    f,
                    format!(
                        "PKCE S256 + state + resource; server fetched {} → login page",
                        env.client_id
                    ),
                )),
                other => Err(format!("expected the login page, got {other:?}")),
            }
        })
        .await?;
    let consent_form = steps
        .run("login", async {
            match driver
                .login(&login_form, DEMO_USER, &env.password)
                .await
                .map_err(|e| e.to_string())?
            {
                Step::Consent(f) => Ok((f, format!("user {DEMO_USER} signed in → consent page"))),
                other => Err(format!("expected the consent page, got {other:?}")),
            }
        })
        .await?;
    let location = steps
        .run("consent", async {
            match driver
                .consent(&consent_form, true)
                .await
                .map_err(|e| e.to_string())?
            {
                Step::Redirect(l) => {
                    let short = l.split('?').next().unwrap_or(&l).to_owned();
                    Ok((l, format!("approved → 302 to {short}?code=…&state=…&iss=…")))
                }
                other => Err(format!("expected a redirect, got {other:?}")),
            }
        })
        .await?;
    let code = steps
        .run("loopback callback", async {
            let status = driver.follow(&location).await.map_err(|e| e.to_string())?;
            let params = callback
                .wait(Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())?;
            let code = request.check_callback(&params).map_err(|e| e.to_string())?;
            Ok((
                code,
                format!("listener answered {status}; state and iss (RFC 9207) match"),
            ))
        })
        .await?;
    let tokens = steps
        .run("token", async {
            let t = request
                .exchange(&http, &code)
                .await
                .map_err(|e| e.to_string())?;
            let d = describe_tokens(&t);
            Ok((t, d))
        })
        .await?;

    let mut session = steps
        .run("mcp connect (server/discover)", async {
            let s =
                McpSession::connect(&http, mcp_url.as_str(), tokens.access_token.expose_secret())
                    .await
                    .map_err(|e| e.to_string())?;
            let how = match s.era() {
                Era::Modern => "lists 2026-07-28 → stateless requests",
                Era::Legacy => "not a 2026-07-28 server → initialize",
            };
            let d = format!(
                "{how}: protocol {}, server {}",
                s.describe(),
                s.server_name().unwrap_or("?")
            );
            Ok((s, d))
        })
        .await?;
    let protocol = session.describe();
    steps
        .run(format!("tools/call echo ({protocol})"), echo(&mut session))
        .await?;
    steps
        .run(format!("tools/call whoami ({protocol})"), async {
            let r = session
                .call_tool("whoami", json!({}))
                .await
                .map_err(|e| e.to_string())?;
            let text = McpSession::first_text(&r).unwrap_or("").to_owned();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if v["client_id"].as_str() != Some(env.client_id.as_str()) {
                return Err(format!("whoami answered {text}"));
            }
            Ok((
                (),
                format!("user {} via client {}", v["user"], v["client_id"]),
            ))
        })
        .await?;
    let refreshed = steps
        .run("refresh", async {
            let rt = tokens
                .refresh_token
                .as_ref()
                .map(ExposeSecret::expose_secret)
                .ok_or("no refresh token was issued")?;
            let t = refresh(
                &http,
                &request.token_endpoint,
                &request.client_id,
                rt,
                &request.resource,
            )
            .await
            .map_err(|e| e.to_string())?;
            if t.access_token.expose_secret() == tokens.access_token.expose_secret() {
                return Err("the refreshed access token is the old one".into());
            }
            let rotated = t
                .refresh_token
                .as_ref()
                .is_some_and(|n| n.expose_secret() != rt);
            let d = format!(
                "new access token; refresh token {}",
                if rotated { "rotated" } else { "kept" }
            );
            Ok((t, d))
        })
        .await?;
    steps
        .run("echo with refreshed token", async {
            let mut s = McpSession::connect(
                &http,
                mcp_url.as_str(),
                refreshed.access_token.expose_secret(),
            )
            .await
            .map_err(|e| e.to_string())?;
            echo(&mut s).await
        })
        .await?;
    env.server.shutdown().await;
    Ok(())
}

async fn echo(session: &mut McpSession) -> Result<((), String), String> {
    let r = session
        .call_tool("echo", json!({"text": ECHO_TEXT}))
        .await
        .map_err(|e| e.to_string())?;
    match McpSession::first_text(&r) {
        Some(t) if t == ECHO_TEXT => Ok(((), format!("{ECHO_TEXT:?} → {t:?}"))),
        other => Err(format!("echo answered {other:?}")),
    }
}

fn describe_tokens(t: &TokenSet) -> String {
    let aud = t
        .access_token
        .expose_secret()
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|c| c["aud"].to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "JWT access token (aud {aud}, expires in {} s, scope {}){}",
        t.expires_in.unwrap_or(0),
        t.scope.as_deref().unwrap_or("-"),
        if t.refresh_token.is_some() {
            " + refresh token"
        } else {
            ""
        }
    )
}

/// Bring up the CA, the HTTPS host with the document, and the gateway + AS.
async fn start() -> Result<(Running, String), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp folder: {e}"))?;
    let ca = https::DemoCa::new()?;
    let ca_file = dir.path().join("demo-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).map_err(|e| format!("write CA: {e}"))?;

    // The document's client_id must be its own URL, which needs the port: bind first, then
    // let the handler build the document from the port it was given.
    let port_cell = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let cell = port_cell.clone();
    let router = axum::Router::new().route(
        CLIENT_PATH,
        get(move || {
            let cell = cell.clone();
            async move {
                let port = cell.get().copied().unwrap_or(443);
                axum::Json(client_document(&client_id_url(port)))
            }
        }),
    );
    let host = https::HttpsHost::start(&ca, CLIENT_HOST, router).await?;
    let _ = port_cell.set(host.port());
    let client_id = client_id_url(host.port());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");
    let password = crate::zero_config::random_password()?;
    let to_hash = password.clone();
    let hash = tokio::task::spawn_blocking(move || {
        cimdgate_server::identity::local::hash_password(&to_hash)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;

    let mut config = Config::default();
    config.server.listen = addr;
    config.server.public_url = Url::parse(&base).map_err(|e| e.to_string())?;
    config.store.url = format!("embedded:{}", dir.path().join("store").display());
    config.identity.users.push(LocalUser {
        username: DEMO_USER.into(),
        password_hash: hash.into(),
        name: Some("Demo user".into()),
    });
    config
        .resources
        .push(crate::zero_config::default_resource());
    // Dev hooks: only here, so the server may fetch https://demo-client.test:PORT/ on loopback.
    config.fetch.dev_allow_loopback = true;
    config.fetch.extra_ca_file = Some(ca_file);
    // The demo runs beside a real server: no admin listener to collide with its port.
    config.admin.listen = cimdgate_server::config::AdminListen::Off;
    config
        .fetch
        .resolve
        .insert(CLIENT_HOST.into(), std::net::Ipv4Addr::LOCALHOST.into());
    config.check().map_err(|e| e.to_string())?;
    let server = cimdgate_server::serve(config, listener)
        .await
        .map_err(|e| e.to_string())?;
    let mcp_url = Url::parse(&format!("{base}/mcp")).map_err(|e| e.to_string())?;
    let detail = format!(
        "gateway + AS {base}, demo MCP server at /mcp, CIMD document {client_id} (throw-away CA)"
    );
    Ok((
        Running {
            _dir: dir,
            _host: host,
            server,
            mcp_url,
            client_id,
            password,
        },
        detail,
    ))
}

fn client_id_url(port: u16) -> String {
    format!("https://{CLIENT_HOST}:{port}{CLIENT_PATH}")
}

/// The demo client's metadata document: a public client with a port-less loopback redirect
/// (RFC 8252 §7.3: any port matches).
pub fn client_document(client_id: &str) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "client_name": "cimdgate demo client",
        "redirect_uris": [DOCUMENT_REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "mcp",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_step_stops_the_walk_and_is_named() {
        let mut steps = Steps {
            n: 0,
            started: Instant::now(),
        };
        let ok = steps.run("first", async { Ok(((), "fine".into())) }).await;
        assert!(ok.is_ok());
        let failed = steps
            .run::<()>("second", async { Err("broken".into()) })
            .await;
        assert!(matches!(failed, Err(Failed(n)) if n == "second"));
        assert_eq!(steps.n, 2);
    }

    #[test]
    fn document_lists_the_portless_loopback_redirect() {
        let doc = client_document("https://demo-client.test:1/client.json");
        assert_eq!(doc["redirect_uris"][0], "http://127.0.0.1/callback");
        assert_eq!(doc["token_endpoint_auth_method"], "none");
    }
}

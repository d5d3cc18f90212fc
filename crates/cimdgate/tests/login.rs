//! `cimdgate login` end to end (docs/architecture.md, *Command line*): the binary discovers a
//! running gateway, logs in as a CIMD client through a loopback callback (the test plays the
//! browser with a cookie-keeping form driver and follows the final redirect), stores tokens in a
//! 0600 file, prints a token that works at `/mcp` (through the dual-era `McpSession`), and
//! refreshes an expired one. A second test covers the DCR fallback, a third the SEP-2350 scope
//! union when a login is stored for the same resource.

mod support;

use std::process::{Command, Stdio};

use axum::routing::get;
use cimdgate_client::form::{FormDriver, Step};
use cimdgate_client::mcp::McpSession;
use cimdgate_server::{Config, RunningServer};
use cimdgate_test_support::config::{TestConfig, cheap_password_hash};
use cimdgate_test_support::{HttpsHost, TestCa};
use support::{BIN, Proc};

const USER: &str = "alice";
const PASSWORD: &str = "password";

struct Env {
    server: RunningServer,
    _host: HttpsHost,
    dir: tempfile::TempDir,
    base: String,
    client_id: String,
}

/// A gateway + AS on loopback with the demo MCP server at /mcp and a CIMD host on `cimd.test`
/// serving a public client document with the port-less loopback redirect.
async fn start(cimd_enabled: bool) -> Env {
    cimdgate_test_support::install_crypto_provider();
    let ca = TestCa::new();
    let cell = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let served = cell.clone();
    let router = axum::Router::new().route(
        "/client.json",
        get(move || {
            let id = served.get().cloned().unwrap_or_default();
            async move {
                axum::Json(serde_json::json!({
                    "client_id": id,
                    "client_name": "login test client",
                    "redirect_uris": ["http://127.0.0.1/callback"],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                }))
            }
        }),
    );
    let host = HttpsHost::start(&ca, &["cimd.test"], router).await;
    let client_id = host.url("cimd.test", "/client.json");
    cell.set(client_id.clone()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let (store, hash) = (dir.path().join("store"), cheap_password_hash(PASSWORD));
    let toml = TestConfig {
        listen: &addr.to_string(),
        public_url: &base,
        store_dir: &store,
        username: USER,
        password_hash: &hash,
        ca_file: &ca_file,
        hosts: &["cimd.test"],
        extra: &format!("[cimd]\nenabled = {cimd_enabled}\n\n[dcr]\nenabled = true\n"),
    }
    .toml();
    let config = Config::from_toml(&toml).unwrap();
    let server = cimdgate_server::serve(config, listener).await.unwrap();
    Env {
        server,
        _host: host,
        dir,
        base,
        client_id,
    }
}

fn login_cmd(env: &Env, store: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("login")
        .arg(format!("{}/mcp", env.base))
        .arg("--token-store")
        .arg(store)
        .args(extra)
        .env("XDG_CONFIG_HOME", env.dir.path().join("xdg"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Run `cimdgate login --no-browser`, play the browser, and return the finished process.
async fn interactive_login(env: &Env, store: &std::path::Path, extra: &[&str]) -> Proc {
    let mut args = vec!["--no-browser"];
    args.extend_from_slice(extra);
    let mut p = Proc::new(login_cmd(env, store, &args).spawn().unwrap());
    let out = tokio::task::block_in_place(|| {
        p.wait_for(60, "the authorization URL", |o| o.contains("/authorize?"))
    });
    let url = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("/authorize?"))
        .unwrap()
        .to_owned();
    let driver = FormDriver::new().unwrap();
    let Step::Login(form) = driver.open(&url).await.unwrap() else {
        panic!("expected the login page:\n{}", p.all())
    };
    let Step::Consent(form) = driver.login(&form, USER, PASSWORD).await.unwrap() else {
        panic!("expected the consent page")
    };
    let Step::Redirect(location) = driver.consent(&form, true).await.unwrap() else {
        panic!("expected the redirect to the loopback callback")
    };
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    assert_eq!(
        driver.follow(&location).await.unwrap(),
        200,
        "callback page"
    );
    let status = tokio::task::block_in_place(|| p.wait_exit(60));
    assert!(status.success(), "login failed:\n{}", p.all());
    p
}

fn print_token(env: &Env, store: &std::path::Path) -> String {
    let out = login_cmd(env, store, &["--print-token", "--no-browser"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token on stdout: {stdout}"
    );
    stdout.trim().to_owned()
}

async fn token_works(env: &Env, token: &str) {
    let http = cimdgate_client::http_client().unwrap();
    let mut s = McpSession::connect(&http, &format!("{}/mcp", env.base), token)
        .await
        .unwrap();
    let r = s
        .call_tool("echo", serde_json::json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(McpSession::first_text(&r), Some("hi"));
}

fn stored(store: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(store).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_as_cimd_client_stores_0600_tokens_prints_and_refreshes() {
    let env = start(true).await;
    let store = env.dir.path().join("cfg").join("tokens.json");
    let mcp = format!("{}/mcp", env.base);
    let p = interactive_login(&env, &store, &["--client-id", &env.client_id]).await;
    assert!(p.stderr().contains("Logged in"), "{}", p.all());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "token file mode");
    }
    let file = stored(&store);
    let login = &file["logins"][&mcp];
    assert_eq!(
        login["client_id"],
        env.client_id.as_str(),
        "CIMD URL is the client_id"
    );
    assert_eq!(login["resource"], mcp.as_str());
    let first = login["access_token"].as_str().unwrap().to_owned();
    let first_refresh = login["refresh_token"].as_str().unwrap().to_owned();

    // --print-token: the stored, still-fresh token; it works at /mcp.
    let token = print_token(&env, &store);
    assert_eq!(token, first);
    token_works(&env, &token).await;

    // Expire it in the file: --print-token refreshes, saves, and prints a new working token.
    let mut file = stored(&store);
    file["logins"][&mcp]["expires_at"] = serde_json::json!(1);
    std::fs::write(&store, serde_json::to_vec(&file).unwrap()).unwrap();
    let refreshed = print_token(&env, &store);
    assert_ne!(refreshed, first, "a new access token");
    token_works(&env, &refreshed).await;
    let after = stored(&store);
    let login = &after["logins"][&mcp];
    assert_eq!(login["access_token"], refreshed.as_str());
    assert_ne!(login["refresh_token"], first_refresh.as_str(), "rotated");
    assert!(login["expires_at"].as_u64().unwrap() > 1_000_000_000);
    env.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_falls_back_to_dcr_when_cimd_is_not_supported() {
    let env = start(false).await;
    let store = env.dir.path().join("tokens.json");
    let mcp = format!("{}/mcp", env.base);
    interactive_login(&env, &store, &["--client-id", &env.client_id]).await;
    let file = stored(&store);
    let client_id = file["logins"][&mcp]["client_id"].as_str().unwrap();
    assert_ne!(
        client_id, env.client_id,
        "a registered client_id, not the URL"
    );
    token_works(&env, &print_token(&env, &store)).await;
    env.server.shutdown().await;
}

/// The scope parameter of the authorization URL `cimdgate login` prints.
fn requested_scope(out: &str) -> Option<String> {
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("/authorize?"))?;
    url::Url::parse(line)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn login_again_for_the_same_resource_requests_the_scope_union() {
    let env = start(true).await;
    let store = env.dir.path().join("tokens.json");
    let mcp = format!("{}/mcp", env.base);
    // A stored login for this resource, granted `mcp:old` (as after an earlier step-up).
    let file = serde_json::json!({"version": 1, "logins": {&mcp: {
        "mcp_url": &mcp, "resource": &mcp, "issuer": &env.base,
        "token_endpoint": format!("{}/token", env.base), "client_id": &env.client_id,
        "scope": "mcp:old", "access_token": "x", "expires_at": 1,
    }}});
    std::fs::write(&store, serde_json::to_vec(&file).unwrap()).unwrap();
    // `--scope` carries the 403 challenge's scope: both are asked for, stored scope first.
    let mut p = Proc::new(
        login_cmd(
            &env,
            &store,
            &[
                "--no-browser",
                "--client-id",
                &env.client_id,
                "--scope",
                "mcp",
            ],
        )
        .spawn()
        .unwrap(),
    );
    let out = tokio::task::block_in_place(|| {
        p.wait_for(60, "the authorization URL", |o| o.contains("/authorize?"))
    });
    // The server lists offline_access in scopes_supported (MCP 2026-07-28), so it is added once,
    // after the union of the stored and the challenged scopes.
    assert_eq!(
        requested_scope(&out).as_deref(),
        Some("mcp:old mcp offline_access"),
        "{out}"
    );
    p.terminate();
    env.server.shutdown().await;
}

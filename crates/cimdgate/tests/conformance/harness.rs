//! Harness of the conformance tests: the pinned suite, a `cimdgate serve` with a CIMD client,
//! the automated user, the bearer-adding proxy, the reference upstream, and the reading of
//! the suite's `checks.json` files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header;
use axum::routing::get;
use cimdgate_client::form::{FormDriver, Step};
use cimdgate_test_support::config::{TestConfig, cheap_password_hash};
use cimdgate_test_support::{HttpsHost, TestCa};
use serde_json::{Value, json};

use crate::support::{BIN, Proc, free_port};
use crate::{EXPECTED_SERVER_NON_SUCCESS, EXPECTED_WARNINGS};

/// Upper bound for one suite run (the suite itself waits up to 5 minutes for the callback).
pub(crate) const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "conformance-password";

pub(crate) fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/tests/fixtures/conformance")
}

/// `node_modules/.bin/node` (the pinned Node 22 the suite needs) and the suite's entry point.
pub(crate) fn suite_command(fixture: &Path) -> Command {
    cimdgate_test_support::node::npm_ci_once(fixture, "node_modules/.bin/conformance");
    let node = fixture.join("node_modules/.bin/node");
    assert!(node.exists(), "pinned node missing: {}", node.display());
    let mut cmd = Command::new(node);
    cmd.arg(fixture.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"));
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NODE_OPTIONS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A running `cimdgate serve` with a CIMD host for the suite's client.
pub(crate) struct Server {
    pub(crate) proc: Proc,
    pub(crate) base: String,
    pub(crate) client_id: String,
    _cimd: HttpsHost,
    _dir: tempfile::TempDir,
}

pub(crate) async fn start_server() -> Server {
    start_server_with("").await
}

/// [`start_server`] with more TOML appended to the configuration (another resource).
pub(crate) async fn start_server_with(extra: &str) -> Server {
    cimdgate_test_support::install_crypto_provider();
    let ca = TestCa::new();
    let doc = Arc::new(Mutex::new(String::new()));
    let served = doc.clone();
    let router = axum::Router::new().route(
        "/conformance-client.json",
        get(move || {
            let body = served.lock().unwrap().clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    body,
                )
            }
        }),
    );
    let cimd = HttpsHost::start(&ca, &["conformance.test"], router).await;
    let client_id = cimd.url("conformance.test", "/conformance-client.json");
    *doc.lock().unwrap() = json!({
        "client_id": client_id,
        "client_name": "MCP conformance suite",
        "client_uri": format!("https://conformance.test:{}", cimd.port()),
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
    .to_string();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let hash = cheap_password_hash(PASSWORD);
    let toml = TestConfig {
        listen: &listen,
        public_url: &base,
        store_dir: &dir.path().join("store"),
        username: USER,
        password_hash: &hash,
        ca_file: &dir.path().join("ca.pem"),
        hosts: &["conformance.test"],
        extra,
    }
    .toml();
    let config = dir.path().join("cimdgate.toml");
    std::fs::write(&config, toml).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut proc = Proc::new(child);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("cimdgate serve exited ({status}):\n{}", proc.all());
        }
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no /healthz in 30 s:\n{}",
            proc.all()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server {
        proc,
        base,
        client_id,
        _cimd: cimd,
        _dir: dir,
    }
}

/// Plays the user: open the authorization URL, sign in, approve, and follow the redirect to
/// the suite's callback. Returns the redirect it followed.
pub(crate) async fn sign_in_and_approve(authorize_url: &str) -> String {
    let driver = FormDriver::new().unwrap();
    let mut step = driver.open(authorize_url).await.unwrap();
    for _ in 0..4 {
        step = match step {
            Step::Login(form) => driver.login(&form, USER, PASSWORD).await.unwrap(),
            Step::Consent(form) => driver.consent(&form, true).await.unwrap(),
            Step::Redirect(location) => {
                let status = driver.follow(&location).await.unwrap();
                assert_eq!(status, 200, "the suite's callback answered {status}");
                return location;
            }
            Step::Other { status, body } => {
                panic!("unexpected page {status} at the authorization step: {body}")
            }
        };
    }
    panic!("no redirect after login and consent");
}

/// The suite names a result folder `<command prefix>-<scenario>-<ISO timestamp>`
/// (`authorization-server-authorization-code-grant-2026-12-04T08-46-05-426Z`); drop the
/// timestamp. Scenarios are then matched by suffix.
pub(crate) fn without_timestamp(folder: &str) -> &str {
    let b = folder.as_bytes();
    for (i, _) in folder.match_indices('-') {
        let rest = &b[i + 1..];
        if rest.len() >= 11
            && rest[..4].iter().all(u8::is_ascii_digit)
            && rest[4] == b'-'
            && rest[10] == b'T'
        {
            return &folder[..i];
        }
    }
    folder
}

/// Every `checks.json` under `dir`: `(scenario folder without its timestamp, checks)`.
pub(crate) fn read_checks(dir: &Path) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "checks.json") {
                let scenario = path
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| without_timestamp(&n.to_string_lossy()).to_owned())
                    .unwrap_or_default();
                let checks: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let checks = checks.as_array().cloned().unwrap_or_default();
                out.push((scenario, checks));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Assert every check is SUCCESS or an expected warning; returns a printable summary.
pub(crate) fn assert_checks(results: &[(String, Vec<Value>)], output: &str) -> String {
    let mut summary = String::new();
    let mut bad = Vec::new();
    for (scenario, checks) in results {
        for c in checks {
            let id = c["id"].as_str().unwrap_or("?");
            let status = c["status"].as_str().unwrap_or("?");
            summary.push_str(&format!("{scenario}: {id} {status}\n"));
            let expected = EXPECTED_WARNINGS
                .iter()
                .any(|(s, i, _)| scenario.ends_with(s) && *i == id);
            let ok = status == "SUCCESS" || (status == "WARNING" && expected);
            if !ok {
                bad.push(format!("{scenario}: {id} {status}: {c}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "conformance checks not SUCCESS:\n{}\n\nall checks:\n{summary}\nsuite output:\n{output}",
        bad.join("\n")
    );
    summary
}

/// A token for `/mcp` through the real flow: the suite's CIMD client, PKCE, sign-in, consent,
/// code exchange.
pub(crate) async fn access_token(server: &Server, resource_path: &str) -> String {
    let verifier = cimdgate_client::pkce::PkceVerifier::generate().unwrap();
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let resource = format!("{}{resource_path}", server.base);
    let url = reqwest::Url::parse_with_params(
        &format!("{}/authorize", server.base),
        &[
            ("response_type", "code"),
            ("client_id", server.client_id.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("state", "conformance"),
            ("code_challenge", verifier.challenge().as_str()),
            ("code_challenge_method", "S256"),
            ("resource", resource.as_str()),
            ("scope", "mcp"),
        ],
    )
    .unwrap();
    let driver = FormDriver::new().unwrap();
    let mut step = driver.open(url.as_str()).await.unwrap();
    let location = loop {
        step = match step {
            Step::Login(form) => driver.login(&form, USER, PASSWORD).await.unwrap(),
            Step::Consent(form) => driver.consent(&form, true).await.unwrap(),
            Step::Redirect(location) => break location,
            Step::Other { status, body } => panic!("authorization page {status}: {body}"),
        };
    };
    let code = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let body: Value = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("code_verifier", verifier.secret()),
                    ("client_id", server.client_id.as_str()),
                    ("resource", resource.as_str()),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token: {body}"))
        .to_owned()
}

/// The suite cannot send an `Authorization` header, so the server scenarios reach the gateway
/// through this loopback proxy, which adds `Authorization: Bearer <token>` and forwards
/// everything else (method, path, headers including `Host` and `Origin`, body; the response
/// streamed back, SSE included). The gateway still verifies the token on every request.
pub(crate) async fn start_bearer_proxy(upstream: String, token: String) -> String {
    use axum::body::Body;
    use axum::response::Response;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let forward = move |req: axum::extract::Request| {
        let (http, upstream, token) = (http.clone(), upstream.clone(), token.clone());
        async move {
            let (parts, body) = req.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let body = axum::body::to_bytes(body, 16 << 20).await.unwrap();
            let mut rb = http.request(parts.method, format!("{upstream}{path}"));
            for (k, v) in &parts.headers {
                if !matches!(
                    k.as_str(),
                    "authorization" | "content-length" | "connection" | "transfer-encoding"
                ) {
                    rb = rb.header(k, v);
                }
            }
            let resp = match rb.bearer_auth(&token).body(body).send().await {
                Ok(r) => r,
                Err(e) => {
                    return Response::builder()
                        .status(502)
                        .body(Body::from(format!("proxy: {e}")))
                        .unwrap();
                }
            };
            let mut out = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if !matches!(
                    k.as_str(),
                    "content-length" | "connection" | "transfer-encoding"
                ) {
                    out = out.header(k, v);
                }
            }
            out.body(Body::from_stream(resp.bytes_stream())).unwrap()
        }
    };
    let app = axum::Router::new().fallback(forward);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Run one `server` scenario against `url`; its checks (from its `checks.json`).
pub(crate) fn run_server_scenario(
    url: &str,
    scenario: &str,
    spec: Option<&str>,
) -> Vec<(String, Vec<Value>)> {
    let results = tempfile::tempdir().unwrap();
    let mut cmd = suite_command(&fixture_dir());
    cmd.args(["server", "--url", url, "--scenario", scenario])
        .arg("-o")
        .arg(results.path());
    if let Some(v) = spec {
        cmd.args(["--spec-version", v, "--force"]);
    }
    let (status, stdout, stderr) =
        cimdgate_test_support::node::run_bounded(cmd, Duration::from_secs(90));
    let checks = read_checks(results.path());
    assert!(
        !checks.is_empty(),
        "{scenario}: no checks.json ({status:?})\n{stdout}\n{stderr}"
    );
    checks
}

pub(crate) async fn run_server_scenarios(scenarios: &[&str], spec: Option<&str>, assert: bool) {
    let server = start_server().await;
    run_server_scenarios_on(&server, "/mcp", scenarios, spec, assert).await;
}

/// Run `scenarios` against the gateway resource at `resource_path` of `server`.
pub(crate) async fn run_server_scenarios_on(
    server: &Server,
    resource_path: &str,
    scenarios: &[&str],
    spec: Option<&str>,
    assert: bool,
) {
    let token = access_token(server, resource_path).await;
    let proxy = start_bearer_proxy(server.base.clone(), token).await;
    let url = format!("{proxy}{resource_path}");
    let mut bad = Vec::new();
    let mut summary = String::new();
    for scenario in scenarios {
        let u = url.clone();
        let (sc, sp) = (scenario.to_string(), spec.map(str::to_owned));
        let sp = sp.or_else(|| {
            // The survey runs each scenario at a revision it belongs to.
            (!assert).then(|| survey_spec(scenario)).flatten()
        });
        let results =
            tokio::task::spawn_blocking(move || run_server_scenario(&u, &sc, sp.as_deref()))
                .await
                .unwrap();
        for (folder, checks) in results {
            for c in checks {
                let id = c["id"].as_str().unwrap_or("?").to_owned();
                let status = c["status"].as_str().unwrap_or("?").to_owned();
                let why = c["errorMessage"].as_str().unwrap_or("");
                summary.push_str(&format!("{scenario}: {id} {status} {why}\n"));
                let expected = EXPECTED_SERVER_NON_SUCCESS
                    .iter()
                    .any(|(s, i, st, _)| s == scenario && *i == id && *st == status);
                // INFO entries are the suite's trace of what it sent and received.
                if assert && status != "SUCCESS" && status != "INFO" && !expected {
                    bad.push(format!("{folder}: {id} {status}: {c}"));
                }
            }
        }
    }
    println!("{summary}");
    assert!(
        bad.is_empty(),
        "server scenarios through the gateway not SUCCESS:\n{}\n\nall checks:\n{summary}\ncimdgate:\n{}",
        bad.join("\n"),
        server.proc.all()
    );
}

/// The upstream MCP server process (`upstream-server.mjs`), killed by PID when dropped.
pub(crate) struct Upstream {
    pub(crate) proc: Proc,
    pub(crate) url: String,
}

pub(crate) fn start_upstream() -> Upstream {
    let fixture = fixture_dir();
    cimdgate_test_support::node::npm_ci_once(&fixture, "node_modules/.bin/conformance");
    let child = Command::new(fixture.join("node_modules/.bin/node"))
        .arg(fixture.join("upstream-server.mjs"))
        .current_dir(&fixture)
        .env_remove("NODE_OPTIONS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start upstream-server.mjs");
    let mut proc = Proc::new(child);
    let out = proc.wait_for(30, "the upstream's listening line", |o| {
        o.contains("listening http://")
    });
    let url = out
        .split_whitespace()
        .skip_while(|w| *w != "listening")
        .nth(1)
        .expect("url after `listening`")
        .to_owned();
    Upstream { proc, url }
}

/// Every server scenario the suite lists with its revisions (`conformance list`).
pub(crate) fn listed_server_scenarios() -> Vec<(String, String)> {
    let mut cmd = suite_command(&fixture_dir());
    cmd.arg("list");
    let (_, stdout, _) = cimdgate_test_support::node::run_bounded(cmd, Duration::from_secs(60));
    let mut out = Vec::new();
    let mut in_server = false;
    for line in stdout.lines() {
        if !line.starts_with(' ') {
            in_server = line.starts_with("Server scenarios");
            continue;
        }
        if let Some(rest) = line.trim().strip_prefix("- ")
            && in_server
        {
            let (name, versions) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push((name.to_owned(), versions.to_owned()));
        }
    }
    out
}

/// The revision the survey runs a scenario at: its own when it is not a 2025 scenario.
pub(crate) fn survey_spec(scenario: &str) -> Option<String> {
    static LISTED: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let versions = LISTED
        .get_or_init(listed_server_scenarios)
        .iter()
        .find(|(n, _)| n == scenario)
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if versions.contains("2025-11-25") {
        None
    } else {
        // 2026-07-28 scenarios, and extensions (run with --force at the newest revision).
        Some("2026-07-28".into())
    }
}

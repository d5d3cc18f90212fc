//! Real MCP 2026-07-28 SDK clients through the gateway (docs/architecture.md, *Gateway*, "Both
//! MCP eras"): the official TypeScript SDK v2 (`@modelcontextprotocol/client`, pinned in
//! `tests/fixtures/ts-sdk-v2/package.json`) with `versionNegotiation` pinned to 2026-07-28 and
//! in `'auto'`, and the official Python SDK (`mcp`, pinned with hashes in
//! `tests/fixtures/py-sdk/requirements.txt`, installed by `./scripts/test` into
//! `target/py-sdk-venv`) in its default `"auto"` mode. Each logs in as a CIMD client (the SDK's
//! own discovery from the gateway's 401; cimdgate fetches the document from the test's HTTPS
//! CIMD host), plays the user on cimdgate's login and consent forms over HTTP, and calls `echo`
//! and `whoami` on the built-in demo server statelessly: no `initialize`, no `Mcp-Session-Id`.
//! The scripts record every request to the MCP endpoint, so the assertions are about the wire.
//!
//! The 2025-era TypeScript SDK (`@modelcontextprotocol/sdk` 1.32.2) keeps its session on the
//! same server: [`the_2025_era_typescript_sdk_keeps_its_session_on_the_server_that_serves_2026`]
//! here, and `interop_ts.rs` against a separate upstream process.

use crate::{common, interop_ts, interop_util};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use common::{PASSWORD, TestEnv, USERNAME};
use interop_util::publish_native_client;

/// The protocol revision the SDKs must end up speaking.
const MODERN: &str = "2026-07-28";
/// Upper bound for one SDK run (installation excluded): two logins' worth of HTTP on a busy
/// machine, and interpreter start-up.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// A loopback redirect on a port nobody listens on: the scripts capture it, never follow it.
const REDIRECT: &str = "http://127.0.0.1:47112/callback";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The Python SDK's virtualenv made by `./scripts/test` (workspace `target/py-sdk-venv`): its
/// interpreter, after checking it was built from the current requirements file. Missing or
/// stale → the test fails and says how to make it; it is never skipped.
fn venv_python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/py-sdk-venv");
    let python = venv.join("bin/python");
    let wanted = fixtures().join("py-sdk/requirements.txt");
    let installed = std::fs::read_to_string(venv.join("requirements.installed")).ok();
    assert!(
        python.exists() && installed == std::fs::read_to_string(&wanted).ok(),
        "the MCP Python SDK venv at {} is missing or not built from {}: run ./scripts/test \
         (it creates target/py-sdk-venv and installs the pinned, hash-checked requirements)",
        venv.display(),
        wanted.display()
    );
    python
}

/// Run an SDK script (blocking) with the login environment: killed by PID after
/// [`RUN_TIMEOUT`]; panics with its output on failure; returns its JSON step lines.
fn run_script(mut cmd: Command, what: &str, env: &[(&str, &str)]) -> Vec<Value> {
    cmd.env("USERNAME", USERNAME)
        .env("PASSWORD", PASSWORD)
        .env("REDIRECT_URI", REDIRECT)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("NODE_OPTIONS")
        .env_remove("PYTHONPATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (status, stdout, stderr) = cimdgate_test_support::node::run_bounded(cmd, RUN_TIMEOUT);
    let Some(status) = status else {
        panic!("{what} killed after {RUN_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    assert!(
        status.success(),
        "{what} failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON ({e}): {l}")))
        .collect()
}

/// `fixtures/ts-sdk-v2/client.mjs` with `NEGOTIATION` = `pin` or `auto`.
async fn run_ts_v2(mcp_url: String, client_id: String, negotiation: &str) -> Vec<Value> {
    let dir = fixtures().join("ts-sdk-v2");
    cimdgate_test_support::node::npm_ci_once(
        &dir,
        "node_modules/@modelcontextprotocol/client/package.json",
    );
    let negotiation = negotiation.to_owned();
    blocking(move || {
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("client.mjs"));
        let what = format!("ts-sdk-v2/client.mjs ({negotiation})");
        run_script(
            cmd,
            &what,
            &[
                ("MCP_URL", &mcp_url),
                ("CLIENT_ID", &client_id),
                ("TEXT", "hello from the TypeScript SDK v2"),
                ("NEGOTIATION", &negotiation),
            ],
        )
    })
    .await
}

/// `fixtures/py-sdk/client.py` in the SDK's default mode (no `MODE`: "auto").
async fn run_python(mcp_url: String, client_id: String) -> Vec<Value> {
    let python = venv_python();
    blocking(move || {
        let mut cmd = Command::new(python);
        cmd.arg(fixtures().join("py-sdk/client.py"));
        run_script(
            cmd,
            "py-sdk/client.py",
            &[
                ("MCP_URL", &mcp_url),
                ("CLIENT_ID", &client_id),
                ("TEXT", "hello from the Python SDK"),
            ],
        )
    })
    .await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no {name:?} step in {lines:#?}"))
}

/// The SDK logged in with CIMD: the document URL as client_id at /authorize and /token, the
/// gateway's resource as the RFC 8707 indicator, cimdgate's own forms, `iss` on the redirect.
fn assert_cimd_login(env: &TestEnv, lines: &[Value], client_id: &str) {
    let authorize = step(lines, "authorize");
    assert_eq!(authorize["client_id"], json!(client_id), "{lines:#?}");
    assert_eq!(authorize["resource"], json!(env.resource()), "{lines:#?}");
    step(lines, "login_form");
    step(lines, "consent_form");
    assert_eq!(step(lines, "redirect")["iss"], json!(env.base));
    let token = step(lines, "token");
    assert_eq!(token["client_id"], json!(client_id), "{lines:#?}");
    assert_eq!(
        token["token_type"].as_str().map(str::to_lowercase),
        Some("bearer".into())
    );
}

/// The 2026-07-28 SDKs ask for `offline_access` because cimdgate's AS metadata lists it
/// (MCP 2026-07-28 "Refresh Tokens", SEP-2207; the resource's metadata does not), next to the
/// challenged `mcp`, and get a refresh token for it.
fn assert_offline_access(lines: &[Value]) {
    let scope = step(lines, "authorize")["scope"]
        .as_str()
        .unwrap_or_default();
    let scopes: Vec<&str> = scope.split(' ').collect();
    assert!(
        scopes.contains(&"mcp") && scopes.contains(&"offline_access"),
        "{lines:#?}"
    );
    let token = step(lines, "token");
    assert_eq!(token["has_refresh"], true, "{lines:#?}");
    let granted = token["scope"].as_str().unwrap_or_default();
    assert!(granted.split(' ').any(|s| s == "offline_access"), "{token}");
}

/// What went over the wire to the MCP endpoint was 2026-07-28 and stateless: every request
/// named 2026-07-28 in `MCP-Protocol-Version` and mirrored its method in `Mcp-Method` (and the
/// tool in `Mcp-Name`); none was `initialize`; no `Mcp-Session-Id` either way; the tool calls
/// succeeded and `whoami` saw this user and client.
fn assert_stateless_2026(lines: &[Value], client_id: &str, text: &str) {
    let wire = step(lines, "wire");
    assert_eq!(wire["session_sent"], false, "{wire:#}");
    assert_eq!(wire["session_received"], false, "{wire:#}");
    let requests = wire["requests"].as_array().unwrap();
    let ok: Vec<&Value> = requests.iter().filter(|r| r["status"] == 200).collect();
    assert!(!ok.is_empty(), "{wire:#}");
    for r in requests {
        assert_eq!(r["http"], "POST", "only POSTs in 2026-07-28: {wire:#}");
        assert_ne!(r["body_method"], "initialize", "{wire:#}");
        assert_eq!(r["protocol_version"], MODERN, "{wire:#}");
        assert_eq!(r["mcp_method"], r["body_method"], "{wire:#}");
    }
    let called = |tool: &str| {
        ok.iter()
            .any(|r| r["body_method"] == "tools/call" && r["mcp_name"] == tool)
    };
    assert!(called("echo") && called("whoami"), "{wire:#}");
    assert!(
        ok.iter().any(|r| r["body_method"] == "server/discover"),
        "the SDK discovered the server: {wire:#}"
    );

    let echo = &step(lines, "echo")["result"];
    assert_ne!(echo["isError"], true, "{echo}");
    assert_eq!(echo["content"][0]["text"], text, "{echo}");
    let who = whoami(lines);
    assert_eq!(who["user"], USERNAME, "{who}");
    assert_eq!(who["client_id"], json!(client_id), "{who}");
    assert_eq!(who["token_source"], "cimdgate", "{who}");
    assert!(
        who["scopes"].as_array().unwrap().contains(&json!("mcp")),
        "{who}"
    );
}

/// The demo's `whoami` answer (a JSON text block).
fn whoami(lines: &[Value]) -> Value {
    let text = step(lines, "whoami")["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("whoami gave no text: {lines:#?}"));
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn typescript_sdk_v2_pinned_to_2026_07_28_logs_in_with_cimd_and_calls_tools_with_no_session()
{
    let env = TestEnv::start().await;
    let client_id = publish_native_client(&env, "ts-sdk-v2-pin.json");
    let lines = run_ts_v2(env.resource(), client_id.clone(), "pin").await;

    assert_cimd_login(&env, &lines, &client_id);
    assert_offline_access(&lines);
    let connected = step(&lines, "connected");
    assert_eq!(connected["protocol_version"], MODERN, "{connected}");
    assert_eq!(connected["era"], "modern", "{connected}");
    assert_eq!(connected["session_id"], Value::Null, "{connected}");
    assert_stateless_2026(&lines, &client_id, "hello from the TypeScript SDK v2");
}

#[tokio::test]
async fn typescript_sdk_v2_in_auto_mode_discovers_2026_07_28_through_the_gateway() {
    let env = TestEnv::start().await;
    let client_id = publish_native_client(&env, "ts-sdk-v2-auto.json");
    let lines = run_ts_v2(env.resource(), client_id.clone(), "auto").await;

    assert_cimd_login(&env, &lines, &client_id);
    assert_offline_access(&lines);
    let connected = step(&lines, "connected");
    assert_eq!(connected["protocol_version"], MODERN, "{connected}");
    assert_eq!(connected["era"], "modern", "{connected}");
    let versions = connected["supported_versions"].as_array().unwrap();
    assert!(versions.contains(&json!(MODERN)), "{connected}");
    assert_stateless_2026(&lines, &client_id, "hello from the TypeScript SDK v2");
}

#[tokio::test]
async fn python_sdk_in_its_default_auto_mode_logs_in_with_cimd_and_speaks_2026_07_28() {
    let env = TestEnv::start().await;
    let client_id = publish_native_client(&env, "py-sdk.json");
    let lines = run_python(env.resource(), client_id.clone()).await;

    assert_cimd_login(&env, &lines, &client_id);
    assert_offline_access(&lines);
    let connected = step(&lines, "connected");
    assert_eq!(connected["mode"], "auto", "{connected}");
    assert_eq!(connected["protocol_version"], MODERN, "{connected}");
    assert_eq!(connected["discovered"], true, "{connected}");
    assert_eq!(connected["initialized"], false, "{connected}");
    assert_stateless_2026(&lines, &client_id, "hello from the Python SDK");
}

/// One server, both eras: the 2025-era SDK (`@modelcontextprotocol/sdk` 1.32.2, legacy only)
/// opens an `initialize` session on the built-in demo, and the TypeScript SDK v2 in `'auto'`
/// then speaks 2026-07-28 to the same endpoint with no session.
#[tokio::test]
async fn the_2025_era_typescript_sdk_keeps_its_session_on_the_server_that_serves_2026() {
    let env = TestEnv::start().await;
    let old_id = publish_native_client(&env, "ts-sdk-v1-same-server.json");
    let (url, cid) = (env.resource(), old_id.clone());
    let old = blocking(move || interop_ts::run_client(&url, &cid, REDIRECT, "still 2025")).await;
    assert_cimd_login(&env, &old, &old_id);
    let connected = step(&old, "connected");
    assert_eq!(connected["protocol_version"], "2025-11-25", "{connected}");
    assert_eq!(connected["has_session"], true, "{connected}");
    assert_eq!(
        step(&old, "echo")["result"]["content"][0]["text"],
        "still 2025"
    );
    assert_eq!(whoami(&old)["client_id"], json!(old_id));

    let new_id = publish_native_client(&env, "ts-sdk-v2-same-server.json");
    let new = run_ts_v2(env.resource(), new_id.clone(), "auto").await;
    assert_eq!(step(&new, "connected")["protocol_version"], MODERN);
    assert_stateless_2026(&new, &new_id, "hello from the TypeScript SDK v2");
}

#[test]
fn the_fixtures_pin_the_sdk_versions_this_file_documents() {
    let pinned = |p: &Path| std::fs::read_to_string(fixtures().join(p)).unwrap();
    let v2: Value = serde_json::from_str(&pinned(Path::new("ts-sdk-v2/package.json"))).unwrap();
    assert_eq!(v2["dependencies"]["@modelcontextprotocol/client"], "2.4.0");
    let py = pinned(Path::new("py-sdk/requirements.txt"));
    assert!(py.lines().any(|l| l.starts_with("mcp==2.3.0 ")), "{py}");
}

//! Interop with the official MCP TypeScript SDK client (`@modelcontextprotocol/sdk`, pinned in
//! `tests/fixtures/ts-sdk/package.json`): the SDK discovers cimdgate from the gateway's 401,
//! logs in as a CIMD client (`clientMetadataUrl`; cimdgate fetches the document from the test's
//! HTTPS CIMD host), and calls `echo` through the gateway against a separate upstream MCP
//! server **process** (`interop_util::UpstreamProcess`). The SDK's redirect handler plays the
//! user on cimdgate's login and consent forms over HTTP (`fixtures/ts-sdk/client.mjs`). This SDK
//! speaks only the 2025 era (`initialize`, `Mcp-Session-Id`); the 2026-07-28 SDK clients, and
//! this one on the same server as them, are in `interop_2026_sdks.rs`.

use crate::{common, gateway_util, interop_util};

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use common::{PASSWORD, TestEnv, USERNAME};
use interop_util::{UpstreamProcess, publish_native_client};

/// Upper bound for one node run (npm install excluded).
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ts-sdk")
}

/// Run `client.mjs` (blocking): killed by PID after [`NODE_TIMEOUT`]; panics with its output
/// on failure; returns its JSON lines.
pub(crate) fn run_client(
    mcp_url: &str,
    client_id: &str,
    redirect_uri: &str,
    text: &str,
) -> Vec<Value> {
    let mut cmd = Command::new("node");
    cmd.arg(fixture_dir().join("client.mjs"))
        .env("MCP_URL", mcp_url)
        .env("CLIENT_ID", client_id)
        .env("REDIRECT_URI", redirect_uri)
        .env("USERNAME", USERNAME)
        .env("PASSWORD", PASSWORD)
        .env("TEXT", text)
        .env_remove("NODE_OPTIONS");
    let (status, stdout, stderr) = cimdgate_test_support::node::run_bounded(cmd, NODE_TIMEOUT);
    let Some(status) = status else {
        panic!("client.mjs killed after {NODE_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    assert!(
        status.success(),
        "client.mjs failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON ({e}): {l}")))
        .collect()
}

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no {name:?} step in {lines:#?}"))
}

#[tokio::test]
async fn typescript_sdk_client_logs_in_with_cimd_and_calls_echo_on_a_separate_upstream_process() {
    cimdgate_test_support::node::npm_ci_once(
        &fixture_dir(),
        "node_modules/@modelcontextprotocol/sdk/package.json",
    );
    let upstream = tokio::task::spawn_blocking(UpstreamProcess::start)
        .await
        .unwrap();
    assert_ne!(upstream.pid(), std::process::id());
    let up_url = upstream.url.clone();
    let env = TestEnv::start_with(|c| {
        c.resources
            .push(gateway_util::resource("/ts", &up_url, &["mcp"]))
    })
    .await;
    let client_id = publish_native_client(&env, "ts-sdk-client.json");
    // A loopback redirect on a port nobody listens on: the handler captures it, never follows.
    let redirect = "http://127.0.0.1:47111/callback";
    let (url, cid, text) = (
        env.url("/ts"),
        client_id.clone(),
        "hello from the TypeScript SDK",
    );
    let lines = tokio::task::spawn_blocking(move || run_client(&url, &cid, redirect, text))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

    // The SDK chose CIMD (not DCR): client_id in the authorize URL is the document URL, and the
    // resource indicator is the gateway's resource from its RFC 9728 metadata.
    let authorize = step(&lines, "authorize");
    assert_eq!(authorize["client_id"], json!(client_id), "{lines:#?}");
    assert_eq!(authorize["resource"], json!(env.url("/ts")));
    step(&lines, "login_form");
    step(&lines, "consent_form");
    assert_eq!(step(&lines, "redirect")["iss"], json!(env.base));
    let token = step(&lines, "token");
    assert_eq!(token["client_id"], json!(client_id));
    assert_eq!(token["has_refresh"], true);

    // The 1.x SDK is 2025-era only: an initialize handshake and a session.
    let connected = step(&lines, "connected");
    assert_eq!(connected["protocol_version"], "2025-11-25", "{connected}");
    assert_eq!(connected["has_session"], true, "{connected}");

    // echo went through the gateway to the upstream process and back.
    let echo = &step(&lines, "echo")["result"];
    assert_ne!(echo["isError"], true, "{echo}");
    assert_eq!(echo["content"][0]["text"], text, "{echo}");
    // The upstream learned the caller only from the gateway's identity headers.
    let who: Value = serde_json::from_str(
        step(&lines, "whoami")["result"]["content"][0]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        who,
        json!({"user": USERNAME, "client_id": client_id, "scopes": ["mcp"],
               "token_source": "cimdgate"})
    );

    // cimdgate recorded the CIMD client, and the SDK's access token names it as client_id.
    let seen = env.store().list_client_records().await.unwrap();
    assert!(
        seen.iter().any(|c| c.client_id == client_id),
        "clients seen: {:?}",
        seen.iter().map(|c| &c.client_id).collect::<Vec<_>>()
    );
    let access = step(&lines, "done")["access_token"].as_str().unwrap();
    let claims = access_claims(access);
    assert_eq!(claims["client_id"], json!(client_id));
    assert_eq!(claims["aud"], json!(env.url("/ts")));
    drop(upstream);
}

/// The (unverified) payload of a JWT; the gateway already verified it when echo succeeded.
fn access_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

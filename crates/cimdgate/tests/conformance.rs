//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned with its
//! own Node 22 in `crates/server/tests/fixtures/conformance/`) against the shipped binary: a
//! real `cimdgate serve` on a free loopback port.
//!
//! `conformance authorization` runs every authorization-server scenario of the suite:
//! `authorization-server-metadata-endpoint` and the interactive `authorization-code-grant`.
//! The client is a CIMD client: its `client_id` is an `https` URL served by a test HTTPS host
//! (`conformance.test`, test CA, mapped to 127.0.0.1 by the fetch dev hooks) whose document
//! registers the portless loopback redirect `http://127.0.0.1/callback`; the suite listens on
//! `http://127.0.0.1:<port>/callback`. The human step is automated: the test reads the
//! authorization URL the suite prints, signs in and approves with `cimdgate_client`'s form
//! driver, and follows the redirect to the suite's callback server.
//!
//! `conformance server` runs the server scenarios through the gateway (a loopback proxy adds
//! the bearer token the suite cannot send): every 2025-11-25 scenario against a reference
//! upstream written with the official TypeScript SDK (`upstream-server.mjs`), the transport
//! scenarios of 2025-11-25 and 2026-07-28 against the built-in demo upstream, and (ignored by
//! default) a survey of every scenario the suite lists.
//!
//! Every check of every scenario in the suite's `checks.json` files must be `SUCCESS`, or be
//! listed in [`EXPECTED_WARNINGS`] / [`EXPECTED_SERVER_NON_SUCCESS`] with a reason. The
//! results table is in `docs/interop.md`.

mod support;

#[path = "conformance/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use support::free_port;

/// Checks that may be `WARNING` rather than `SUCCESS`: `(scenario, check id, why)`.
const EXPECTED_WARNINGS: &[(&str, &str, &str)] = &[];

#[tokio::test(flavor = "multi_thread")]
async fn conformance_authorization_scenarios_pass_with_a_cimd_client() {
    let server = start_server().await;
    let results = tempfile::tempdir().unwrap();
    let callback_port = free_port();
    let mut cmd = suite_command(&fixture_dir());
    cmd.args(["authorization", "--url", &server.base])
        .args(["--client-id", &server.client_id])
        .args(["--resource", &format!("{}/mcp", server.base)])
        .args(["--port", &callback_port.to_string()])
        .arg("-o")
        .arg(results.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run the conformance suite");
    let out = Arc::new(Mutex::new(String::new()));
    let pipe = child.stdout.take().unwrap();
    let sink = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let err = child.stderr.take().unwrap();
    let err_out = Arc::new(Mutex::new(String::new()));
    let err_sink = err_out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            err_sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let output = || {
        format!(
            "--- suite stdout\n{}--- suite stderr\n{}--- cimdgate\n{}",
            out.lock().unwrap(),
            err_out.lock().unwrap(),
            server.proc.all()
        )
    };

    // The suite prints the authorization URL for a person; take it and play the person.
    let prefix = format!("{}/authorize?", server.base);
    let deadline = Instant::now() + SUITE_TIMEOUT;
    let mut driven = None;
    let status = loop {
        if driven.is_none() {
            let url = out
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.trim_start().starts_with(&prefix))
                .map(|l| l.trim().to_owned());
            if let Some(url) = url {
                driven = Some(sign_in_and_approve(&url).await);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("suite still running after {SUITE_TIMEOUT:?}\n{}", output());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        driven.is_some(),
        "the suite never printed an authorization URL\n{}",
        output()
    );
    let checks = read_checks(results.path());
    let scenarios: Vec<&str> = checks.iter().map(|(s, _)| s.as_str()).collect();
    for want in [
        "authorization-server-metadata-endpoint",
        "authorization-code-grant",
    ] {
        assert!(
            scenarios.iter().any(|s| s.ends_with(want)),
            "scenario {want} did not run: {scenarios:?}\n{}",
            output()
        );
    }
    let summary = assert_checks(&checks, &output());
    assert!(status.success(), "suite exit {status}\n{}", output());
    println!("{summary}");
}

// ---------------------------------------------------------------------------------------------
// Server scenarios through the gateway.

/// The suite's `server` scenarios that exercise the MCP transport and lifecycle as a client
/// sees them through the gateway (`/mcp` → the built-in demo MCP server). The others test an
/// MCP server's own features (specific `test_*` tools, resources, prompts, completions,
/// elicitation, sampling) that the suite's reference server implements; the gateway forwards
/// them unchanged, so they say nothing about cimdgate — docs/interop.md lists each one.
const SERVER_SCENARIOS: &[&str] = &[
    "server-initialize",
    "server-session-lifecycle",
    "ping",
    "tools-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

/// The suite's 2025-11-25 feature scenarios, run through the gateway against
/// `upstream-server.mjs` (the official TypeScript SDK with the tools, resources and prompts the
/// scenarios call): content types, tool errors, progress and log notifications, and the
/// server-to-client requests (sampling, elicitation) that travel back over the SSE response,
/// and SSE resumption. With the transport scenarios this is every 2025-11-25 server scenario.
const SERVER_FEATURE_SCENARIOS: &[&str] = &[
    "server-initialize",
    "server-session-lifecycle",
    "ping",
    "server-sse-multiple-streams",
    // SEP-1699: the upstream closes the SSE stream mid-call; the client resumes with GET and
    // Last-Event-ID through the gateway and must get the tool's result.
    "server-sse-polling",
    // The gateway refuses a foreign `Origin` itself (403), whatever the upstream checks.
    "dns-rebinding-protection",
    "tools-list",
    "json-schema-2020-12",
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-with-logging",
    "tools-call-sampling",
    "tools-call-elicitation",
    "logging-set-level",
    "completion-complete",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
];

/// 2026-07-28 (stateless) transport scenarios, run with `--spec-version 2026-07-28`.
const SERVER_SCENARIOS_2026: &[&str] = &["server-stateless", "http-header-validation", "caching"];

/// Checks of the server scenarios that may end other than `SUCCESS`:
/// `(scenario, check id, status, why)`.
const EXPECTED_SERVER_NON_SUCCESS: &[(&str, &str, &str, &str)] = &[
    (
        "server-stateless",
        "sep-2575-server-rejects-undeclared-capability",
        "FAILURE",
        "untestable here: needs the suite's diagnostic tool `test_missing_capability` in the \
         upstream MCP server (the suite marks the check `untestable`); nothing the gateway does",
    ),
    (
        "server-stateless",
        "sep-2575-missing-capability-http-400",
        "FAILURE",
        "untestable here: same diagnostic tool as above",
    ),
    (
        "server-stateless",
        "sep-2575-http-server-no-independent-requests-on-stream",
        "FAILURE",
        "untestable here: needs the suite's reference tools in the upstream (`tool not found`)",
    ),
    (
        "server-stateless",
        "sep-2575-server-no-log-without-loglevel",
        "FAILURE",
        "untestable here: needs the suite's logging tool in the upstream (`tool not found`)",
    ),
    (
        "server-stateless",
        "sep-2575-server-sends-subscription-ack",
        "SKIPPED",
        "the demo upstream advertises no subscriptions; subscriptions/listen does not apply",
    ),
    (
        "server-stateless",
        "sep-2575-server-tags-subscription-id",
        "SKIPPED",
        "as above",
    ),
    (
        "server-stateless",
        "sep-2575-server-honors-notification-filter",
        "SKIPPED",
        "as above",
    ),
    (
        "server-stateless",
        "sep-2575-server-sends-prompts-list-changed-on-subscription",
        "SKIPPED",
        "as above",
    ),
    (
        "server-stateless",
        "sep-2575-server-sends-tools-list-changed-on-subscription",
        "SKIPPED",
        "as above",
    ),
    (
        "caching",
        "sep-2549-resources-read-caching-hints",
        "SKIPPED",
        "the demo upstream has no resources to read",
    ),
    (
        "caching",
        "sep-2549-resources-list-caching-hints",
        "FAILURE",
        "the demo upstream (rmcp 3.11) declares no resources capability and answers \
         resources/list with -32601, as a server without resources must; the check assumes \
         resources (with rmcp 3.9 the demo answered an empty list)",
    ),
    (
        "caching",
        "sep-2549-resources-templates-list-caching-hints",
        "FAILURE",
        "as above, for resources/templates/list",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn conformance_server_scenarios_through_the_gateway_2025_11_25() {
    run_server_scenarios(SERVER_SCENARIOS, None, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_server_feature_scenarios_through_the_gateway_with_a_reference_upstream() {
    let upstream = start_upstream();
    let extra = format!(
        "[[resources]]\npath = \"/upstream\"\nupstream = \"{}\"\nscopes = [\"mcp\"]\n",
        upstream.url
    );
    let server = start_server_with(&extra).await;
    run_server_scenarios_on(&server, "/upstream", SERVER_FEATURE_SCENARIOS, None, true).await;
    drop(upstream.proc);
}

/// The 2026-07-28 transport (SEP-2575 stateless requests and `server/discover`, SEP-2243
/// standard headers, SEP-2549 caching hints) through the gateway to the demo upstream. Fails
/// today on one check (`sep-2575-server-declares-prompts-in-discover`, the demo upstream's
/// capabilities; docs/interop.md), left to the stateless transport work.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_server_scenarios_through_the_gateway_2026_07_28_stateless() {
    run_server_scenarios(SERVER_SCENARIOS_2026, Some("2026-07-28"), true).await;
}

/// Not a check: runs **every** server scenario the suite lists through the gateway (demo
/// upstream) and prints each check's status, for the table in docs/interop.md.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "survey for docs/interop.md: prints every server scenario's result, asserts nothing"]
async fn conformance_server_survey_every_scenario() {
    let names: Vec<String> = tokio::task::spawn_blocking(listed_server_scenarios)
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    run_server_scenarios(&names, None, false).await;
}

//! One representative attack through the binary for review findings whose fixes are proven in
//! process elsewhere (docs/security.md lists those tests): dynamic registration under the trust
//! policy (H2), forged `X-Forwarded-For` (M1), a self-registered client named like a famous
//! host (M6), open redirects to protocol handlers (M7), oversized registrations (M8), fetch
//! errors revealing internal addresses (M11), a plain-http issuer on a public name (server L5)
//! and a Redis password in the startup output (server L8).

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::http::header;
use cimdgate_test_support::{DnsServer, TestCa};

use crate::harness::{Gate, Setup, Tally, binary, body, fetch_hooks, plain_client, write_ca};
use crate::support::{Proc, free_port};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn register(gate: &Gate, doc: serde_json::Value) -> (u16, serde_json::Value) {
    let r = plain_client()
        .post(gate.url("/register"))
        .json(&doc)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

fn authorize(gate: &Gate, params: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&gate.url("/authorize"), params).unwrap()
}

/// H2: with an allow-list trust policy nobody can register their way around it (registration
/// stays off unless an operator enables it; the harness enables it for other attacks, so this
/// test sets it back to the default); M1: with no
/// trusted proxy, a client's own `X-Forwarded-For` does not give it fresh rate-limit budgets.
///
/// Fails if: `/register` accepts a client or is advertised in allowlist mode, or six requests
/// claiming six addresses all pass a limit of one per second (burst two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_follows_the_allowlist_and_forged_sources_share_one_budget() {
    let mut gate = Gate::start(Setup {
        server: "",
        body: body(
            "",
            "[cimd]\nmode = \"allowlist\"\n\n[limits]\nper_ip_per_second = 1\n",
        ),
        env: vec![("CIMDGATE_DCR__ENABLED", "false".into())],
    })
    .await;
    let meta: serde_json::Value = plain_client()
        .get(gate.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(meta.get("registration_endpoint").is_none(), "{meta}");
    let (status, v) = register(
        &gate,
        serde_json::json!({
            "client_name": "claude.ai",
            "redirect_uris": ["https://attacker.test/cb"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert!((400..500).contains(&status), "{status} {v}");
    assert!(v.get("client_id").is_none(), "{v}");

    let tally = Tally::default();
    for i in 0..6 {
        let r = plain_client()
            .post(gate.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", format!("198.51.100.{}", i + 1))
            .body("grant_type=authorization_code")
            .send()
            .await
            .unwrap();
        tally.add(r.status().as_u16());
    }
    println!(
        "forged X-Forwarded-For, 6 requests at 1/s: {:?}",
        tally.counts()
    );
    assert!(tally.within(429..=429) >= 1, "{:?}", tally.counts());
    tally.assert_no_5xx("forged sources");
    gate.assert_healthy();
}

/// M6, M7, M8 through `/register` in open mode: a client named `github.com` is shown as
/// unverified and never in the host slot; a redirect to a non-web protocol handler is either
/// refused at registration or gets the error page, never an automatic redirect; oversized
/// registrations are refused.
///
/// Fails if: the login page puts the self-declared name where the verified host goes, an
/// error answer redirects to `search-ms:`, or 21 redirect URIs / a 300-character name are
/// accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_registered_clients_cannot_pose_redirect_anywhere_or_grow_without_bound() {
    let mut gate = Gate::start(Setup {
        server: "",
        body: body("", ""),
        env: vec![],
    })
    .await;
    let (status, v) = register(
        &gate,
        serde_json::json!({
            "client_name": "github.com",
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let page = plain_client()
        .get(authorize(
            &gate,
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("<span class=\"host\">github.com</span>"),
        "the self-declared name is shown as the host:\n{page}"
    );
    assert!(page.contains("Unverified"), "{page}");

    // A protocol handler as redirect URI: refused at registration, or never redirected to.
    let handler = "search-ms:query=invoice&crumb=location:\\\\attacker.test\\share";
    let (status, v) = register(
        &gate,
        serde_json::json!({
            "client_name": "launcher",
            "redirect_uris": [handler],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    if status == 201 {
        let id = v["client_id"].as_str().unwrap().to_owned();
        // No response_type: an error that would be sent to the redirect URI.
        let r = plain_client()
            .get(authorize(
                &gate,
                &[("client_id", &id), ("redirect_uri", handler)],
            ))
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get(header::LOCATION).is_none(),
            "redirected to a protocol handler: {:?}",
            r.headers()
        );
        assert!(r.status().is_client_error(), "{}", r.status());
    } else {
        assert_eq!(status, 400, "{v}");
    }

    // Oversized registrations.
    let uris: Vec<String> = (0..21)
        .map(|i| format!("http://127.0.0.1:9/cb{i}"))
        .collect();
    let (status, v) = register(
        &gate,
        serde_json::json!({"client_name": "many", "redirect_uris": uris}),
    )
    .await;
    assert_eq!(status, 400, "21 redirect URIs: {v}");
    let (status, v) = register(
        &gate,
        serde_json::json!({"client_name": "n".repeat(300), "redirect_uris": ["http://127.0.0.1:9/cb"]}),
    )
    .await;
    assert_eq!(status, 400, "a 300-character name: {v}");
    gate.assert_healthy();
}

/// M11 (cimd F-fetch-2): a client_id whose host resolves to an internal address is refused
/// without saying which address or range (no DNS oracle); nothing is fetched.
///
/// Fails if: the page or the JSON error names `10.20.30.40` or its range, or the answer is
/// not a 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_failures_do_not_reveal_internal_addresses() {
    let ca = TestCa::new();
    let dns = DnsServer::start(vec![(
        "vault.corp.test",
        IpAddr::V4(Ipv4Addr::new(10, 20, 30, 40)),
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_ca(dir.path(), ca.cert_pem());
    let fetch = fetch_hooks(&ca_file, &[], &format!("dns_server = \"{}\"", dns.addr()));
    let mut gate = Gate::start(Setup {
        server: "",
        body: body(&fetch, ""),
        env: vec![],
    })
    .await;
    for (id, accept) in [
        ("https://vault.corp.test/x.json", "text/html"),
        ("https://vault.corp.test/y.json", "application/json"),
        ("https://missing.corp.test/x.json", "text/html"),
    ] {
        let r = plain_client()
            .get(authorize(
                &gate,
                &[
                    ("response_type", "code"),
                    ("client_id", id),
                    ("redirect_uri", "http://127.0.0.1/cb"),
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "S256"),
                ],
            ))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!((400..500).contains(&status), "{id}: {status} {text}");
        for leak in ["10.20.30.40", "10.0.0.0", "private", "127.0.0.1:"] {
            assert!(
                !text.contains(leak),
                "{id}: the answer says {leak:?}:\n{text}"
            );
        }
    }
    assert!(dns.queries() >= 1, "the names were looked up");
    gate.assert_healthy();
}

/// Server L5 and L8: a plain-http issuer on a public name is warned about at startup, and a
/// Redis password in `store.url` is never printed, not even when the store cannot be opened.
///
/// Fails if: no warning names the insecure `public_url`, or the password appears in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_issuer_is_warned_about_and_store_passwords_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("cimdgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://gateway.example.com\"\n\n\
             [store]\nurl = \"embedded:{}\"\n\n{}",
            dir.path().join("store").display(),
            body("", "")
        ),
    )
    .unwrap();
    let mut proc = Proc::new(
        Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env("CIMDGATE_ADMIN__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = proc.wait_for(60, "the insecure-issuer warning", |o| {
        o.contains("gateway.example.com") && o.contains("WARN")
    });
    assert!(
        out.lines()
            .any(|l| l.contains("WARN") && l.to_lowercase().contains("http")),
        "{out}"
    );
    proc.terminate();

    // A Redis store that cannot be reached (no configuration file: the zero-config banner
    // path): the start fails, and nothing printed holds the password.
    let secret = "hunter2-adversarial";
    let mut proc = Proc::new(
        Command::new(binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
            .env(
                "CIMDGATE_STORE__URL",
                format!("redis://:{secret}@127.0.0.1:1/0"),
            )
            .env("CIMDGATE_SERVER__PUBLIC_URL", "http://127.0.0.1:9")
            .env("CIMDGATE_ADMIN__LISTEN", "127.0.0.1:0")
            .env_remove("CIMDGATE_CONFIG")
            .env_remove("RUST_LOG")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = proc.wait_exit(60);
    let out = proc.all();
    assert!(!status.success(), "{out}");
    assert!(out.contains("store"), "the error is about the store: {out}");
    assert!(!out.contains(secret), "the password was printed:\n{out}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

//! `cimdgate serve` with the reference configuration from `docs/reference-config.toml` (issue 3:
//! "this reference config must work as written, paths adjusted"), and `cimdgate hash-password`.
//!
//! The reference file is copied into a temporary folder next to a freshly generated test CA
//! (`test-ca.pem`, the path the file names); only the listen address and public URL are
//! adjusted, through the documented `--listen` flag and `CIMDGATE_SERVER__PUBLIC_URL`.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use cimdgate_test_support::{HttpsHost, TestCa};

const BIN: &str = env!("CARGO_BIN_EXE_cimdgate");

/// Kills the server (by PID) when the test ends, pass or fail.
struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn wait_healthy(http: &reqwest::Client, base: &str, server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = server.0.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("cimdgate serve exited early with {status}: {err}");
        }
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cimdgate serve did not answer /healthz within 30 s");
}

#[tokio::test]
async fn reference_config_starts_and_serves_a_cimd_client() {
    // The CIMD host the reference config trusts (`cimd.test`, mapped to 127.0.0.1).
    let ca = TestCa::new();
    let doc = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let served = doc.clone();
    let router = Router::new().route(
        "/client.json",
        get(move || {
            let body = served.lock().unwrap().clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let host = HttpsHost::start(&ca, &["cimd.test", "blocked.test"], router).await;
    let client_id = host.url("cimd.test", "/client.json");
    *doc.lock().unwrap() = serde_json::json!({
        "client_id": client_id,
        "client_name": "Reference Test Client",
        "redirect_uris": ["http://127.0.0.1/callback"],
    })
    .to_string();

    let dir = tempfile::tempdir().unwrap();
    let reference = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/reference-config.toml"
    );
    std::fs::copy(reference, dir.path().join("cimdgate.toml")).unwrap();
    std::fs::write(dir.path().join("test-ca.pem"), ca.cert_pem()).unwrap();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("cimdgate.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CIMDGATE_SERVER__PUBLIC_URL", &base)
        // A free port: tests run side by side.
        .env("CIMDGATE_ADMIN__LISTEN", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    wait_healthy(&http, &base, &mut server).await;

    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "store reachable");

    let meta: serde_json::Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], base.as_str());
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    assert_eq!(meta["token_endpoint"], format!("{base}/token").as_str());

    // /authorize for the CIMD client: the document is fetched over real HTTPS through the
    // reference config's dev hooks, and the login page names the client's host.
    let authorize = reqwest::Url::parse_with_params(
        &format!("{base}/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:5555/callback"),
            ("state", "s1"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("resource", &format!("{base}/mcp")),
        ],
    )
    .unwrap();
    let page = http.get(authorize).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("cimd.test"),
        "login page names the client host"
    );
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
    assert_eq!(host.hits("/client.json"), 1, "document fetched once");

    // A blocked domain is refused before any fetch.
    let blocked_id = host.url("blocked.test", "/client.json");
    let blocked = reqwest::Url::parse_with_params(
        &format!("{base}/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", blocked_id.as_str()),
            ("redirect_uri", "http://127.0.0.1/callback"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let refused = http.get(blocked).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused.headers().get(header::LOCATION).is_none(),
        "never redirected"
    );
    assert_eq!(host.hits("/client.json"), 1, "blocked client never fetched");
}

#[test]
fn serve_with_unknown_config_key_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_ur = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.public_ur"), "{err}");
}

#[test]
fn serve_with_bad_env_value_fails_naming_the_key() {
    let out = Command::new(BIN)
        .args(["serve"])
        .env("CIMDGATE_TOKENS__CODE_TTL_SECS", "600")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tokens.code_ttl_secs"), "{err}");
}

#[test]
fn hash_password_prints_only_a_verifiable_argon2id_hash() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let hash = stdout.trim_end_matches('\n');
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(stdout.lines().count(), 1, "only the hash on stdout");
    use argon2::PasswordVerifier;
    let parsed = argon2::PasswordHash::new(hash).unwrap();
    let argon = argon2::Argon2::default();
    assert!(
        argon.verify_password(b"correct horse", &parsed).is_ok(),
        "newline stripped"
    );
    assert!(argon.verify_password(b"correct horse\n", &parsed).is_err());
}

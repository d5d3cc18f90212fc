//! CLI tests for `cimdgate cimd create` and `cimdgate cimd validate`: exit codes and messages,
//! against files and against a real HTTPS host on 127.0.0.1 (test CA generated in the test).

use std::process::Output;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use cimdgate_test_support::{HttpsHost, TestCa};

const BIN: &str = env!("CARGO_BIN_EXE_cimdgate");

fn run(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run cimdgate")
}

async fn run_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs)
    })
    .await
    .expect("join")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_temp(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.to_string_lossy().into_owned()
}

const GOOD_ID: &str = "https://agent.example.com/oauth/client.json";

#[test]
fn create_without_client_id_warns_on_stderr_and_prints_valid_json() {
    let out = run(&[
        "cimd",
        "create",
        "--name",
        "Agent",
        "--redirect-uri",
        "http://127.0.0.1/cb",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    assert!(doc["client_id"].as_str().unwrap().contains("YOUR-DOMAIN"));
    assert!(stderr(&out).contains("placeholder"), "{}", stderr(&out));
    let grants: Vec<&str> = doc["grant_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);
    assert_eq!(doc["token_endpoint_auth_method"], "none");
    assert!(doc.get("scope").is_none(), "optional fields omitted");
}

#[test]
fn create_output_validates_with_validate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/client.json");
    let path_s = path.to_string_lossy().into_owned();
    let out = run(&[
        "cimd",
        "create",
        "--name",
        "Agent",
        "--client-id",
        GOOD_ID,
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--redirect-uri",
        "https://agent.example.com/cb",
        "--scope",
        "mcp read",
        "--client-uri",
        "https://agent.example.com/",
        "--contact",
        "ops@agent.example.com",
        "-o",
        &path_s,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("placeholder"));
    let out = run(&["cimd", "validate", &path_s, "--expect-client-id", GOOD_ID]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("valid: https://agent.example.com/oauth/client.json"));
}

#[test]
fn create_private_key_jwt_requires_keys() {
    let out = run(&[
        "cimd",
        "create",
        "--name",
        "A",
        "--redirect-uri",
        "https://a.example/cb",
        "--auth-method",
        "private_key_jwt",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--jwks-uri"), "{}", stderr(&out));
}

#[test]
fn create_private_key_jwt_with_jwks_uri_is_valid() {
    let out = run(&[
        "cimd",
        "create",
        "--name",
        "A",
        "--client-id",
        GOOD_ID,
        "--redirect-uri",
        "https://agent.example.com/cb",
        "--auth-method",
        "private_key_jwt",
        "--jwks-uri",
        "https://agent.example.com/jwks.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(doc["jwks_uri"], "https://agent.example.com/jwks.json");
}

#[test]
fn create_refuses_private_key_material_in_jwks_file() {
    let dir = tempfile::tempdir().unwrap();
    // An EC private key (the `d` member must never be published).
    let jwk = r#"{"kty":"EC","crv":"P-256","kid":"k1",
      "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
      "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
      "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;
    let path = write_temp(&dir, "key.json", jwk);
    let out = run(&[
        "cimd",
        "create",
        "--name",
        "A",
        "--client-id",
        GOOD_ID,
        "--redirect-uri",
        "https://agent.example.com/cb",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        &path,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(".d"),
        "names the private member: {}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "nothing written");
}

#[test]
fn validate_file_lists_every_problem_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let doc = r#"{"client_id":"https://agent.example.com/oauth/client.json",
        "token_endpoint_auth_method":"client_secret_basic",
        "client_secret":"s3cr3t"}"#;
    let path = write_temp(&dir, "bad.json", doc);
    let out = run(&["cimd", "validate", &path, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(report["valid"], false);
    let fields: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for expected in [
        "redirect_uris",
        "token_endpoint_auth_method",
        "client_secret",
        "client_name",
    ] {
        assert!(
            fields.contains(&expected),
            "missing {expected} in {fields:?}"
        );
    }
    for e in report["errors"].as_array().unwrap() {
        assert!(!e["rule"].as_str().unwrap().is_empty());
    }
}

#[test]
fn validate_rejects_http_url_as_invalid() {
    let out = run(&["cimd", "validate", "http://agent.example.com/client.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("client_id"), "{}", stdout(&out));
}

#[test]
fn validate_missing_file_is_usage_error() {
    let out = run(&["cimd", "validate", "/nonexistent/client.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"));
}

#[test]
fn validate_without_target_is_usage_error() {
    let out = run(&["cimd", "validate"]);
    assert_eq!(out.status.code(), Some(2));
}

fn doc_for(id: &str) -> String {
    serde_json::json!({
        "client_id": id,
        "client_name": "Served Agent",
        "redirect_uris": ["http://127.0.0.1/callback"],
    })
    .to_string()
}

struct Served {
    _host: HttpsHost,
    ca_path: String,
    port: u16,
    _dir: tempfile::TempDir,
}

async fn serve(router: Router) -> Served {
    let ca = TestCa::new();
    let host = HttpsHost::start(&ca, &["cimd.test"], router).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = write_temp(&dir, "ca.pem", ca.cert_pem());
    Served {
        port: host.port(),
        _host: host,
        ca_path,
        _dir: dir,
    }
}

fn dev_args(s: &Served, url: &str) -> Vec<String> {
    [
        "cimd",
        "validate",
        url,
        "--dev-allow-loopback",
        "--ca-file",
        &s.ca_path,
        "--resolve",
        "cimd.test:127.0.0.1",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

#[tokio::test]
async fn validate_url_over_real_https_is_valid() {
    // The document must name the exact URL, port included, so build the router after binding.
    let body = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let served_body = body.clone();
    let router = Router::new().route(
        "/client.json",
        get(move || {
            let b = served_body.lock().unwrap().clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], b) }
        }),
    );
    let s = serve(router).await;
    let url = format!("https://cimd.test:{}/client.json", s.port);
    *body.lock().unwrap() = doc_for(&url);
    let mut args = dev_args(&s, &url);
    args.push("-v".into());
    let out = run_async(args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("valid:"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("HTTP 200"),
        "-v shows the fetch: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).to_lowercase().contains("dev"),
        "dev hooks warn: {}",
        stderr(&out)
    );
}

#[tokio::test]
async fn validate_url_with_client_id_mismatch_is_invalid() {
    let router = Router::new().route(
        "/client.json",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "application/json")],
                doc_for("https://other.example/client.json"),
            )
        }),
    );
    let s = serve(router).await;
    let url = format!("https://cimd.test:{}/client.json", s.port);
    let mut args = dev_args(&s, &url);
    args.push("--json".into());
    let out = run_async(args).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "client_id"),
        "{report}"
    );
}

#[tokio::test]
async fn validate_url_404_is_fetch_failure() {
    let s = serve(Router::new()).await;
    let url = format!("https://cimd.test:{}/missing.json", s.port);
    let out = run_async(dev_args(&s, &url)).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
}

#[tokio::test]
async fn validate_url_to_loopback_without_dev_flag_is_refused() {
    let s = serve(Router::new()).await;
    let url = format!("https://cimd.test:{}/client.json", s.port);
    let args: Vec<String> = [
        "cimd",
        "validate",
        &url,
        "--ca-file",
        &s.ca_path,
        "--resolve",
        "cimd.test:127.0.0.1",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let out = run_async(args).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("127.0.0.1"),
        "names the address: {}",
        stderr(&out)
    );
}

#[tokio::test]
async fn validate_unreachable_host_is_fetch_failure() {
    // Bind then drop a listener to get a loopback port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("https://cimd.test:{port}/client.json");
    let args: Vec<String> = [
        "cimd",
        "validate",
        &url,
        "--dev-allow-loopback",
        "--resolve",
        "cimd.test:127.0.0.1",
        "--timeout",
        "2",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let out = run_async(args).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("could not fetch"), "{}", stderr(&out));
}

// --- check-config ----------------------------------------------------------------------------

/// `cimdgate check-config ARGS` with `envs` and no inherited CIMDGATE_* variables.
fn check_config(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("check-config").args(args).env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CIMDGATE_")) {
        cmd.env_remove(k);
    }
    cmd.envs(envs.iter().copied())
        .output()
        .expect("run cimdgate")
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$C3TGvxvouEDuD2pEAre71g$uPklRX7vjug+DjcOl8VVb8FBm56rU+w2+1wn16V9Xxw";

#[test]
fn check_config_prints_the_effective_config_with_every_secret_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = write_temp(
        &dir,
        "upstream.toml",
        r#"
[store]
url = "redis://:redis-pass-4711@127.0.0.1:6379/0"
[identity]
mode = "upstream"
[identity.upstream]
issuer = "https://idp.example.com"
client_id = "cimdgate"
client_secret = "idp-secret-4711"
[dcr]
initial_access_token = "iat-secret-4711"
"#,
    );
    let admin_token = "admin-token-4711-abcdefghijklmnopqrstuvwxyz";
    let out = check_config(
        &["--config", &upstream],
        &[("CIMDGATE_ADMIN__TOKEN", admin_token)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for secret in [
        "redis-pass-4711",
        "idp-secret-4711",
        "iat-secret-4711",
        admin_token,
    ] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    let parsed: toml::Table = toml::from_str(&text).expect("the output is TOML");
    assert_eq!(
        parsed["identity"]["upstream"]["client_secret"].as_str(),
        Some("<redacted>")
    );
    assert_eq!(parsed["admin"]["token"].as_str(), Some("<redacted>"));
    assert_eq!(
        parsed["dcr"]["initial_access_token"].as_str(),
        Some("<redacted>")
    );
    assert!(
        parsed["store"]["url"].as_str().unwrap().contains("***"),
        "{text}"
    );
    // Defaults are part of the effective configuration.
    assert_eq!(parsed["tokens"]["code_ttl_secs"].as_integer(), Some(60));

    let local = write_temp(
        &dir,
        "local.toml",
        &format!(
            "[store]\nurl = \"embedded:./data\"\n[[identity.users]]\nusername = \"a\"\npassword_hash = \"{HASH}\"\n"
        ),
    );
    let out = check_config(&["--config", &local, "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("the output is JSON");
    assert_eq!(v["identity"]["users"][0]["password_hash"], "<redacted>");
    assert!(!stdout(&out).contains("argon2id"), "{}", stdout(&out));
    assert!(
        !dir.path().join("data").exists(),
        "check-config never opens the store"
    );
}

#[test]
fn check_config_names_the_bad_key_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[server]\nlisen = \"127.0.0.1:1\"\n", "server.lisen"),
        (
            "[server]\nlisten = \"127.0.0.1:7000\"\n[admin]\nlisten = \"127.0.0.1:7000\"\n",
            "admin.listen",
        ),
        (
            "[admin]\ntoken_file = \"missing-file\"\n",
            "admin.token_file",
        ),
        ("[audit]\nsink = \"syslog\"\n", "audit.sink"),
        (
            "[fetch]\nextra_ca_file = \"missing.pem\"\n",
            "fetch.extra_ca_file",
        ),
    ] {
        let path = write_temp(&dir, "bad.toml", text);
        let out = check_config(&["--config", &path], &[]);
        assert_eq!(out.status.code(), Some(1), "{text}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{text}: {}", stderr(&out));
        assert!(
            stdout(&out).is_empty(),
            "nothing printed for an invalid config"
        );
    }
    let out = check_config(&[], &[("CIMDGATE_ADMIN__TOKEN", "short")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("admin.token"), "{}", stderr(&out));
}

#[test]
fn check_config_with_an_unreadable_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = check_config(&["--config", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read config file"),
        "{}",
        stderr(&out)
    );
    let out = check_config(&["--format", "yaml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn serve_help_names_the_reference_config() {
    let out = run(&["serve", "--help"]);
    let text = stdout(&out);
    assert!(text.contains("docs/reference-config.toml"), "{text}");
    assert!(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/reference-config.toml"
        ))
        .exists()
    );
}

//! Governance through the shipped binary: `cimdgate serve` processes (two of them sharing one
//! real Redis), a real HTTPS document host, real logins through the pages, and the
//! `cimdgate clients` CLI talking to the admin API. Proves the inventory after a login, block
//! (the three refusals on both instances within 5 s) and unblock, revoke (one user, then all),
//! approval mode with a scope ceiling, a changed document, and the CLI's and admin API's answers
//! to bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use serde_json::{Value, json};

use cimdgate_client::form::{FormDriver, Step};
use cimdgate_client::pkce::PkceVerifier;
use cimdgate_test_support::config::{TestConfig, cheap_password_hash};
use cimdgate_test_support::{HttpsHost, RedisServer, TestCa};
use support::{BIN, Proc, free_port};

const USER: &str = "alice";
const USER2: &str = "bob";
const PASSWORD: &str = "correct horse";
const REDIRECT: &str = "http://127.0.0.1:5555/callback";
const ADMIN_TOKEN: &str = "test-admin-token-0123456789-abcdefghijklmnop";

/// The document host: `cimd.test`, serving whatever JSON `doc` holds at `/client.json`.
struct DocHost {
    host: HttpsHost,
    doc: Arc<Mutex<Value>>,
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl DocHost {
    async fn start() -> DocHost {
        cimdgate_test_support::install_crypto_provider();
        let ca = TestCa::new();
        let doc = Arc::new(Mutex::new(Value::Null));
        let served = doc.clone();
        let router = Router::new().route(
            "/client.json",
            get(move || {
                let body = served.lock().unwrap().to_string();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        body,
                    )
                }
            }),
        );
        let host = HttpsHost::start(&ca, &["cimd.test"], router).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let h = DocHost {
            host,
            doc,
            ca_file,
            _dir: dir,
        };
        h.publish(json!({}));
        h
    }

    fn client_id(&self) -> String {
        self.host.url("cimd.test", "/client.json")
    }

    /// Serve the standard document with `extra` merged over it.
    fn publish(&self, extra: Value) {
        let mut doc = json!({
            "client_id": self.client_id(),
            "client_name": "Governed Agent",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
        });
        if let (Some(d), Value::Object(e)) = (doc.as_object_mut(), extra) {
            d.extend(e);
        }
        *self.doc.lock().unwrap() = doc;
    }
}

/// One `cimdgate serve` process with its admin listener.
struct Instance {
    proc: Proc,
    /// Where it listens.
    base: String,
    /// Its admin listener.
    admin: String,
    _dir: tempfile::TempDir,
}

impl Instance {
    /// Start an instance. `public_url`: the URL every instance shares (the one clients see);
    /// `store`: a `redis://` URL, or `None` for an embedded store of its own; `extra`: TOML.
    fn start(
        docs: &DocHost,
        public_url: Option<&str>,
        store: Option<&str>,
        extra: &str,
    ) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let admin_port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let base = format!("http://{listen}");
        let token_file = dir.path().join("admin-token");
        std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
        let hash = cheap_password_hash(PASSWORD);
        let extra = format!(
            "{extra}\n\n[[identity.users]]\nusername = \"{USER2}\"\npassword_hash = \"{hash}\"\n"
        );
        let toml = TestConfig {
            listen: &listen,
            public_url: public_url.unwrap_or(&base),
            store_dir: &dir.path().join("store"),
            username: USER,
            password_hash: &hash,
            ca_file: &docs.ca_file,
            hosts: &["cimd.test"],
            extra: &extra,
        }
        .toml();
        let config = dir.path().join("cimdgate.toml");
        std::fs::write(&config, toml).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env("CIMDGATE_ADMIN__LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("CIMDGATE_ADMIN__TOKEN_FILE", &token_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = store {
            cmd.env("CIMDGATE_STORE__URL", url);
        }
        let mut proc = Proc::new(cmd.spawn().unwrap());
        let admin = format!("http://127.0.0.1:{admin_port}");
        let probe = format!("127.0.0.1:{admin_port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&probe).is_err()
            || std::net::TcpStream::connect(&listen).is_err()
        {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("serve exited ({status}):\n{}", proc.all());
            }
            assert!(Instant::now() < deadline, "serve not up:\n{}", proc.all());
            std::thread::sleep(Duration::from_millis(50));
        }
        Instance {
            proc,
            base,
            admin,
            _dir: dir,
        }
    }

    /// `cimdgate clients ARGS --admin-url <this> --json` → (exit code, JSON or null, stderr).
    fn clients(&self, args: &[&str]) -> (i32, Value, String) {
        clients_cli(&self.admin, Some(ADMIN_TOKEN), args)
    }
}

fn clients_cli(admin: &str, token: Option<&str>, args: &[&str]) -> (i32, Value, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("clients")
        .args(args)
        .args(["--admin-url", admin, "--json"])
        .env_remove("CIMDGATE_CONFIG")
        .env_remove("CIMDGATE_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("CIMDGATE_ADMIN_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// The `/authorize` URL for the document's client at `base` (`public` is the issuer every
/// instance shares).
fn authorize_url(
    base: &str,
    public: &str,
    client_id: &str,
    challenge: &str,
    scope: &str,
) -> String {
    reqwest::Url::parse_with_params(
        &format!("{base}/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", "st"),
            ("resource", &format!("{public}/mcp")),
            ("scope", scope),
        ],
    )
    .unwrap()
    .to_string()
}

/// Log in as `user` at `base` (approving) and exchange the code: the token response.
async fn sign_in(base: &str, public: &str, client_id: &str, user: &str, scope: &str) -> Value {
    let driver = FormDriver::new().unwrap();
    let verifier = PkceVerifier::generate().unwrap();
    let mut step = driver
        .open(&authorize_url(
            base,
            public,
            client_id,
            &verifier.challenge(),
            scope,
        ))
        .await
        .unwrap();
    let code = loop {
        step = match step {
            Step::Login(form) => driver.login(&form, user, PASSWORD).await.unwrap(),
            Step::Consent(form) => driver.consent(&form, true).await.unwrap(),
            Step::Redirect(location) => {
                let loc = reqwest::Url::parse(&location).unwrap();
                let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
                break q
                    .get("code")
                    .unwrap_or_else(|| panic!("no code in {location}"))
                    .clone();
            }
            Step::Other { status, body } => panic!("authorize: {status}: {body}"),
        };
    };
    let (status, body) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", verifier.secret()),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let resp = http()
        .post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn refresh(base: &str, client_id: &str, rt: &str) -> (u16, Value) {
    token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id),
        ],
    )
    .await
}

/// The gateway's status for an MCP `initialize` with `at` (401 when it refuses the token).
async fn gateway(base: &str, at: &str) -> u16 {
    http()
        .post(format!("{base}/mcp"))
        .bearer_auth(at)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Poll until `probe` returns `want`, at most 5 s (plus one poll interval): the bound every
/// instance must meet.
async fn within_5s<F, Fut>(what: &str, want: u16, probe: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let start = Instant::now();
    loop {
        let got = probe().await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_millis(5300),
            "{what}: still {got} after {:?}, want {want}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status of `/authorize` for the client, and whether it redirected.
async fn authorize_status(
    base: &str,
    public: &str,
    client_id: &str,
) -> (u16, Option<String>, String) {
    let verifier = PkceVerifier::generate().unwrap();
    let resp = http()
        .get(authorize_url(
            base,
            public,
            client_id,
            &verifier.challenge(),
            "mcp",
        ))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_owned());
    (status, location, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_redis_list_block_unblock_and_revoke_a_client() {
    let docs = DocHost::start().await;
    let redis = RedisServer::start();
    let a = Instance::start(&docs, None, Some(&redis.url()), "");
    let public = a.base.clone();
    let b = Instance::start(&docs, Some(&public), Some(&redis.url()), "");
    let id = docs.client_id();

    // A real login through instance A fills the inventory both instances see.
    let alice = sign_in(&a.base, &public, &id, USER, "mcp").await;
    let bob = sign_in(&a.base, &public, &id, USER2, "mcp").await;
    let (alice_at, alice_rt) = (
        alice["access_token"].as_str().unwrap(),
        alice["refresh_token"].as_str().unwrap(),
    );
    let (bob_at, bob_rt) = (
        bob["access_token"].as_str().unwrap(),
        bob["refresh_token"].as_str().unwrap(),
    );
    assert_ne!(gateway(&b.base, alice_at).await, 401, "B accepts A's token");

    let (code, list, err) = b.clients(&["list"]);
    assert_eq!(code, 0, "{err}");
    let row = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(row["host"], "cimd.test");
    assert_eq!(row["status"], "active");
    assert_eq!(row["kind"], "cimd");
    assert_eq!(row["client_name"], "Governed Agent");
    let (code, show, err) = a.clients(&["show", &id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(show["redirect_uris"], json!([REDIRECT]));
    assert_eq!(show["token_endpoint_auth_method"], "none");
    let mut users: Vec<&str> = show["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, [USER, USER2]);
    assert_eq!(show["grants"].as_array().unwrap().len(), 2, "{show}");

    // Block through B: A refuses /authorize (page, no redirect), /token and the gateway.
    let (code, blocked, err) = b.clients(&["block", &id, "--reason", "key leaked"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(blocked["status"], "blocked");
    let (status, location, page) = authorize_status(&a.base, &public, &id).await;
    let start = Instant::now();
    let mut status = status;
    let mut location = location;
    let mut page = page;
    while status != 403 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, location, page) = authorize_status(&a.base, &public, &id).await;
    }
    assert_eq!(status, 403, "{page}");
    assert!(location.is_none(), "never a redirect");
    assert!(page.contains("key leaked"), "{page}");
    let (status, body) = refresh(&a.base, &id, alice_rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    within_5s("A's gateway refuses the blocked client", 401, || {
        gateway(&a.base, alice_at)
    })
    .await;
    within_5s("B's gateway refuses the blocked client", 401, || {
        gateway(&b.base, alice_at)
    })
    .await;

    // Unblock through A: B lets the same tokens through again.
    let (code, _, err) = a.clients(&["unblock", &id]);
    assert_eq!(code, 0, "{err}");
    within_5s("B's gateway accepts again", 200, || {
        gateway(&b.base, alice_at)
    })
    .await;
    let (status, alice_new) = refresh(&b.base, &id, alice_rt).await;
    assert_eq!(status, 200, "{alice_new}");

    // Revoke one user's grants: bob's refresh and access token end, alice's do not.
    let (code, out, err) = a.clients(&["revoke", &id, "--user", USER2]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["grants_revoked"], 1);
    let (status, body) = refresh(&b.base, &id, bob_rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    within_5s("bob's access token is refused", 401, || {
        gateway(&b.base, bob_at)
    })
    .await;
    let alice_at2 = alice_new["access_token"].as_str().unwrap();
    assert_ne!(gateway(&b.base, alice_at2).await, 401, "alice is untouched");

    // Instance A's metrics saw the two code exchanges and the refresh it served, in Prometheus
    // text a real parser reads.
    let text = http()
        .get(format!("{}/metrics", a.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, label: (&str, &str)| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        value(
            "cimdgate_tokens_issued_total",
            ("grant_type", "authorization_code")
        ),
        2.0,
        "{text}"
    );
    assert!(
        value("cimdgate_http_requests_total", ("route", "/token")) >= 3.0,
        "{text}"
    );
    assert!(!text.contains(&id), "no client_id in a label");

    // Revoke all.
    let (code, out, err) = b.clients(&["revoke", &id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["grants_revoked"], 1);
    within_5s("alice's access token is refused", 401, || {
        gateway(&a.base, alice_at2)
    })
    .await;
    let alice_rt2 = alice_new["refresh_token"].as_str().unwrap();
    let (status, body) = refresh(&a.base, &id, alice_rt2).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_mode_through_the_binary_pending_page_approve_with_a_ceiling_and_a_changed_document()
 {
    let docs = DocHost::start().await;
    let audit_dir = tempfile::tempdir().unwrap();
    let audit = audit_dir.path().join("audit.jsonl");
    let a = Instance::start(
        &docs,
        None,
        None,
        &format!(
            "[cimd]\nmode = \"approval\"\ncache_min_ttl_secs = 0\ncache_default_ttl_secs = 0\n\n\
             [audit]\nsink = \"file:{}\"\n",
            audit.display()
        ),
    );
    let id = docs.client_id();
    let (status, location, page) = authorize_status(&a.base, &a.base, &id).await;
    assert_eq!(status, 403, "{page}");
    assert!(location.is_none());
    assert!(page.contains("Awaiting administrator approval"), "{page}");
    let (code, list, _) = a.clients(&["list", "--status", "pending"]);
    assert_eq!(code, 0);
    assert_eq!(list["clients"][0]["client_id"], id.as_str(), "{list}");

    let (code, approved, err) = a.clients(&["approve", &id, "--scopes", "mcp"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(approved["status"], "active");
    assert_eq!(approved["scope_ceiling"], "mcp");
    let tokens = sign_in(&a.base, &a.base, &id, USER, "mcp").await;
    assert_eq!(tokens["scope"], "mcp");

    // The document changes: the inventory records it.
    docs.publish(json!({"redirect_uris": [REDIRECT, "http://127.0.0.1:6666/cb"]}));
    let (status, _, page) = authorize_status(&a.base, &a.base, &id).await;
    assert!(status == 200 || status == 302, "{status}: {page}");
    let (_, show, _) = a.clients(&["show", &id]);
    let history = show["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{show}");
    assert_eq!(history[0]["changes"][0]["field"], "redirect_uris");
    assert!(
        history[0]["changes"][0]["new"]
            .as_str()
            .unwrap()
            .contains("6666"),
        "{show}"
    );

    let (code, denied, _) = a.clients(&["deny", &id]);
    assert_eq!(code, 0);
    assert_eq!(denied["status"], "denied");
    let (status, _, page) = authorize_status(&a.base, &a.base, &id).await;
    assert_eq!(status, 403, "{page}");

    // The administrator's actions and the document change are in the audit file, one JSON
    // object per line with the schema's first keys.
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for event in [
        "client_first_seen",
        "client_refused",
        "client_approved",
        "client_document_changed",
        "client_denied",
    ] {
        let line = lines
            .iter()
            .find(|l| l["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {lines:?}"));
        assert_eq!(line["client_id"], id.as_str(), "{line}");
        assert!(
            line["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }
    let approved = lines
        .iter()
        .find(|l| l["event"] == "client_approved")
        .unwrap();
    assert_eq!(approved["ip"], "127.0.0.1", "{approved}");
    assert_eq!(approved["scopes"], "mcp", "{approved}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_and_the_admin_api_answer_bad_input_with_clear_errors() {
    let docs = DocHost::start().await;
    let a = Instance::start(&docs, None, None, "");
    // Unknown client: exit 1, the API says 404.
    let (code, _, err) = a.clients(&["show", "https://cimd.test/none"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("404"), "{err}");
    let (code, _, err) = a.clients(&["block", "https://cimd.test/none"]);
    assert_eq!(code, 1, "{err}");
    // Malformed input: an empty scope ceiling, an unknown status.
    let (code, _, err) = a.clients(&["list", "--status", "sleeping"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown status"), "{err}");
    // No token, a wrong token: exit 2, never data.
    let (code, out, err) = clients_cli(&a.admin, None, &["list"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, Value::Null);
    let (code, _, err) = clients_cli(
        &a.admin,
        Some("wrong-token-wrong-token-wrong-token"),
        &["list"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("401"), "{err}");
    // An unreachable admin API: exit 2.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = clients_cli(&closed, Some(ADMIN_TOKEN), &["list"]);
    assert_eq!(code, 2, "{err}");
    // Usage error.
    let out = Command::new(BIN)
        .args(["clients", "block"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // The API itself: 401 without or with a wrong token, a huge body 413, a malformed body 400,
    // never a 5xx.
    let api = format!("{}/admin/v1/clients", a.admin);
    let r = http().get(&api).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http().get(&api).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let id = percent_encoding::utf8_percent_encode(
        &docs.client_id(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let r = http()
        .post(format!("{api}/{id}/block"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(format!("{{\"reason\": \"{}\"}}", "x".repeat(100_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = http()
        .post(format!("{api}/{id}/block"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http()
        .get(format!("{api}/{}", "%00".repeat(10)))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!a.proc.all().contains("panicked"), "{}", a.proc.all());
}

//! Issue 5 / docs/architecture.md, *Storage and scale*, end to end: `kill -9` the real `cimdgate
//! serve` binary (embedded store) during a load run of token issuance; after a restart on the same
//! data folder every refresh token that was returned to a client still works, and every
//! client-assertion `jti` the server accepted is still rejected.
//!
//! The client is a CIMD `private_key_jwt` client (ES256, inline `jwks`) served over real HTTPS
//! by a test CIMD host. Several tasks loop authorize → login/consent (a cookie-keeping form
//! driver, one browser session per task) → `/token` (code grant, fresh signed assertion) and
//! sometimes rotate the new refresh token (refresh grant, fresh assertion). A token or an
//! assertion enters the ledger only after its `200` response was read in full; a refresh token
//! is marked "in flight" while a rotation of it is under way and replaced by the new one when
//! that rotation's `200` arrives. After enough issuances the server is `SIGKILL`ed by PID,
//! restarted on the same folder and public URL, and the ledger is checked:
//! - every current refresh token refreshes (`200`, a new refresh token), each exactly once;
//! - every accepted assertion, re-posted byte for byte, is `401 invalid_client` "already used"
//!   (a control request with a fresh assertion and the same bogus refresh token gets
//!   `400 invalid_grant`, so the `401` comes from the replay check).
//!
//! A token whose rotation was in flight at the kill is left out of that check: the server may or
//! may not have committed the rotation, and the client never saw the outcome. Presented last, it
//! must either refresh (not committed) or be `400 invalid_grant` (committed), nothing else.

mod support;

use cimdgate_test_support::config::{TestConfig, cheap_password_hash};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::http::header;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cimdgate_client::form::{FormDriver, Step};
use cimdgate_client::pkce::PkceVerifier;
use cimdgate_test_support::{HttpsHost, TestCa};
use serde_json::{Value, json};
use support::{BIN, Proc, free_port};

const USER: &str = "alice";
const PASSWORD: &str = "crash-password";
const REDIRECT: &str = "http://127.0.0.1/callback";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Load tasks (each with its own browser session).
const TASKS: usize = 4;
/// Kill once this many token responses (code + refresh grants) were received.
const KILL_AFTER: usize = 400;
/// … but no later than this after the load started.
const LOAD_DEADLINE: Duration = Duration::from_secs(40);
/// At least this many issuances must have happened before the kill for the test to mean much.
const MIN_ISSUED: usize = 40;
/// Upper bound of iterations per task.
const PER_TASK_LIMIT: usize = 500;
/// Assertion lifetime (the server accepts at most 300 s); the whole test must finish well
/// within it, since the replay check re-posts the original assertions.
const ASSERTION_LIFETIME: i64 = 280;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The client's ES256 key and the assertions it signs.
struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    client_id: String,
    audience: String,
    counter: AtomicU64,
}

impl Signer {
    fn jwk(key: &EcdsaKeyPair) -> Value {
        let raw = key.public_key().as_ref();
        assert_eq!(raw.len(), 65, "uncompressed P-256 point");
        json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..]),
               "kid": "crash-key", "use": "sig", "alg": "ES256"})
    }

    /// A fresh assertion (new `jti`).
    fn assertion(&self) -> String {
        let now = unix_now();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let claims = json!({"iss": self.client_id, "sub": self.client_id, "aud": self.audience,
                            "iat": now, "exp": now + ASSERTION_LIFETIME,
                            "jti": format!("crash-{}-{n}", std::process::id())});
        let header = json!({"alg": "ES256", "kid": "crash-key", "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }
}

/// A refresh token the client holds.
#[derive(Clone, Debug)]
enum Held {
    /// Returned to the client and not presented since.
    Current(String),
    /// Presented for rotation; the response has not arrived (yet).
    InFlight(String),
}

/// What the server has acknowledged to the clients.
#[derive(Default)]
struct Ledger {
    /// One entry per token family (one per code exchange).
    families: Vec<Held>,
    /// Every assertion whose request got a fully read `200`.
    accepted_assertions: Vec<String>,
    code_grants: usize,
    refresh_grants: usize,
}

impl Ledger {
    fn issued(&self) -> usize {
        self.code_grants + self.refresh_grants
    }
}

struct Load {
    base: String,
    signer: Signer,
    ledger: Mutex<Ledger>,
    killed: AtomicBool,
    /// `/token` requests sent and not yet answered in full.
    token_requests_open: AtomicUsize,
    /// Errors a load task hit while the server was still supposed to be up.
    errors: Mutex<Vec<String>>,
}

/// POST a form to `/token`: status and JSON body (read in full).
async fn post_token(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let resp = http
        .post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("/token: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("/token body: {e}"))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

impl Load {
    /// [`post_token`] to the server under load, counted in `token_requests_open`.
    async fn token(
        &self,
        http: &reqwest::Client,
        form: &[(&str, &str)],
    ) -> Result<(u16, Value), String> {
        self.token_requests_open.fetch_add(1, Ordering::SeqCst);
        let r = post_token(http, &self.base, form).await;
        self.token_requests_open.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

/// Authorize, sign in / approve as needed, and return `(code, verifier)`.
async fn authorize(
    load: &Load,
    driver: &FormDriver,
    round: usize,
) -> Result<(String, String), String> {
    let verifier = PkceVerifier::generate().map_err(|e| e.to_string())?;
    let state = format!("st-{round}");
    let client_id = load.signer.client_id.as_str();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/authorize", load.base),
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &verifier.challenge()),
            ("code_challenge_method", "S256"),
            ("state", &state),
            ("resource", &format!("{}/mcp", load.base)),
            ("scope", "mcp"),
        ],
    )
    .unwrap();
    let mut step = driver.open(url.as_str()).await.map_err(|e| e.to_string())?;
    for _ in 0..4 {
        step = match step {
            Step::Login(form) => driver
                .login(&form, USER, PASSWORD)
                .await
                .map_err(|e| e.to_string())?,
            Step::Consent(form) => driver
                .consent(&form, true)
                .await
                .map_err(|e| e.to_string())?,
            Step::Redirect(location) => {
                let loc = reqwest::Url::parse(&location).map_err(|e| e.to_string())?;
                let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
                if q.get("state") != Some(&state) {
                    return Err(format!("state mismatch in {location}"));
                }
                let code = q
                    .get("code")
                    .ok_or_else(|| format!("no code in {location}"))?;
                return Ok((code.clone(), verifier.secret().to_owned()));
            }
            Step::Other { status, body } => {
                return Err(format!("authorize: unexpected page {status}: {body}"));
            }
        };
    }
    Err("authorize: too many steps".into())
}

/// One load task: code grants, every other one followed by two rotations.
async fn load_task(load: Arc<Load>, task: usize) -> Result<(), String> {
    let driver = FormDriver::new().map_err(|e| e.to_string())?;
    let http = cimdgate_client::http_client().map_err(|e| e.to_string())?;
    for i in 0..PER_TASK_LIMIT {
        if load.killed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (code, verifier) = authorize(&load, &driver, i).await?;
        let assertion = load.signer.assertion();
        let resource = format!("{}/mcp", load.base);
        let (status, body) = load
            .token(
                &http,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", &verifier),
                    ("resource", &resource),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                ],
            )
            .await?;
        if status != 200 {
            return Err(format!("task {task}: code grant {status}: {body}"));
        }
        let mut rt = body["refresh_token"]
            .as_str()
            .ok_or_else(|| format!("task {task}: no refresh_token in {body}"))?
            .to_owned();
        let family = {
            let mut l = load.ledger.lock().unwrap();
            l.families.push(Held::Current(rt.clone()));
            l.accepted_assertions.push(assertion);
            l.code_grants += 1;
            l.families.len() - 1
        };
        if (i + task) % 2 == 1 {
            continue;
        }
        for _ in 0..2 {
            let assertion = load.signer.assertion();
            load.ledger.lock().unwrap().families[family] = Held::InFlight(rt.clone());
            let (status, body) = load
                .token(
                    &http,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &rt),
                        ("client_assertion_type", JWT_BEARER),
                        ("client_assertion", &assertion),
                    ],
                )
                .await?;
            if status != 200 {
                return Err(format!("task {task}: refresh grant {status}: {body}"));
            }
            rt = body["refresh_token"]
                .as_str()
                .ok_or_else(|| format!("task {task}: no rotated refresh_token in {body}"))?
                .to_owned();
            let mut l = load.ledger.lock().unwrap();
            l.families[family] = Held::Current(rt.clone());
            l.accepted_assertions.push(assertion);
            l.refresh_grants += 1;
        }
    }
    Ok(())
}

/// Start `cimdgate serve` on `port` with the given config and public URL.
fn start(config: &std::path::Path, port: u16, public_url: &str) -> Proc {
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CIMDGATE_SERVER__PUBLIC_URL", public_url)
        // A free port: tests run side by side.
        .env("CIMDGATE_ADMIN__LISTEN", "127.0.0.1:0")
        .env_remove("CIMDGATE_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc::new(child)
}

/// Wait for `/healthz` on `base`; `Err` with the output if the process exits first.
async fn wait_healthy(http: &reqwest::Client, base: &str, server: &mut Proc) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(format!(
                "cimdgate serve exited ({status}):\n{}",
                server.all()
            ));
        }
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("no /healthz within 30 s:\n{}", server.all()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_issuance_loses_no_returned_token_or_recorded_jti() {
    let t0 = Instant::now();
    cimdgate_test_support::install_crypto_provider();

    // The CIMD host on `cimd.test` with the private_key_jwt client document.
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let jwk = Signer::jwk(&key);
    let ca = TestCa::new();
    let doc = Arc::new(Mutex::new(String::new()));
    let served = doc.clone();
    let router = Router::new().route(
        "/client.json",
        get(move || {
            let body = served.lock().unwrap().clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let host = HttpsHost::start(&ca, &["cimd.test"], router).await;
    let client_id = host.url("cimd.test", "/client.json");
    *doc.lock().unwrap() = json!({
        "client_id": client_id,
        "client_name": "Crash Test Client",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [jwk]},
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
    .to_string();

    // Config: embedded store, a local user, the demo resource, dev fetch hooks, no rate limits.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let config = dir.path().join("cimdgate.toml");
    let (store, hash) = (dir.path().join("data"), cheap_password_hash(PASSWORD));
    let toml = TestConfig {
        listen: "127.0.0.1:8080",
        public_url: "http://127.0.0.1:8080",
        store_dir: &store,
        username: USER,
        password_hash: &hash,
        ca_file: &ca_file,
        hosts: &["cimd.test"],
        extra: "[limits]\nper_ip_per_second = 0\nper_client_host_per_second = 0\n",
    }
    .toml();
    std::fs::write(&config, toml).unwrap();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let probe = cimdgate_client::http_client().unwrap();
    let mut server = start(&config, port, &base);
    if let Err(e) = wait_healthy(&probe, &base, &mut server).await {
        panic!("{e}");
    }
    let started = t0.elapsed();

    // The load run.
    let load = Arc::new(Load {
        base: base.clone(),
        signer: Signer {
            key,
            rng: SystemRandom::new(),
            client_id: client_id.clone(),
            audience: format!("{base}/token"),
            counter: AtomicU64::new(0),
        },
        ledger: Mutex::new(Ledger::default()),
        killed: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
        token_requests_open: AtomicUsize::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let load = load.clone();
        tasks.spawn(async move {
            if let Err(e) = load_task(load.clone(), task).await
                && !load.killed.load(Ordering::SeqCst)
            {
                load.errors.lock().unwrap().push(e);
            }
        });
    }
    let load_start = Instant::now();
    loop {
        let issued = load.ledger.lock().unwrap().issued();
        if issued >= KILL_AFTER || load_start.elapsed() > LOAD_DEADLINE {
            break;
        }
        let errors = load.errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "load failed before the kill: {errors:?}\n{}",
            server.all()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // kill -9, by PID (std's Child::kill sends SIGKILL on unix), mid-run.
    load.killed.store(true, Ordering::SeqCst);
    let pid = server.child.id();
    let open_at_kill = load.token_requests_open.load(Ordering::SeqCst);
    server.child.kill().unwrap();
    let status = server.child.wait().unwrap();
    let killed_at = t0.elapsed();
    assert!(!status.success(), "SIGKILLed: {status}");

    // In-flight requests fail now; their outcomes were never returned, so they are ignored.
    let drain = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                panic!("load task panicked: {e}");
            }
        }
    })
    .await;
    if drain.is_err() {
        tasks.abort_all();
    }
    let errors = load.errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "load failed before the kill: {errors:?}\n{}",
        server.all()
    );
    let ledger = std::mem::take(&mut *load.ledger.lock().unwrap());
    assert!(
        ledger.issued() >= MIN_ISSUED,
        "only {} issuances before the kill (load too slow?)\n{}",
        ledger.issued(),
        server.all()
    );
    drop(server);

    // Restart on the same folder and public URL: the same port when it can be bound again,
    // else another port (issuer and token endpoint come from public_url, not the socket).
    let mut server = start(&config, port, &base);
    let mut at = base.clone();
    if let Err(e) = wait_healthy(&probe, &base, &mut server).await {
        eprintln!("restart on port {port} failed, using another port: {e}");
        drop(server);
        let other = free_port();
        server = start(&config, other, &base);
        at = format!("http://127.0.0.1:{other}");
        if let Err(e) = wait_healthy(&probe, &at, &mut server).await {
            panic!("restart failed: {e}");
        }
    }
    let restarted_at = t0.elapsed();
    assert_ne!(server.child.id(), pid);

    // A fresh HTTP client (the old pool's connections died with the server).
    let http = cimdgate_client::http_client().unwrap();
    let mut failures = Vec::new();

    // Every current refresh token works, once.
    let mut refreshed = 0;
    let mut in_flight = 0;
    for (family, held) in ledger.families.iter().enumerate() {
        let rt = match held {
            Held::Current(rt) => rt,
            Held::InFlight(_) => {
                in_flight += 1;
                continue;
            }
        };
        let assertion = load.signer.assertion();
        let (status, body) = post_token(
            &http,
            &at,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
            ],
        )
        .await
        .unwrap();
        if status == 200 && body["refresh_token"].as_str().is_some_and(|n| n != rt) {
            refreshed += 1;
        } else {
            failures.push(format!("family {family}: refresh {status} {body}"));
        }
    }

    // Control: a fresh assertion with a bogus refresh token is 400 invalid_grant …
    let (status, body) = post_token(
        &http,
        &at,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "bogus-refresh-token"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &load.signer.assertion()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );

    // … and every accepted assertion, replayed, is refused as already used.
    let mut replay_refused = 0;
    for (n, assertion) in ledger.accepted_assertions.iter().enumerate() {
        let (status, body) = post_token(
            &http,
            &at,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "bogus-refresh-token"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
            ],
        )
        .await
        .unwrap();
        let description = body["error_description"].as_str().unwrap_or("");
        if status == 401
            && body["error"] == "invalid_client"
            && description.contains("already used")
        {
            replay_refused += 1;
        } else {
            failures.push(format!("assertion {n}: replay answered {status} {body}"));
        }
    }
    // Tokens whose rotation was in flight: either outcome is fine (the rotation was or was not
    // committed), but nothing else.
    let mut in_flight_committed = 0;
    for (family, held) in ledger.families.iter().enumerate() {
        let Held::InFlight(rt) = held else { continue };
        let (status, body) = post_token(
            &http,
            &at,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &load.signer.assertion()),
            ],
        )
        .await
        .unwrap();
        match (status, body["error"].as_str()) {
            (200, _) => {}
            (400, Some("invalid_grant")) => in_flight_committed += 1,
            _ => failures.push(format!("family {family} (in flight): {status} {body}")),
        }
    }
    let total = t0.elapsed();
    eprintln!(
        "crash_embedded: server up {started:?}; killed at {killed_at:?} after {} code grants \
         + {} refresh grants ({} families; {} rotations in flight at the kill, \
         {in_flight_committed} of them committed); {open_at_kill} /token requests open at the \
         kill; restarted at {restarted_at:?}; {refreshed} refresh tokens refreshed, \
         {replay_refused} of {} accepted jtis refused on replay; total {total:?}",
        ledger.code_grants,
        ledger.refresh_grants,
        ledger.families.len(),
        in_flight,
        ledger.accepted_assertions.len(),
    );
    assert!(
        failures.is_empty(),
        "{} of {} checks failed after the restart:\n{}\n{}",
        failures.len(),
        ledger.families.len() - in_flight + ledger.accepted_assertions.len(),
        failures.join("\n"),
        server.all()
    );
    assert_eq!(refreshed + in_flight, ledger.families.len());
    assert_eq!(replay_refused, ledger.accepted_assertions.len());
    assert!(
        total < Duration::from_secs(ASSERTION_LIFETIME as u64 - 30),
        "the replay check ran too close to the assertions' expiry ({total:?})"
    );
    drop(host);
}

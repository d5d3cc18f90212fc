//! The login and consent pages in a **real browser**: Debian's headless Chromium
//! (`/usr/bin/chromium`, `apt-get install -y chromium`) driven by playwright-core from the node
//! fixture `tests/fixtures/browser/drive.js` (pinned in its `package-lock.json`).
//!
//! The browser opens `/authorize`, types alice's password into the login form, reads and
//! screenshots the consent page, clicks Approve (or Deny), and then follows the server's 302 to
//! the client's redirect URI — a loopback HTTP listener run by this test. That the listener
//! receives the request proves what an HTTP-level test cannot: Chromium's CSP `form-action`
//! enforcement (which also covers the redirect after a form POST) lets the user reach the
//! client. Screenshots land in `<target>/browser-screenshots/<test>/`.
//!
//! The fixture's `node_modules` is installed on first use with
//! `npm ci --prefix tests/fixtures/browser --no-audit --no-fund`; a missing Chromium, npm or
//! node fails the test — nothing is skipped. CI pre-installs all three.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use common::{PASSWORD, STATE, TestEnv, USERNAME, pkce_pair, query_map};
use tokio::net::TcpListener;

pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Bound on every single wait inside drive.js.
pub const STEP_TIMEOUT_MS: u64 = 15_000;
/// Bound on the whole node process (it has its own watchdog at 4 × the step timeout).
pub const DRIVE_TIMEOUT: Duration = Duration::from_secs(90);

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/browser")
}

/// `$CARGO_TARGET_DIR` (relative to the workspace root if relative) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => workspace.join(d),
        None => workspace.join("target"),
    }
}

pub fn ensure_browser() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the browser tests need Debian's Chromium \
         (`apt-get install -y chromium`)"
    );
    cimdgate_test_support::node::npm_ci_once(
        &fixture_dir(),
        "node_modules/playwright-core/package.json",
    );
}

// ---- the client's redirect URI: a real loopback listener -----------------------------------

type Hits = Arc<Mutex<Vec<String>>>;

/// An HTTP listener on 127.0.0.1 standing in for the client's redirect URI; records the raw
/// query of every request to `/callback`.
struct Callback {
    url: String,
    hits: Hits,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Callback {
    async fn start() -> Callback {
        async fn hit(State(hits): State<Hits>, RawQuery(q): RawQuery) -> &'static str {
            hits.lock().unwrap().push(q.unwrap_or_default());
            "callback ok"
        }
        let hits: Hits = Arc::default();
        let app = axum::Router::new()
            .route("/callback", axum::routing::get(hit))
            .with_state(hits.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/callback", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Callback {
            url,
            hits,
            _stop: stop,
        }
    }

    /// The parsed query of the one request received (panics unless exactly one).
    fn only_hit(&self) -> std::collections::BTreeMap<String, String> {
        let hits = self.hits.lock().unwrap().clone();
        assert_eq!(hits.len(), 1, "callback requests: {hits:?}");
        query_map(&format!("{}?{}", self.url, hits[0]))
    }
}

// ---- running drive.js ------------------------------------------------------------------------

/// What drive.js printed.
#[derive(Debug, serde::Deserialize)]
struct Drive {
    login_ok: bool,
    consent_text: String,
    final_url: String,
    final_text: String,
    /// The page after pressing "Sign out" (only when a logout URL was given).
    logout_text: Option<String>,
    screenshots: Vec<PathBuf>,
}

/// Run drive.js (blocking; call from `spawn_blocking`): kill it by PID after
/// [`DRIVE_TIMEOUT`]; panic with its stderr on failure.
fn run_drive(
    authorize_url: &str,
    callback: &str,
    decision: &str,
    logout_url: Option<&str>,
    shot_dir: &Path,
) -> Drive {
    ensure_browser();
    let _ = std::fs::remove_dir_all(shot_dir);
    let mut cmd = Command::new("node");
    cmd.arg(fixture_dir().join("drive.js"))
        .env("AUTHORIZE_URL", authorize_url)
        .env("CALLBACK_PREFIX", callback)
        .env("USERNAME", USERNAME)
        .env("PASSWORD", PASSWORD)
        .env("DECISION", decision)
        .env("SCREENSHOT_DIR", shot_dir)
        .env("CHROMIUM", CHROMIUM)
        .env("STEP_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string());
    if let Some(u) = logout_url {
        cmd.env("LOGOUT_URL", u);
    }
    let (status, stdout, stderr) = cimdgate_test_support::node::run_bounded(cmd, DRIVE_TIMEOUT);
    let Some(status) = status else {
        panic!("drive.js killed after {DRIVE_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    assert!(
        status.success(),
        "drive.js failed ({status}); screenshots (if any) in {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        shot_dir.display()
    );
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let line = line.unwrap_or_else(|| panic!("no JSON from drive.js:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON from drive.js ({e}): {line}"))
}

async fn drive(
    authorize_url: &str,
    callback: &str,
    decision: &str,
    logout_url: Option<&str>,
    test: &str,
) -> Drive {
    let (a, c, d, l) = (
        authorize_url.to_owned(),
        callback.to_owned(),
        decision.to_owned(),
        logout_url.map(str::to_owned),
    );
    let dir = target_dir().join("browser-screenshots").join(test);
    tokio::task::spawn_blocking(move || run_drive(&a, &c, &d, l.as_deref(), &dir))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

pub fn assert_png(path: &Path) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a non-empty PNG ({} bytes)",
        path.display(),
        bytes.len()
    );
}

/// Publish a CIMD client on `cimd.test` whose only redirect URI is the loopback callback, and
/// return `(client_id, authorize URL, PKCE verifier)`.
fn loopback_client(env: &TestEnv, callback: &Callback) -> (String, String, String) {
    let id = env.publish_client(
        "browser-app",
        serde_json::json!({
            "client_name": "Browser Test App",
            "redirect_uris": [callback.url],
        }),
    );
    let (verifier, challenge) = pkce_pair();
    let url = env.authorize_url(&env.authorize_params(&id, &callback.url, &challenge));
    (id, url, verifier)
}

/// Checks shared by approve and deny: login worked, the consent page a person saw names the
/// client's host and where they will be sent (with the loopback warning), and the screenshots
/// were written under `<target>/browser-screenshots/<test>/`.
fn assert_consent_seen(run: &Drive, callback: &Callback, test: &str) {
    assert!(run.login_ok, "{run:?}");
    let text = &run.consent_text;
    assert!(
        text.contains("cimd.test"),
        "client hostname visible: {text}"
    );
    assert!(
        text.contains("wants to access your account"),
        "headline visible: {text}"
    );
    assert!(
        text.contains("Verified domain"),
        "CIMD badge visible: {text}"
    );
    assert!(text.contains("127.0.0.1"), "redirect host visible: {text}");
    assert!(
        text.contains("this computer"),
        "loopback redirect warning visible: {text}"
    );
    assert!(text.contains("Approve") && text.contains("Deny"), "{text}");
    assert!(
        run.final_url.starts_with(&callback.url),
        "browser ended at the client: {}",
        run.final_url
    );
    assert_eq!(run.final_text.trim(), "callback ok", "{run:?}");

    let dir = target_dir().join("browser-screenshots").join(test);
    let names = ["login.png", "consent.png", "callback.png"];
    let extra = if run.logout_text.is_some() { 2 } else { 0 };
    assert_eq!(
        run.screenshots.len(),
        names.len() + extra,
        "{:?}",
        run.screenshots
    );
    for name in names {
        let path = dir.join(name);
        assert!(
            run.screenshots
                .iter()
                .any(|p| p.file_name() == path.file_name()),
            "{name} reported: {:?}",
            run.screenshots
        );
        assert_png(&path);
    }
}

// ---- the tests -------------------------------------------------------------------------------

/// Approve in Chromium → the browser follows the 302 to the loopback redirect URI with `code`,
/// `state` and `iss`, and that code redeems at /token with the PKCE verifier.
#[tokio::test]
async fn browser_login_consent_approve_reaches_client_and_code_redeems() {
    let env = TestEnv::start().await;
    let callback = Callback::start().await;
    let (id, url, verifier) = loopback_client(&env, &callback);

    let run = drive(&url, &callback.url, "approve", None, "approve").await;
    assert_consent_seen(&run, &callback, "approve");

    let q = callback.only_hit();
    assert_eq!(q.get("state").map(String::as_str), Some(STATE), "{q:?}");
    assert_eq!(q.get("iss"), Some(&env.base), "RFC 9207 iss: {q:?}");
    assert!(!q.contains_key("error"), "{q:?}");
    let code = q.get("code").unwrap_or_else(|| panic!("no code: {q:?}"));

    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &callback.url),
            ("client_id", &id),
            ("code_verifier", &verifier),
            ("resource", &env.resource()),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
}

/// Deny in Chromium → the browser lands on the loopback redirect URI with
/// `error=access_denied`, `state` and `iss`, and no code.
#[tokio::test]
async fn browser_deny_reaches_client_with_access_denied() {
    let env = TestEnv::start().await;
    let callback = Callback::start().await;
    let (_, url, _) = loopback_client(&env, &callback);

    // Then sign out on the sign-out page (review finding M3), as a person would.
    let logout = env.url("/logout");
    let run = drive(&url, &callback.url, "deny", Some(&logout), "deny").await;
    assert_consent_seen(&run, &callback, "deny");
    let signed_out = run.logout_text.as_deref().unwrap_or_default();
    assert!(signed_out.contains("You are signed out"), "{signed_out}");
    for name in ["logout.png", "signed-out.png"] {
        assert_png(
            &target_dir()
                .join("browser-screenshots")
                .join("deny")
                .join(name),
        );
    }

    let q = callback.only_hit();
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("access_denied"),
        "{q:?}"
    );
    assert_eq!(q.get("state").map(String::as_str), Some(STATE), "{q:?}");
    assert_eq!(q.get("iss"), Some(&env.base), "RFC 9207 iss: {q:?}");
    assert!(!q.contains_key("code"), "{q:?}");
}

//! Upstream identity mode against a **real** OpenID Connect provider: panva's `oidc-provider`
//! (npm, pinned in `tests/fixtures/oidc-provider/package-lock.json`) running under node on
//! 127.0.0.1, driven through its development login and consent pages over HTTP.
//!
//! The fixture's `node_modules` is installed on first use with
//! `npm ci --prefix tests/fixtures/oidc-provider --no-audit --no-fund` (once per test process;
//! a failure fails the test — nothing is skipped). CI pre-installs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use cimdgate_server::config::{IdentityMode, UpstreamConfig};
use cimdgate_server::identity::upstream::{CallbackParams, UpstreamError, UpstreamIdp};
use common::{Browser, Page, TestEnv, query_map};
use url::Url;

const CLIENT_ID: &str = "cimdgate";
const CLIENT_SECRET: &str = "upstream-test-secret";
/// The fixture's fixed account.
const SUBJECT: &str = "alice-upstream";

// ---- the node provider ------------------------------------------------------------------

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oidc-provider")
}

/// Install the fixture's dependencies once per process (`npm ci` from the committed lockfile).
fn ensure_installed() {
    common::npm_ci_once(&fixture_dir(), "node_modules/oidc-provider/package.json");
}

/// A running `oidc-provider`; killed (by PID) on drop.
struct Provider {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Provider {
    /// Start on a free loopback port with `redirect_uri` registered for client `cimdgate`.
    fn start(redirect_uri: &str) -> Provider {
        Self::start_on(redirect_uri, 0)
    }

    /// Start on `port` (0: any free one).
    fn start_on(redirect_uri: &str, port: u16) -> Provider {
        ensure_installed();
        let mut child = Command::new("node")
            .arg(fixture_dir().join("server.js"))
            .arg(port.to_string())
            .env("REDIRECT_URI", redirect_uri)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed for the upstream tests");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("READY ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let mut provider = Provider {
            child,
            port: 0,
            stderr,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(port)) => provider.port = port,
            other => panic!(
                "oidc-provider did not print READY within 30 s ({other:?}); stderr:\n{}",
                provider.stderr.lock().unwrap()
            ),
        }
        provider
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn upstream_config(&self) -> UpstreamConfig {
        UpstreamConfig {
            issuer: Some(Url::parse(&self.issuer()).unwrap()),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            ..UpstreamConfig::default()
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follow the provider's redirects and fill its devInteractions pages (login: inputs `login` /
/// `password`; consent: a hidden `prompt=consent` and a submit) until a redirect leaves for
/// `leave_prefix`; returns that URL. At most 12 steps.
async fn sign_in_at_provider(
    provider: &Provider,
    browser: &Browser,
    start: &str,
    leave_prefix: &str,
) -> String {
    let mut page = browser.get(start).await;
    for _ in 0..12 {
        if let Some(loc) = page.location() {
            let next = Url::parse(&page.url)
                .unwrap()
                .join(&loc)
                .unwrap()
                .to_string();
            if next.starts_with(leave_prefix) {
                return next;
            }
            page = browser.get(&next).await;
            continue;
        }
        assert_eq!(
            page.status,
            StatusCode::OK,
            "{}: {}\nprovider stderr:\n{}",
            page.url,
            page.body,
            provider.stderr.lock().unwrap()
        );
        page = submit_provider_form(browser, &page).await;
    }
    panic!(
        "no redirect to {leave_prefix} after 12 steps; last page {}: {}",
        page.url, page.body
    )
}

async fn submit_provider_form(browser: &Browser, page: &Page) -> Page {
    let form = page
        .form()
        .unwrap_or_else(|| panic!("no form at {}: {}", page.url, page.body));
    match form.value("prompt") {
        Some("login") => {
            assert!(form.has("login") && form.has("password"), "{}", page.body);
            browser
                .submit(&form, &[("login", SUBJECT), ("password", "any")])
                .await
        }
        Some("consent") => browser.submit(&form, &[]).await,
        other => panic!(
            "unknown provider form (prompt {other:?}) at {}: {}",
            page.url, page.body
        ),
    }
}

fn callback_params(url: &str) -> CallbackParams {
    let q = query_map(url);
    CallbackParams {
        code: q.get("code").cloned(),
        state: q.get("state").cloned(),
        error: q.get("error").cloned(),
        error_description: q.get("error_description").cloned(),
        iss: q.get("iss").cloned(),
    }
}

// ---- (a) library level -------------------------------------------------------------------

#[tokio::test]
async fn upstream_oidc_sign_in_against_real_provider() {
    let callback = "http://127.0.0.1:1/upstream/callback";
    let provider = Provider::start(callback);
    let idp = UpstreamIdp::new(&provider.upstream_config(), callback.into()).unwrap();

    let (auth_url, pending) = idp.begin().await.unwrap();
    assert!(
        auth_url.as_str().starts_with(&provider.issuer()),
        "{auth_url}"
    );
    let browser = Browser::new();
    let back = sign_in_at_provider(&provider, &browser, auth_url.as_str(), callback).await;
    let params = callback_params(&back);
    assert_eq!(
        params.iss.as_deref(),
        Some(provider.issuer().as_str()),
        "RFC 9207 iss: {back}"
    );

    let user = idp.finish(&params, &pending).await.unwrap();
    assert_eq!(user.subject, SUBJECT);
    assert_eq!(user.name.as_deref(), Some("Alice Upstream"));
    assert_eq!(user.email.as_deref(), Some("alice@upstream.test"));
    assert!(!user.tokens.access_token.is_empty());
    assert!(user.tokens.id_token.is_some());
    let debug = format!("{user:?}");
    assert!(
        !debug.contains(&user.tokens.access_token),
        "Debug must redact tokens"
    );

    // The same code cannot be redeemed twice at the provider.
    let err = idp.finish(&params, &pending).await.unwrap_err();
    assert!(matches!(err, UpstreamError::Exchange { .. }), "{err:?}");
}

#[tokio::test]
async fn upstream_callback_with_foreign_state_is_refused_before_any_exchange() {
    let callback = "http://127.0.0.1:1/upstream/callback";
    let provider = Provider::start(callback);
    let idp = UpstreamIdp::new(&provider.upstream_config(), callback.into()).unwrap();
    let (auth_url, _mine) = idp.begin().await.unwrap();
    let (_, other) = idp.begin().await.unwrap();
    let back = sign_in_at_provider(&provider, &Browser::new(), auth_url.as_str(), callback).await;
    let err = idp
        .finish(&callback_params(&back), &other)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::StateMismatch), "{err:?}");
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}

// ---- (b) IdP down ------------------------------------------------------------------------

#[tokio::test]
async fn upstream_idp_down_is_unavailable_naming_the_host() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = UpstreamConfig {
        issuer: Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
        client_id: CLIENT_ID.into(),
        ..UpstreamConfig::default()
    };
    let idp = UpstreamIdp::new(&cfg, "http://127.0.0.1:1/upstream/callback".into()).unwrap();
    for _ in 0..2 {
        let err = idp.begin().await.unwrap_err();
        assert!(matches!(err, UpstreamError::Unavailable { .. }), "{err:?}");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn upstream_idp_that_comes_back_is_discovered_after_the_backoff() {
    // Reserve a port, start with nothing listening, then bring the provider up on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let callback = "http://127.0.0.1:1/upstream/callback";
    let cfg = UpstreamConfig {
        issuer: Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        ..UpstreamConfig::default()
    };
    let idp = UpstreamIdp::new(&cfg, callback.into()).unwrap();
    assert!(matches!(
        idp.begin().await,
        Err(UpstreamError::Unavailable { .. })
    ));
    let _provider = Provider::start_on(callback, port);
    let mut ok = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if idp.begin().await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(
        ok,
        "discovery must be retried after a failure (short back-off)"
    );
}

// ---- (c) the whole flow through cimdgate --------------------------------------------------

/// CIMD client → cimdgate `/authorize` → 302 to the provider → login + consent there →
/// cimdgate `/upstream/callback` → cimdgate consent → client redirect with a code → `/token` →
/// an access token for `alice-upstream`. The upstream tokens are stored encrypted and never
/// appear in anything the client receives.
#[tokio::test]
async fn upstream_mode_full_flow_through_cimdgate() {
    let mut provider = None;
    let env = TestEnv::start_with(|c| {
        let callback = format!(
            "{}{}",
            c.server.public_url.as_str().trim_end_matches('/'),
            cimdgate_server::identity::CALLBACK_PATH
        );
        let p = Provider::start(&callback);
        c.identity.mode = IdentityMode::Upstream;
        c.identity.upstream = Some(p.upstream_config());
        provider = Some(p);
    })
    .await;
    let provider = provider.unwrap();
    let client_id = env.publish_client("upstream-app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (verifier, challenge) = common::pkce_pair();
    let authorize = env.authorize_url(&env.authorize_params(&client_id, &redirect, &challenge));

    // 1. cimdgate sends the browser to the provider with its OWN state/PKCE.
    let browser = Browser::new();
    let page = browser.get(&authorize).await;
    assert!(
        page.status.is_redirection(),
        "{}: {}",
        page.status,
        page.body
    );
    let to_idp = page.location().unwrap();
    assert!(to_idp.starts_with(&provider.issuer()), "{to_idp}");
    let q = query_map(&to_idp);
    assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_ne!(q.get("state").map(String::as_str), Some(common::STATE));
    assert_ne!(q.get("code_challenge"), Some(&challenge));

    // 2. Sign in and consent at the provider; it redirects to cimdgate's callback.
    let callback_prefix = env.url(cimdgate_server::identity::CALLBACK_PATH);
    let back = sign_in_at_provider(&provider, &browser, &to_idp, &callback_prefix).await;

    // 3. cimdgate finishes the upstream sign-in and shows its own consent page.
    let page = browser.get(&back).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = browser.consent(&page, true, false).await;
    let to_client = page
        .location()
        .unwrap_or_else(|| panic!("{}: {}", page.status, page.body));
    assert!(to_client.starts_with(&redirect), "{to_client}");
    let q = query_map(&to_client);
    assert_eq!(q.get("state").map(String::as_str), Some(common::STATE));
    assert_eq!(q.get("iss"), Some(&env.base));
    let code = q.get("code").unwrap();

    // 4. The client redeems the code.
    let resource = env.resource();
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let claims = env
        .server()
        .state
        .back
        .verify_access_token(access)
        .await
        .unwrap_or_else(|e| panic!("cimdgate-signed token: {e:?}"));
    assert_eq!(claims.sub, SUBJECT);
    assert_eq!(claims.iss, env.base);
    assert!(
        body.get("id_token").is_none(),
        "no upstream id_token: {body}"
    );

    // 5. The upstream tokens exist (encrypted) but are not in anything the client got.
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh token issued");
    let record = env
        .store()
        .get_refresh(
            &cimdgate_store::TokenHash::of(refresh),
            std::time::SystemTime::now(),
        )
        .await
        .unwrap()
        .expect("refresh record");
    let reference = record
        .upstream_ref
        .expect("upstream_ref bound to the grant");
    let sealed = env
        .store()
        .get_upstream_tokens(&reference, std::time::SystemTime::now())
        .await
        .unwrap()
        .expect("upstream tokens stored");
    let upstream = env
        .server()
        .state
        .front
        .open_upstream_tokens(&sealed)
        .expect("sealed upstream tokens open");
    let sealed_text = String::from_utf8_lossy(&sealed);
    let everything_sent = format!("{to_client} {body}");
    for secret in [
        Some(&upstream.access_token),
        upstream.refresh_token.as_ref(),
        upstream.id_token.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            !everything_sent.contains(secret.as_str()),
            "upstream token leaked to the client"
        );
        assert!(
            !sealed_text.contains(secret.as_str()),
            "upstream token stored in clear"
        );
    }
}

/// The user cancels at the provider (its "[ Cancel ]" link): the callback carries
/// `error=access_denied` and `finish` reports `Denied` (RFC 6749 §4.1.2.1), status 403.
#[tokio::test]
async fn upstream_user_cancel_at_provider_is_denied() {
    let callback = "http://127.0.0.1:1/upstream/callback";
    let provider = Provider::start(callback);
    let idp = UpstreamIdp::new(&provider.upstream_config(), callback.into()).unwrap();
    let (auth_url, pending) = idp.begin().await.unwrap();
    let browser = Browser::new();
    let first = browser.get(auth_url.as_str()).await;
    let interaction = Url::parse(auth_url.as_str())
        .unwrap()
        .join(&first.location().unwrap())
        .unwrap();
    let login = browser.get(interaction.as_str()).await;
    assert!(login.body.contains("/abort"), "{}", login.body);
    let abort = format!("{}/abort", interaction.as_str().trim_end_matches('/'));
    let back = sign_in_at_provider(&provider, &browser, &abort, callback).await;
    let err = idp
        .finish(&callback_params(&back), &pending)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::Denied { ref error, .. } if error == "access_denied"),
        "{err:?}"
    );
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
}

/// Upstream IdP down, seen through cimdgate: `/authorize` answers a 502 page naming the IdP
/// host instead of redirecting anywhere.
#[tokio::test]
async fn upstream_idp_down_shows_502_page_through_cimdgate() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = TestEnv::start_with(|c| {
        c.identity.mode = IdentityMode::Upstream;
        c.identity.upstream = Some(UpstreamConfig {
            issuer: Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
            client_id: CLIENT_ID.into(),
            ..UpstreamConfig::default()
        });
    })
    .await;
    let client_id = env.publish_client("down-app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (_, challenge) = common::pkce_pair();
    let authorize = env.authorize_url(&env.authorize_params(&client_id, &redirect, &challenge));
    let page = Browser::new().get(&authorize).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.body);
    assert!(page.location().is_none());
    assert!(
        page.body.contains(&format!("127.0.0.1:{port}")),
        "{}",
        page.body
    );
}

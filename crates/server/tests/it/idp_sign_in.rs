//! Upstream identity mode against a **real** OpenID Connect provider: panva's `oidc-provider`
//! (npm, pinned in `tests/fixtures/oidc-provider/package-lock.json`) running under node on
//! 127.0.0.1, driven through its development login and consent pages over HTTP.
//!
//! The fixture's `node_modules` is installed on first use with
//! `npm ci --prefix tests/fixtures/oidc-provider --no-audit --no-fund` (once per test process;
//! a failure fails the test — nothing is skipped). CI pre-installs it.

use crate::common;

use cimdgate_server::secret::ExposeSecret;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use cimdgate_server::config::{IdentityMode, IdpConfig};
use cimdgate_server::identity::idp::{CallbackParams, Idp, IdpError};
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
    cimdgate_test_support::node::npm_ci_once(
        &fixture_dir(),
        "node_modules/oidc-provider/package.json",
    );
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
        Self::spawn(redirect_uri, port, &[])
    }

    /// Start on `port` with extra environment for the fixture (e.g. `ACCESS_TOKEN_TTL`).
    fn spawn(redirect_uri: &str, port: u16, env: &[(&str, &str)]) -> Provider {
        ensure_installed();
        // Two tries: once, in a full local test run, a node process printed nothing for 30 s
        // while seven others started beside it. A second silent start fails the test with both
        // stderrs.
        let mut failures = Vec::new();
        for attempt in 1..=2 {
            match Self::try_spawn(redirect_uri, port, env) {
                Ok(p) => return p,
                Err(why) => {
                    eprintln!("oidc-provider start, attempt {attempt}: {why}");
                    failures.push(why);
                }
            }
        }
        panic!("oidc-provider did not start:\n{}", failures.join("\n"));
    }

    fn try_spawn(redirect_uri: &str, port: u16, env: &[(&str, &str)]) -> Result<Provider, String> {
        let mut child = Command::new("node")
            .arg(fixture_dir().join("server.js"))
            .arg(port.to_string())
            .env("REDIRECT_URI", redirect_uri)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .envs(env.iter().copied())
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
        let started = std::time::Instant::now();
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(port)) => {
                provider.port = port;
                Ok(provider)
            }
            // Dropping `provider` kills the silent process.
            other => Err(format!(
                "no READY after {:.1} s ({other:?}); stderr:\n{}",
                started.elapsed().as_secs_f64(),
                provider.stderr.lock().unwrap()
            )),
        }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn upstream_config(&self) -> IdpConfig {
        IdpConfig {
            issuer: Some(Url::parse(&self.issuer()).unwrap()),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            ..IdpConfig::default()
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
        code: q.get("code").cloned().map(Into::into),
        state: q.get("state").cloned().map(Into::into),
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
    let idp = Idp::new(&provider.upstream_config(), callback.into()).unwrap();

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
    assert!(!user.tokens.access_token.expose_secret().is_empty());
    assert!(user.tokens.id_token.is_some());
    let debug = format!("{user:?}");
    assert!(
        !debug.contains(user.tokens.access_token.expose_secret()),
        "Debug must redact tokens"
    );

    // The same code cannot be redeemed twice at the provider.
    let err = idp.finish(&params, &pending).await.unwrap_err();
    assert!(matches!(err, IdpError::Exchange { .. }), "{err:?}");
}

#[tokio::test]
async fn upstream_callback_with_foreign_state_is_refused_before_any_exchange() {
    let callback = "http://127.0.0.1:1/upstream/callback";
    let provider = Provider::start(callback);
    let idp = Idp::new(&provider.upstream_config(), callback.into()).unwrap();
    let (auth_url, _mine) = idp.begin().await.unwrap();
    let (_, other) = idp.begin().await.unwrap();
    let back = sign_in_at_provider(&provider, &Browser::new(), auth_url.as_str(), callback).await;
    let err = idp
        .finish(&callback_params(&back), &other)
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::StateMismatch), "{err:?}");
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
}

// ---- (b) IdP down ------------------------------------------------------------------------

#[tokio::test]
async fn upstream_idp_down_is_unavailable_naming_the_host() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = IdpConfig {
        issuer: Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
        client_id: CLIENT_ID.into(),
        ..IdpConfig::default()
    };
    let idp = Idp::new(&cfg, "http://127.0.0.1:1/upstream/callback".into()).unwrap();
    for _ in 0..2 {
        let err = idp.begin().await.unwrap_err();
        assert!(matches!(err, IdpError::Unavailable { .. }), "{err:?}");
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
    let cfg = IdpConfig {
        issuer: Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        ..IdpConfig::default()
    };
    let idp = Idp::new(&cfg, callback.into()).unwrap();
    assert!(matches!(
        idp.begin().await,
        Err(IdpError::Unavailable { .. })
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

/// A cimdgate test server in upstream mode against a fresh provider; `configure` may adjust
/// the configuration further and `provider_env` the fixture.
async fn upstream_env(
    provider_env: &[(&str, &str)],
    configure: impl FnOnce(&mut cimdgate_server::config::Config),
) -> (TestEnv, Provider) {
    let mut provider = None;
    let env = TestEnv::start_with(|c| {
        let callback = format!(
            "{}{}",
            c.server.public_url.as_str().trim_end_matches('/'),
            cimdgate_server::identity::CALLBACK_PATH
        );
        let p = Provider::spawn(&callback, 0, provider_env);
        c.identity.mode = IdentityMode::Upstream;
        c.identity.upstream = Some(p.upstream_config());
        configure(c);
        provider = Some(p);
    })
    .await;
    (env, provider.unwrap())
}

/// One complete CIMD login through cimdgate in upstream mode, for `/mcp`: returns the token
/// response and the URL the client was sent back to.
async fn upstream_login(env: &TestEnv, provider: &Provider) -> (serde_json::Value, String) {
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
    let back = sign_in_at_provider(provider, &browser, &to_idp, &callback_prefix).await;

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
    (body, to_client)
}

/// `/upstream/callback` is rate-limited per source like `/authorize` (each call may cost an
/// exchange at the provider): past the burst it answers 429.
#[tokio::test]
async fn the_sign_in_callback_is_rate_limited() {
    let (env, _provider) = upstream_env(&[], |c| c.limits.per_ip_per_second = 1).await;
    let url = env.url(&format!(
        "{}?code=x&state=y",
        cimdgate_server::identity::CALLBACK_PATH
    ));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let status = common::http_client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .status();
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses[0], 400, "no sign-in in progress: {statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");
}

/// A sign-in cookie finishes one sign-in: replaying the callback with a copy of it is refused
/// before any exchange at the provider (review Low finding: the flow cookie is single-use).
#[tokio::test]
async fn a_replayed_sign_in_callback_is_refused() {
    let (env, provider) = upstream_env(&[], |_| {}).await;
    let client_id = env.publish_client("upstream-app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (_, challenge) = common::pkce_pair();
    let authorize = env.authorize_url(&env.authorize_params(&client_id, &redirect, &challenge));
    let browser = Browser::new();
    let page = browser.get(&authorize).await;
    let cookie = page
        .set_cookies()
        .into_iter()
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(!cookie.is_empty(), "the sign-in cookie is set");
    let to_idp = page.location().unwrap();
    let callback_prefix = env.url(cimdgate_server::identity::CALLBACK_PATH);
    let back = sign_in_at_provider(&provider, &browser, &to_idp, &callback_prefix).await;
    let first = browser.get(&back).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // The same callback with a copy of the cookie, from another client.
    let replay = common::http_client()
        .get(&back)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let body = replay.text().await.unwrap();
    assert!(body.contains("finished already"), "{body}");
}

/// CIMD client → cimdgate `/authorize` → 302 to the provider → login + consent there →
/// cimdgate `/upstream/callback` → cimdgate consent → client redirect with a code → `/token` →
/// an access token for `alice-upstream`. The upstream tokens are stored encrypted and never
/// appear in anything the client receives.
#[tokio::test]
async fn upstream_mode_full_flow_through_cimdgate() {
    let (env, provider) = upstream_env(&[], |_| {}).await;
    let (body, to_client) = upstream_login(&env, &provider).await;
    let access = body["access_token"].as_str().unwrap();
    let claims = env
        .server()
        .state
        .tokens
        .verify(access)
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
    let reference = record.grant.idp_ref.expect("idp_ref bound to the grant");
    assert_eq!(
        claims.urf.as_deref(),
        Some(reference.as_str()),
        "the access token names the upstream sign-in (urf) for forwarding resources"
    );
    let (sealed, upstream) = stored_upstream_tokens(&env, &reference).await;
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
            !everything_sent.contains(secret.expose_secret()),
            "upstream token leaked to the client"
        );
        assert!(
            !sealed_text.contains(secret.expose_secret()),
            "upstream token stored in clear"
        );
    }
}

// ---- forwarding the user's IdP token to an upstream MCP server ------------------------

/// An upstream "MCP server" that answers every request with the `Authorization` and
/// `X-Forwarded-User` headers it received, as JSON.
async fn header_echo_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::HeaderMap;
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        axum::Json(serde_json::json!({
            "authorization": get("authorization"),
            "user": get("x-forwarded-user"),
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// The provider's endpoint `name` (e.g. `userinfo_endpoint`) from its discovery document.
async fn provider_endpoint(provider: &Provider, name: &str) -> String {
    let discovery: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/.well-known/openid-configuration",
            provider.issuer()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    discovery[name].as_str().unwrap().to_owned()
}

/// cimdgate in upstream mode whose `/mcp` forwards the user's IdP token to a header-echo
/// upstream; the provider's access tokens live `RENEW_MARGIN_SECS + 3` s (usable right after
/// login, due for renewal a few seconds later). Signs in once: (env, provider, echo task,
/// token response).
async fn forwarding_login() -> (
    TestEnv,
    Provider,
    tokio::task::JoinHandle<()>,
    serde_json::Value,
) {
    let (upstream_url, echo) = header_echo_server().await;
    let ttl = (cimdgate_server::identity::idp::vault::RENEW_MARGIN_SECS + 3).to_string();
    let (env, provider) = upstream_env(&[("ACCESS_TOKEN_TTL", &ttl)], |c| {
        c.resources[0].upstream = upstream_url.clone();
        c.resources[0].forward_upstream_token = true;
    })
    .await;
    let (body, _) = upstream_login(&env, &provider).await;
    (env, provider, echo, body)
}

/// The sealed upstream tokens stored under `reference`, and what they open to.
async fn stored_upstream_tokens(
    env: &TestEnv,
    reference: &str,
) -> (Vec<u8>, cimdgate_server::identity::idp::IdpTokens) {
    let sealed = env
        .store()
        .get_idp_tokens(reference, std::time::SystemTime::now())
        .await
        .unwrap()
        .expect("upstream tokens stored");
    let tokens = cimdgate_server::identity::idp::vault::open_tokens(
        &env.server().state.services.sealer,
        &sealed,
    )
    .expect("sealed upstream tokens open");
    (sealed, tokens)
}

/// The upstream sign-in reference (`urf`) in one of cimdgate's access tokens.
async fn upstream_ref(env: &TestEnv, access: &str) -> String {
    env.server()
        .state
        .tokens
        .verify(access)
        .await
        .unwrap()
        .urf
        .expect("urf claim")
}

/// Ask the provider's userinfo endpoint who `token` belongs to (proves it is a live token of
/// the provider, not something cimdgate made up).
async fn provider_userinfo(provider: &Provider, token: &str) -> serde_json::Value {
    let userinfo = provider_endpoint(provider, "userinfo_endpoint").await;
    let resp = reqwest::Client::new()
        .get(userinfo)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "userinfo refused the token");
    resp.json().await.unwrap()
}

/// `forward_upstream_token = true`: the upstream receives the user's access token **at the
/// IdP** (accepted by the IdP's own userinfo endpoint), never cimdgate's token; once it is about
/// to expire, cimdgate renews it with the IdP's refresh token and forwards the new one; with the
/// IdP down the renewal fails with 503; cimdgate's refresh grant is refused once the upstream
/// sign-in is gone; a token whose upstream sign-in is unknown is refused with a 401 challenge,
/// never forwarded bare.
#[tokio::test]
async fn forwarded_upstream_token_is_the_users_idp_token_and_is_renewed() {
    let (env, provider, _echo, body) = forwarding_login().await;
    let access = body["access_token"].as_str().unwrap().to_owned();

    let (status, first, _) = env.call_resource(&access).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["user"], SUBJECT);
    let first_token = first["authorization"]
        .as_str()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("no upstream token forwarded: {first}"))
        .to_owned();
    assert_ne!(
        first_token, access,
        "cimdgate's own token must never be forwarded"
    );
    assert_eq!(
        provider_userinfo(&provider, &first_token).await["sub"],
        SUBJECT
    );

    // Past the renewal point (bounded wait): the next call forwards a renewed token.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, second, _) = env.call_resource(&access).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_token = second["authorization"]
        .as_str()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("no upstream token forwarded: {second}"))
        .to_owned();
    assert_ne!(
        second_token, first_token,
        "the expiring IdP token was not renewed"
    );
    assert_eq!(
        provider_userinfo(&provider, &second_token).await["sub"],
        SUBJECT
    );

    // cimdgate's own refresh works while the upstream sign-in is held.
    let client_id = env.client_url("upstream-app");
    let refresh = body["refresh_token"].as_str().unwrap();
    let (status, refreshed) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    // The IdP goes down: renewing the next expiring token cannot be done now → 503, and
    // nothing is forwarded.
    drop(provider);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, down, _) = env.call_resource(&access).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{down}");
    assert_eq!(down["error"], "temporarily_unavailable");

    // It is refused once the sign-in is gone (the record expires), rather than minting tokens the
    // resource can only answer with 401.
    let reference = upstream_ref(&env, &access).await;
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    env.store()
        .put_idp_tokens(&reference, b"expired", past)
        .await
        .unwrap();
    let (status, refused) = env
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().unwrap(),
            ),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"], "invalid_grant");
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap()
            .contains("upstream identity provider"),
        "{refused}"
    );

    // A valid cimdgate token naming an upstream sign-in the store does not hold.
    let mut claims = env.server().state.tokens.verify(&access).await.unwrap();
    claims.urf = Some("no-such-sign-in".into());
    claims.jti = "forged-urf".into();
    let orphan =
        cimdgate_server::tokens::sign_access_token(&env.server().state.tokens.keys, &claims)
            .unwrap();
    let (status, body, headers) = env.call_resource(&orphan).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("resource_metadata="),
        "{challenge}"
    );
}

/// The IdP refuses to renew (the user's refresh token was revoked there): the gateway answers
/// 401 instead of forwarding, and the sign-in is ended in cimdgate too — its refresh grant then
/// sends the client to sign in again rather than minting tokens the resource would refuse.
#[tokio::test]
async fn upstream_refusal_to_renew_ends_the_sign_in() {
    let (env, provider, _echo, body) = forwarding_login().await;
    let access = body["access_token"].as_str().unwrap().to_owned();

    // Revoke the user's upstream refresh token at the provider (RFC 7009).
    let reference = upstream_ref(&env, &access).await;
    let (_, upstream) = stored_upstream_tokens(&env, &reference).await;
    let refresh_at_idp = upstream
        .refresh_token
        .expect("the provider issues refresh tokens");
    let revoked = reqwest::Client::new()
        .post(provider_endpoint(&provider, "revocation_endpoint").await)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", refresh_at_idp.expose_secret())
                .append_pair("token_type_hint", "refresh_token")
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    // Past the renewal point the gateway must renew, the provider refuses: 401, not forwarded.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, refused, headers) = env.call_resource(&access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "invalid_token");
    assert!(headers.contains_key("www-authenticate"));
    assert!(
        refused.get("authorization").is_none(),
        "nothing reached the upstream: {refused}"
    );

    // …and cimdgate's refresh grant now sends the client back to sign in.
    let (status, body) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", &env.client_url("upstream-app")),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
}

/// The user cancels at the provider (its "[ Cancel ]" link): the callback carries
/// `error=access_denied` and `finish` reports `Denied` (RFC 6749 §4.1.2.1), status 403.
#[tokio::test]
async fn upstream_user_cancel_at_provider_is_denied() {
    let callback = "http://127.0.0.1:1/upstream/callback";
    let provider = Provider::start(callback);
    let idp = Idp::new(&provider.upstream_config(), callback.into()).unwrap();
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
        matches!(err, IdpError::Denied { ref error, .. } if error == "access_denied"),
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
        c.identity.upstream = Some(IdpConfig {
            issuer: Some(Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
            client_id: CLIENT_ID.into(),
            ..IdpConfig::default()
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

//! The admin console (`/admin/` on the admin listener), in process: sign-in with the admin token
//! (a sealed cookie; a wrong token is a 401 page and an audit event), no data without a valid
//! cookie, the inventory and client pages after a real login flow, the actions refused without
//! the session's CSRF token or from another site, and the security headers on every page.
//! (The same in Chromium: `console_in_a_browser.rs`.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::{self, Browser, Page, TestEnv};
use cimdgate_server::seal::Purpose;
use cimdgate_store::ClientStatus;

/// The admin token of these tests.
pub const TOKEN: &str = "adm-console-0123456789abcdefghijklmnopqrstuv";

pub async fn with_token() -> TestEnv {
    TestEnv::start_with(|c| c.admin.token = Some(TOKEN.into())).await
}

pub fn admin_url(env: &TestEnv, path: &str) -> String {
    let addr = env.server().admin_addr.expect("admin listener on");
    format!("http://{addr}{path}")
}

/// `client_id` as one percent-encoded path segment.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A client that went through a real login and consent (it is in the inventory, with a user
/// and a grant).
pub async fn signed_in_client(env: &TestEnv, name: &str, client_name: &str) -> String {
    let id = env.publish_client(name, json!({"client_name": client_name}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let (code, verifier) = env.authorize_code(&id, &redirect).await;
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("client_id", &id),
            ("redirect_uri", &redirect),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

/// Sign in at the console in `browser`; returns the inventory page it lands on.
async fn sign_in(env: &TestEnv, browser: &Browser) -> Page {
    let page = browser.get(&admin_url(env, "/admin/login")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let done = browser
        .post_form(&admin_url(env, "/admin/login"), &[("token", TOKEN)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location().as_deref(), Some("/admin/"));
    let inventory = browser.get(&admin_url(env, "/admin/")).await;
    assert_eq!(inventory.status, StatusCode::OK, "{}", inventory.body);
    inventory
}

/// The CSRF token of a console page (its first form, the sign-out, carries it).
fn csrf_of(page: &Page) -> String {
    let form = page.form().expect("a form on the page");
    form.hidden()
        .into_iter()
        .find(|(n, _)| n == "csrf")
        .map(|(_, v)| v)
        .expect("a csrf field")
}

fn assert_hardened(page: &Page) {
    let csp = page.header("content-security-policy").unwrap_or_default();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{}: CSP {csp:?}", page.url);
    }
    assert!(!csp.contains("script-src"), "{}: {csp}", page.url);
    assert_eq!(
        page.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{}",
        page.url
    );
    assert_eq!(
        page.header("cache-control").as_deref(),
        Some("no-store"),
        "{}",
        page.url
    );
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
    assert_eq!(
        page.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(!page.body.contains("<script"), "{}", page.url);
}

/// What a page without a session may show: the sign-in form, nothing of the inventory.
fn assert_no_data(page: &Page, id: &str) {
    for needle in [id, "cimd.test", "Console Test App", "alice"] {
        assert!(
            !page.body.contains(needle),
            "{needle:?} on a page without a session: {}",
            page.body
        );
    }
}

async fn status_of(env: &TestEnv, id: &str) -> (ClientStatus, Option<String>) {
    let rec = env.store().get_client_record(id).await.unwrap().unwrap();
    (rec.admin.status, rec.admin.reason)
}

/// A cookie sealed by this server for the console with the right token tag (as `POST
/// /admin/login` makes it) but with `ttl` seconds to live.
fn forged_console_cookie(env: &TestEnv, ttl: u64) -> String {
    let token_digest = Sha256::digest(TOKEN.as_bytes());
    let mut h = Sha256::new();
    h.update(b"cimdgate admin console session v1\0");
    h.update(token_digest);
    let tok = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize());
    env.server()
        .state
        .services
        .sealer
        .seal(
            Purpose::AdminSession,
            &json!({"csrf": "x", "tok": tok}),
            ttl,
        )
        .unwrap()
}

#[tokio::test]
async fn console_shows_no_data_without_a_valid_sign_in() {
    let env = with_token().await;
    let id = signed_in_client(&env, "console-app", "Console Test App").await;
    let client_page = admin_url(&env, &format!("/admin/clients/{}", segment(&id)));
    let inventory = admin_url(&env, "/admin/");

    // No cookie: the inventory sends to the sign-in page, everything else is the 401 page.
    let page = Browser::new().get(&inventory).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location().as_deref(), Some("/admin/login"));
    assert_hardened(&page);
    let page = Browser::new().get(&client_page).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(page.body.contains("admin token"), "{}", page.body);
    assert_no_data(&page, &id);
    assert_hardened(&page);

    // A garbage cookie, a value sealed for another purpose, a session under another token, an
    // expired session: 401, never data.
    let other_purpose = env
        .server()
        .state
        .services
        .sealer
        .seal(Purpose::Session, &json!({"csrf": "x", "tok": "y"}), 3600)
        .unwrap();
    let wrong_token = env
        .server()
        .state
        .services
        .sealer
        .seal(
            Purpose::AdminSession,
            &json!({"csrf": "x", "tok": "another-token"}),
            3600,
        )
        .unwrap();
    let expired = forged_console_cookie(&env, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (what, cookie) in [
        ("garbage", "garbage".to_owned()),
        ("other purpose", other_purpose),
        ("other token", wrong_token),
        ("expired", expired),
    ] {
        for url in [&inventory, &client_page] {
            let page = common::http_client()
                .get(url.as_str())
                .header("cookie", format!("cimdgate_admin={cookie}"))
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), StatusCode::UNAUTHORIZED, "{what} {url}");
            let body = page.text().await.unwrap();
            assert!(body.contains("Sign in"), "{what}: {body}");
            for needle in [id.as_str(), "cimd.test", "Console Test App"] {
                assert!(!body.contains(needle), "{what}: {needle:?} in {body}");
            }
        }
    }
    // The same forgery with time left is accepted: the 401 above was the expiry.
    let fresh = forged_console_cookie(&env, 3600);
    let page = common::http_client()
        .get(inventory.as_str())
        .header("cookie", format!("cimdgate_admin={fresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);

    // The JSON API still takes only the bearer token, not the console cookie.
    let browser = Browser::new();
    sign_in(&env, &browser).await;
    let api = browser.get(&admin_url(&env, "/admin/v1/clients")).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{}", api.body);
    assert!(!api.body.contains(&id));
}

/// Captures the audit events (target `audit`) emitted on this thread: the test runtime is
/// single-threaded, so the server's tasks run here too.
#[derive(Clone, Default)]
struct AuditCapture(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AuditCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", f.name(), v));
            }
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.push_str(&format!("{}={} ", f.name(), v));
            }
        }
        if event.metadata().target() == "audit" {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

#[tokio::test]
async fn sign_in_with_a_wrong_token_is_401_and_audited_and_the_right_one_sets_the_cookie() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let capture = AuditCapture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));

    let env = with_token().await;
    let browser = Browser::new();
    let login = admin_url(&env, "/admin/login");
    let page = browser.get(&login).await;
    assert_hardened(&page);
    for wrong in ["", "wrong", &TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}x")] {
        let page = browser.post_form(&login, &[("token", wrong)]).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(page.body.contains("not the admin token"), "{}", page.body);
        assert!(page.set_cookies().is_empty(), "{:?}", page.set_cookies());
        assert_hardened(&page);
    }
    let events = capture.0.lock().unwrap().clone();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.contains("event=admin_login_failed") && e.contains("ip=127.0.0.1"))
        .collect();
    assert_eq!(failed.len(), 4, "{events:#?}");
    assert!(
        !events.iter().any(|e| e.contains("adm-console")),
        "no token in the audit: {events:#?}"
    );

    let page = browser.post_form(&login, &[("token", TOKEN)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let cookie = page.set_cookies().join("\n");
    for attr in [
        "cimdgate_admin=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains(TOKEN), "the cookie is sealed: {cookie}");
    assert_hardened(&page);
    let page = browser.get(&admin_url(&env, "/admin/")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Clients"), "{}", page.body);

    // Signing out clears the cookie.
    let csrf = csrf_of(&page);
    let out = browser
        .post_form(
            &admin_url(&env, "/admin/logout"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert!(browser.cookies().is_empty(), "{:?}", browser.cookies());
    let page = browser.get(&admin_url(&env, "/admin/")).await;
    assert_eq!(page.location().as_deref(), Some("/admin/login"));
}

#[tokio::test]
async fn inventory_and_client_page_show_a_client_after_a_real_login() {
    let env = with_token().await;
    let id = signed_in_client(&env, "console-app", "<b>Console Test App</b>").await;
    let browser = Browser::new();
    let page = sign_in(&env, &browser).await;
    assert_hardened(&page);
    let href = format!("/admin/clients/{}", segment(&id));
    for want in [
        "cimd.test",
        "st-active",
        "untrusted",
        "&#60;b&#62;Console Test App&#60;/b&#62;",
        "self-declared",
        href.as_str(),
    ] {
        assert!(page.body.contains(want), "{want:?} in {}", page.body);
    }
    assert!(!page.body.contains("<b>Console"), "escaped: {}", page.body);

    // Filters: blocked shows none yet, active shows it, a bad one is a 400 page.
    let blocked = browser
        .get(&admin_url(&env, "/admin/?status=blocked"))
        .await;
    assert!(!blocked.body.contains(&href), "{}", blocked.body);
    let active = browser.get(&admin_url(&env, "/admin/?status=active")).await;
    assert!(active.body.contains(&href), "{}", active.body);
    let bad = browser.get(&admin_url(&env, "/admin/?status=nope")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_hardened(&bad);

    let page = browser.get(&admin_url(&env, &href)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_hardened(&page);
    let redirect = TestEnv::default_redirect("cimd.test");
    for want in [
        id.as_str(),
        redirect.as_str(),
        common::USERNAME,
        "Revoke this user",
        "No changes recorded",
        "document digest",
        "/block",
        "/approve",
    ] {
        assert!(page.body.contains(want), "{want:?} in {}", page.body);
    }

    // Unknown clients and actions are 404 pages; an oversized form is 413.
    let csrf = csrf_of(&page);
    let missing = browser
        .get(&admin_url(
            &env,
            "/admin/clients/https%3A%2F%2Fnope.test%2Fc",
        ))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_hardened(&missing);
    let nope = browser
        .post_form(
            &admin_url(&env, &format!("{href}/explode")),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    let wrong_method = browser.get(&admin_url(&env, "/admin/logout")).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_hardened(&wrong_method);
    let no_page = browser.get(&admin_url(&env, "/admin/no-such-page")).await;
    assert_eq!(no_page.status, StatusCode::NOT_FOUND);
    assert_hardened(&no_page);
    let big = "x".repeat(20_000);
    let huge = browser
        .post_form(
            &admin_url(&env, &format!("{href}/block")),
            &[("csrf", csrf.as_str()), ("reason", big.as_str())],
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_hardened(&huge);
    assert_eq!(status_of(&env, &id).await.0, ClientStatus::Active);
}

#[tokio::test]
async fn block_needs_the_sessions_csrf_token_and_a_same_site_post() {
    let env = with_token().await;
    let id = signed_in_client(&env, "console-app", "Console Test App").await;
    let browser = Browser::new();
    let page = sign_in(&env, &browser).await;
    let csrf = csrf_of(&page);
    let other_session_csrf = csrf_of(&sign_in(&env, &Browser::new()).await);
    assert_ne!(csrf, other_session_csrf);
    let href = format!("/admin/clients/{}", segment(&id));
    let block = admin_url(&env, &format!("{href}/block"));

    type Fields<'a> = Vec<(&'a str, &'a str)>;
    let refused: [(&str, Fields, Fields); 5] = [
        ("no csrf", vec![("reason", "r")], vec![]),
        (
            "wrong csrf",
            vec![("csrf", "AAAA"), ("reason", "r")],
            vec![],
        ),
        (
            "another session's csrf",
            vec![("csrf", other_session_csrf.as_str()), ("reason", "r")],
            vec![],
        ),
        (
            "cross-origin",
            vec![("csrf", csrf.as_str()), ("reason", "r")],
            vec![("origin", "http://evil.test")],
        ),
        (
            "cross-site fetch",
            vec![("csrf", csrf.as_str()), ("reason", "r")],
            vec![("sec-fetch-site", "cross-site")],
        ),
    ];
    for (what, form, headers) in refused {
        let page = browser.post_form_with(&block, &form, &headers).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}: {}", page.body);
        assert!(page.body.contains("Nothing was changed"), "{what}");
        assert_hardened(&page);
        assert_eq!(
            status_of(&env, &id).await,
            (ClientStatus::Active, None),
            "{what}: not blocked"
        );
    }
    // The sign-in form is refused cross-site too.
    let page = Browser::new()
        .post_form_with(
            &admin_url(&env, "/admin/login"),
            &[("token", TOKEN)],
            &[("origin", "http://evil.test")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.set_cookies().is_empty());

    // The right token: blocked, back on the client page, which shows it.
    let page = browser
        .post_form(
            &block,
            &[("csrf", csrf.as_str()), ("reason", "leaked <key>")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location().as_deref(), Some(href.as_str()));
    assert_eq!(
        status_of(&env, &id).await,
        (ClientStatus::Blocked, Some("leaked <key>".into()))
    );
    let shown = browser.get(&admin_url(&env, &href)).await;
    assert!(shown.body.contains("st-blocked"), "{}", shown.body);
    assert!(
        shown.body.contains("leaked &#60;key&#62;"),
        "{}",
        shown.body
    );

    // The other actions through their forms.
    let post = |action: &str, extra: Vec<(&'static str, &'static str)>| {
        let mut form = vec![("csrf".to_owned(), csrf.clone())];
        form.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
        let url = admin_url(&env, &format!("{href}/{action}"));
        let browser = &browser;
        async move { browser.post_form(&url, &form).await }
    };
    assert_eq!(post("unblock", vec![]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(status_of(&env, &id).await.0, ClientStatus::Active);
    assert_eq!(
        post("approve", vec![("scopes", "mcp")]).await.status,
        StatusCode::SEE_OTHER
    );
    let rec = env.store().get_client_record(&id).await.unwrap().unwrap();
    assert_eq!(rec.admin.scope_ceiling.as_deref(), Some("mcp"));
    assert_eq!(
        post("revoke", vec![("subject", common::USERNAME)])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let grants = env
        .store()
        .list_grants(&id, std::time::SystemTime::now())
        .await
        .unwrap();
    assert!(grants.is_empty(), "{grants:?}");
    assert_eq!(
        post("deny", vec![("reason", "no")]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(status_of(&env, &id).await.0, ClientStatus::Denied);
}

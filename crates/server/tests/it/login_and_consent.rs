//! Login and consent over real HTTP: the form contract (docs/architecture.md, *Authorization
//! server*), consent page content, CSRF, remember-decision, auto-approve of trusted clients.

use crate::common;

use axum::http::StatusCode;
use common::{Browser, Page, STATE, TestEnv, pkce_pair, query_map};

fn authorize_url(env: &TestEnv, client_id: &str, redirect: &str) -> String {
    let (_, challenge) = pkce_pair();
    env.authorize_url(&env.authorize_params(client_id, redirect, &challenge))
}

/// Fresh browser → login page → logged in; returns the consent page.
async fn consent_page(env: &TestEnv, b: &Browser, url: &str) -> Page {
    let login = b.get(url).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let page = b.login(&login).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.form().unwrap().has("decision"), "{}", page.body);
    let _ = env;
    page
}

fn assert_code_redirect(env: &TestEnv, location: &str) {
    let q = query_map(location);
    assert!(q.contains_key("code"), "{location}");
    assert_eq!(q.get("state").map(String::as_str), Some(STATE));
    assert_eq!(q.get("iss"), Some(&env.base));
}

#[tokio::test]
async fn wrong_password_shows_login_page_again_with_401() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let b = env.browser();
    let login = b
        .get(&authorize_url(
            &env,
            &id,
            &TestEnv::default_redirect("cimd.test"),
        ))
        .await;
    let form = login.form().unwrap();
    for (user, pw) in [("alice", "wrong"), ("nobody", "password")] {
        let page = b
            .submit(&form, &[("username", user), ("password", pw)])
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{user}");
        assert!(
            page.body.contains("Incorrect username or password"),
            "same message: {}",
            page.body
        );
        assert!(page.form().unwrap().has("password"), "login form again");
        assert!(!b.cookies().contains_key("cimdgate_session"));
    }
}

#[tokio::test]
async fn consent_post_without_valid_csrf_token_is_refused_with_403() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let b = env.browser();
    let page = consent_page(
        &env,
        &b,
        &authorize_url(&env, &id, &TestEnv::default_redirect("cimd.test")),
    )
    .await;
    let form = page.form().unwrap();
    let without: Vec<(String, String)> = form
        .hidden()
        .into_iter()
        .filter(|(n, _)| n != "csrf")
        .chain([("decision".to_owned(), "approve".to_owned())])
        .collect();
    let r = b.post_form(&form.action, &without).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.location().is_none());
    let r = b
        .submit(&form, &[("decision", "approve"), ("csrf", "forged")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A token from another session does not work either.
    let other = env.browser();
    let other_page = consent_page(
        &env,
        &other,
        &authorize_url(&env, &id, &TestEnv::default_redirect("cimd.test")),
    )
    .await;
    let other_csrf = other_page.form().unwrap().value("csrf").unwrap().to_owned();
    let r = b
        .submit(&form, &[("decision", "approve"), ("csrf", &other_csrf)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The genuine form still works.
    let r = b.submit(&form, &[("decision", "approve")]).await;
    assert_code_redirect(&env, &r.location().unwrap());
}

#[tokio::test]
async fn cross_site_form_post_is_refused() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let b = env.browser();
    let page = consent_page(
        &env,
        &b,
        &authorize_url(&env, &id, &TestEnv::default_redirect("cimd.test")),
    )
    .await;
    let form = page.form().unwrap();
    let mut fields = form.hidden();
    fields.push(("decision".into(), "approve".into()));
    for headers in [
        [("sec-fetch-site", "cross-site")],
        [("origin", "https://evil.test")],
    ] {
        let r = b.post_form_with(&form.action, &fields, &headers).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}");
    }
}

#[tokio::test]
async fn deny_redirects_with_access_denied_state_and_iss() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let loc = env
        .login_and_consent(
            &authorize_url(&env, &id, &TestEnv::default_redirect("cimd.test")),
            false,
        )
        .await;
    let q = query_map(&loc);
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("access_denied"),
        "{loc}"
    );
    assert_eq!(q.get("state").map(String::as_str), Some(STATE));
    assert_eq!(q.get("iss"), Some(&env.base));
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn signed_in_user_skips_login_but_sees_consent() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let url = authorize_url(&env, &id, &TestEnv::default_redirect("cimd.test"));
    let b = env.browser();
    b.login_and_consent(&url, true, false).await;
    let page = b.get(&url).await;
    let form = page.form().unwrap();
    assert!(
        form.has("decision") && !form.has("password"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn remembered_approval_skips_consent_but_not_login() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let b = env.browser();
    let loc = b
        .login_and_consent(&authorize_url(&env, &id, &redirect), true, true)
        .await;
    assert_code_redirect(&env, &loc);
    // Same browser (session): straight back to the client.
    let page = b.get(&authorize_url(&env, &id, &redirect)).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert_code_redirect(&env, &page.location().unwrap());
    // New browser: login first, then no consent page.
    let fresh = env.browser();
    let login = fresh.get(&authorize_url(&env, &id, &redirect)).await;
    assert!(
        login.form().unwrap().has("password"),
        "login still required"
    );
    let after = fresh.login(&login).await;
    assert_eq!(after.status, StatusCode::FOUND, "{}", after.body);
    assert_code_redirect(&env, &after.location().unwrap());
    // Another client is not covered.
    let other = env.publish_client("other", serde_json::json!({}));
    let page = b.get(&authorize_url(&env, &other, &redirect)).await;
    assert!(page.form().unwrap().has("decision"));
}

#[tokio::test]
async fn remembered_denial_returns_access_denied() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let b = env.browser();
    b.login_and_consent(&authorize_url(&env, &id, &redirect), false, true)
        .await;
    let page = b.get(&authorize_url(&env, &id, &redirect)).await;
    assert_eq!(page.status, StatusCode::FOUND);
    let q = query_map(&page.location().unwrap());
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
}

#[tokio::test]
async fn auto_approve_trusted_skips_consent_but_not_login() {
    let env = TestEnv::start_with(|c| {
        c.cimd.trusted_domains = vec!["trusted.test".into()];
        c.cimd.auto_approve_trusted = true;
    })
    .await;
    let trusted = env.publish_client_on("trusted.test", "app", serde_json::json!({}));
    let b = env.browser();
    let login = b
        .get(&authorize_url(
            &env,
            &trusted,
            &TestEnv::default_redirect("trusted.test"),
        ))
        .await;
    assert!(
        login.form().unwrap().has("password"),
        "login is never skipped: {}",
        login.body
    );
    let after = b.login(&login).await;
    assert_eq!(
        after.status,
        StatusCode::FOUND,
        "consent skipped: {}",
        after.body
    );
    assert_code_redirect(&env, &after.location().unwrap());
    // An untrusted client in the same session still gets the consent page.
    let other = env.publish_client("app", serde_json::json!({}));
    let page = b
        .get(&authorize_url(
            &env,
            &other,
            &TestEnv::default_redirect("cimd.test"),
        ))
        .await;
    assert!(page.form().unwrap().has("decision"), "{}", page.body);
}

/// Each login and consent form is good for one submission (review Low finding): a resubmitted
/// consent page does not issue a second code, a replayed login POST does not start another
/// session; both get a clear 400 page.
#[tokio::test]
async fn login_and_consent_forms_are_single_use() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let b = env.browser();
    let login = b.get(&authorize_url(&env, &id, &redirect)).await;
    let consent = b.login(&login).await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let again = b.login(&login).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(again.body.contains("finished already"), "{}", again.body);

    let first = b.consent(&consent, true, false).await;
    assert_code_redirect(&env, &first.location().unwrap());
    let second = b.consent(&consent, true, false).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST, "{}", second.body);
    assert!(second.body.contains("finished already"), "{}", second.body);
    assert!(second.location().is_none(), "no second code");
}

/// Auto-approval never skips a warning (review Low finding): a trusted client redirecting to
/// this computer, to an app scheme or to another host still gets the consent page, warning shown.
#[tokio::test]
async fn auto_approve_never_skips_a_redirect_warning() {
    let env = TestEnv::start_with(|c| {
        c.cimd.trusted_domains = vec!["trusted.test".into()];
        c.cimd.auto_approve_trusted = true;
    })
    .await;
    let redirects = [
        ("http://127.0.0.1:5555/cb", "this computer"),
        ("test.trusted.app:/cb", "the app for"),
        ("https://other.test/cb", "which is not"),
    ];
    for (i, (redirect, warning)) in redirects.iter().enumerate() {
        let id = env.publish_client_on(
            "trusted.test",
            &format!("app{i}"),
            serde_json::json!({ "redirect_uris": [redirect] }),
        );
        let b = env.browser();
        let login = b.get(&authorize_url(&env, &id, redirect)).await;
        let page = b.login(&login).await;
        assert_eq!(page.status, StatusCode::OK, "{redirect}: {}", page.body);
        assert!(
            page.form().unwrap().has("decision"),
            "{redirect}: consent skipped: {}",
            page.body
        );
        assert!(page.body.contains(warning), "{redirect}: {}", page.body);
    }
}

#[tokio::test]
async fn consent_page_shows_client_host_redirect_host_and_warnings() {
    let env = TestEnv::start().await;
    let port = env.cimd.port();
    let same = format!("https://cimd.test:{port}/cb");
    let elsewhere = "https://other.test/cb".to_owned();
    let loopback = "http://127.0.0.1:5555/cb".to_owned();
    let id = env.publish_client(
        "app",
        serde_json::json!({
            "client_name": "Friendly <b>App</b>",
            "redirect_uris": [same, elsewhere, loopback],
        }),
    );
    let b = env.browser();
    let cases = [
        (&same, None),
        (&elsewhere, Some("which is not cimd.test")),
        (&loopback, Some("this computer")),
    ];
    for (redirect, warning) in cases {
        let url = authorize_url(&env, &id, redirect);
        let page = match b.cookies().contains_key("cimdgate_session") {
            true => b.get(&url).await,
            false => consent_page(&env, &b, &url).await,
        };
        let body = &page.body;
        let host_pos = body.find("cimd.test").expect("client host shown");
        let name_pos = body.find("Friendly").expect("client name shown");
        assert!(
            host_pos < name_pos,
            "hostname leads, before the self-declared name"
        );
        assert!(
            body.contains("&#60;b&#62;") || body.contains("&lt;b&gt;"),
            "name escaped"
        );
        assert!(body.contains("Verified domain"));
        assert!(body.contains("mcp") && body.contains(&env.resource()));
        let redirect_host = url::Url::parse(redirect)
            .unwrap()
            .host_str()
            .unwrap()
            .to_owned();
        assert!(
            body.contains(&redirect_host),
            "redirect host {redirect_host} shown"
        );
        match warning {
            Some(w) => assert!(body.contains(w), "{redirect}: expected warning {w:?}"),
            None => assert!(
                !body.contains("Check this:"),
                "{redirect}: no warning expected"
            ),
        }
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    }
}

/// A remembered approval covers the resource it was given for only (review finding M4): with
/// two resources offering the same scope, approving `/mcp` does not approve `/admin`.
#[tokio::test]
async fn remembered_approval_is_bound_to_its_resource() {
    let env = TestEnv::start_with(|c| {
        let mut admin = c.resources[0].clone();
        admin.path = "/admin".into();
        c.resources.push(admin);
    })
    .await;
    let id = env.publish_client("app", serde_json::json!({}));
    let redirect = TestEnv::default_redirect("cimd.test");
    let url_for = |resource: &str| {
        let (_, challenge) = pkce_pair();
        let mut p = env.authorize_params(&id, &redirect, &challenge);
        for (k, v) in &mut p {
            if k == "resource" {
                *v = env.url(resource);
            }
        }
        env.authorize_url(&p)
    };
    let b = env.browser();
    let loc = b.login_and_consent(&url_for("/mcp"), true, true).await;
    assert_code_redirect(&env, &loc);
    let page = b.get(&url_for("/mcp")).await;
    assert_eq!(
        page.status,
        StatusCode::FOUND,
        "remembered for /mcp: {}",
        page.body
    );
    let page = b.get(&url_for("/admin")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.form().unwrap().has("decision"),
        "consent asked again for /admin"
    );
}

/// Guessing one username's password is slowed down (review finding M2): after five failures in
/// a row the username must wait — even the right password is not checked meanwhile — while
/// other usernames are unaffected.
#[tokio::test]
async fn repeated_wrong_passwords_make_the_username_wait() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let url = authorize_url(&env, &id, &TestEnv::default_redirect("cimd.test"));
    let b = env.browser();
    let login = b.get(&url).await;
    let form = login.form().unwrap();
    for _ in 0..5 {
        let page = b
            .submit(&form, &[("username", "alice"), ("password", "wrong")])
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    }
    let page = b
        .submit(&form, &[("username", "alice"), ("password", "password")])
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.body.contains("Try again in"), "{}", page.body);
    assert!(
        !b.cookies().contains_key("cimdgate_session"),
        "not signed in"
    );
    let page = b
        .submit(&form, &[("username", "bob"), ("password", "wrong")])
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNAUTHORIZED,
        "another username: {}",
        page.body
    );
}

/// A browser's sign-in can be ended (review finding M3): `/logout` shows who is signed in,
/// its form (same-origin, CSRF-bound) deletes the session, and the next sign-in asks for the
/// password again. A post without the form's token is refused.
#[tokio::test]
async fn logout_ends_the_browser_sign_in() {
    let env = TestEnv::start().await;
    let id = env.publish_client("app", serde_json::json!({}));
    let url = authorize_url(&env, &id, &TestEnv::default_redirect("cimd.test"));
    let b = env.browser();
    let _ = b.login_and_consent(&url, true, false).await;
    assert!(b.cookies().contains_key("cimdgate_session"));

    let page = b.get(&env.url("/logout")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("alice"), "{}", page.body);
    let form = page.form().unwrap();
    let refused = b.submit(&form, &[("csrf", "forged")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        b.cookies().contains_key("cimdgate_session"),
        "still signed in"
    );

    let done = b.submit(&form, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("signed out"), "{}", done.body);
    assert!(
        !b.cookies().contains_key("cimdgate_session"),
        "session deleted"
    );
    let again = b.get(&url).await;
    assert!(again.form().unwrap().has("password"), "login asked again");
}

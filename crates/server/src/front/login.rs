//! The local login step (SPEC §4 "Local mode"): render the form, check the password (argon2id
//! off the async executor), start the sealed session, continue to consent.
//!
//! Login CSRF: the form's `csrf` is an HMAC over the browser-binding cookie and the pending
//! request id; the pending request itself also names the browser ([`super::open_pending`]).
//! A wrong password — or an unknown user — gets the same 401 page and message (no user
//! enumeration).

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::authorize::{PENDING_TTL_SECS, PendingAuth};
use super::pages::{ErrorPage, LoginPage, render, truncate_host};
use super::seal::{Purpose, now_secs, random_b64};
use super::session::Session;
use super::{consent, csrf_refused, open_pending, recheck_client};
use crate::audit;
use crate::clients::Client;
use crate::identity::Identity;
use crate::state::AppState;

/// CSRF purpose label of the login form.
pub const CSRF_LOGIN: &str = "login";

/// Host shown for a client: the client_id URL's host (CIMD) or "unverified" for DCR.
pub fn client_display_host(client: &Client) -> String {
    match client {
        Client::Cimd(c) => truncate_host(c.id.host()),
        Client::Dcr(c) => c.client_name.clone().unwrap_or_else(|| c.client_id.clone()),
    }
}

/// Render the login form for `pending`.
pub fn page(
    app: &AppState,
    client: &Client,
    pending: &PendingAuth,
    error: Option<&str>,
    username: &str,
    status: StatusCode,
) -> Response {
    let front = &app.front;
    let Ok(request) = front
        .sealer
        .seal(Purpose::PendingAuth, pending, PENDING_TTL_SECS)
    else {
        return ErrorPage::server_fault("start the sign-in").respond(false);
    };
    let csrf = front
        .sealer
        .csrf_token(CSRF_LOGIN, &[&pending.browser, &pending.id]);
    let page = LoginPage {
        client_host: client_display_host(client),
        client_name: client.name(),
        error,
        action: &app.shared.endpoints.authorization,
        request: &request,
        csrf: &csrf,
        username,
    };
    render(status, &page, None)
}

/// `POST /authorize` with `step=login`.
pub async fn submit(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let pending = match open_pending(app, headers, form) {
        Ok(p) => p,
        Err(page) => return page.respond(false),
    };
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if !app
        .front
        .sealer
        .csrf_ok(CSRF_LOGIN, &[&pending.browser, &pending.id], token)
    {
        return csrf_refused().respond(false);
    }
    let Identity::Local(users) = &app.front.identity else {
        return ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "No password sign-in here",
            "This server signs users in through its identity provider, not with a password.",
            "Go back to the application and start signing in again.",
        )
        .respond(false);
    };
    let client = match recheck_client(app, &pending).await {
        Ok(c) => c,
        Err(page) => return page.respond(false),
    };
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let user = match users.verify(username, password).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "password verification failed");
            return ErrorPage::server_fault("check your password").respond(false);
        }
    };
    let Some(user) = user else {
        audit!(event = "login_failed", client_id = %pending.client_id, reason = "bad_credentials");
        return page(
            app,
            &client,
            &pending,
            Some("Incorrect username or password."),
            username,
            StatusCode::UNAUTHORIZED,
        );
    };
    let Ok(sid) = random_b64(16) else {
        return ErrorPage::server_fault("start your session").respond(false);
    };
    let session = Session {
        sid,
        sub: user.subject,
        name: user.name,
        auth_time: now_secs(),
        upstream_ref: None,
    };
    audit!(event = "login", subject = %session.sub, client_id = %pending.client_id, method = "local");
    let cookie = app.front.cookies.start_session(&session, &app.front.sealer);
    let mut response = consent::decide(app, &session, &client, &pending, None).await;
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

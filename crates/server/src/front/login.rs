//! The local login step: render the form, check the password (argon2id
//! off the async executor), start the sealed session, continue to consent.
//!
//! Login CSRF: the form's `csrf` is an HMAC over the browser-binding cookie and the pending
//! request id; the pending request itself also names the browser
//! ([`super::checks::open_pending`]).
//! A wrong password — or an unknown user — gets the same 401 page and message (no user
//! enumeration).

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::checks::{csrf_refused, open_pending, recheck_client, spend_form};
use super::consent;
use super::ctx::FrontCtx;
use super::pages::{ErrorPage, LoginPage, client_display_host, render};
use super::session::Session;
use crate::audit;
use crate::clients::Client;
use crate::error::ErrorCode;
use crate::grant::{PENDING_TTL_SECS, PendingAuth};
use crate::identity::Identity;
use crate::identity::local::{Login, PasswordError};
use crate::seal::Purpose;

/// Longest username written to an audit event.
const MAX_LOGGED_USERNAME_CHARS: usize = 64;

/// CSRF purpose label of the login form.
pub const CSRF_LOGIN: &str = "login";

/// Render the login form for `pending`.
pub fn page(
    ctx: &FrontCtx,
    client: &Client,
    pending: &PendingAuth,
    error: Option<&str>,
    username: &str,
    status: StatusCode,
) -> Response {
    let sealer = &ctx.services.sealer;
    let Ok(request) = sealer.seal(Purpose::PendingAuth, pending, PENDING_TTL_SECS) else {
        return ErrorPage::server_fault("start the sign-in").respond(false);
    };
    let csrf = sealer.csrf_token(CSRF_LOGIN, &[&pending.browser, &pending.id]);
    let page = LoginPage {
        client_host: client_display_host(client),
        dcr: matches!(client, Client::Dcr(_)),
        client_name: client.name(),
        error,
        action: &ctx.services.endpoints.authorization,
        request: &request,
        csrf: &csrf,
        username,
    };
    render(status, &page, None)
}

/// `POST /authorize` with `step=login`.
pub async fn submit(
    ctx: &FrontCtx,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let pending = match open_pending(ctx, headers, form) {
        Ok(p) => p,
        Err(page) => return page.respond(false),
    };
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if !ctx
        .services
        .sealer
        .csrf_ok(CSRF_LOGIN, &[&pending.browser, &pending.id], token)
    {
        return csrf_refused().respond(false);
    }
    let Identity::Local(users) = &*ctx.identity else {
        return ErrorPage::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "No password sign-in here",
            "This server signs users in through its identity provider, not with a password.",
            "Go back to the application and start signing in again.",
        )
        .respond(false);
    };
    let client = match recheck_client(&ctx.services, &pending).await {
        Ok(c) => c,
        Err(page) => return page.respond(false),
    };
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    // The username as logged: bounded, so a login form cannot write megabytes into the log.
    let logged: String = username.chars().take(MAX_LOGGED_USERNAME_CHARS).collect();
    let user = match users.login(username, password).await {
        Ok(Login::Ok(u)) => u,
        Ok(Login::Refused) => {
            audit!(event = "login_failed", client_id = %pending.client_id, username = %logged,
                reason = "bad_credentials");
            return page(
                ctx,
                &client,
                &pending,
                Some("Incorrect username or password."),
                username,
                StatusCode::UNAUTHORIZED,
            );
        }
        Ok(Login::Throttled { retry_after_secs }) => {
            audit!(event = "login_failed", client_id = %pending.client_id, username = %logged,
                reason = "throttled", retry_after_secs = retry_after_secs);
            let message = format!(
                "Too many failed sign-ins for this username. Try again in {retry_after_secs} \
                 seconds."
            );
            return page(
                ctx,
                &client,
                &pending,
                Some(&message),
                username,
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
        Err(e) => {
            // Busy is load, not a fault: no error log line per refused attempt.
            if !matches!(e, PasswordError::Busy) {
                tracing::error!(error = %e, "password verification failed");
            }
            return ErrorPage::server_fault("check your password").respond(false);
        }
    };
    // One successful sign-in per login form (a replayed POST does not start another session).
    if let Err(page) = spend_form(&ctx.services, "login-form", &pending).await {
        return page.respond(false);
    }
    let session = Session {
        sid: crate::rand::token(16),
        sub: user.subject,
        name: user.name,
        auth_time: crate::time::now_secs(),
        idp_ref: None,
    };
    audit!(event = "login", subject = %session.sub, client_id = %pending.client_id, method = "local");
    let cookie = ctx.cookies.start_session(&session, &ctx.services.sealer);
    let mut response = consent::decide(ctx, &session, &client, &pending, None).await;
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

//! Ending the browser's sign-in (review finding M3: there was no way to): `GET /logout` shows a
//! one-button form, `POST /logout` — same-origin, with a CSRF token bound to the session —
//! deletes the session cookie and answers with a confirmation page. Grants already given to
//! applications are not touched (they end by expiry, revocation or the grant lifetime).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::checks::{check_same_origin, csrf_refused};
use super::ctx::FrontCtx;
use super::pages::render;
use crate::audit;

/// CSRF purpose label of the logout form.
pub const CSRF_LOGOUT: &str = "logout";

/// The logout page.
#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    /// Whether the sign-in was just ended.
    pub signed_out: bool,
    /// The signed-in user, if any.
    pub user: Option<&'a str>,
    /// Form action.
    pub action: &'a str,
    /// CSRF token.
    pub csrf: &'a str,
}

/// `GET /logout`.
pub async fn page(State(ctx): State<Arc<FrontCtx>>, headers: HeaderMap) -> Response {
    let session = ctx.cookies.session(&headers, &ctx.services.sealer);
    let sid = session.as_ref().map_or("", |s| s.sid.as_str());
    let csrf = ctx.services.sealer.csrf_token(CSRF_LOGOUT, &[sid]);
    let action = format!("{}/logout", ctx.services.issuer);
    let user = session
        .as_ref()
        .map(|s| s.name.as_deref().unwrap_or(&s.sub));
    render(
        StatusCode::OK,
        &LogoutPage {
            signed_out: false,
            user,
            action: &action,
            csrf: &csrf,
        },
        None,
    )
}

/// `POST /logout`.
pub async fn submit(
    State(ctx): State<Arc<FrontCtx>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(page) = check_same_origin(&headers, &ctx.origin) {
        return page.respond(false);
    }
    let session = ctx.cookies.session(&headers, &ctx.services.sealer);
    let sid = session.as_ref().map_or("", |s| s.sid.as_str());
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if !ctx.services.sealer.csrf_ok(CSRF_LOGOUT, &[sid], token) {
        return csrf_refused().respond(false);
    }
    if let Some(s) = &session {
        audit!(event = "logout", subject = %s.sub);
    }
    let mut response = render(
        StatusCode::OK,
        &LogoutPage {
            signed_out: true,
            user: None,
            action: "",
            csrf: "",
        },
        None,
    );
    if let Some(c) = ctx.cookies.clear(ctx.cookies.session) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

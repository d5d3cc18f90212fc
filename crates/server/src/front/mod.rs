//! Browser-facing endpoints: `GET /authorize` ([`authorize`]), the login and consent forms
//! posted back to `POST /authorize` ([`login`], [`consent`]), the identity provider's
//! callback ([`idp_callback`]) and the end of a browser sign-in ([`logout`]).
//!
//! State between steps lives in the browser, sealed (`crate::seal`): the pending authorization
//! request rides in a hidden form field, the user session and an IdP sign-in in cookies
//! ([`session`]). Unauthenticated `GET /authorize` traffic therefore writes nothing to the
//! store and keeps nothing in memory (FastMCP keeps a 15-minute transaction per request).
//!
//! Form contract (docs/architecture.md, *Authorization server*): `<form method="post">`; login
//! inputs `username`, `password`; consent buttons `name="decision"` values `approve`/`deny`; a
//! hidden `csrf` input; plus hidden `step` (`login`/`consent`) and `request` (the sealed pending
//! request).
//!
//! Inside the channel: [`mod@authorize`] → [`flow`] → [`login`] / [`idp_callback`] →
//! [`consent`]; all of them use [`checks`], [`pages`], [`session`] and [`ctx`]. The channel
//! never imports the back channel.

pub mod authorize;
pub mod checks;
pub mod consent;
pub mod ctx;
pub mod flow;
pub mod idp_callback;
pub mod login;
pub mod logout;
pub mod pages;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use crate::error::ErrorCode;
use crate::identity::CALLBACK_PATH;
use checks::{check_rate_limit, check_same_origin};
pub use ctx::FrontCtx;
use pages::ErrorPage;

/// Routes: `GET/POST /authorize`, `GET /upstream/callback`, `GET/POST /logout`.
pub fn routes(ctx: Arc<FrontCtx>) -> Router {
    Router::new()
        .route(
            "/authorize",
            get(authorize::get_authorize).post(post_authorize),
        )
        .route(CALLBACK_PATH, get(idp_callback::callback))
        .route("/logout", get(logout::page).post(logout::submit))
        .with_state(ctx)
}

/// `POST /authorize`: the login or consent form.
async fn post_authorize(
    State(ctx): State<Arc<FrontCtx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let ip = ctx.services.client_ip(peer.ip(), &headers);
    if let Err(page) = check_rate_limit(&ctx.services, ip).await {
        return page.respond(false);
    }
    if let Err(page) = check_same_origin(&headers, &ctx.origin) {
        return page.respond(false);
    }
    match form.get("step").map(String::as_str) {
        Some("login") => login::submit(&ctx, &headers, &form).await,
        Some("consent") => consent::submit(&ctx, &headers, &form).await,
        _ => ErrorPage::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "Unexpected form",
            "This form submission is not a sign-in or consent form of this server.",
            "Go back to the application and start signing in again.",
        )
        .respond(false),
    }
}

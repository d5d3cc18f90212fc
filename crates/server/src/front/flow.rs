//! The step after a checked authorization request (and after the login or IdP callback): a
//! signed-in user goes to the consent decision; otherwise the identity source takes over — the
//! login form, or a redirect to the identity provider.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::ctx::FrontCtx;
use super::{consent, idp_callback, login, session};
use crate::clients::Client;
use crate::grant::PendingAuth;
use crate::identity::Identity;

/// Longest browser-binding cookie value accepted (ours are 22 characters).
const MAX_BROWSER_ID_CHARS: usize = 64;

/// Continue `pending`: bind it to this browser (setting the binding cookie on first contact),
/// then consent for a signed-in user, else login.
pub async fn respond(
    ctx: &FrontCtx,
    headers: &HeaderMap,
    client: &Client,
    mut pending: PendingAuth,
) -> Response {
    let (browser, new_browser) = match session::get(headers, ctx.cookies.browser) {
        Some(b) if b.len() <= MAX_BROWSER_ID_CHARS => (b.to_owned(), false),
        _ => (crate::rand::token(16), true),
    };
    pending.browser = browser;
    let mut response = if let Some(s) = ctx.cookies.session(headers, &ctx.services.sealer) {
        consent::decide(ctx, &s, client, &pending, None).await
    } else {
        match &*ctx.identity {
            Identity::Local(_) => login::page(ctx, client, &pending, None, "", StatusCode::OK),
            Identity::Idp(idp) => idp_callback::begin(ctx, idp, &pending).await,
        }
    };
    if new_browser && let Some(v) = ctx.cookies.set(ctx.cookies.browser, &pending.browser, None) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

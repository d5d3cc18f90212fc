//! Front-channel wiring of the identity provider ("OAuth proxy" mode): `/authorize` without a
//! session sends the browser to the IdP with cimdgate's own state/nonce/PKCE, the pending
//! request and those secrets sealed into a short-lived cookie (no server state);
//! `GET /upstream/callback` (rate-limited per source; each sign-in cookie good for one callback)
//! finishes the sign-in, stores the IdP's tokens sealed
//! (`Store::put_idp_tokens`), starts the session and continues to consent.
//! IdP failures become clear error pages (IdP down → 502).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::checks::{check_rate_limit, recheck_client, spend_once};
use super::consent;
use super::ctx::FrontCtx;
use super::pages::{ErrorPage, redirect};
use super::session::{self, IDP_SIGN_IN_TTL_SECS, Session};
use crate::audit;
use crate::error::ErrorCode;
use crate::grant::PendingAuth;
use crate::identity::Identity;
use crate::identity::idp::vault::store_tokens;
use crate::identity::idp::{CallbackParams, Idp, IdpError, IdpPending};
use crate::seal::Purpose;

/// What the IdP sign-in cookie carries.
#[derive(Serialize, Deserialize)]
struct Flow {
    pending: PendingAuth,
    #[serde(rename = "upstream")]
    idp: IdpPending,
}

fn idp_page(e: &IdpError) -> ErrorPage {
    let hint = if e.status() == StatusCode::BAD_GATEWAY {
        "This is not your fault. Try again in a few minutes; if it persists, tell the server's \
         administrator."
    } else {
        "Go back to the application and start signing in again."
    };
    ErrorPage::new(e.status(), e.code(), "Sign-in failed", e.to_string(), hint)
}

/// Send the browser to the IdP.
pub async fn begin(ctx: &FrontCtx, idp: &Idp, pending: &PendingAuth) -> Response {
    let (url, up) = match idp.begin().await {
        Ok(v) => v,
        Err(e) => {
            audit!(event = "upstream_failed", reason = e.kind(), client_id = %pending.client_id);
            return idp_page(&e).respond(false);
        }
    };
    let flow = Flow {
        pending: pending.clone(),
        idp: up,
    };
    let cookies = &ctx.cookies;
    let Some(cookie) = ctx
        .services
        .sealer
        .seal(Purpose::IdpSignIn, &flow, IDP_SIGN_IN_TTL_SECS)
        .ok()
        .and_then(|v| cookies.set(cookies.idp_sign_in, &v, Some(IDP_SIGN_IN_TTL_SECS)))
    else {
        return ErrorPage::server_fault("start the sign-in").respond(false);
    };
    let mut r = redirect(url.as_str());
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

/// `GET /upstream/callback`.
pub async fn callback(
    State(ctx): State<Arc<FrontCtx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    // Each callback costs an exchange at the IdP: limited per source like `/authorize`.
    let ip = ctx.services.client_ip(peer.ip(), &headers);
    if let Err(page) = check_rate_limit(&ctx.services, ip).await {
        return page.respond(false);
    }
    let Identity::Idp(idp) = &*ctx.identity else {
        return ErrorPage::new(
            StatusCode::NOT_FOUND,
            ErrorCode::InvalidRequest,
            "Not available",
            "This server does not use an upstream identity provider.",
            "Go back to the application.",
        )
        .respond(false);
    };
    let flow: Option<Flow> = session::get(&headers, ctx.cookies.idp_sign_in)
        .and_then(|raw| ctx.services.sealer.open(Purpose::IdpSignIn, raw).ok());
    let Some(flow) = flow else {
        return ErrorPage::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "No sign-in in progress",
            "This browser has no sign-in in progress (it expired after 10 minutes, was \
             finished already, or cookies are disabled).",
            "Go back to the application and start signing in again.",
        )
        .respond(false);
    };
    let clear = ctx.cookies.clear(ctx.cookies.idp_sign_in);
    let mut response = match spend_flow(&ctx, &flow).await {
        Ok(()) => finish(&ctx, idp, &params, flow).await,
        Err(page) => page.respond(false),
    };
    if let Some(c) = clear {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// A sign-in cookie is good for one callback: its `state` is recorded as used (by hash, until
/// the cookie expires), so a copied or replayed cookie cannot finish a second sign-in.
async fn spend_flow(ctx: &FrontCtx, flow: &Flow) -> Result<(), ErrorPage> {
    use secrecy::ExposeSecret;
    use sha2::Digest;
    let key = cimdgate_store::hex(&sha2::Sha256::digest(
        flow.idp.state.expose_secret().as_bytes(),
    ));
    let until = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(flow.idp.created_at + IDP_SIGN_IN_TTL_SECS + 60);
    spend_once(&ctx.services, "idp-sign-in", &key, until).await
}

async fn finish(ctx: &FrontCtx, idp: &Idp, params: &CallbackParams, flow: Flow) -> Response {
    let user = match idp.finish(params, &flow.idp).await {
        Ok(u) => u,
        Err(e) => {
            audit!(event = "upstream_failed", reason = e.kind(), client_id = %flow.pending.client_id);
            return idp_page(&e).respond(false);
        }
    };
    let client = match recheck_client(&ctx.services, &flow.pending).await {
        Ok(c) => c,
        Err(page) => return page.respond(false),
    };
    let services = &ctx.services;
    let (reference, sid) = (crate::rand::token(16), crate::rand::token(16));
    if let Err(e) = store_tokens(services, &reference, &user.tokens).await {
        tracing::error!(error = %e, "cannot store the IdP tokens");
        return ErrorPage::server_fault("finish the sign-in").respond(false);
    }
    let session = Session {
        sid,
        sub: user.subject,
        name: user.name.or(user.email),
        auth_time: crate::time::now_secs(),
        idp_ref: Some(reference),
    };
    audit!(event = "login", subject = %session.sub, client_id = %flow.pending.client_id, method = "upstream");
    let cookie = ctx.cookies.start_session(&session, &services.sealer);
    let mut response = consent::decide(ctx, &session, &client, &flow.pending, None).await;
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

//! Front-channel wiring of upstream identity (SPEC §4 proxy mode; contract §3): `/authorize`
//! without a session sends the browser to the IdP with cimdgate's own state/nonce/PKCE, the
//! pending request and those secrets sealed into a short-lived cookie (no server state);
//! `GET /upstream/callback` finishes the sign-in, stores the upstream tokens encrypted
//! (`store.put_upstream_tokens`), starts the session and continues to consent.
//! Upstream failures become clear error pages (IdP down → 502).

use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::authorize::PendingAuth;
use super::pages::{ErrorPage, redirect};
use super::seal::{Purpose, now_secs, random_b64};
use super::session::{self, Session, UPSTREAM_TTL_SECS};
use super::{consent, recheck_client};
use crate::audit;
use crate::identity::Identity;
use crate::identity::upstream::{CallbackParams, UpstreamError, UpstreamIdp, UpstreamPending};
use crate::state::AppState;

/// What the upstream cookie carries.
#[derive(Serialize, Deserialize)]
struct Flow {
    pending: PendingAuth,
    upstream: UpstreamPending,
}

fn upstream_page(e: &UpstreamError) -> ErrorPage {
    let hint = if e.status() == StatusCode::BAD_GATEWAY {
        "This is not your fault. Try again in a few minutes; if it persists, tell the server's \
         administrator."
    } else {
        "Go back to the application and start signing in again."
    };
    ErrorPage::new(e.status(), e.kind(), "Sign-in failed", e.to_string(), hint)
}

/// Send the browser to the IdP.
pub async fn begin(app: &AppState, idp: &UpstreamIdp, pending: &PendingAuth) -> Response {
    let (url, up) = match idp.begin().await {
        Ok(v) => v,
        Err(e) => {
            audit!(event = "upstream_failed", reason = e.kind(), client_id = %pending.client_id);
            return upstream_page(&e).respond(false);
        }
    };
    let flow = Flow {
        pending: pending.clone(),
        upstream: up,
    };
    let cookies = &app.front.cookies;
    let Some(cookie) = app
        .front
        .sealer
        .seal(Purpose::Upstream, &flow, UPSTREAM_TTL_SECS)
        .ok()
        .and_then(|v| cookies.set(cookies.upstream, &v, Some(UPSTREAM_TTL_SECS)))
    else {
        return ErrorPage::server_fault("start the sign-in").respond(false);
    };
    let mut r = redirect(url.as_str());
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

/// `GET /upstream/callback`.
pub async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let front = &app.front;
    let Identity::Upstream(idp) = &front.identity else {
        return ErrorPage::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "Not available",
            "This server does not use an upstream identity provider.",
            "Go back to the application.",
        )
        .respond(false);
    };
    let flow: Option<Flow> = session::get(&headers, front.cookies.upstream)
        .and_then(|raw| front.sealer.open(Purpose::Upstream, raw).ok());
    let Some(flow) = flow else {
        return ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "No sign-in in progress",
            "This browser has no sign-in in progress (it expired after 10 minutes, was \
             finished already, or cookies are disabled).",
            "Go back to the application and start signing in again.",
        )
        .respond(false);
    };
    let clear = front.cookies.clear(front.cookies.upstream);
    let mut response = finish(&app, idp, &params, flow).await;
    if let Some(c) = clear {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

async fn finish(
    app: &AppState,
    idp: &UpstreamIdp,
    params: &CallbackParams,
    flow: Flow,
) -> Response {
    let user = match idp.finish(params, &flow.upstream).await {
        Ok(u) => u,
        Err(e) => {
            audit!(event = "upstream_failed", reason = e.kind(), client_id = %flow.pending.client_id);
            return upstream_page(&e).respond(false);
        }
    };
    let client = match recheck_client(app, &flow.pending).await {
        Ok(c) => c,
        Err(page) => return page.respond(false),
    };
    let front = &app.front;
    let ttl = app.shared.config.tokens.refresh_token_ttl_secs;
    let (Ok(reference), Ok(sid)) = (random_b64(16), random_b64(16)) else {
        return ErrorPage::server_fault("finish the sign-in").respond(false);
    };
    let Ok(sealed) = front
        .sealer
        .seal(Purpose::UpstreamTokens, &user.tokens, ttl)
    else {
        return ErrorPage::server_fault("finish the sign-in").respond(false);
    };
    let expires = SystemTime::now() + Duration::from_secs(ttl);
    if let Err(e) = app
        .shared
        .store
        .put_upstream_tokens(&reference, sealed.as_bytes(), expires)
        .await
    {
        tracing::error!(error = %e, "cannot store upstream tokens");
        return ErrorPage::server_fault("finish the sign-in").respond(false);
    }
    let session = Session {
        sid,
        sub: user.subject,
        name: user.name.or(user.email),
        auth_time: now_secs(),
        upstream_ref: Some(reference),
    };
    audit!(event = "login", subject = %session.sub, client_id = %flow.pending.client_id, method = "upstream");
    let cookie = front.cookies.start_session(&session, &front.sealer);
    let mut response = consent::decide(app, &session, &client, &flow.pending, None).await;
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

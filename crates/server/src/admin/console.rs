//! The admin console: server-rendered pages on the admin listener for the client inventory and
//! the administrator's actions (docs/architecture.md, *Governance*). The same domain calls as
//! the JSON API ([`super::clients`]); the same page hardening as the consent page
//! ([`crate::page_headers::security_headers`]: no script, no framing, no external assets).
//!
//! | route | what |
//! |---|---|
//! | `GET /admin/` | the inventory (`?status=`, `?host=` filters); not signed in: 303 to the sign-in page |
//! | `GET /admin/login` | the sign-in form (one field: the admin token) |
//! | `POST /admin/login` | checks the token (constant time); sets the console cookie, 303 to `/admin/` |
//! | `POST /admin/logout` | clears the cookie |
//! | `GET /admin/clients/{id}` | one client: document, status, history, users, grants, actions |
//! | `POST /admin/clients/{id}/{block,unblock,approve,deny,revoke}` | the action, 303 back |
//!
//! **Sign-in.** The cookie `cimdgate_admin` (`HttpOnly; SameSite=Strict; Path=/admin`) holds a
//! value sealed for [`Purpose::AdminSession`]: an expiry of [`CONSOLE_SESSION_TTL_SECS`], a
//! random CSRF secret, and a tag of the admin token it was issued under, so a new token ends
//! every console session. The server keeps no session table; signing out clears the cookie.
//!
//! **Forms.** Every POST but the sign-in carries `csrf` = [`Sealer::csrf_token`] over the
//! session's CSRF secret; a missing or wrong one is a 403 page and nothing is done. Every POST
//! (sign-in included) is refused with 403 when the browser labels it cross-site
//! ([`crate::page_headers::cross_site`]). Bad input is a 4xx page, never data of another client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use cimdgate_store::{ClientStatus, StoreError};

use super::AdminCtx;
use super::clients::{bad_id_message, load_detail, plausible_id, summaries};
use super::console_pages::{
    ClientPage, InventoryPage, LoginPage, Row, client_href, message, render, see_other,
};
use crate::audit;
use crate::governance::ActionError;
use crate::page_headers::{cross_site, security_headers};
use crate::seal::{Purpose, Sealer, random_b64};

/// The console cookie's name.
pub const COOKIE: &str = "cimdgate_admin";
/// How long a console sign-in lasts: 8 h (a working day), then the token is asked again.
pub const CONSOLE_SESSION_TTL_SECS: u64 = 8 * 3600;
/// Largest console form (a reason, a scope list).
pub const MAX_CONSOLE_FORM: usize = 16 * 1024;
/// The CSRF token purpose of the console's forms.
const CSRF_PURPOSE: &str = "admin-console";
/// Bytes of randomness in a session's CSRF secret.
const CSRF_SECRET_BYTES: usize = 32;

/// A console sign-in, sealed into [`COOKIE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleSession {
    /// Random secret the forms' CSRF tokens are bound to.
    csrf: String,
    /// Tag of the admin token this session was issued under ([`token_tag`]).
    tok: String,
}

/// Why a request carries no usable console session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie.
    Missing,
    /// Expired, or issued under another admin token.
    Stale,
    /// Not sealed by this server for the console.
    Invalid,
}

/// A tag of the admin token's digest: a session is valid only under the token it was issued
/// under. `None` without a configured token (then there are no sessions).
fn token_tag(ctx: &AdminCtx) -> Option<String> {
    let d = ctx.token_digest.as_ref()?;
    let mut h = Sha256::new();
    h.update(b"cimdgate admin console session v1\0");
    h.update(d);
    Some(URL_SAFE_NO_PAD.encode(h.finalize()))
}

/// The value of cookie `name` in `headers` (the first one).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The console session of a request.
pub fn session_of(ctx: &AdminCtx, headers: &HeaderMap) -> Result<ConsoleSession, NoSession> {
    let raw = cookie(headers, COOKIE).ok_or(NoSession::Missing)?;
    let s: ConsoleSession = ctx
        .services
        .sealer
        .open(Purpose::AdminSession, raw)
        .map_err(|e| match e {
            crate::seal::OpenError::Expired => NoSession::Stale,
            crate::seal::OpenError::Invalid => NoSession::Invalid,
        })?;
    let current = token_tag(ctx).ok_or(NoSession::Stale)?;
    if bool::from(current.as_bytes().ct_eq(s.tok.as_bytes())) {
        Ok(s)
    } else {
        Err(NoSession::Stale)
    }
}

fn csrf_token(sealer: &Sealer, s: &ConsoleSession) -> String {
    sealer.csrf_token(CSRF_PURPOSE, &[&s.csrf])
}

/// The console routes (relative to `/admin`); [`super::router`] puts them behind the rate
/// limit and the session check (`/login` excepted).
pub fn routes(ctx: Arc<AdminCtx>) -> Router {
    Router::new()
        .route("/", get(inventory))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/clients/{id}", get(client_page))
        .route("/clients/{id}/{action}", post(act))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_CONSOLE_FORM,
        ))
        // Also on what axum and the body limit answer themselves (405, 413).
        .layer(axum::middleware::map_response(harden))
        .with_state(ctx)
}

async fn harden(mut r: Response) -> Response {
    security_headers(r.headers_mut(), None);
    r
}

/// `Set-Cookie` for the console cookie; `max_age` 0 deletes it.
fn set_cookie(value: &str, max_age: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .ok()
}

/// The console's answer to a request without a usable session: `GET /admin/` with no cookie
/// at all goes to the sign-in page; anything else is the 401 sign-in page (a bad cookie is
/// cleared and audited). Never data.
pub fn unauthorized(path: &str, is_get: bool, why: NoSession, ip: &str) -> Response {
    if why == NoSession::Missing && is_get && path == "/" {
        return see_other("/admin/login", None);
    }
    if why == NoSession::Invalid {
        audit!(event = "admin_login_failed", ip = %ip, reason = "invalid_cookie", path = %path.chars().take(200).collect::<String>());
    }
    let mut r = render(
        StatusCode::UNAUTHORIZED,
        &LoginPage {
            message: Some(match why {
                NoSession::Stale => "Your console sign-in has expired. Sign in again.",
                _ => "Sign in with the admin token to continue.",
            }),
        },
    );
    if why != NoSession::Missing
        && let Some(c) = set_cookie("", 0)
    {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// The origin a same-site form post names: `http://` + the `Host` it was sent to.
fn our_origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    format!("http://{host}")
}

/// The 403 page when the post does not come from this site or (with a `session`) does not
/// carry the session's CSRF token; `None`: it may proceed.
fn refuse_post(
    ctx: &AdminCtx,
    headers: &HeaderMap,
    session: Option<&ConsoleSession>,
    csrf: Option<&str>,
) -> Option<Response> {
    if let Some(what) = cross_site(headers, &our_origin(headers)) {
        return Some(message(
            StatusCode::FORBIDDEN,
            "Request refused",
            &format!("This form was submitted from another site ({what}). Nothing was changed."),
        ));
    }
    if let Some(s) = session {
        let ok = csrf.is_some_and(|t| ctx.services.sealer.csrf_ok(CSRF_PURPOSE, &[&s.csrf], t));
        if !ok {
            return Some(message(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form's security token is missing or does not match your console sign-in \
                 (CSRF protection). Nothing was changed. Reload the page and try again.",
            ));
        }
    }
    None
}

fn store_failure(e: &StoreError) -> Response {
    tracing::error!(error = %e, "admin console: store failure");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The store is not available; try again in a moment.",
    )
}

fn action_failure(e: &ActionError) -> Response {
    match e {
        ActionError::NotFound(_) => {
            message(StatusCode::NOT_FOUND, "No such client", &e.to_string())
        }
        ActionError::Invalid(m) => message(StatusCode::BAD_REQUEST, "Not done", m),
        ActionError::Store(s) => store_failure(s),
    }
}

fn form_failure(e: &FormRejection) -> Response {
    match e {
        FormRejection::BytesRejection(_) => message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large",
            &format!("The form is larger than {MAX_CONSOLE_FORM} bytes."),
        ),
        other => message(
            StatusCode::BAD_REQUEST,
            "Malformed form",
            &other.body_text(),
        ),
    }
}

// ---- handlers --------------------------------------------------------------------------------

async fn login_page(State(ctx): State<Arc<AdminCtx>>, headers: HeaderMap) -> Response {
    if session_of(&ctx, &headers).is_ok() {
        return see_other("/admin/", None);
    }
    render(StatusCode::OK, &LoginPage { message: None })
}

/// The sign-in form.
#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(ctx): State<Arc<AdminCtx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if let Some(r) = refuse_post(&ctx, &headers, None, None) {
        return r;
    }
    let Form(form) = match form {
        Ok(f) => f,
        Err(e) => return form_failure(&e),
    };
    let (Some(tok), true) = (
        token_tag(&ctx),
        ctx.token_matches(form.token.trim().as_bytes()),
    ) else {
        let reason = if ctx.token_digest.is_none() {
            "no_token_configured"
        } else {
            "wrong"
        };
        audit!(event = "admin_login_failed", ip = %peer.ip(), reason, path = "/login");
        return render(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                message: Some("That is not the admin token ([admin] token_file)."),
            },
        );
    };
    let sealed = random_b64(CSRF_SECRET_BYTES).and_then(|csrf| {
        ctx.services.sealer.seal(
            Purpose::AdminSession,
            &ConsoleSession { csrf, tok },
            CONSOLE_SESSION_TTL_SECS,
        )
    });
    let Ok(sealed) = sealed else {
        tracing::error!("admin console: cannot seal a session");
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The sign-in could not be completed; try again.",
        );
    };
    audit!(event = "admin_console_login", ip = %peer.ip());
    see_other("/admin/", set_cookie(&sealed, CONSOLE_SESSION_TTL_SECS))
}

/// A form carrying only the CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(ctx): State<Arc<AdminCtx>>,
    Extension(session): Extension<ConsoleSession>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(f) => f,
        Err(e) => return form_failure(&e),
    };
    if let Some(r) = refuse_post(&ctx, &headers, Some(&session), form.csrf.as_deref()) {
        return r;
    }
    see_other("/admin/login", set_cookie("", 0))
}

/// `GET /admin/` filters.
#[derive(Deserialize)]
struct InventoryQuery {
    status: Option<String>,
    host: Option<String>,
}

async fn inventory(
    State(ctx): State<Arc<AdminCtx>>,
    Extension(session): Extension<ConsoleSession>,
    query: Result<Query<InventoryQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad filter",
            "The filter is malformed.",
        );
    };
    let status_text = q.status.as_deref().unwrap_or("").trim();
    let status = match status_text {
        "" => None,
        s => match ClientStatus::parse(s) {
            Some(st) => Some(st),
            None => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "Bad filter",
                    "Unknown status: use active, pending, blocked or denied.",
                );
            }
        },
    };
    let host = q.host.as_deref().map(str::trim).unwrap_or("");
    let mut list = match summaries(&ctx, status, (!host.is_empty()).then_some(host)).await {
        Ok(l) => l,
        Err(e) => return store_failure(&e),
    };
    list.sort_by(|a, b| (&a.host, &a.client_id).cmp(&(&b.host, &b.client_id)));
    let rows = list
        .into_iter()
        .map(|s| Row {
            href: client_href(&s.client_id),
            s,
        })
        .collect();
    render(
        StatusCode::OK,
        &InventoryPage {
            rows,
            status: status.map_or("", ClientStatus::as_str),
            host,
            csrf: csrf_token(&ctx.services.sealer, &session),
        },
    )
}

async fn client_page(
    State(ctx): State<Arc<AdminCtx>>,
    Extension(session): Extension<ConsoleSession>,
    Path(id): Path<String>,
) -> Response {
    if !plausible_id(&id) {
        return message(
            StatusCode::BAD_REQUEST,
            "Not a client_id",
            &bad_id_message(),
        );
    }
    match load_detail(&ctx, &id).await {
        Ok(d) => render(
            StatusCode::OK,
            &ClientPage {
                d,
                href: client_href(&id),
                csrf: csrf_token(&ctx.services.sealer, &session),
            },
        ),
        Err(e) => action_failure(&e),
    }
}

/// The fields of an action form; empty text counts as absent.
#[derive(Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    reason: Option<String>,
    scopes: Option<String>,
    subject: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

async fn act(
    State(ctx): State<Arc<AdminCtx>>,
    Extension(session): Extension<ConsoleSession>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(f) => f,
        Err(e) => return form_failure(&e),
    };
    if let Some(r) = refuse_post(&ctx, &headers, Some(&session), form.csrf.as_deref()) {
        return r;
    }
    if !plausible_id(&id) {
        return message(
            StatusCode::BAD_REQUEST,
            "Not a client_id",
            &bad_id_message(),
        );
    }
    let gov = &ctx.services.governance;
    let ip = peer.ip().to_string();
    let done = match action.as_str() {
        "block" => gov.block(&id, non_empty(&form.reason), &ip).await.map(drop),
        "unblock" => gov.unblock(&id, &ip).await.map(drop),
        "approve" => gov
            .approve(&id, non_empty(&form.scopes), &ip)
            .await
            .map(drop),
        "deny" => gov.deny(&id, non_empty(&form.reason), &ip).await.map(drop),
        "revoke" => gov
            .revoke(&id, non_empty(&form.subject), &ip)
            .await
            .map(drop),
        _ => {
            return message(
                StatusCode::NOT_FOUND,
                "No such action",
                "Use block, unblock, approve, deny or revoke.",
            );
        }
    };
    match done {
        Ok(()) => see_other(&client_href(&id), None),
        Err(e) => action_failure(&e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_console_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("cimdgate_session=x; cimdgate_admin=abc=; other=1"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc="));
        assert_eq!(cookie(&h, "missing"), None);
    }
}

//! The checks every front-channel request shares, each turning its failure into the error page
//! (never a redirect: until the client and its redirect URI are verified there is nowhere safe
//! to send the browser):
//!
//! - [`check_rate_limit`] — per source IP;
//! - [`check_client`] — the client resolves (trust policy before any fetch) and is admitted by
//!   the administrators (approval mode: an "awaiting approval" page);
//! - [`check_redirect_uri`] — exact match against the registration and the operator allow-list;
//! - [`check_same_origin`] — form posts come from this site;
//! - [`open_pending`] — the sealed pending request of a form, bound to this browser;
//! - [`recheck_client`] — client and redirect URI again after login (the document may have
//!   changed since `GET /authorize`).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode};

use cimd::redirect::RedirectUri;

use super::ctx::FrontCtx;
use super::pages::ErrorPage;
use super::session;
use crate::audit;
use crate::clients::{Client, ClientError, Purpose, resolve_client};
use crate::error::ErrorCode;
use crate::governance::Admission;
use crate::grant::PendingAuth;
use crate::seal::Purpose as Sealed;
use crate::services::Services;

const HINT_DEV: &str = "If you develop this application, fix the problem above; otherwise tell \
                        the application's developer.";
const HINT_APPROVAL: &str = "An administrator of this server has to approve this application before \
                             anyone can sign in to it. Ask them to approve it, then try again.";
const HINT_ADMIN: &str = "An administrator of this server decided this application may not be used \
                          here. Ask them if you think this is a mistake.";
const HINT_RESTART: &str = "Go back to the application and start signing in again.";

/// Per-IP rate limit.
pub async fn check_rate_limit(services: &Services, ip: IpAddr) -> Result<(), ErrorPage> {
    services
        .limits
        .check_ip(ip)
        .await
        .map_err(|e| ErrorPage::from_oauth(&e, "Wait a few seconds and try again."))
}

/// The client must resolve. Every failure says exactly what is wrong (FastMCP: an opaque
/// "client not found").
pub async fn check_client(
    services: &Services,
    client_id: Option<&str>,
    repeated: &[&str],
) -> Result<Client, ErrorPage> {
    let refuse = |problem: &str| {
        ErrorPage::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "Invalid sign-in request",
            problem,
            HINT_DEV,
        )
    };
    if repeated.contains(&"client_id") {
        return Err(refuse("The request names client_id more than once."));
    }
    let Some(raw) = client_id.filter(|c| !c.is_empty()) else {
        return Err(refuse(
            "The request has no client_id parameter, so the application cannot be identified.",
        ));
    };
    resolve_client(services, raw, Purpose::Authorize)
        .await
        .map_err(|e| {
            let page = ErrorPage::from_oauth(&e.to_oauth(Purpose::Authorize), HINT_DEV);
            match &e {
                ClientError::Refused {
                    admission: Admission::Pending,
                    ..
                } => ErrorPage {
                    title: "Awaiting administrator approval".into(),
                    hint: HINT_APPROVAL.into(),
                    ..page
                },
                ClientError::Refused { .. } => ErrorPage {
                    hint: HINT_ADMIN.into(),
                    ..page
                },
                _ => page,
            }
        })
}

/// The redirect URI: exactly as sent, or the single registered one when none was sent.
pub fn check_redirect_uri(
    services: &Services,
    client: &Client,
    requested: Option<&str>,
    repeated: &[&str],
) -> Result<RedirectUri, ErrorPage> {
    let page = |problem: String| {
        ErrorPage::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "Invalid redirect URI",
            problem,
            "The sign-in was stopped to protect you: this server never sends you to an address \
             the application did not register. If you develop this application, register the \
             exact redirect URI in its metadata document.",
        )
    };
    if repeated.contains(&"redirect_uri") {
        return Err(page(
            "The request names redirect_uri more than once.".into(),
        ));
    }
    client
        .redirect_uri(requested, services.redirect_allow_list.as_ref())
        .map_err(|e| page(e.to_string()))
}

/// Refuse cross-site form posts ([`crate::page_headers::cross_site`]). The CSRF token is the
/// primary defence.
pub fn check_same_origin(headers: &HeaderMap, origin: &str) -> Result<(), ErrorPage> {
    match crate::page_headers::cross_site(headers, origin) {
        None => Ok(()),
        Some(what) => Err(ErrorPage::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AccessDenied,
            "Request refused",
            format!("This form was submitted from another site ({what})."),
            HINT_RESTART,
        )),
    }
}

/// Reopen the pending request from a form, checking it belongs to this browser.
pub fn open_pending(
    ctx: &FrontCtx,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<PendingAuth, ErrorPage> {
    let expired = || {
        ErrorPage::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "This sign-in has expired",
            "The sign-in form is too old or was not issued by this server.",
            HINT_RESTART,
        )
    };
    let raw = form.get("request").ok_or_else(expired)?;
    let pending: PendingAuth = ctx
        .services
        .sealer
        .open(Sealed::PendingAuth, raw)
        .map_err(|_| expired())?;
    let browser = session::get(headers, ctx.cookies.browser);
    if browser != Some(pending.browser.as_str()) {
        return Err(ErrorPage::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AccessDenied,
            "Request refused",
            "This form belongs to a sign-in started in another browser (or cookies are disabled).",
            "Enable cookies for this site, go back to the application and start again.",
        ));
    }
    Ok(pending)
}

/// Record `key` as used in `namespace` of the shared store until `until` (the life of the form
/// or cookie that carries it): the first use passes, any replay — a resubmitted form, a copied
/// cookie, on this instance or another — gets a clear 400 page.
pub async fn spend_once(
    services: &Services,
    namespace: &str,
    key: &str,
    until: std::time::SystemTime,
) -> Result<(), ErrorPage> {
    match services.store.record_jti(namespace, key, until).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            audit!(event = "form_replayed", form = namespace);
            Err(ErrorPage::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                "Sign-in already finished",
                "This step was finished already; it cannot be submitted twice.",
                HINT_RESTART,
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, form = namespace, "cannot record a form as used");
            Err(ErrorPage::server_fault("finish the sign-in"))
        }
    }
}

/// [`spend_once`] for a form carrying `pending`: good until the pending request expires.
pub async fn spend_form(
    services: &Services,
    form: &str,
    pending: &PendingAuth,
) -> Result<(), ErrorPage> {
    let until = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(pending.created_at + crate::grant::PENDING_TTL_SECS + 60);
    spend_once(services, form, &pending.id, until).await
}

/// The 403 page for a missing or wrong CSRF token.
pub fn csrf_refused() -> ErrorPage {
    ErrorPage::new(
        StatusCode::FORBIDDEN,
        ErrorCode::AccessDenied,
        "Request refused",
        "The form's security token is missing or does not match your session (CSRF protection).",
        HINT_RESTART,
    )
}

/// Re-resolve the client and re-check the redirect URI of a pending request.
pub async fn recheck_client(
    services: &Services,
    pending: &PendingAuth,
) -> Result<Client, ErrorPage> {
    let client = check_client(services, Some(&pending.client_id), &[]).await?;
    check_redirect_uri(services, &client, Some(pending.redirect_uri.as_str()), &[])?;
    Ok(client)
}

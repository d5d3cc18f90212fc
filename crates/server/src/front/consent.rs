//! The consent step (SPEC §4; anchors §1.7 phishing guidance; MCP security best practices):
//! the page leads with the client_id **hostname**, then the self-declared name, a "verified
//! domain" badge (the document was served from that host), the redirect host with a warning
//! when it is another host, loopback-only or an app scheme, the scopes and the resource.
//!
//! Order in [`decide`]: a remembered decision for (user, client) that still covers this request
//! (same document hash, same redirect URI, scopes within the remembered ones) → a trusted client
//! with `auto_approve_trusted` → the page. The user is always signed in first.
//!
//! CSRF: the consent form's `csrf` is an HMAC over the session id, the pending request id and
//! the document hash shown; missing or wrong → 403.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use cimd::redirect::RedirectUri;
use cimdgate_store::{CodeRecord, ConsentRecord, TokenHash};

use super::authorize::{PENDING_TTL_SECS, PendingAuth, client_redirect};
use super::login::client_display_host;
use super::pages::{ConsentPage, ErrorPage, csp_origin, render, truncate_host};
use super::seal::{Purpose, random_b64};
use super::session::Session;
use super::{csrf_refused, open_pending, recheck_client};
use crate::audit;
use crate::clients::Client;
use crate::state::AppState;

/// CSRF purpose label of the consent form.
pub const CSRF_CONSENT: &str = "consent";

/// The document hash shown to the user ("" for DCR clients).
fn document_hash(client: &Client) -> Option<String> {
    match client {
        Client::Cimd(c) => Some(c.snapshot().1),
        Client::Dcr(_) => None,
    }
}

/// Whether a remembered decision still answers this request.
fn remembered_applies(rec: &ConsentRecord, pending: &PendingAuth, doc_hash: Option<&str>) -> bool {
    if rec.redirect_uri != pending.redirect_uri || rec.document_hash.as_deref() != doc_hash {
        return false;
    }
    if !rec.approved {
        return true;
    }
    let allowed: Vec<&str> = rec.scope.split_whitespace().collect();
    pending
        .scope
        .split_whitespace()
        .all(|s| allowed.contains(&s))
}

/// After sign-in: remembered decision → auto-approve → consent page.
pub async fn decide(
    app: &AppState,
    session: &Session,
    client: &Client,
    pending: &PendingAuth,
    notice: Option<&str>,
) -> Response {
    let doc_hash = document_hash(client);
    if notice.is_none() {
        match app
            .shared
            .store
            .get_consent(&session.sub, &pending.client_id, SystemTime::now())
            .await
        {
            Ok(Some(rec)) if remembered_applies(&rec, pending, doc_hash.as_deref()) => {
                return if rec.approved {
                    approve(app, session, client, pending, true).await
                } else {
                    deny(app, session, pending, true)
                };
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read remembered consent");
                return ErrorPage::server_fault("read your saved decisions").respond(false);
            }
        }
        if let Client::Cimd(c) = client
            && c.auto_approve
        {
            return approve(app, session, client, pending, false).await;
        }
    }
    page(
        app,
        session,
        client,
        pending,
        doc_hash.as_deref().unwrap_or(""),
        notice,
    )
}

/// What to warn about the redirect target, if anything.
pub fn redirect_warning(client: &Client, redirect_uri: &str) -> (String, Option<String>) {
    let Ok(uri) = RedirectUri::parse(redirect_uri) else {
        return (redirect_uri.to_owned(), None);
    };
    let Some(host) = uri.host().map(str::to_owned) else {
        let scheme = uri.scheme().to_owned();
        return (
            format!("the app for “{scheme}:” links"),
            Some(format!(
                "Approving opens whichever app on this device handles “{scheme}:” links. \
                 Continue only if you started this sign-in from that app."
            )),
        );
    };
    let shown = truncate_host(&host);
    if uri.is_loopback() {
        return (
            format!("{shown} (this computer)"),
            Some(
                "Approving sends the authorization to a program running on this computer \
                 (localhost). Continue only if you started this sign-in from an application \
                 on this device."
                    .to_owned(),
            ),
        );
    }
    match client {
        Client::Cimd(c) if !c.id.host().eq_ignore_ascii_case(&host) => {
            let client_host = truncate_host(c.id.host());
            (
                shown.clone(),
                Some(format!(
                    "The authorization will be sent to {shown}, which is not {client_host}, \
                     the domain that published this application. Continue only if you trust \
                     {shown} to act for {client_host}."
                )),
            )
        }
        Client::Dcr(_) => (
            shown.clone(),
            Some(format!(
                "This application registered itself without a verifiable domain; the \
                 authorization will be sent to {shown}."
            )),
        ),
        _ => (shown, None),
    }
}

/// Render the consent page.
fn page(
    app: &AppState,
    session: &Session,
    client: &Client,
    pending: &PendingAuth,
    doc_hash: &str,
    notice: Option<&str>,
) -> Response {
    let front = &app.front;
    let Ok(request) = front
        .sealer
        .seal(Purpose::PendingAuth, pending, PENDING_TTL_SECS)
    else {
        return ErrorPage::server_fault("show the consent page").respond(false);
    };
    let csrf = front
        .sealer
        .csrf_token(CSRF_CONSENT, &[&session.sid, &pending.id, doc_hash]);
    let (redirect_host, redirect_warning) = redirect_warning(client, &pending.redirect_uri);
    let (dcr, trusted) = match client {
        Client::Cimd(c) => (false, c.trusted),
        Client::Dcr(_) => (true, false),
    };
    let page = ConsentPage {
        client_host: client_display_host(client),
        client_id: client.client_id(),
        client_name: client.name(),
        dcr,
        trusted,
        redirect_host,
        redirect_warning,
        scopes: pending.scope.split_whitespace().collect(),
        resource: &pending.resource,
        user: session.name.as_deref().unwrap_or(&session.sub),
        notice,
        action: &app.shared.endpoints.authorization,
        request: &request,
        doc: doc_hash,
        csrf: &csrf,
    };
    render(
        StatusCode::OK,
        &page,
        csp_origin(&pending.redirect_uri).as_deref(),
    )
}

/// `POST /authorize` with `step=consent`.
pub async fn submit(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let pending = match open_pending(app, headers, form) {
        Ok(p) => p,
        Err(page) => return page.respond(false),
    };
    let Some(session) = app.front.cookies.session(headers, &app.front.sealer) else {
        return csrf_refused().respond(false);
    };
    let shown = form.get("doc").map(String::as_str).unwrap_or("");
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if !app
        .front
        .sealer
        .csrf_ok(CSRF_CONSENT, &[&session.sid, &pending.id, shown], token)
    {
        return csrf_refused().respond(false);
    }
    let client = match recheck_client(app, &pending).await {
        Ok(c) => c,
        Err(page) => return page.respond(false),
    };
    let current = document_hash(&client).unwrap_or_default();
    if current != shown {
        return decide(
            app,
            &session,
            &client,
            &pending,
            Some("The application's details changed since this page was shown. Review them again."),
        )
        .await;
    }
    let approved = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "No decision",
                "The form was sent without choosing Approve or Deny.",
                "Go back and press Approve or Deny.",
            )
            .respond(false);
        }
    };
    if form.get("remember").is_some_and(|v| !v.is_empty())
        && let Err(e) = remember(app, &session, &pending, &client, approved).await
    {
        tracing::error!(error = %e, "cannot store consent decision");
        return ErrorPage::server_fault("save your decision").respond(false);
    }
    if approved {
        approve(app, &session, &client, &pending, false).await
    } else {
        deny(app, &session, &pending, false)
    }
}

async fn remember(
    app: &AppState,
    session: &Session,
    pending: &PendingAuth,
    client: &Client,
    approved: bool,
) -> Result<(), cimdgate_store::StoreError> {
    let now = SystemTime::now();
    let days = app.shared.config.consent.remember_days;
    app.shared
        .store
        .put_consent(&ConsentRecord {
            subject: session.sub.clone(),
            client_id: pending.client_id.clone(),
            approved,
            scope: pending.scope.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            document_hash: document_hash(client),
            decided_at: now,
            expires_at: now + Duration::from_secs(days.saturating_mul(86_400)),
        })
        .await
}

/// Issue an authorization code (contract §1) and redirect to the client with `code`, `state`
/// and `iss`.
async fn approve(
    app: &AppState,
    session: &Session,
    client: &Client,
    pending: &PendingAuth,
    remembered: bool,
) -> Response {
    let code = crate::back::tokens::new_code();
    let Ok(family_id) = random_b64(16) else {
        return ErrorPage::server_fault("issue the authorization").respond(false);
    };
    let (document_snapshot, document_hash) = match client {
        Client::Cimd(c) => {
            let (json, hash) = c.snapshot();
            (Some(json), Some(hash))
        }
        Client::Dcr(_) => (None, None),
    };
    let now = SystemTime::now();
    let record = CodeRecord {
        client_id: pending.client_id.clone(),
        client_kind: client.kind(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        resource: pending.resource.clone(),
        scope: pending.scope.clone(),
        subject: session.sub.clone(),
        family_id,
        document_hash,
        document_snapshot,
        upstream_ref: session.upstream_ref.clone(),
        auth_time: UNIX_EPOCH + Duration::from_secs(session.auth_time),
        expires_at: now + Duration::from_secs(app.shared.config.tokens.code_ttl_secs),
    };
    if let Err(e) = app
        .shared
        .store
        .put_code(&TokenHash::of(&code), &record)
        .await
    {
        tracing::error!(error = %e, "cannot store authorization code");
        return ErrorPage::server_fault("issue the authorization").respond(false);
    }
    audit!(
        event = "consent_granted",
        subject = %session.sub,
        client_id = %pending.client_id,
        scope = %pending.scope,
        resource = %pending.resource,
        remembered = remembered,
        auto_approved = matches!(client, Client::Cimd(c) if c.auto_approve) && !remembered
    );
    client_redirect(
        &pending.redirect_uri,
        &[("code", &code)],
        pending.state.as_deref(),
        &app.shared.issuer,
    )
}

/// Redirect with `access_denied`.
fn deny(app: &AppState, session: &Session, pending: &PendingAuth, remembered: bool) -> Response {
    audit!(
        event = "consent_denied",
        subject = %session.sub,
        client_id = %pending.client_id,
        remembered = remembered
    );
    client_redirect(
        &pending.redirect_uri,
        &[
            ("error", "access_denied"),
            ("error_description", "the user denied the request"),
        ],
        pending.state.as_deref(),
        &app.shared.issuer,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pending(scope: &str) -> PendingAuth {
        PendingAuth {
            id: "i".into(),
            client_id: "https://c.test/x".into(),
            redirect_uri: "https://c.test/cb".into(),
            state: None,
            code_challenge: "c".into(),
            resource: "r".into(),
            scope: scope.into(),
            browser: "b".into(),
            created_at: 0,
        }
    }

    fn record(approved: bool, scope: &str, redirect: &str, hash: &str) -> ConsentRecord {
        ConsentRecord {
            subject: "alice".into(),
            client_id: "https://c.test/x".into(),
            approved,
            scope: scope.into(),
            redirect_uri: redirect.into(),
            document_hash: Some(hash.into()),
            decided_at: UNIX_EPOCH,
            expires_at: UNIX_EPOCH,
        }
    }

    #[test]
    fn remembered_decision_applies_only_to_same_document_redirect_and_narrower_scope() {
        let cb = "https://c.test/cb";
        let cases = [
            (record(true, "a b", cb, "h"), "a", true),
            (record(true, "a", cb, "h"), "a b", false),
            (record(true, "a", cb, "other"), "a", false),
            (record(true, "a", "https://c.test/other", "h"), "a", false),
            (record(false, "a", cb, "h"), "a b", true),
            (record(false, "a", cb, "other"), "a", false),
        ];
        for (i, (rec, scope, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                remembered_applies(&rec, &pending(scope), Some("h")),
                want,
                "case {i}"
            );
        }
    }
}

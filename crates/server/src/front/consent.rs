//! The consent step (the draft's §6 phishing guidance; MCP security best practices, "Confused
//! Deputy"):
//! the page leads with the client_id **hostname**, then the self-declared name, a "verified
//! domain" badge (the document was served from that host), the redirect host with a warning
//! when it is another host, loopback-only or an app scheme, the scopes and the resource.
//!
//! Order in [`decide`]: a remembered decision for (user, client) that still covers this request
//! (same resource, same document digest, same redirect URI, scopes within the remembered ones) → a trusted client
//! with `auto_approve_trusted` whose redirect needs no warning → the page. The user is always
//! signed in first.
//!
//! CSRF: the consent form's `csrf` is an HMAC over the session id, the pending request id and
//! the document digest shown; missing or wrong → 403.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use cimd::redirect::RedirectUri;
use cimdgate_store::ConsentRecord;

use super::checks::{csrf_refused, open_pending, recheck_client, spend_form};
use super::ctx::FrontCtx;
use super::pages::{
    ConsentPage, ErrorPage, client_display_host, client_redirect, csp_origin, error_redirect,
    render, truncate_host,
};
use super::session::Session;
use crate::audit;
use crate::clients::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::grant::{Approver, PENDING_TTL_SECS, PendingAuth, Scopes, issue_code, scopes};
use crate::seal::Purpose;

/// CSRF purpose label of the consent form.
pub const CSRF_CONSENT: &str = "consent";

/// The digest of the document shown to the user (`None` for DCR clients).
fn document_digest(client: &Client) -> Option<&str> {
    match client {
        Client::Cimd(c) => Some(&c.resolved.digest),
        Client::Dcr(_) => None,
    }
}

/// Whether a remembered decision still answers this request: same resource, same redirect
/// URI, same document, and (for an approval) scopes within the remembered ones.
fn remembered_applies(rec: &ConsentRecord, pending: &PendingAuth, digest: Option<&str>) -> bool {
    if rec.resource.as_deref() != Some(pending.resource.as_str())
        || rec.redirect_uri != pending.redirect_uri.as_str()
        || rec.document_hash.as_deref() != digest
    {
        return false;
    }
    !rec.approved || pending.scope.is_subset_of(&Scopes::parse(&rec.scope))
}

/// SEP-2350: the request's scopes plus those of the user's live grants to this client for
/// this resource that the client may still hold ([`scopes::accumulate`]). The consent page and
/// a remembered decision then judge the whole set.
///
/// Cost: nothing is read when the request already holds every scope the client may keep
/// (the usual case); otherwise one indexed listing of this user's grants to the client, and a
/// revocation check only for a grant that would add a scope, stopping once nothing more can
/// be added. Grants that add nothing — however many the user has piled up — cost no read.
async fn with_earlier_scopes(
    ctx: &FrontCtx,
    session: &Session,
    pending: &PendingAuth,
) -> Result<PendingAuth, cimdgate_store::StoreError> {
    if pending.may_keep.is_subset_of(&pending.scope) {
        return Ok(pending.clone());
    }
    let store = &ctx.services.store;
    let now = SystemTime::now();
    let mut out = pending.clone();
    for entry in store
        .list_subject_grants(&pending.client_id, &session.sub, now)
        .await?
    {
        let g = &entry.grant;
        let widens = g
            .scope
            .iter()
            .any(|s| pending.may_keep.contains(s) && !out.scope.contains(s));
        if g.subject == session.sub
            && g.resource == pending.resource
            && widens
            && !store.is_family_revoked(&g.family_id, now).await?
        {
            out.scope = scopes::accumulate(&out.scope, [&g.scope], &pending.may_keep);
            if pending.may_keep.is_subset_of(&out.scope) {
                break;
            }
        }
    }
    Ok(out)
}

/// After sign-in: remembered decision → auto-approve → consent page.
pub async fn decide(
    ctx: &FrontCtx,
    session: &Session,
    client: &Client,
    pending: &PendingAuth,
    notice: Option<&str>,
) -> Response {
    let accumulated = match with_earlier_scopes(ctx, session, pending).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the user's earlier grants");
            return ErrorPage::server_fault("read your earlier approvals").respond(false);
        }
    };
    let pending = &accumulated;
    let digest = document_digest(client);
    if notice.is_none() {
        match ctx
            .services
            .store
            .get_consent(&session.sub, &pending.client_id, SystemTime::now())
            .await
        {
            Ok(Some(rec)) if remembered_applies(&rec, pending, digest) => {
                return if rec.approved {
                    approve(ctx, session, client, pending, Approval::Remembered).await
                } else {
                    deny(ctx, session, pending, true)
                };
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read remembered consent");
                return ErrorPage::server_fault("read your saved decisions").respond(false);
            }
        }
        // Auto-approval never skips a warning: a loopback, app-scheme or other-host redirect
        // is where a stolen client_id would send the code, so the user sees the page.
        if let Client::Cimd(c) = client
            && c.auto_approve
            && redirect_warning(client, &pending.redirect_uri).1.is_none()
        {
            return approve(ctx, session, client, pending, Approval::AutoApproved).await;
        }
    }
    page(ctx, session, client, pending, digest.unwrap_or(""), notice)
}

/// What to warn about the redirect target, if anything.
pub fn redirect_warning(client: &Client, uri: &RedirectUri) -> (String, Option<String>) {
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
    ctx: &FrontCtx,
    session: &Session,
    client: &Client,
    pending: &PendingAuth,
    digest: &str,
    notice: Option<&str>,
) -> Response {
    let sealer = &ctx.services.sealer;
    let Ok(request) = sealer.seal(Purpose::PendingAuth, pending, PENDING_TTL_SECS) else {
        return ErrorPage::server_fault("show the consent page").respond(false);
    };
    let csrf = sealer.csrf_token(CSRF_CONSENT, &[&session.sid, &pending.id, digest]);
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
        scopes: pending.scope.iter().collect(),
        resource: &pending.resource,
        user: session.name.as_deref().unwrap_or(&session.sub),
        notice,
        action: &ctx.services.endpoints.authorization,
        request: &request,
        doc: digest,
        csrf: &csrf,
    };
    render(
        StatusCode::OK,
        &page,
        csp_origin(pending.redirect_uri.as_str()).as_deref(),
    )
}

/// `POST /authorize` with `step=consent`.
pub async fn submit(
    ctx: &FrontCtx,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let pending = match open_pending(ctx, headers, form) {
        Ok(p) => p,
        Err(page) => return page.respond(false),
    };
    let Some(session) = ctx.cookies.session(headers, &ctx.services.sealer) else {
        return csrf_refused().respond(false);
    };
    let shown = form.get("doc").map(String::as_str).unwrap_or("");
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if !ctx
        .services
        .sealer
        .csrf_ok(CSRF_CONSENT, &[&session.sid, &pending.id, shown], token)
    {
        return csrf_refused().respond(false);
    }
    let client = match recheck_client(&ctx.services, &pending).await {
        Ok(c) => c,
        Err(page) => return page.respond(false),
    };
    let current = document_digest(&client).unwrap_or_default();
    if current != shown {
        return decide(
            ctx,
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
                ErrorCode::InvalidRequest,
                "No decision",
                "The form was sent without choosing Approve or Deny.",
                "Go back and press Approve or Deny.",
            )
            .respond(false);
        }
    };
    // One decision per consent form (a resubmitted page must not issue a second code).
    if let Err(page) = spend_form(&ctx.services, "consent-form", &pending).await {
        return page.respond(false);
    }
    if form.get("remember").is_some_and(|v| !v.is_empty())
        && let Err(e) = remember(ctx, &session, &pending, &client, approved).await
    {
        tracing::error!(error = %e, "cannot store consent decision");
        return ErrorPage::server_fault("save your decision").respond(false);
    }
    if approved {
        approve(ctx, &session, &client, &pending, Approval::OnThePage).await
    } else {
        deny(ctx, &session, &pending, false)
    }
}

async fn remember(
    ctx: &FrontCtx,
    session: &Session,
    pending: &PendingAuth,
    client: &Client,
    approved: bool,
) -> Result<(), cimdgate_store::StoreError> {
    let now = SystemTime::now();
    let days = ctx.services.config.consent.remember_days;
    ctx.services
        .store
        .put_consent(&ConsentRecord {
            subject: session.sub.clone(),
            client_id: pending.client_id.clone(),
            approved,
            scope: pending.scope.to_string(),
            resource: Some(pending.resource.clone()),
            redirect_uri: pending.redirect_uri.as_str().to_owned(),
            document_hash: document_digest(client).map(str::to_owned),
            decided_at: now,
            expires_at: now + Duration::from_secs(days.saturating_mul(86_400)),
        })
        .await
}

/// How an approval was given (for the audit event).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Approval {
    /// The user pressed Approve on the consent page.
    OnThePage,
    /// A remembered decision covered the request.
    Remembered,
    /// A trusted client under `auto_approve_trusted`, with no warning to show.
    AutoApproved,
}

/// Issue an authorization code and redirect to the client with `code`, `state` and `iss`.
async fn approve(
    ctx: &FrontCtx,
    session: &Session,
    client: &Client,
    pending: &PendingAuth,
    how: Approval,
) -> Response {
    let approver = Approver {
        subject: &session.sub,
        auth_time: session.auth_time,
        idp_ref: session.idp_ref.as_deref(),
    };
    let code = match issue_code(&ctx.services, client, pending, &approver).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "cannot store authorization code");
            return ErrorPage::server_fault("issue the authorization").respond(false);
        }
    };
    audit!(
        event = "consent_granted",
        subject = %session.sub,
        client_id = %pending.client_id,
        scope = %pending.scope,
        resource = %pending.resource,
        remembered = how == Approval::Remembered,
        auto_approved = how == Approval::AutoApproved
    );
    ctx.services
        .governance
        .user_consented(&pending.client_id, &session.sub)
        .await;
    client_redirect(
        pending.redirect_uri.as_str(),
        &[("code", &code)],
        pending.state.as_deref(),
        &ctx.services.issuer,
    )
}

/// Redirect with `access_denied`.
fn deny(ctx: &FrontCtx, session: &Session, pending: &PendingAuth, remembered: bool) -> Response {
    audit!(
        event = "consent_denied",
        subject = %session.sub,
        client_id = %pending.client_id,
        remembered = remembered
    );
    error_redirect(
        pending.redirect_uri.as_str(),
        &OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
        pending.state.as_deref(),
        &ctx.services.issuer,
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
            redirect_uri: RedirectUri::parse("https://c.test/cb").unwrap(),
            state: None,
            code_challenge: crate::grant::pkce::CodeChallenge::from_stored("c".into()),
            resource: "r".into(),
            scope: Scopes::parse(scope),
            may_keep: Scopes::default(),
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
            resource: Some("r".into()),
            redirect_uri: redirect.into(),
            document_hash: Some(hash.into()),
            decided_at: std::time::UNIX_EPOCH,
            expires_at: std::time::UNIX_EPOCH,
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
            // Another resource (review finding M4), or a decision from before resources were
            // recorded: asked again.
            (
                ConsentRecord {
                    resource: Some("other-resource".into()),
                    ..record(true, "a b", cb, "h")
                },
                "a",
                false,
            ),
            (
                ConsentRecord {
                    resource: None,
                    ..record(true, "a b", cb, "h")
                },
                "a",
                false,
            ),
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

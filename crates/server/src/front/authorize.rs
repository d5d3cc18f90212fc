//! `GET /authorize` (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1, RFC 7636, RFC 8707, RFC 9207) as an
//! ordered list of named checks — read [`get_authorize`] top to bottom:
//!
//! 1. [`check_rate_limit`] — per source IP (every request that can trigger a fetch is limited);
//! 2. [`check_client`] — resolve the client (policy before fetch); failure → error page, **never**
//!    a redirect;
//! 3. [`check_redirect_uri`] — exact match against the document and the operator allow-list;
//!    failure → error page. From here on, errors go back to the verified redirect URI with
//!    `error`, `error_description`, `state` and `iss` (RFC 9207 §2, [`error_redirect`]);
//! 4. [`check_single_values`] — no parameter twice (OAuth 2.1 §3.1);
//! 5. [`check_response_type`] — `code` only;
//! 6. [`CodeChallenge::from_request`] — PKCE `S256` only (`plain` refused);
//! 7. [`resource::select`] — RFC 8707 `resource` names a configured resource → else
//!    `invalid_target`;
//! 8. [`scopes::grant`] — requested ⊆ the resource's scopes **and** ⊆ the document's `scope`
//!    (FastMCP let the document's scope bypass the allow-list), then
//!    [`scopes::within_ceiling`] — the administrator's scope ceiling, if any;
//! 9. [`super::flow::respond`] — seal the request (no server state) and show login, or consent
//!    for a signed-in user.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::checks::{check_client, check_rate_limit, check_redirect_uri};
use super::ctx::FrontCtx;
use super::pages::{ErrorPage, error_redirect, wants_json};
use crate::error::OAuthError;
use crate::grant::pkce::CodeChallenge;
use crate::grant::{PendingAuth, resource, scopes};

/// The authorization request's parameters as sent (first value of each; repeats recorded).
#[derive(Debug, Default, Clone)]
pub struct Params {
    /// `response_type`
    pub response_type: Option<String>,
    /// `client_id`
    pub client_id: Option<String>,
    /// `redirect_uri`
    pub redirect_uri: Option<String>,
    /// `state`
    pub state: Option<String>,
    /// `code_challenge`
    pub code_challenge: Option<String>,
    /// `code_challenge_method`
    pub code_challenge_method: Option<String>,
    /// `resource` (RFC 8707)
    pub resource: Option<String>,
    /// `scope`
    pub scope: Option<String>,
    /// Names of the parameters above that appeared more than once.
    pub repeated: Vec<&'static str>,
}

impl Params {
    /// Parse a raw query string.
    pub fn parse(query: Option<&str>) -> Params {
        let mut p = Params::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let (name, slot): (&'static str, &mut Option<String>) = match k.as_ref() {
                "response_type" => ("response_type", &mut p.response_type),
                "client_id" => ("client_id", &mut p.client_id),
                "redirect_uri" => ("redirect_uri", &mut p.redirect_uri),
                "state" => ("state", &mut p.state),
                "code_challenge" => ("code_challenge", &mut p.code_challenge),
                "code_challenge_method" => ("code_challenge_method", &mut p.code_challenge_method),
                "resource" => ("resource", &mut p.resource),
                "scope" => ("scope", &mut p.scope),
                _ => continue,
            };
            if slot.is_some() {
                if !p.repeated.contains(&name) {
                    p.repeated.push(name);
                }
            } else {
                *slot = Some(v.into_owned());
            }
        }
        p
    }
}

/// `GET /authorize`.
pub async fn get_authorize(
    State(ctx): State<Arc<FrontCtx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let json = wants_json(&headers);
    let services = &ctx.services;
    let p = Params::parse(query.as_deref());
    if let Err(page) = check_rate_limit(services, services.client_ip(peer.ip(), &headers)).await {
        return page.respond(json);
    }
    let client = match check_client(services, p.client_id.as_deref(), &p.repeated).await {
        Ok(c) => c,
        Err(page) => return page.respond(json),
    };
    let redirect_uri =
        match check_redirect_uri(services, &client, p.redirect_uri.as_deref(), &p.repeated) {
            Ok(r) => r,
            Err(page) => return page.respond(json),
        };
    let ceiling = match services.governance.decision(client.client_id()).await {
        Ok(d) => d
            .and_then(|d| d.scope_ceiling)
            .map(|c| cimdgate_store::Scopes::parse(&c)),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the client's approval");
            return ErrorPage::server_fault("check this application's approval").respond(json);
        }
    };
    let checked = (|| {
        check_single_values(&p)?;
        check_response_type(&p)?;
        let challenge = CodeChallenge::from_request(
            p.code_challenge.as_deref(),
            p.code_challenge_method.as_deref(),
        )?;
        let resource = resource::select(&services.resources, p.resource.as_deref())?;
        let scope = scopes::grant(
            p.scope.as_deref(),
            &resource.scopes,
            client.declared_scopes().as_ref(),
        )?;
        let explicit = p.scope.as_deref().is_some_and(|s| !s.trim().is_empty());
        let scope = scopes::within_ceiling(scope, explicit, ceiling.as_ref())?;
        let may_keep = scopes::grant(None, &resource.scopes, client.declared_scopes().as_ref())
            .and_then(|s| scopes::within_ceiling(s, false, ceiling.as_ref()))
            .unwrap_or_default();
        Ok::<_, OAuthError>((challenge, resource.id.clone(), scope, may_keep))
    })();
    let (code_challenge, resource, scope, may_keep) = match checked {
        Ok(v) => v,
        Err(e) => {
            return error_redirect(
                redirect_uri.as_str(),
                &e,
                p.state.as_deref(),
                &services.issuer,
            );
        }
    };
    let pending = PendingAuth {
        id: crate::rand::token(16),
        client_id: client.client_id().to_owned(),
        redirect_uri,
        state: p.state,
        code_challenge,
        resource,
        scope,
        may_keep,
        browser: String::new(),
        created_at: crate::time::now_secs(),
    };
    super::flow::respond(&ctx, &headers, &client, pending).await
}

/// Step 4: OAuth 2.1 §3.1 — request parameters must not be included more than once.
pub fn check_single_values(p: &Params) -> Result<(), OAuthError> {
    match p.repeated.first() {
        Some(name) => Err(OAuthError::invalid_request(format!(
            "parameter {name} is included more than once"
        ))),
        None => Ok(()),
    }
}

/// Step 5: only the authorization code flow.
pub fn check_response_type(p: &Params) -> Result<(), OAuthError> {
    match p.response_type.as_deref() {
        Some("code") => Ok(()),
        None | Some("") => Err(OAuthError::invalid_request(
            "response_type is required (use code)",
        )),
        Some(other) => Err(OAuthError::unsupported_response_type(format!(
            "response_type {other:?} is not supported; only code is"
        ))),
    }
}

#[cfg(test)]
#[path = "authorize_tests.rs"]
mod tests;

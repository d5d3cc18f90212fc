//! `GET /authorize` (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1, RFC 7636, RFC 8707, RFC 9207) as an
//! ordered list of named checks — read [`get_authorize`] top to bottom:
//!
//! 1. [`check_rate_limit`] — per source IP (SPEC §4: every request that can trigger a fetch);
//! 2. [`check_client`] — resolve the client (policy before fetch); failure → error page, **never**
//!    a redirect;
//! 3. [`check_redirect_uri`] — exact match against the document and the operator allow-list;
//!    failure → error page. From here on, errors go back to the verified redirect URI with
//!    `error`, `error_description`, `state` and `iss` (RFC 9207 §2);
//! 4. [`check_single_values`] — no parameter twice (OAuth 2.1 §3.1);
//! 5. [`check_response_type`] — `code` only;
//! 6. [`check_pkce`] — `code_challenge` required, method `S256` only (`plain` refused);
//! 7. [`check_resource`] — RFC 8707 `resource` names a configured resource → else
//!    `invalid_target`;
//! 8. [`check_scope`] — requested ⊆ the resource's scopes **and** ⊆ the document's `scope`
//!    (FastMCP let the document's scope bypass the allow-list);
//! 9. `respond` — seal the request (no server state) and show login, or consent for a signed-in
//!    user.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::pages::{ErrorPage, redirect, wants_json};
use super::seal::{now_secs, random_b64};
use crate::clients::{Client, ClientError, Purpose, resolve_client};
use crate::state::{AppState, Resource, Shared};

/// How long a pending authorization request (login/consent form) stays valid.
pub const PENDING_TTL_SECS: u64 = 600;

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

/// An authorization request that passed every check; sealed into the login/consent forms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuth {
    /// Random id (binds CSRF tokens).
    pub id: String,
    /// Exact client_id.
    pub client_id: String,
    /// Redirect URI as sent (or the single registered one).
    pub redirect_uri: String,
    /// Client `state`, echoed back.
    pub state: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Resource identifier.
    pub resource: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The browser-binding cookie value this request belongs to.
    pub browser: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// An OAuth error sent back to the client's redirect URI (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzError {
    /// Error code.
    pub error: &'static str,
    /// Human-readable description.
    pub description: String,
}

fn authz_err(error: &'static str, description: impl Into<String>) -> AuthzError {
    AuthzError {
        error,
        description: description.into(),
    }
}

/// Build the redirect to the client: `params` plus `iss` (RFC 9207) and `state` when sent.
pub fn client_redirect(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return ErrorPage::server_fault("build the redirect").respond(false);
    };
    {
        let mut q = url.query_pairs_mut();
        q.extend_pairs(params);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    redirect(url.as_str())
}

/// `GET /authorize`.
pub async fn get_authorize(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let json = wants_json(&headers);
    let shared = &app.shared;
    let p = Params::parse(query.as_deref());
    if let Err(page) = check_rate_limit(shared, peer.ip()).await {
        return page.respond(json);
    }
    let client = match check_client(shared, &p).await {
        Ok(c) => c,
        Err(page) => return page.respond(json),
    };
    let redirect_uri = match check_redirect_uri(shared, &client, &p) {
        Ok(r) => r,
        Err(page) => return page.respond(json),
    };
    let checked = (|| {
        check_single_values(&p)?;
        check_response_type(&p)?;
        let challenge = check_pkce(&p)?;
        let resource = check_resource(&shared.resources, p.resource.as_deref())?;
        let scope = check_scope(p.scope.as_deref(), &resource.scopes, client_scope(&client))?;
        Ok::<_, AuthzError>((challenge, resource.id.clone(), scope))
    })();
    let (code_challenge, resource, scope) = match checked {
        Ok(v) => v,
        Err(e) => {
            let params = [
                ("error", e.error),
                ("error_description", e.description.as_str()),
            ];
            return client_redirect(&redirect_uri, &params, p.state.as_deref(), &shared.issuer);
        }
    };
    let Ok(id) = random_b64(16) else {
        return ErrorPage::server_fault("start the sign-in").respond(json);
    };
    let pending = PendingAuth {
        id,
        client_id: client.client_id().to_owned(),
        redirect_uri,
        state: p.state,
        code_challenge,
        resource,
        scope,
        browser: String::new(),
        created_at: now_secs(),
    };
    super::respond(&app, &headers, &client, pending).await
}

/// Step 1: per-IP rate limit.
pub async fn check_rate_limit(shared: &Shared, ip: IpAddr) -> Result<(), ErrorPage> {
    shared.limits.check_ip(ip).await.map_err(|e| {
        ErrorPage::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "Too many requests",
            e.description,
            "Wait a few seconds and try again.",
        )
    })
}

/// Step 2: the client must resolve (SPEC §3.4, §3.6). Every failure says exactly what is
/// wrong (FastMCP: an opaque "client not found").
pub async fn check_client(shared: &Shared, p: &Params) -> Result<Client, ErrorPage> {
    let hint_dev = "If you develop this application, fix the problem above; otherwise tell \
                    the application's developer.";
    if p.repeated.contains(&"client_id") {
        return Err(ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid sign-in request",
            "The request names client_id more than once.",
            hint_dev,
        ));
    }
    let Some(raw) = p.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return Err(ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid sign-in request",
            "The request has no client_id parameter, so the application cannot be identified.",
            hint_dev,
        ));
    };
    resolve_client(shared, raw, Purpose::Authorize)
        .await
        .map_err(|e| {
            let (status, code, title) = match &e {
                ClientError::Blocked { .. } | ClientError::CimdDisabled => (
                    StatusCode::FORBIDDEN,
                    "unauthorized_client",
                    "This application is not allowed here",
                ),
                ClientError::RateLimited(_) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    "Too many requests",
                ),
                ClientError::Store(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "Temporarily unavailable",
                ),
                _ => (
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    "This application cannot sign in",
                ),
            };
            ErrorPage::new(status, code, title, e.to_string(), hint_dev)
        })
}

/// Step 3: the redirect URI (SPEC §3.5). Returns the URI to use: exactly as sent, or the
/// single registered one when none was sent.
pub fn check_redirect_uri(
    shared: &Shared,
    client: &Client,
    p: &Params,
) -> Result<String, ErrorPage> {
    let page = |problem: String| {
        ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid redirect URI",
            problem,
            "The sign-in was stopped to protect you: this server never sends you to an address \
             the application did not register. If you develop this application, register the \
             exact redirect URI in its metadata document.",
        )
    };
    if p.repeated.contains(&"redirect_uri") {
        return Err(page(
            "The request names redirect_uri more than once.".into(),
        ));
    }
    client
        .redirect_uri(
            p.redirect_uri.as_deref(),
            shared.redirect_allow_list.as_ref(),
        )
        .map(|r| r.as_str().to_owned())
        .map_err(|e| page(e.to_string()))
}

/// Step 4: OAuth 2.1 §3.1 — request parameters must not be included more than once.
pub fn check_single_values(p: &Params) -> Result<(), AuthzError> {
    match p.repeated.first() {
        Some(name) => Err(authz_err(
            "invalid_request",
            format!("parameter {name} is included more than once"),
        )),
        None => Ok(()),
    }
}

/// Step 5: only the authorization code flow.
pub fn check_response_type(p: &Params) -> Result<(), AuthzError> {
    match p.response_type.as_deref() {
        Some("code") => Ok(()),
        None | Some("") => Err(authz_err(
            "invalid_request",
            "response_type is required (use code)",
        )),
        Some(other) => Err(authz_err(
            "unsupported_response_type",
            format!("response_type {other:?} is not supported; only code is"),
        )),
    }
}

/// Step 6: PKCE (RFC 7636 §4.3; OAuth 2.1 §4.1.1): a challenge is required and must be
/// `S256` (a 43-character base64url SHA-256); `plain` — also the RFC default when the method is
/// absent — is refused.
pub fn check_pkce(p: &Params) -> Result<String, AuthzError> {
    let Some(challenge) = p.code_challenge.as_deref().filter(|c| !c.is_empty()) else {
        return Err(authz_err(
            "invalid_request",
            "code_challenge is required (PKCE with S256)",
        ));
    };
    match p.code_challenge_method.as_deref() {
        Some("S256") => {}
        None => {
            return Err(authz_err(
                "invalid_request",
                "code_challenge_method is required and must be S256 (plain is not supported)",
            ));
        }
        Some(m) => {
            return Err(authz_err(
                "invalid_request",
                format!("code_challenge_method {m:?} is not supported; use S256"),
            ));
        }
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(authz_err(
            "invalid_request",
            "code_challenge must be the base64url (no padding) SHA-256 of the verifier: 43 characters",
        ));
    }
    Ok(challenge.to_owned())
}

/// Step 7: RFC 8707 §2 — `resource` must be one of this server's resources; absent means the
/// only one (ambiguous with several).
pub fn check_resource<'a>(
    resources: &'a [Resource],
    requested: Option<&str>,
) -> Result<&'a Resource, AuthzError> {
    let known = || {
        resources
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match requested.filter(|r| !r.is_empty()) {
        Some(req) => resources
            .iter()
            .find(|r| r.id == req || r.id.trim_end_matches('/') == req.trim_end_matches('/'))
            .ok_or_else(|| {
                authz_err(
                    "invalid_target",
                    format!(
                        "unknown resource {req:?}; this server issues tokens for: {}",
                        known()
                    ),
                )
            }),
        None => match resources {
            [only] => Ok(only),
            [] => Err(authz_err(
                "invalid_target",
                "this server has no protected resources configured",
            )),
            _ => Err(authz_err(
                "invalid_target",
                format!(
                    "resource is required: this server fronts several ({})",
                    known()
                ),
            )),
        },
    }
}

/// The scopes the client's registration allows (`scope` in the document or DCR record).
fn client_scope(client: &Client) -> Option<&str> {
    match client {
        Client::Cimd(c) => c.resolved.document.scope.as_deref(),
        Client::Dcr(c) => c.scope.as_deref(),
    }
}

/// Step 8: scopes. Requested scopes must be offered by the resource **and**, when the client's
/// registration declares `scope`, be among those. Without `scope`, the grant is the resource's
/// scopes narrowed to the declared ones. Returns the granted scopes, space-separated.
pub fn check_scope(
    requested: Option<&str>,
    resource_scopes: &[String],
    client_scope: Option<&str>,
) -> Result<String, AuthzError> {
    let declared: Option<Vec<&str>> = client_scope.map(|s| s.split_whitespace().collect());
    let mut wanted: Vec<&str> = Vec::new();
    for s in requested.unwrap_or("").split_whitespace() {
        if !wanted.contains(&s) {
            wanted.push(s);
        }
    }
    if wanted.is_empty() {
        let granted: Vec<&str> = resource_scopes
            .iter()
            .map(String::as_str)
            .filter(|s| declared.as_ref().is_none_or(|d| d.contains(s)))
            .collect();
        if granted.is_empty() && !resource_scopes.is_empty() {
            return Err(authz_err(
                "invalid_scope",
                format!(
                    "the client declares scopes {:?}, none of which this resource offers ({})",
                    client_scope.unwrap_or(""),
                    resource_scopes.join(" ")
                ),
            ));
        }
        return Ok(granted.join(" "));
    }
    for s in &wanted {
        if !resource_scopes.iter().any(|r| r == s) {
            return Err(authz_err(
                "invalid_scope",
                format!(
                    "scope {s:?} is not offered by this resource (offered: {})",
                    resource_scopes.join(" ")
                ),
            ));
        }
        if let Some(d) = &declared
            && !d.contains(s)
        {
            return Err(authz_err(
                "invalid_scope",
                format!(
                    "scope {s:?} is not declared in the client's registration (declared: {})",
                    d.join(" ")
                ),
            ));
        }
    }
    Ok(wanted.join(" "))
}

#[cfg(test)]
#[path = "authorize_tests.rs"]
mod tests;

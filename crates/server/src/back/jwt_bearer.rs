//! The ID-JAG grant at `/token` (MCP enterprise-managed authorization, SEP-990;
//! draft-ietf-oauth-identity-assertion-authz-grant; RFC 7523 §2.1 `grant_type=
//! urn:ietf:params:oauth:grant-type:jwt-bearer` with `assertion=<ID-JAG>`). The rules are in
//! [`crate::grant::id_jag`]; this is their order (client already authenticated by `/token`):
//!
//! ```text
//! check_assertion_param → check_client_grant → id_jag::check_header → peek_issuer →
//!   EnterpriseIdps::find → verify_signature → check_allowed_client → check_audience →
//!   check_client_id → check_times → check_jti → subject → select_resource → grant_scopes →
//!   within the administrator's ceiling → record the jti (single use) → issue (no refresh token)
//! ```
//!
//! The `jti` is recorded last, once everything else passed, so an ID-JAG refused for another
//! reason (or a forged one) cannot burn a legitimate `jti`.
//!
//! No refresh token is issued: the enterprise IdP decides about every access, each time it
//! issues an ID-JAG (its policy, the user's status there); a refresh token would let the client
//! keep access the IdP no longer grants. The client asks the IdP for a new ID-JAG instead.

use std::time::SystemTime;

use super::ctx::BackCtx;
use super::form::Params;
use super::issue::{admin_ceiling, issue_access_only};
use crate::clients::Client;
use crate::error::OAuthError;
use crate::grant::id_jag;

use super::grant_types::JWT_BEARER as GRANT_TYPE;

/// Run the ID-JAG grant for an authenticated client.
pub async fn jwt_bearer_grant(
    ctx: &BackCtx,
    client: &Client,
    params: &Params,
) -> Result<serde_json::Value, OAuthError> {
    let assertion = check_assertion_param(params)?;
    check_client_grant(client)?;
    let header = id_jag::check_header(assertion)?;
    let idp = ctx.enterprise_idps.find(&id_jag::peek_issuer(assertion)?)?;
    let claims = idp.verify_signature(assertion, &header).await?;
    idp.check_allowed_client(client.client_id())?;
    id_jag::check_audience(&claims, &idp.audiences)?;
    id_jag::check_client_id(&claims, client.client_id())?;
    let exp = id_jag::check_times(&claims, crate::time::now_secs())?;
    let jti = id_jag::check_jti(&claims)?;
    let subject = id_jag::subject(&claims)?;
    let resource = id_jag::select_resource(
        &ctx.services.resources,
        claims.resource.as_deref(),
        params.get("resource"),
    )?;
    let scope = id_jag::grant_scopes(
        params.get("scope"),
        claims.scope.as_deref(),
        &resource.scopes,
        client.declared_scopes().as_ref(),
    )?;
    let scope = admin_ceiling(ctx, client, scope, params.get("scope").is_some()).await?;
    record_jti(ctx, &idp.issuer, jti, exp).await?;
    issue_access_only(ctx, client, subject, &resource.id, &scope, "jwt_bearer").await
}

/// `check_assertion_param`: `assertion` is required.
pub fn check_assertion_param(params: &Params) -> Result<&str, OAuthError> {
    params
        .get("assertion")
        .ok_or_else(|| OAuthError::invalid_request("assertion is required (the ID-JAG)"))
}

/// `check_client_grant`: a Client ID Metadata Document client whose document lists the
/// jwt-bearer grant type (RFC 7591 §2 `grant_types`).
pub fn check_client_grant(client: &Client) -> Result<(), OAuthError> {
    match client {
        Client::Cimd(c) if c.resolved.document.registers_grant_type(GRANT_TYPE) => Ok(()),
        Client::Cimd(_) => Err(OAuthError::unauthorized_client(format!(
            "client {} does not list {GRANT_TYPE} in its metadata document's grant_types",
            client.client_id()
        ))),
        Client::Dcr(_) => Err(OAuthError::unauthorized_client(
            "the ID-JAG grant is only for Client ID Metadata Document clients",
        )),
    }
}

/// Record the ID-JAG's `jti` until its `exp` (plus skew) under [`id_jag::replay_key`]; a
/// second use is `invalid_grant` (audited `replay_blocked`).
async fn record_jti(ctx: &BackCtx, issuer: &str, jti: &str, exp: u64) -> Result<(), OAuthError> {
    let until = crate::time::from_unix(exp.saturating_add(id_jag::ID_JAG_SKEW_SECS));
    let until = until.max(SystemTime::now());
    let fresh = ctx
        .services
        .store
        .record_jti(&id_jag::replay_key(issuer), jti, until)
        .await?;
    if fresh {
        Ok(())
    } else {
        crate::audit!(event = "replay_blocked", issuer = %issuer, kind = "id_jag");
        crate::telemetry::replay_blocked(crate::telemetry::Replay::Jti);
        Err(OAuthError::invalid_grant(
            "the ID-JAG was already used (its jti was seen before); ask the identity provider \
             for a new one",
        ))
    }
}

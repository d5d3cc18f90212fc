//! Issuing for the machine grants (docs/architecture.md, *Machine grants*): an access token
//! without a refresh token, and the administrator's scope ceiling they respect.

use std::time::SystemTime;

use cimdgate_store::{Grant, GrantEntry, Scopes};

use super::ctx::BackCtx;
use crate::clients::Client;
use crate::error::OAuthError;

/// Issue an access token without a refresh token (the ID-JAG and client credentials grants):
/// a new token family (so `/revoke` and an administrator's revocation reach it), bound to the
/// client's current document, indexed under the client until the access token expires.
pub async fn issue_access_only(
    ctx: &BackCtx,
    client: &Client,
    subject: String,
    resource: &str,
    scope: &Scopes,
    grant_type: &'static str,
) -> Result<serde_json::Value, OAuthError> {
    let now = SystemTime::now();
    let grant = Grant {
        client_id: client.client_id().to_owned(),
        client_kind: client.kind(),
        subject,
        scope: scope.clone(),
        resource: resource.to_owned(),
        family_id: crate::rand::token(16),
        document: client.document_binding(),
        idp_ref: None,
        created_at: Some(now),
    };
    let prepared = ctx.tokens.prepare(&grant, scope, now, false)?;
    let entry = GrantEntry {
        expires_at: crate::time::after(now, ctx.services.config.tokens.access_token_ttl_secs),
        grant,
    };
    if let Err(e) = ctx.services.governance.grant_started(&entry).await {
        tracing::error!(client_id = %entry.grant.client_id, error = %e,
            "cannot index a new grant: revoking this client's grants will miss it");
    }
    ctx.services.governance.token_issued(client.client_id());
    crate::telemetry::token_issued(grant_type);
    Ok(prepared.respond())
}

/// The administrator's scope ceiling for `client`, if one was set at approval
/// ([`crate::grant::scopes::within_ceiling`]): explicit scopes beyond it are refused, defaults narrowed.
pub async fn admin_ceiling(
    ctx: &BackCtx,
    client: &Client,
    granted: Scopes,
    explicit: bool,
) -> Result<Scopes, OAuthError> {
    let decision = ctx.services.governance.decision(client.client_id()).await?;
    let ceiling = decision
        .and_then(|d| d.scope_ceiling)
        .map(|c| Scopes::parse(&c));
    crate::grant::scopes::within_ceiling(granted, explicit, ceiling.as_ref())
}

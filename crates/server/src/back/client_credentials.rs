//! The client credentials grant for Client ID Metadata Document clients (RFC 6749 §4.4; MCP
//! SEP-1046), on when `[client_credentials] enabled`. Ordered checks (client already
//! authenticated by `/token`, its assertion's `jti` recorded):
//!
//! ```text
//! check_private_key_jwt → check_client_grant → check_no_user_policy → resource::select →
//!   scopes::grant → within the administrator's ceiling → issue (no refresh token)
//! ```
//!
//! Rules (*product rules*, docs/architecture.md, *Client credentials*):
//! - only `private_key_jwt` (RFC 6749 §4.4: confidential clients only; a CIMD client is
//!   confidential only with keys in its document);
//! - the document lists `client_credentials` in `grant_types`;
//! - no user consents to this grant, so the client must be trusted by the trust policy
//!   (`trusted_domains`, `allowed_client_ids`) or approved by an administrator; blocked and
//!   denied clients are refused by client resolution already;
//! - `resource` is required unless exactly one resource is configured; scopes within the
//!   resource's and the document's;
//! - the token's `sub` is the client_id (the client acts for itself); no refresh token (the
//!   client can always authenticate again).

use super::ctx::BackCtx;
use super::form::Params;
use super::issue::{admin_ceiling, issue_access_only};
use crate::clients::Client;
use crate::error::OAuthError;
use crate::grant::{resource, scopes};

use super::grant_types::CLIENT_CREDENTIALS as GRANT_TYPE;

/// Run the client credentials grant for an authenticated client.
pub async fn client_credentials_grant(
    ctx: &BackCtx,
    client: &Client,
    params: &Params,
) -> Result<serde_json::Value, OAuthError> {
    check_private_key_jwt(client)?;
    check_client_grant(client)?;
    check_no_user_policy(ctx, client).await?;
    let resource = resource::select(&ctx.services.resources, params.get("resource"))?;
    let scope = scopes::grant(
        params.get("scope"),
        &resource.scopes,
        client.declared_scopes().as_ref(),
    )?;
    let scope = admin_ceiling(ctx, client, scope, params.get("scope").is_some()).await?;
    let subject = client.client_id().to_owned();
    issue_access_only(ctx, client, subject, &resource.id, &scope, GRANT_TYPE).await
}

/// `check_private_key_jwt`: a CIMD client authenticated with `private_key_jwt` (RFC 6749 §4.4:
/// confidential clients only). A public client (`none`) is refused as `invalid_client`: it
/// presented no client authentication (RFC 6749 §5.2).
pub fn check_private_key_jwt(client: &Client) -> Result<(), OAuthError> {
    match client {
        Client::Cimd(_) if client.auth_method() == "private_key_jwt" => Ok(()),
        Client::Cimd(_) => Err(OAuthError::invalid_client(format!(
            "the client_credentials grant requires private_key_jwt client authentication; client \
             {} declares token_endpoint_auth_method {}",
            client.client_id(),
            client.auth_method()
        ))),
        Client::Dcr(_) => Err(OAuthError::unauthorized_client(
            "the client_credentials grant is only for Client ID Metadata Document clients",
        )),
    }
}

/// `check_client_grant`: the document lists `client_credentials` in `grant_types`.
pub fn check_client_grant(client: &Client) -> Result<(), OAuthError> {
    match client {
        Client::Cimd(c) if c.resolved.document.registers_grant_type(GRANT_TYPE) => Ok(()),
        _ => Err(OAuthError::unauthorized_client(format!(
            "client {} does not list client_credentials in its metadata document's grant_types",
            client.client_id()
        ))),
    }
}

/// `check_no_user_policy`: trusted by the trust policy, or approved by an administrator.
pub async fn check_no_user_policy(ctx: &BackCtx, client: &Client) -> Result<(), OAuthError> {
    if let Client::Cimd(c) = client
        && c.trusted
    {
        return Ok(());
    }
    let decision = ctx.services.governance.decision(client.client_id()).await?;
    let approved =
        decision.is_some_and(|d| d.by_admin && d.status == cimdgate_store::ClientStatus::Active);
    if approved {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(format!(
            "client {} may not use the client_credentials grant: no user consents to it, so the \
             client must be trusted by this server's policy or approved by an administrator",
            client.client_id()
        )))
    }
}

//! The `refresh_token` grant (RFC 6749 §6; OAuth 2.1 §4.3.1: rotation, reuse revokes the
//! family; SPEC §3.2: every authorization-code client may refresh, CIMD ones included).
//!
//! Ordered checks (client already authenticated by `/token`):
//!
//! ```text
//! check_refresh_params → lookup_refresh → check_refresh_client → check_resource →
//!   narrow_scope → check_refresh_allowed → check_document_change → check_upstream_sign_in →
//!   rotate → issue
//! ```
//!
//! The client check happens on a read (`get_refresh`) **before** the token is rotated, so a
//! different client cannot spend someone else's active token. A token the read does not find
//! (spent, revoked, expired, unknown) still goes through the atomic rotation once, so that
//! presenting a spent token — reuse — revokes its family.

use std::time::SystemTime;

use cimdgate_store::{RefreshRecord, RefreshRotation, TokenHash};

use super::form::Params;
use super::token::{
    Approved, ApprovedDocument, Issued, check_document_change, check_resource, issue,
};
use super::tokens::{after, new_refresh_token};
use crate::audit;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::state::AppState;

const REUSE: &str = "refresh token reuse detected; the token family has been revoked";

/// Run the refresh grant for an authenticated client.
pub async fn refresh_grant(
    app: &AppState,
    client: &Client,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let old = check_refresh_params(params)?;
    let record = lookup_refresh(app, client, &old).await?;
    check_refresh_client(&record, client)?;
    check_resource(&record.resource, params.get("resource"))?;
    let scope = narrow_scope(&record.scope, params.get("scope"))?;
    check_refresh_allowed(client)?;
    let approved = ApprovedDocument {
        hash: record.document_hash.as_deref(),
        snapshot: record.document_snapshot.as_deref(),
        redirect_uri: None,
    };
    check_document_change(app, &approved, client)?;
    check_upstream_sign_in(app, &record).await?;
    let grant = Approved {
        subject: record.subject,
        scope,
        refresh_scope: record.scope,
        resource: record.resource,
        family_id: record.family_id,
        document_hash: record.document_hash,
        document_snapshot: record.document_snapshot,
        upstream_ref: record.upstream_ref,
    };
    let new = rotate(app, client, &old, &grant).await?;
    audit!(event = "token_refreshed", client_id = %client.client_id(), family_id = %grant.family_id);
    issue(app, client, grant, Some(new)).await
}

/// `check_upstream_sign_in`: for a resource that forwards the user's IdP token
/// (`forward_upstream_token`), the upstream sign-in behind the grant must still be held.
/// Otherwise a renewed cimdgate token would only meet 401s at the resource, so the client is
/// told to sign in again instead.
async fn check_upstream_sign_in(app: &AppState, record: &RefreshRecord) -> Result<(), OAuthError> {
    let Some(reference) = &record.upstream_ref else {
        return Ok(());
    };
    let gateway = &app.gateway;
    let forwards = gateway
        .config()
        .resources
        .iter()
        .zip(gateway.resources())
        .any(|(spec, r)| spec.forward_upstream_token && r.resource_id == record.resource);
    if forwards
        && app
            .shared
            .store
            .get_upstream_tokens(reference, SystemTime::now())
            .await?
            .is_none()
    {
        return Err(OAuthError::invalid_grant(
            "the sign-in at the upstream identity provider has expired; sign in again",
        ));
    }
    Ok(())
}

/// `check_refresh_params`: `refresh_token` is required.
pub fn check_refresh_params(params: &Params) -> Result<TokenHash, OAuthError> {
    params
        .get("refresh_token")
        .map(TokenHash::of)
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))
}

/// `lookup_refresh`: the active record, or — for a token that is not active — the atomic
/// rotation that detects reuse (and revokes the family) or reports it unknown/revoked.
async fn lookup_refresh(
    app: &AppState,
    client: &Client,
    old: &TokenHash,
) -> Result<RefreshRecord, OAuthError> {
    let now = SystemTime::now();
    if let Some(record) = app.shared.store.get_refresh(old, now).await? {
        return Ok(record);
    }
    // Not active. Only a spent token can rotate here (→ Reused); the placeholder is never stored
    // for a token in any other state.
    let ttl = app.shared.config.tokens.refresh_token_ttl_secs;
    let placeholder = RefreshRecord {
        family_id: String::new(),
        client_id: client.client_id().to_owned(),
        client_kind: client.kind(),
        subject: String::new(),
        scope: String::new(),
        resource: String::new(),
        document_hash: None,
        document_snapshot: None,
        upstream_ref: None,
        issued_at: now,
        expires_at: after(now, ttl),
    };
    let burn = TokenHash::of(&new_refresh_token());
    let outcome = app
        .shared
        .store
        .rotate_refresh(old, &burn, &placeholder, now)
        .await?;
    Err(rotation_error(client, outcome))
}

fn rotation_error(client: &Client, outcome: RefreshRotation) -> OAuthError {
    match outcome {
        RefreshRotation::Reused { family_id } => {
            audit!(event = "refresh_reuse_detected", client_id = %client.client_id(), family_id = %family_id);
            OAuthError::invalid_grant(REUSE)
        }
        RefreshRotation::FamilyRevoked => {
            OAuthError::invalid_grant("refresh token has been revoked")
        }
        RefreshRotation::NotFound | RefreshRotation::Rotated(_) => {
            OAuthError::invalid_grant("refresh token is unknown or has expired")
        }
    }
}

/// `check_refresh_client`: issued to exactly this client.
pub fn check_refresh_client(record: &RefreshRecord, client: &Client) -> Result<(), OAuthError> {
    if record.client_id == client.client_id() {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "refresh token was issued to another client",
        ))
    }
}

/// `narrow_scope`: RFC 6749 §6 — a requested `scope` must be a subset of the grant's; the
/// access token gets it, the refresh token keeps the grant's.
pub fn narrow_scope(granted: &str, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.to_owned());
    };
    let granted: Vec<&str> = granted.split_whitespace().collect();
    let mut out: Vec<&str> = Vec::new();
    for s in requested.split_whitespace() {
        if !granted.contains(&s) {
            return Err(OAuthError::invalid_scope(format!(
                "scope {s:?} was not granted; a refresh may only narrow the scope (granted: {:?})",
                granted.join(" ")
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out.join(" "))
}

/// `check_refresh_allowed`: CIMD clients with `authorization_code` always may (SPEC §3.2);
/// DCR clients when they registered `refresh_token`.
pub fn check_refresh_allowed(client: &Client) -> Result<(), OAuthError> {
    if client.allows_refresh() {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(format!(
            "client {} is not allowed the refresh_token grant",
            client.client_id()
        )))
    }
}

/// `rotate`: spend the old token and store the new one atomically.
async fn rotate(
    app: &AppState,
    client: &Client,
    old: &TokenHash,
    grant: &Approved,
) -> Result<String, OAuthError> {
    let now = SystemTime::now();
    let new = new_refresh_token();
    let record = grant.refresh_record(client, now, app.shared.config.tokens.refresh_token_ttl_secs);
    match app
        .shared
        .store
        .rotate_refresh(old, &TokenHash::of(&new), &record, now)
        .await?
    {
        RefreshRotation::Rotated(_) => Ok(new),
        other => Err(rotation_error(client, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_scope_may_only_narrow() {
        let cases = [
            (None, Ok("mcp read")),
            (Some("mcp"), Ok("mcp")),
            (Some("read mcp mcp"), Ok("read mcp")),
            (Some("mcp admin"), Err("invalid_scope")),
            (Some("admin"), Err("invalid_scope")),
        ];
        for (requested, want) in cases {
            let got = narrow_scope("mcp read", requested);
            assert_eq!(got.as_deref().map_err(|e| e.error), want, "{requested:?}");
        }
    }
}

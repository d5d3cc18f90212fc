//! The `refresh_token` grant (RFC 6749 §6; OAuth 2.1 §4.3.1: rotation, reuse revokes the
//! family; every client that uses `authorization_code` may refresh, CIMD clients included).
//!
//! Ordered checks (client already authenticated by `/token`):
//!
//! ```text
//! check_refresh_params → lookup_refresh → check_refresh_client → check_grant_age →
//!   check_user → resource::check_bound → scopes::narrow → check_refresh_allowed →
//!   check_document_change → check_idp_sign_in → Tokens::prepare → rotate → respond
//! ```
//!
//! The client check happens on a read (`get_refresh`) **before** the token is rotated, so a
//! different client cannot spend someone else's active token. A token the read does not find
//! active goes through `Store::spend_refresh`, which revokes the family when it was already
//! spent (reuse). The new refresh token is signed and built before the one atomic rotation
//! write and sent only after it.

use std::time::SystemTime;

use cimdgate_store::{Grant, RefreshRecord, RefreshRotation, SpentRefresh, TokenHash};

use super::ctx::BackCtx;
use super::form::Params;
use crate::audit;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::grant::binding::check_document_change;
use crate::grant::{resource, scopes};
use crate::identity::Identity;

const REUSE: &str = "refresh token reuse detected; the token family has been revoked";

/// Run the refresh grant for an authenticated client.
pub async fn refresh_grant(
    ctx: &BackCtx,
    client: &Client,
    params: &Params,
) -> Result<serde_json::Value, OAuthError> {
    let old = check_refresh_params(params)?;
    let record = lookup_refresh(ctx, client, &old).await?;
    let grant = &record.grant;
    check_refresh_client(&record, client)?;
    check_grant_age(
        grant,
        SystemTime::now(),
        ctx.services.config.tokens.grant_lifetime_secs,
    )?;
    check_user(&ctx.identity, grant)?;
    resource::check_bound(&grant.resource, params.get("resource"))?;
    let scope = scopes::narrow(&grant.scope, params.get("scope"))?;
    check_refresh_allowed(client, &grant.scope)?;
    check_document_change(
        grant,
        None,
        client,
        ctx.services.redirect_allow_list.as_ref(),
    )?;
    check_idp_sign_in(ctx, &record).await?;
    let now = SystemTime::now();
    let mut prepared = ctx.tokens.prepare(grant, &scope, now, true)?;
    let Some((new, new_record)) = prepared.new_refresh.take() else {
        return Err(OAuthError::server_error("cannot mint a refresh token"));
    };
    match ctx
        .services
        .store
        .rotate_refresh(&old, &new, &new_record, now)
        .await?
    {
        RefreshRotation::Rotated(_) => {}
        RefreshRotation::Reused { family_id } => return Err(reused(client, &family_id)),
        RefreshRotation::FamilyRevoked => return Err(revoked()),
        RefreshRotation::NotFound => return Err(unknown()),
    }
    audit!(event = "token_refreshed", client_id = %client.client_id(), family_id = %grant.family_id);
    ctx.services.governance.token_issued(client.client_id());
    crate::telemetry::token_issued("refresh_token");
    Ok(prepared.respond())
}

/// `check_idp_sign_in`: for a resource that forwards the user's IdP token
/// (`forward_upstream_token`), the IdP sign-in behind the grant must still be held. Otherwise a
/// renewed cimdgate token would only meet 401s at the resource, so the client is told to sign
/// in again instead.
async fn check_idp_sign_in(ctx: &BackCtx, record: &RefreshRecord) -> Result<(), OAuthError> {
    let Some(reference) = &record.grant.idp_ref else {
        return Ok(());
    };
    let forwards = ctx
        .services
        .resource(&record.grant.resource)
        .is_some_and(|r| r.forwards_idp_token);
    if forwards
        && ctx
            .services
            .store
            .get_idp_tokens(reference, SystemTime::now())
            .await?
            .is_none()
    {
        return Err(OAuthError::invalid_grant(
            "the sign-in at the upstream identity provider has expired; sign in again",
        ));
    }
    Ok(())
}

/// `check_grant_age`: a grant ends `grant_lifetime_secs` after the user approved it, however often
/// it was refreshed (review finding M3: families used to slide forever). Grants stored before
/// the approval time was recorded carry none and are not limited.
pub fn check_grant_age(
    grant: &Grant,
    now: SystemTime,
    lifetime_secs: u64,
) -> Result<(), OAuthError> {
    match grant.created_at {
        Some(created) if crate::time::after(created, lifetime_secs) <= now => {
            Err(OAuthError::invalid_grant(format!(
                "this sign-in is older than {} days; sign in again",
                lifetime_secs / 86_400
            )))
        }
        _ => Ok(()),
    }
}

/// `check_user`: with local users, the user must still be configured (a removed user's grants
/// end at their next refresh). With an identity provider the provider decides, at the next
/// sign-in or when forwarded tokens are renewed.
pub fn check_user(identity: &Identity, grant: &Grant) -> Result<(), OAuthError> {
    match identity {
        Identity::Local(users) if !users.exists(&grant.subject) => Err(OAuthError::invalid_grant(
            "the user this grant was given by no longer exists",
        )),
        _ => Ok(()),
    }
}

/// `check_refresh_params`: `refresh_token` is required.
pub fn check_refresh_params(params: &Params) -> Result<TokenHash, OAuthError> {
    params
        .get("refresh_token")
        .map(TokenHash::of)
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))
}

/// `lookup_refresh`: the active record; for a token that is not active, `spend_refresh` tells
/// reuse (and revokes the family) from a revoked or unknown token.
async fn lookup_refresh(
    ctx: &BackCtx,
    client: &Client,
    old: &TokenHash,
) -> Result<RefreshRecord, OAuthError> {
    let now = SystemTime::now();
    let store = &ctx.services.store;
    if let Some(record) = store.get_refresh(old, now).await? {
        return Ok(record);
    }
    let revoke_until = ctx.tokens.family_revoke_until(now);
    Err(match store.spend_refresh(old, revoke_until, now).await? {
        SpentRefresh::Reused { family_id } => reused(client, &family_id),
        SpentRefresh::FamilyRevoked => revoked(),
        // Active now but not a moment ago: expired or rotated in between is impossible, so a
        // concurrent writer is involved; refuse rather than guess.
        SpentRefresh::Unknown | SpentRefresh::Active => unknown(),
    })
}

fn reused(client: &Client, family_id: &str) -> OAuthError {
    crate::telemetry::replay_blocked(crate::telemetry::Replay::Refresh);
    audit!(event = "refresh_reuse_detected", client_id = %client.client_id(), family_id = %family_id);
    OAuthError::invalid_grant(REUSE)
}

fn revoked() -> OAuthError {
    OAuthError::invalid_grant("refresh token has been revoked")
}

fn unknown() -> OAuthError {
    OAuthError::invalid_grant("refresh token is unknown or has expired")
}

/// `check_refresh_client`: issued to exactly this client.
pub fn check_refresh_client(record: &RefreshRecord, client: &Client) -> Result<(), OAuthError> {
    if record.grant.client_id == client.client_id() {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "refresh token was issued to another client",
        ))
    }
}

/// `check_refresh_allowed`: the grant has `offline_access`, or the client is a CIMD client
/// of the code flow, or a DCR client that registered `refresh_token` ([`Client::may_refresh`]).
pub fn check_refresh_allowed(
    client: &Client,
    granted: &cimdgate_store::Scopes,
) -> Result<(), OAuthError> {
    if client.may_refresh(granted) {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(format!(
            "client {} is not allowed the refresh_token grant",
            client.client_id()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use cimdgate_store::{ClientKind, Scopes};

    use crate::config::LocalUser;
    use crate::identity::local::{LocalUsers, hash_password};

    fn grant(created_at: Option<SystemTime>, subject: &str) -> Grant {
        Grant {
            client_id: "https://c.test/x".into(),
            client_kind: ClientKind::Cimd,
            subject: subject.into(),
            scope: Scopes::parse("mcp"),
            resource: "http://r/mcp".into(),
            family_id: "f".into(),
            document: None,
            idp_ref: None,
            created_at,
        }
    }

    #[test]
    fn a_grant_ends_its_lifetime_after_approval_however_often_refreshed() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let life = 90 * 86_400;
        let cases = [
            (Some(now - 89 * day), true),
            (Some(now - 90 * day), false),
            (Some(now - 400 * day), false),
            (None, true),
        ];
        for (created, ok) in cases {
            let got = check_grant_age(&grant(created, "alice"), now, life);
            assert_eq!(got.is_ok(), ok, "{created:?}");
            if let Err(e) = got {
                assert_eq!(e.code, crate::error::ErrorCode::InvalidGrant);
            }
        }
    }

    #[test]
    fn a_removed_local_user_cannot_refresh() {
        let users = LocalUsers::new(&[LocalUser {
            username: "alice".into(),
            password_hash: hash_password("pw").unwrap().into(),
            name: None,
        }])
        .unwrap();
        let identity = Identity::Local(users);
        assert!(check_user(&identity, &grant(None, "alice")).is_ok());
        let e = check_user(&identity, &grant(None, "mallory")).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::InvalidGrant);
    }
}

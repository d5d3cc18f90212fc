//! `POST /revoke` (RFC 7009), with the same client authentication as `/token` — including
//! `private_key_jwt`, which FastMCP's `/revoke` cannot authenticate (fastmcp-cimd.md §6 item 10).
//!
//! Ordered checks (after the channel's per-IP limit): `OAuthForm → authenticate_client →
//! check_token_param → revoke_token`.
//! A refresh token revokes its family; an access token (our JWT) revokes its family (`fid`), so
//! the family's refresh tokens die with it. Unknown, expired or already revoked tokens get 200
//! (RFC 7009 §2.2). A token issued to another client is refused (RFC 7009 §2.1).

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use cimdgate_store::TokenHash;

use super::client_auth::authenticate_client;
use super::ctx::BackCtx;
use super::form::{OAuthForm, Params, no_store};
use crate::audit;
use crate::clients::Client;
use crate::error::OAuthError;

/// `POST /revoke` (after the channel's per-IP limit: client authentication can fetch).
pub async fn revoke(
    State(ctx): State<Arc<BackCtx>>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response, OAuthError> {
    let client = authenticate_client(&ctx, &headers, &params).await?;
    let token = check_token_param(&params)?;
    revoke_token(&ctx, &client, token).await?;
    Ok(no_store(StatusCode::OK.into_response()))
}

/// `check_token_param`: `token` is required; `token_type_hint` is only a hint (RFC 7009 §2.1):
/// the token's shape (a JWT has two dots) decides.
pub fn check_token_param(params: &Params) -> Result<&str, OAuthError> {
    params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))
}

fn not_yours() -> OAuthError {
    OAuthError::unauthorized_client("the token was not issued to the authenticated client")
}

async fn revoke_token(ctx: &BackCtx, client: &Client, token: &str) -> Result<(), OAuthError> {
    let now = SystemTime::now();
    let until = ctx.tokens.family_revoke_until(now);
    let store = &ctx.services.store;
    let (family, kind) = if token.matches('.').count() == 2 {
        let Ok(claims) = ctx.tokens.verify_signed(token) else {
            return Ok(()); // not ours, or expired: nothing to revoke
        };
        if claims.client_id != client.client_id() {
            return Err(not_yours());
        }
        (claims.fid, "access_token")
    } else {
        let Some(record) = store.get_refresh(&TokenHash::of(token), now).await? else {
            return Ok(());
        };
        if record.grant.client_id != client.client_id() {
            return Err(not_yours());
        }
        (record.grant.family_id, "refresh_token")
    };
    store.revoke_family(&family, until).await?;
    crate::telemetry::token_revoked();
    audit!(
        event = "token_revoked",
        client_id = %client.client_id(),
        token_type = kind,
        family_id = %family
    );
    Ok(())
}

//! `POST /revoke` (RFC 7009), with the same client authentication as `/token` — including
//! `private_key_jwt`, which FastMCP's `/revoke` cannot authenticate (fastmcp-cimd.md §6 item 10).
//!
//! Ordered checks: `parse_form → authenticate_client → check_token_param → revoke_token`.
//! A refresh token revokes its family; an access token (our JWT) revokes its family (`fid`), so
//! the family's refresh tokens die with it. Unknown, expired or already revoked tokens get 200
//! (RFC 7009 §2.2). A token issued to another client is refused (RFC 7009 §2.1).

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use cimdgate_store::TokenHash;

use super::client_auth::authenticate_client;
use super::form::{Params, no_store, parse_form};
use super::tokens::{after, verify_signed};
use crate::audit;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::state::AppState;

/// `POST /revoke`.
pub async fn revoke(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        // Client authentication can fetch (a stale document, a `jwks_uri`): per-IP limit first.
        app.shared.limits.check_ip(peer.ip()).await?;
        let params = parse_form(&headers, &body)?;
        let client = authenticate_client(&app, &headers, &params).await?;
        let token = check_token_param(&params)?;
        revoke_token(&app, &client, token).await
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    }
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

async fn revoke_token(app: &AppState, client: &Client, token: &str) -> Result<(), OAuthError> {
    let now = SystemTime::now();
    let until = after(now, app.shared.config.tokens.refresh_token_ttl_secs);
    let (family, kind) = if token.matches('.').count() == 2 {
        let Ok(claims) = verify_signed(&app.back.keys, &app.shared.issuer, token) else {
            return Ok(()); // not ours, or expired: nothing to revoke
        };
        if claims.client_id != client.client_id() {
            return Err(not_yours());
        }
        (claims.fid, "access_token")
    } else {
        let Some(record) = app
            .shared
            .store
            .get_refresh(&TokenHash::of(token), now)
            .await?
        else {
            return Ok(());
        };
        if record.client_id != client.client_id() {
            return Err(not_yours());
        }
        (record.family_id, "refresh_token")
    };
    app.shared.store.revoke_family(&family, until).await?;
    audit!(
        event = "token_revoked",
        client_id = %client.client_id(),
        token_type = kind,
        family_id = %family
    );
    Ok(())
}

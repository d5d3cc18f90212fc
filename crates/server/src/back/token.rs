//! `POST /token` (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §3.2, §4.1.3; RFC 7636 §4.6; RFC 8707
//! §2.2; RFC 7523 §2.2 client assertions).
//!
//! The handler is an ordered list of named checks:
//!
//! ```text
//! OAuthForm → check_grant_type → authenticate_client →
//!   authorization_code: check_code_params → get_code → [used: redeem (reuse)] →
//!                       check_code_client → check_redirect_uri → CodeChallenge::verify →
//!                       resource::check_bound → check_document_change → Tokens::prepare →
//!                       redeem → respond
//!   refresh_token:      (see `refresh.rs`)
//!   jwt-bearer (ID-JAG): (see `jwt_bearer.rs`; only with `[[enterprise_idps]]`)
//!   client_credentials: (see `client_credentials.rs`; only with `[client_credentials] enabled`)
//! ```
//!
//! The last two issue an access token only (`issue::issue_access_only`) and audit every refusal
//! (`grant_refused`).
//!
//! The code exchange makes ONE durable store write (`Store::redeem_code`): the checks run on a
//! read of the code (`get_code`), the access token is signed and the refresh token built, and
//! then one atomic write records the client assertion's `jti` (authentication ran in
//! [`ReplayCheck::Deferred`] mode), consumes the code and stores the refresh token. Tokens are
//! sent only after that write says `Redeemed`. A request that fails before the write leaves the
//! code unused, and still uses up a verified assertion's `jti` (a separate `record_jti`), as
//! when authentication records it itself.
//!
//! Every response carries `Cache-Control: no-store` and `Pragma: no-cache`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use cimdgate_store::{CodeRecord, CodeRedeem, CodeRedeemOutcome, GrantEntry, JtiRecord, TokenHash};

use super::client_auth::{
    Authenticated, ReplayCheck, authenticate_client_with, jti_replayed, presented_credentials,
    record_pending_jti,
};
use super::ctx::BackCtx;
use super::form::{NoStoreJson, OAuthForm, Params};
use super::grant_types::{self, OptionalGrants};
use crate::audit;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::grant::binding::check_document_change;
use crate::grant::pkce::{CodeChallenge, check_verifier_syntax};
use crate::grant::resource;

/// The grant types this server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// RFC 6749 §4.1.3 with PKCE.
    AuthorizationCode,
    /// RFC 6749 §6 with rotation.
    RefreshToken,
    /// RFC 7523 §2.1 with an ID-JAG (SEP-990).
    JwtBearer,
    /// RFC 6749 §4.4 for CIMD clients (SEP-1046).
    ClientCredentials,
}

/// `POST /token` (after the channel's per-IP limit).
pub async fn token(
    State(ctx): State<Arc<BackCtx>>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<NoStoreJson, OAuthError> {
    let body = match check_grant_type(&params, ctx.offered)? {
        GrantType::AuthorizationCode => {
            let auth =
                authenticate_client_with(&ctx, &headers, &params, ReplayCheck::Deferred).await?;
            code_grant(&ctx, auth, &params).await?
        }
        GrantType::RefreshToken => {
            let auth =
                authenticate_client_with(&ctx, &headers, &params, ReplayCheck::Immediate).await?;
            super::refresh::refresh_grant(&ctx, &auth.client, &params).await?
        }
        GrantType::JwtBearer => {
            let run = async {
                let auth =
                    authenticate_client_with(&ctx, &headers, &params, ReplayCheck::Immediate)
                        .await?;
                super::jwt_bearer::jwt_bearer_grant(&ctx, &auth.client, &params).await
            };
            audit_refusal("jwt_bearer", &headers, &params, run.await)?
        }
        GrantType::ClientCredentials => {
            let run = async {
                let auth =
                    authenticate_client_with(&ctx, &headers, &params, ReplayCheck::Immediate)
                        .await?;
                super::client_credentials::client_credentials_grant(&ctx, &auth.client, &params)
                    .await
            };
            audit_refusal("client_credentials", &headers, &params, run.await)?
        }
    };
    Ok(NoStoreJson(StatusCode::OK, body))
}

/// Audit a refused ID-JAG or client credentials request (`grant_refused`: the grant type, the
/// client the request names, the error code and its description — never the assertion).
fn audit_refusal(
    grant_type: &'static str,
    headers: &HeaderMap,
    params: &Params,
    result: Result<serde_json::Value, OAuthError>,
) -> Result<serde_json::Value, OAuthError> {
    if let Err(e) = &result {
        let client_id = presented_credentials(headers, params)
            .ok()
            .and_then(|c| c.client_id)
            .unwrap_or_default();
        audit!(
            event = "grant_refused",
            grant_type,
            client_id = %client_id,
            error = e.code.as_str(),
            reason = %e.description
        );
    }
    result
}

/// `check_grant_type`: `authorization_code`, `refresh_token`, and the optional grants this
/// server offers.
pub fn check_grant_type(params: &Params, offered: OptionalGrants) -> Result<GrantType, OAuthError> {
    match params.get("grant_type") {
        Some("authorization_code") => Ok(GrantType::AuthorizationCode),
        Some("refresh_token") => Ok(GrantType::RefreshToken),
        Some(grant_types::JWT_BEARER) if offered.jwt_bearer => Ok(GrantType::JwtBearer),
        Some(grant_types::CLIENT_CREDENTIALS) if offered.client_credentials => {
            Ok(GrantType::ClientCredentials)
        }
        Some(other) => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type {other:?} is not supported here; use {}",
            grant_types::supported_names(offered).join(", ")
        ))),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

/// The authorization-code grant. `auth.pending_jti` is recorded by the exchange's store write
/// or, when the exchange fails before it, on its own.
async fn code_grant(
    ctx: &BackCtx,
    auth: Authenticated,
    params: &Params,
) -> Result<serde_json::Value, OAuthError> {
    let mut pending_jti = auth.pending_jti;
    let result = exchange_code(ctx, &auth.client, &mut pending_jti, params).await;
    match (result, pending_jti) {
        // Failed before the combined write took the jti: use it up now, so a verified
        // assertion is single-use whatever the outcome. A replayed one is refused as such.
        (Err(e), Some(jti)) => Err(record_pending_jti(ctx, &jti).await.err().unwrap_or(e)),
        (result, _) => result,
    }
}

/// The checks and the combined write of the code exchange. Takes `pending_jti` (leaving
/// `None`) once it is handed to the store write.
async fn exchange_code(
    ctx: &BackCtx,
    client: &Client,
    pending_jti: &mut Option<JtiRecord>,
    params: &Params,
) -> Result<serde_json::Value, OAuthError> {
    let (code, verifier) = check_code_params(params)?;
    let code = TokenHash::of(code);
    let now = SystemTime::now();
    let store = &ctx.services.store;
    let family_revoke_until = ctx.tokens.family_revoke_until(now);
    let record = match store.get_code(&code, now).await? {
        None => return Err(code_not_found()),
        Some((record, true)) => {
            // Reuse (OAuth 2.1 §4.1.3): whatever else the request says, the redemption write
            // revokes the family the first use started.
            let req = CodeRedeem {
                code,
                jti: pending_jti.take(),
                refresh: None,
                family_revoke_until,
                grant: None,
            };
            let outcome = store.redeem_code(&req, now).await?;
            return Err(refused(req, outcome, &record));
        }
        Some((record, false)) => record,
    };
    if record.expires_at <= now {
        return Err(OAuthError::invalid_grant("authorization code has expired"));
    }
    let grant = &record.grant;
    check_code_client(&record, client)?;
    check_redirect_uri(&record.redirect_uri, params.get("redirect_uri"))?;
    CodeChallenge::from_stored(record.code_challenge.clone()).verify(verifier)?;
    resource::check_bound(&grant.resource, params.get("resource"))?;
    check_document_change(
        grant,
        Some(&record.redirect_uri),
        client,
        ctx.services.redirect_allow_list.as_ref(),
    )?;
    // Signed before the write, sent only once the write says Redeemed.
    let mut prepared =
        ctx.tokens
            .prepare(grant, &grant.scope, now, client.may_refresh(&grant.scope))?;
    let req = CodeRedeem {
        code,
        jti: pending_jti.take(),
        refresh: prepared.new_refresh.take(),
        family_revoke_until,
        grant: Some(grant_entry(ctx, grant, now)),
    };
    match store.redeem_code(&req, now).await? {
        // The redeemed record is the one checked above: a code's record never changes after
        // `put_code` (only its redeemed flag), and code values are 192-bit random.
        CodeRedeemOutcome::Redeemed(_) => {
            keep_registration(ctx, client).await;
            ctx.services.governance.token_issued(client.client_id());
            crate::telemetry::token_issued("authorization_code");
            Ok(prepared.respond())
        }
        outcome => Err(refused(req, outcome, &record)),
    }
}

/// A dynamically registered client's first code exchange: its registration is in use and no
/// longer expires (`[dcr] unused_ttl_secs`).
async fn keep_registration(ctx: &BackCtx, client: &Client) {
    let Client::Dcr(registered) = client else {
        return;
    };
    if registered.expires_at.is_none() {
        return;
    }
    let kept = cimdgate_store::RegisteredClient {
        expires_at: None,
        ..registered.clone()
    };
    if let Err(e) = ctx.services.store.put_client(&kept).await {
        tracing::error!(client_id = %kept.client_id, error = %e,
            "cannot keep a registration in use: it will expire unless used again");
    }
}

/// The new grant's index entry, written by the redemption itself ([`CodeRedeem::grant`]).
fn grant_entry(ctx: &BackCtx, grant: &cimdgate_store::Grant, now: SystemTime) -> GrantEntry {
    let lifetime = ctx.services.config.tokens.grant_lifetime_secs;
    GrantEntry {
        grant: grant.clone(),
        expires_at: crate::time::after(grant.created_at.unwrap_or(now), lifetime),
    }
}

fn code_not_found() -> OAuthError {
    OAuthError::invalid_grant("authorization code is unknown or has expired")
}

/// The refusal for a `redeem_code` outcome other than `Redeemed`.
fn refused(req: CodeRedeem, outcome: CodeRedeemOutcome, read: &CodeRecord) -> OAuthError {
    match outcome {
        CodeRedeemOutcome::JtiReplayed => {
            let (client_id, jti) = req
                .jti
                .map_or((read.grant.client_id.clone(), String::new()), |j| {
                    (j.client_id, j.jti)
                });
            jti_replayed(&client_id, jti)
        }
        CodeRedeemOutcome::AlreadyUsed(record) => {
            crate::telemetry::replay_blocked(crate::telemetry::Replay::Code);
            // The store revoked `record.grant.family_id` in the same transaction.
            audit!(
                event = "code_reuse_detected",
                client_id = %record.grant.client_id,
                sub = %record.grant.subject,
                family_id = %record.grant.family_id
            );
            OAuthError::invalid_grant(
                "authorization code was already used; tokens issued with it have been revoked",
            )
        }
        CodeRedeemOutcome::NotFound => code_not_found(),
        CodeRedeemOutcome::Redeemed(_) => {
            // Not a refusal; callers match `Redeemed` first. Refuse rather than panic.
            tracing::error!("a redeemed code was handled as a refusal");
            OAuthError::server_error("cannot complete the code exchange")
        }
    }
}

/// `check_code_params`: `code` and a well-formed `code_verifier`, checked before the code is
/// spent.
pub fn check_code_params(params: &Params) -> Result<(&str, &str), OAuthError> {
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let verifier = params.get("code_verifier").ok_or_else(|| {
        OAuthError::invalid_request("code_verifier is required (PKCE S256 is mandatory)")
    })?;
    check_verifier_syntax(verifier)?;
    Ok((code, verifier))
}

/// `check_code_client`: the code was issued to exactly this client.
pub fn check_code_client(record: &CodeRecord, client: &Client) -> Result<(), OAuthError> {
    if record.grant.client_id == client.client_id() {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "authorization code was issued to another client",
        ))
    }
}

/// `check_redirect_uri`: RFC 6749 §4.1.3 — when sent, `redirect_uri` equals the one bound to
/// the code, exactly. The code record holds the URI the client sent at /authorize or, when it
/// sent none, the single registered one; an absent parameter is accepted (the code is bound to
/// the client and to the PKCE verifier).
pub fn check_redirect_uri(bound: &str, sent: Option<&str>) -> Result<(), OAuthError> {
    match sent {
        Some(s) if s != bound => Err(OAuthError::invalid_grant(format!(
            "redirect_uri {s:?} differs from the one used at the authorization request"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn params(body: &str) -> Params {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        super::super::form::parse_form(&h, body.as_bytes()).unwrap()
    }

    #[test]
    fn grant_type_is_code_refresh_or_an_offered_optional_grant() {
        let none = OptionalGrants::default();
        let all = OptionalGrants {
            jwt_bearer: true,
            client_credentials: true,
        };
        let jwt = "urn:ietf:params:oauth:grant-type:jwt-bearer";
        let unsupported = Err(ErrorCode::UnsupportedGrantType);
        let cases = [
            (
                Some("authorization_code"),
                none,
                Ok(GrantType::AuthorizationCode),
            ),
            (Some("refresh_token"), none, Ok(GrantType::RefreshToken)),
            (Some("client_credentials"), none, unsupported),
            (
                Some("client_credentials"),
                all,
                Ok(GrantType::ClientCredentials),
            ),
            (Some(jwt), none, unsupported),
            (Some(jwt), all, Ok(GrantType::JwtBearer)),
            (Some("password"), all, unsupported),
            (None, all, Err(ErrorCode::InvalidRequest)),
        ];
        for (value, offered, want) in cases {
            let body = value
                .map(|v| format!("grant_type={}", v.replace(':', "%3A")))
                .unwrap_or_default();
            let p = params(&body);
            assert_eq!(
                check_grant_type(&p, offered).map_err(|e| e.code),
                want,
                "{value:?} {offered:?}"
            );
        }
    }

    #[test]
    fn code_verifier_must_be_well_formed_before_the_code_is_spent() {
        let ok = "a".repeat(43);
        let cases = [
            (format!("code=c&code_verifier={ok}"), Ok(())),
            (format!("code=c&code_verifier={}", "a".repeat(128)), Ok(())),
            (
                format!("code=c&code_verifier={}", "a".repeat(42)),
                Err(ErrorCode::InvalidGrant),
            ),
            (
                format!("code=c&code_verifier={}", "a".repeat(129)),
                Err(ErrorCode::InvalidGrant),
            ),
            (
                format!("code=c&code_verifier={}%2B", "a".repeat(43)),
                Err(ErrorCode::InvalidGrant),
            ),
            (
                format!("code_verifier={ok}"),
                Err(ErrorCode::InvalidRequest),
            ),
            ("code=c".to_owned(), Err(ErrorCode::InvalidRequest)),
        ];
        for (body, want) in cases {
            let p = params(&body);
            assert_eq!(
                check_code_params(&p).map(|_| ()).map_err(|e| e.code),
                want,
                "{body}"
            );
        }
    }

    #[test]
    fn redirect_uri_must_equal_the_bound_one_exactly() {
        let bound = "http://127.0.0.1:5000/cb";
        let cases = [
            (None, true),
            (Some("http://127.0.0.1:5000/cb"), true),
            (Some("http://127.0.0.1:5001/cb"), false),
            (Some("http://127.0.0.1:5000/cb/"), false),
            (Some("http://localhost:5000/cb"), false),
        ];
        for (sent, ok) in cases {
            assert_eq!(check_redirect_uri(bound, sent).is_ok(), ok, "{sent:?}");
        }
    }
}

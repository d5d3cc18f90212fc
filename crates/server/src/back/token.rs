//! `POST /token` (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §3.2, §4.1.3; RFC 7636 §4.6; RFC 8707
//! §2.2; SPEC §3.4, §3.7, §4).
//!
//! The handler is an ordered list of named checks:
//!
//! ```text
//! parse_form → check_grant_type → authenticate_client →
//!   authorization_code: check_code_params → get_code → [used: redeem (reuse)] →
//!                       check_code_client → check_redirect_uri → check_pkce →
//!                       check_resource → check_document_change → prepare_tokens →
//!                       redeem → respond
//!   refresh_token:      (see `refresh.rs`)
//! ```
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

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::Digest;
use subtle::ConstantTimeEq;

use cimdgate_store::{
    CodeRecord, CodeRedeem, CodeRedeemOutcome, JtiRecord, RefreshRecord, TokenHash,
};

use super::client_auth::{
    Authenticated, ReplayCheck, authenticate_client_with, jti_replayed, record_pending_jti,
};
use super::form::{Params, json_no_store, parse_form};
use super::tokens::{
    AccessClaims, after, new_refresh_token, random_token, sign_access_token, unix,
};
use crate::audit;
use crate::clients::Client;
use crate::error::OAuthError;
use crate::state::AppState;

/// The grants this server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// RFC 6749 §4.1.3 with PKCE.
    AuthorizationCode,
    /// RFC 6749 §6 with rotation.
    RefreshToken,
}

/// `POST /token`. Rate-limited per source IP first: a token request can trigger a fetch
/// (a stale client document, a `jwks_uri`), SPEC §4.
pub async fn token(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = app.shared.limits.check_ip(peer.ip()).await {
        return e.into_response();
    }
    match run(&app, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(app: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    let params = parse_form(headers, body)?;
    let grant = check_grant_type(&params)?;
    let issued = match grant {
        Grant::AuthorizationCode => {
            let auth =
                authenticate_client_with(app, headers, &params, ReplayCheck::Deferred).await?;
            code_grant(app, auth, &params).await?
        }
        Grant::RefreshToken => {
            let auth =
                authenticate_client_with(app, headers, &params, ReplayCheck::Immediate).await?;
            super::refresh::refresh_grant(app, &auth.client, &params).await?
        }
    };
    Ok(issued.into_response())
}

/// `check_grant_type`: `authorization_code` or `refresh_token`.
pub fn check_grant_type(params: &Params) -> Result<Grant, OAuthError> {
    match params.get("grant_type") {
        Some("authorization_code") => Ok(Grant::AuthorizationCode),
        Some("refresh_token") => Ok(Grant::RefreshToken),
        Some(other) => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type {other:?} is not supported; use authorization_code or refresh_token"
        ))),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

/// The authorization-code grant. `auth.pending_jti` is recorded by the exchange's store write
/// or, when the exchange fails before it, on its own.
async fn code_grant(
    app: &AppState,
    auth: Authenticated,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let mut pending_jti = auth.pending_jti;
    let result = exchange_code(app, &auth.client, &mut pending_jti, params).await;
    match (result, pending_jti) {
        // Failed before the combined write took the jti: use it up now, so a verified
        // assertion is single-use whatever the outcome. A replayed one is refused as such.
        (Err(e), Some(jti)) => Err(record_pending_jti(app, &jti).await.err().unwrap_or(e)),
        (result, _) => result,
    }
}

/// The checks and the combined write of the code exchange. Takes `pending_jti` (leaving
/// `None`) once it is handed to the store write.
async fn exchange_code(
    app: &AppState,
    client: &Client,
    pending_jti: &mut Option<JtiRecord>,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let (code, verifier) = check_code_params(params)?;
    let code = TokenHash::of(code);
    let now = SystemTime::now();
    let tokens = &app.shared.config.tokens;
    let family_revoke_until = after(
        now,
        tokens
            .refresh_token_ttl_secs
            .max(tokens.access_token_ttl_secs),
    );
    let record = match app.shared.store.get_code(&code, now).await? {
        None => return Err(code_not_found()),
        Some((record, true)) => {
            // Reuse (OAuth 2.1 §4.1.3): whatever else the request says, the redemption write
            // revokes the family the first use started.
            let req = CodeRedeem {
                code,
                jti: pending_jti.take(),
                refresh: None,
                family_revoke_until,
            };
            let outcome = app.shared.store.redeem_code(&req, now).await?;
            return Err(refused(req, outcome, &record));
        }
        Some((record, false)) => record,
    };
    if record.expires_at <= now {
        return Err(OAuthError::invalid_grant("authorization code has expired"));
    }
    check_code_client(&record, client)?;
    check_redirect_uri(&record.redirect_uri, params.get("redirect_uri"))?;
    check_pkce(verifier, &record.code_challenge)?;
    check_resource(&record.resource, params.get("resource"))?;
    let approved = ApprovedDocument {
        hash: record.document_hash.as_deref(),
        snapshot: record.document_snapshot.as_deref(),
        redirect_uri: Some(&record.redirect_uri),
    };
    check_document_change(app, &approved, client)?;
    let grant = Approved {
        subject: record.subject.clone(),
        scope: record.scope.clone(),
        refresh_scope: record.scope.clone(),
        resource: record.resource.clone(),
        family_id: record.family_id.clone(),
        document_hash: record.document_hash.clone(),
        document_snapshot: record.document_snapshot.clone(),
        upstream_ref: record.upstream_ref.clone(),
    };
    // Signed before the write, sent only once the write says Redeemed.
    let mut prepared = prepare_tokens(app, client, &grant, now, true)?;
    let req = CodeRedeem {
        code,
        jti: pending_jti.take(),
        refresh: prepared.new_refresh.take(),
        family_revoke_until,
    };
    match app.shared.store.redeem_code(&req, now).await? {
        // The redeemed record is the one checked above: a code's record never changes after
        // `put_code` (only its redeemed flag), and code values are 256-bit random.
        CodeRedeemOutcome::Redeemed(_) => Ok(prepared.respond()),
        outcome => Err(refused(req, outcome, &record)),
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
                .map_or((read.client_id.clone(), String::new()), |j| {
                    (j.client_id, j.jti)
                });
            jti_replayed(&client_id, jti)
        }
        CodeRedeemOutcome::AlreadyUsed(record) => {
            // The store revoked `record.family_id` in the same transaction.
            audit!(
                event = "code_reuse_detected",
                client_id = %record.client_id,
                sub = %record.subject,
                family_id = %record.family_id
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

/// `check_code_params`: `code` and a well-formed `code_verifier` (RFC 7636 §4.1: 43–128
/// characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`), checked before the code is
/// spent.
pub fn check_code_params(params: &Params) -> Result<(&str, &str), OAuthError> {
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let verifier = params.get("code_verifier").ok_or_else(|| {
        OAuthError::invalid_request("code_verifier is required (PKCE S256 is mandatory)")
    })?;
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return Err(OAuthError::invalid_grant(
            "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)",
        ));
    }
    Ok((code, verifier))
}

/// `check_code_client`: the code was issued to exactly this client.
pub fn check_code_client(record: &CodeRecord, client: &Client) -> Result<(), OAuthError> {
    if record.client_id == client.client_id() {
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

/// `check_pkce`: BASE64URL(SHA-256(code_verifier)) == code_challenge (RFC 7636 §4.6), compared
/// in constant time.
pub fn check_pkce(verifier: &str, challenge: &str) -> Result<(), OAuthError> {
    let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge (PKCE S256)",
        ))
    }
}

/// `check_resource`: a `resource` sent here must equal the one bound to the grant (RFC 8707
/// §2.2: the token request may only narrow, and a grant here has exactly one resource).
pub fn check_resource(bound: &str, sent: Option<&str>) -> Result<(), OAuthError> {
    match sent {
        Some(s) if s != bound => Err(OAuthError::invalid_target(format!(
            "resource {s:?} differs from the resource this grant is for ({bound:?})"
        ))),
        _ => Ok(()),
    }
}

/// `check_document_change` (SPEC §3.4): the CIMD document approved at /authorize is bound to the
/// grant. If the current document differs, tokens may not widen what was approved: the redirect
/// URI must still be registered (authorization-code grant) and the auth method unchanged;
/// otherwise the grant is refused. Scopes always come from the grant, never from the new
/// document. Audited as `document_changed`.
pub fn check_document_change(
    app: &AppState,
    approved: &ApprovedDocument<'_>,
    client: &Client,
) -> Result<(), OAuthError> {
    let Client::Cimd(c) = client else {
        return Ok(());
    };
    let Some(approved_hash) = approved.hash else {
        return Ok(());
    };
    let (_, current_hash) = c.snapshot();
    if current_hash == approved_hash {
        return Ok(());
    }
    let changed = |why: String| {
        OAuthError::invalid_grant(format!(
            "the client's metadata document changed since the user approved it: {why}; \
             start a new authorization"
        ))
    };
    if let Some(uri) = approved.redirect_uri
        && client
            .redirect_uri(Some(uri), app.shared.redirect_allow_list.as_ref())
            .is_err()
    {
        return Err(changed(format!(
            "redirect_uri {uri} is no longer registered"
        )));
    }
    let approved_method = approved
        .snapshot
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| {
            v.get("token_endpoint_auth_method")
                .and_then(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| "none".to_owned());
    if approved_method != client.auth_method() {
        return Err(changed(format!(
            "token_endpoint_auth_method changed from {approved_method} to {}",
            client.auth_method()
        )));
    }
    audit!(
        event = "document_changed",
        client_id = %client.client_id(),
        grant = if approved.redirect_uri.is_some() { "authorization_code" } else { "refresh_token" },
        approved_hash = approved_hash,
        current_hash = %current_hash
    );
    Ok(())
}

/// The document the user approved, as bound to a code or refresh token.
#[derive(Debug, Clone, Copy)]
pub struct ApprovedDocument<'a> {
    /// SHA-256 (hex) of the approved document; `None` for DCR clients.
    pub hash: Option<&'a str>,
    /// The approved document JSON.
    pub snapshot: Option<&'a str>,
    /// The redirect URI bound to a code (must still be registered); `None` at refresh.
    pub redirect_uri: Option<&'a str>,
}

/// What a grant approved: everything tokens are issued from.
#[derive(Debug, Clone)]
pub struct Approved {
    /// The user.
    pub subject: String,
    /// Scope of the access token (may be narrowed at refresh).
    pub scope: String,
    /// Scope of the grant (kept by the refresh token).
    pub refresh_scope: String,
    /// Audience.
    pub resource: String,
    /// Family.
    pub family_id: String,
    /// Approved document hash (CIMD).
    pub document_hash: Option<String>,
    /// Approved document (CIMD).
    pub document_snapshot: Option<String>,
    /// Upstream tokens reference.
    pub upstream_ref: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug)]
pub struct Issued {
    body: serde_json::Value,
}

impl IntoResponse for Issued {
    fn into_response(self) -> Response {
        json_no_store(StatusCode::OK, self.body)
    }
}

impl Approved {
    /// The refresh record for a new refresh token of this grant.
    pub fn refresh_record(&self, client: &Client, now: SystemTime, ttl: u64) -> RefreshRecord {
        RefreshRecord {
            family_id: self.family_id.clone(),
            client_id: client.client_id().to_owned(),
            client_kind: client.kind(),
            subject: self.subject.clone(),
            scope: self.refresh_scope.clone(),
            resource: self.resource.clone(),
            document_hash: self.document_hash.clone(),
            document_snapshot: self.document_snapshot.clone(),
            upstream_ref: self.upstream_ref.clone(),
            issued_at: now,
            expires_at: after(now, ttl),
        }
    }
}

/// Tokens signed and built but not yet sent ([`prepare_tokens`] → store write →
/// [`PreparedTokens::respond`]).
#[derive(Debug)]
pub struct PreparedTokens {
    claims: AccessClaims,
    access_token: String,
    access_ttl: u64,
    refresh_token: Option<String>,
    /// The new refresh token's hash and record, for the caller's store write to store.
    pub new_refresh: Option<(TokenHash, RefreshRecord)>,
}

/// Sign the access token and, when `mint_refresh` and the client may refresh, build a new
/// refresh token and its record (not stored: the caller's write stores
/// [`PreparedTokens::new_refresh`]).
pub fn prepare_tokens(
    app: &AppState,
    client: &Client,
    grant: &Approved,
    now: SystemTime,
    mint_refresh: bool,
) -> Result<PreparedTokens, OAuthError> {
    let tokens = &app.shared.config.tokens;
    let claims = AccessClaims {
        iss: app.shared.issuer.clone(),
        sub: grant.subject.clone(),
        aud: grant.resource.clone(),
        client_id: client.client_id().to_owned(),
        scope: grant.scope.clone(),
        exp: unix(now) + tokens.access_token_ttl_secs,
        iat: unix(now),
        jti: random_token(16),
        fid: grant.family_id.clone(),
        urf: grant.upstream_ref.clone(),
    };
    let access_token = sign_access_token(&app.back.keys, &claims).map_err(|e| {
        tracing::error!(error = %e, "cannot sign an access token");
        OAuthError::server_error("cannot sign the access token")
    })?;
    let (refresh_token, new_refresh) = if mint_refresh && client.allows_refresh() {
        let t = new_refresh_token();
        let record = grant.refresh_record(client, now, tokens.refresh_token_ttl_secs);
        let hash = TokenHash::of(&t);
        (Some(t), Some((hash, record)))
    } else {
        (None, None)
    };
    Ok(PreparedTokens {
        claims,
        access_token,
        access_ttl: tokens.access_token_ttl_secs,
        refresh_token,
        new_refresh,
    })
}

impl PreparedTokens {
    /// Audit `token_issued` and build the response. Call only once the tokens are stored.
    pub fn respond(self) -> Issued {
        let claims = self.claims;
        audit!(
            event = "token_issued",
            client_id = %claims.client_id,
            sub = %claims.sub,
            scope = %claims.scope,
            aud = %claims.aud,
            jti = %claims.jti,
            refresh = self.refresh_token.is_some()
        );
        let mut body = json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "scope": claims.scope,
        });
        if let Some(t) = self.refresh_token {
            body["refresh_token"] = json!(t);
        }
        Issued { body }
    }
}

/// `issue`: sign the access token; store a new refresh token unless the caller already stored
/// one by rotation (`rotated`); audit. (The code grant uses [`prepare_tokens`] and stores the
/// refresh token in its single redemption write instead.)
pub async fn issue(
    app: &AppState,
    client: &Client,
    grant: Approved,
    rotated: Option<String>,
) -> Result<Issued, OAuthError> {
    let now = SystemTime::now();
    let mut prepared = prepare_tokens(app, client, &grant, now, rotated.is_none())?;
    if let Some(t) = rotated {
        prepared.refresh_token = Some(t);
    }
    if let Some((hash, record)) = prepared.new_refresh.take() {
        app.shared.store.put_refresh(&hash, &record).await?;
    }
    Ok(prepared.respond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_type_is_code_or_refresh() {
        let cases = [
            (Some("authorization_code"), Ok(Grant::AuthorizationCode)),
            (Some("refresh_token"), Ok(Grant::RefreshToken)),
            (Some("client_credentials"), Err("unsupported_grant_type")),
            (Some("password"), Err("unsupported_grant_type")),
            (None, Err("invalid_request")),
        ];
        for (value, want) in cases {
            let body = value.map(|v| format!("grant_type={v}")).unwrap_or_default();
            let p = params(&body);
            assert_eq!(check_grant_type(&p).map_err(|e| e.error), want, "{value:?}");
        }
    }

    fn params(body: &str) -> Params {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        parse_form(&h, body.as_bytes()).unwrap()
    }

    #[test]
    fn code_verifier_must_be_well_formed_before_the_code_is_spent() {
        let ok = "a".repeat(43);
        let cases = [
            (format!("code=c&code_verifier={ok}"), Ok(())),
            (format!("code=c&code_verifier={}", "a".repeat(128)), Ok(())),
            (
                format!("code=c&code_verifier={}", "a".repeat(42)),
                Err("invalid_grant"),
            ),
            (
                format!("code=c&code_verifier={}", "a".repeat(129)),
                Err("invalid_grant"),
            ),
            (
                format!("code=c&code_verifier={}%2B", "a".repeat(43)),
                Err("invalid_grant"),
            ),
            (format!("code_verifier={ok}"), Err("invalid_request")),
            ("code=c".to_owned(), Err("invalid_request")),
        ];
        for (body, want) in cases {
            let p = params(&body);
            assert_eq!(
                check_code_params(&p).map(|_| ()).map_err(|e| e.error),
                want,
                "{body}"
            );
        }
    }

    #[test]
    fn pkce_s256_must_match() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_pkce(verifier, challenge).is_ok());
        assert_eq!(
            check_pkce(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN")
                .unwrap_err()
                .error,
            "invalid_grant"
        );
        assert_eq!(
            check_pkce(&"b".repeat(43), challenge).unwrap_err().error,
            "invalid_grant"
        );
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

    #[test]
    fn resource_must_equal_the_bound_one_or_invalid_target() {
        let bound = "http://127.0.0.1:8080/mcp";
        assert!(check_resource(bound, None).is_ok());
        assert!(check_resource(bound, Some(bound)).is_ok());
        for other in ["http://127.0.0.1:8080/mcp/", "http://127.0.0.1:8080/other"] {
            assert_eq!(
                check_resource(bound, Some(other)).unwrap_err().error,
                "invalid_target"
            );
        }
    }
}

//! `POST /register`: OAuth 2.0 Dynamic Client Registration (RFC 7591), kept for clients without
//! a Client ID Metadata Document (MCP 2025-11-25 lists it as the fallback).
//!
//! Ordered checks (after the channel's per-IP limit): `parse_json → check_redirect_uris →
//! check_auth_method → check_grant_types → check_scope → register`.
//!
//! Decisions:
//! - `token_endpoint_auth_method` defaults to `client_secret_basic` when absent, as RFC 7591 §2
//!   says; MCP clients send `none` explicitly. A confidential client may present its secret by
//!   HTTP Basic or in the form (both are the same secret).
//! - `client_id` = `dcr_` + 22 random base64url characters: never `https://…` (draft §7.1).
//! - The secret (32 random bytes) is returned once and stored as SHA-256.
//! - `private_key_jwt` is not offered to DCR clients: clients with keys use CIMD.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use cimd::document::{MAX_CLIENT_NAME_CHARS, is_hidden_or_control};
use cimd::redirect::{ApplicationType, RedirectUri};
use cimdgate_store::{RegisteredClient, Scopes, TokenHash};

use super::ctx::BackCtx;
use super::form::NoStoreJson;
use crate::audit;
use crate::clients::check_registered_redirects;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::ExposeSecret;
use crate::services::Services;
use crate::time::unix;

/// Most redirect URIs one registration may list.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Longest redirect URI accepted, in bytes.
pub const MAX_REDIRECT_URI_BYTES: usize = 2048;
/// Longest `scope`, in bytes.
pub const MAX_SCOPE_BYTES: usize = 1024;

/// The RFC 7591 §2 fields we read; others are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// Required.
    pub redirect_uris: Option<Vec<String>>,
    /// `none`, `client_secret_basic` (default) or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// Default `[authorization_code, refresh_token]`.
    pub grant_types: Option<Vec<String>>,
    /// Only `code`.
    pub response_types: Option<Vec<String>>,
    /// Display name.
    pub client_name: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// `web` or `native` (MCP 2026-07-28, SEP-837: clients MUST send it): decides which
    /// redirect URIs are allowed ([`ApplicationType`]); absent, only the general rules apply.
    pub application_type: Option<String>,
}

/// `POST /register`.
pub async fn register(
    State(ctx): State<Arc<BackCtx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<NoStoreJson, OAuthError> {
    check_enabled(&ctx.services)?;
    check_initial_access_token(&ctx.services, &headers)?;
    let meta = parse_json(&headers, &body)?;
    let client = check_metadata(meta, &ctx.services.advertised_scopes())?;
    check_registered_redirects(&ctx.services.policy.load(), &client.redirect_uris).map_err(
        |reason| {
            OAuthError::invalid_redirect_uri(format!("this server does not accept it: {reason}"))
        },
    )?;
    register_client(&ctx.services, client).await
}

/// `check_enabled`: registration is on (`[dcr] enabled`, by default only with an `open` trust
/// policy).
pub fn check_enabled(services: &Services) -> Result<(), OAuthError> {
    if services.config.dcr_enabled() {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "dynamic client registration is not offered by this server; publish a Client ID \
             Metadata Document and use its URL as client_id",
        )
        .with_status(StatusCode::NOT_FOUND))
    }
}

/// `check_initial_access_token`: with `[dcr] initial_access_token` set, the request must carry
/// it as a bearer token (RFC 7591 §3; RFC 6750 §3.1 `invalid_token` otherwise), compared in
/// constant time.
pub fn check_initial_access_token(
    services: &Services,
    headers: &HeaderMap,
) -> Result<(), OAuthError> {
    use subtle::ConstantTimeEq as _;
    let Some(expected) = &services.config.dcr.initial_access_token else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let ok = presented
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.expose_secret().as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::InvalidToken,
            "registration needs the initial access token of this server (Authorization: Bearer)",
        ))
    }
}

/// `parse_json`: `application/json` object.
pub fn parse_json(headers: &HeaderMap, body: &[u8]) -> Result<Metadata, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    {
        return Err(OAuthError::invalid_client_metadata(
            "the registration request must be an application/json object (RFC 7591 §3.1)",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!("the registration request is not valid: {e}"))
    })
}

/// A checked registration, before ids and secrets are minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedMetadata {
    redirect_uris: Vec<String>,
    auth_method: String,
    grant_types: Vec<String>,
    client_name: Option<String>,
    scope: Option<String>,
    application_type: Option<ApplicationType>,
}

/// `check_redirect_uris` (with `check_application_type`), `check_auth_method`,
/// `check_grant_types`, `check_scope`.
pub fn check_metadata(meta: Metadata, scopes: &Scopes) -> Result<CheckedMetadata, OAuthError> {
    // check_redirect_uris
    let uris = meta.redirect_uris.unwrap_or_default();
    if uris.is_empty() {
        return Err(OAuthError::invalid_redirect_uri(
            "redirect_uris is required and must list at least one URI",
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::invalid_redirect_uri(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris"
        )));
    }
    for u in &uris {
        if u.len() > MAX_REDIRECT_URI_BYTES {
            return Err(OAuthError::invalid_redirect_uri(format!(
                "a redirect_uri is {} bytes long; at most {MAX_REDIRECT_URI_BYTES}",
                u.len()
            )));
        }
        RedirectUri::parse(u).map_err(|e| {
            OAuthError::invalid_redirect_uri(format!("redirect_uri {u:?} is not acceptable: {e}"))
        })?;
    }
    // check_application_type
    let application_type = meta
        .application_type
        .as_deref()
        .map(ApplicationType::parse)
        .transpose()
        .map_err(OAuthError::invalid_client_metadata)?;
    if let Some(kind) = application_type {
        for u in &uris {
            let uri = RedirectUri::parse(u).map_err(|e| {
                OAuthError::invalid_redirect_uri(format!("redirect_uri {u:?}: {e}"))
            })?;
            kind.check_redirect_uri(&uri)
                .map_err(OAuthError::invalid_redirect_uri)?;
        }
    }
    // check_auth_method
    let auth_method = meta
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".to_owned());
    if !matches!(
        auth_method.as_str(),
        "none" | "client_secret_basic" | "client_secret_post"
    ) {
        return Err(OAuthError::invalid_client_metadata(format!(
            "token_endpoint_auth_method {auth_method:?} is not supported for registered clients; \
             use none, client_secret_basic or client_secret_post (clients with keys: use a \
             Client ID Metadata Document with private_key_jwt)"
        )));
    }
    // check_grant_types
    let grant_types = meta
        .grant_types
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if let Some(g) = grant_types
        .iter()
        .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "grant_type {g:?} is not supported; use authorization_code and refresh_token"
        )));
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types must include authorization_code",
        ));
    }
    if let Some(r) = meta
        .response_types
        .unwrap_or_default()
        .iter()
        .find(|r| *r != "code")
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "response_type {r:?} is not supported; only code"
        )));
    }
    // check_client_name: shown on pages as the self-declared name, so bounded and free of
    // characters that can reorder or hide text (bidi overrides, zero-width, controls).
    if let Some(name) = &meta.client_name {
        if name.chars().count() > MAX_CLIENT_NAME_CHARS {
            return Err(OAuthError::invalid_client_metadata(format!(
                "client_name is longer than {MAX_CLIENT_NAME_CHARS} characters"
            )));
        }
        if name.chars().any(is_hidden_or_control) {
            return Err(OAuthError::invalid_client_metadata(
                "client_name contains control, bidirectional-override or invisible characters",
            ));
        }
    }
    // check_scope
    if meta
        .scope
        .as_ref()
        .is_some_and(|s| s.len() > MAX_SCOPE_BYTES)
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "scope is longer than {MAX_SCOPE_BYTES} bytes"
        )));
    }
    if let Some(scope) = &meta.scope
        && let Some(s) = Scopes::parse(scope).first_missing_from(scopes)
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "scope {s:?} is not offered by this server (offered: {:?})",
            scopes.to_string()
        )));
    }
    Ok(CheckedMetadata {
        redirect_uris: uris,
        auth_method,
        grant_types,
        client_name: meta.client_name.filter(|n| !n.trim().is_empty()),
        scope: meta.scope.filter(|s| !s.trim().is_empty()),
        application_type,
    })
}

async fn register_client(
    services: &Services,
    m: CheckedMetadata,
) -> Result<NoStoreJson, OAuthError> {
    let now = SystemTime::now();
    let client_id = format!("dcr_{}", crate::rand::token(16));
    let secret = (m.auth_method != "none").then(|| crate::rand::token(32));
    let record = RegisteredClient {
        client_id: client_id.clone(),
        secret_hash: secret.as_deref().map(|s| TokenHash::of(s).0),
        token_endpoint_auth_method: m.auth_method.clone(),
        redirect_uris: m.redirect_uris.clone(),
        client_name: m.client_name.clone(),
        grant_types: m.grant_types.clone(),
        scope: m.scope.clone(),
        created_at: now,
        expires_at: Some(crate::time::after(now, services.config.dcr.unused_ttl_secs)),
    };
    services.store.put_client(&record).await?;
    audit!(
        event = "client_registered",
        client_id = %client_id,
        auth_method = %m.auth_method,
        client_name = m.client_name.as_deref().unwrap_or("")
    );
    let mut body = json!({
        "client_id": client_id,
        "client_id_issued_at": unix(now),
        "redirect_uris": m.redirect_uris,
        "token_endpoint_auth_method": m.auth_method,
        "grant_types": m.grant_types,
        "response_types": ["code"],
    });
    if let Some(s) = secret {
        body["client_secret"] = json!(s);
        body["client_secret_expires_at"] = json!(0);
    }
    if let Some(n) = m.client_name {
        body["client_name"] = json!(n);
    }
    if let Some(t) = m.application_type {
        body["application_type"] = json!(t);
    }
    if let Some(s) = m.scope {
        body["scope"] = json!(s);
    }
    Ok(NoStoreJson(StatusCode::CREATED, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: serde_json::Value) -> Metadata {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn registration_metadata_rules() {
        let scopes = Scopes::parse("mcp");
        let cases = [
            (
                "minimal",
                json!({"redirect_uris": ["http://127.0.0.1/cb"]}),
                Ok("client_secret_basic"),
            ),
            (
                "public",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
                Ok("none"),
            ),
            (
                "native scheme",
                json!({"redirect_uris": ["com.example.app:/cb"], "token_endpoint_auth_method": "client_secret_post"}),
                Ok("client_secret_post"),
            ),
            ("no redirect", json!({}), Err("invalid_redirect_uri")),
            (
                "long redirect",
                json!({"redirect_uris": [format!("https://a.example/{}", "x".repeat(2100))]}),
                Err("invalid_redirect_uri"),
            ),
            (
                "long name",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "n".repeat(101)}),
                Err("invalid_client_metadata"),
            ),
            (
                "bidi name",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "moc.buhtig\u{202E}"}),
                Err("invalid_client_metadata"),
            ),
            (
                "zero-width name",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "git\u{200B}hub"}),
                Err("invalid_client_metadata"),
            ),
            (
                "long scope",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "scope": "mcp ".repeat(300)}),
                Err("invalid_client_metadata"),
            ),
            (
                "empty redirect",
                json!({"redirect_uris": []}),
                Err("invalid_redirect_uri"),
            ),
            (
                "javascript",
                json!({"redirect_uris": ["javascript:alert(1)"]}),
                Err("invalid_redirect_uri"),
            ),
            (
                "http non-loopback",
                json!({"redirect_uris": ["http://evil.example/cb"]}),
                Err("invalid_redirect_uri"),
            ),
            (
                "private_key_jwt",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                Err("invalid_client_metadata"),
            ),
            (
                "client_credentials",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["client_credentials"]}),
                Err("invalid_client_metadata"),
            ),
            (
                "refresh only",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["refresh_token"]}),
                Err("invalid_client_metadata"),
            ),
            (
                "token response",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "response_types": ["token"]}),
                Err("invalid_client_metadata"),
            ),
            (
                "unknown scope",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "scope": "mcp admin"}),
                Err("invalid_client_metadata"),
            ),
            (
                "known scope",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "scope": "mcp"}),
                Ok("client_secret_basic"),
            ),
            // SEP-837: application_type decides the redirect URIs.
            (
                "native loopback",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "native", "token_endpoint_auth_method": "none"}),
                Ok("none"),
            ),
            (
                "web https",
                json!({"redirect_uris": ["https://app.example/cb"], "application_type": "web"}),
                Ok("client_secret_basic"),
            ),
            (
                "web loopback",
                json!({"redirect_uris": ["https://app.example/cb", "http://127.0.0.1/cb"], "application_type": "web"}),
                Err("invalid_redirect_uri"),
            ),
            (
                "web app scheme",
                json!({"redirect_uris": ["com.example.app:/cb"], "application_type": "web"}),
                Err("invalid_redirect_uri"),
            ),
            (
                "unknown application_type",
                json!({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "desktop"}),
                Err("invalid_client_metadata"),
            ),
        ];
        for (name, v, want) in cases {
            let got = check_metadata(meta(v), &scopes);
            match (got, want) {
                (Ok(m), Ok(method)) => {
                    assert_eq!(m.auth_method, method, "{name}");
                    assert!(
                        m.grant_types.iter().any(|g| g == "authorization_code"),
                        "{name}"
                    );
                }
                (Err(e), Err(code)) => {
                    assert_eq!(e.code.as_str(), code, "{name}: {}", e.description)
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}

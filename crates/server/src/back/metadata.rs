//! Authorization-server metadata (RFC 8414) and the JWK Set (`/jwks.json`, RFC 7517 §5).
//!
//! Served at `/.well-known/oauth-authorization-server` and, when the issuer has a path
//! (`https://as.example/tenant`), at the path-inserted form
//! `/.well-known/oauth-authorization-server/tenant` (RFC 8414 §3.1); OpenID discovery aliases at
//! `/.well-known/openid-configuration`, `/.well-known/openid-configuration/tenant` and
//! `/tenant/.well-known/openid-configuration` (OIDC Discovery §4; MCP 2025-11-25 tries all
//! three). The documents are rendered once at startup.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use cimd::assertion::ALLOWED_ALGORITHMS;

use std::sync::Arc;

use crate::services::Services;

/// JOSE names of the client-assertion algorithms we accept.
fn assertion_algs() -> Vec<String> {
    ALLOWED_ALGORITHMS
        .iter()
        .map(|a| format!("{a:?}"))
        .collect()
}

/// The RFC 8414 §2 metadata document. `grant_types` is what `/token` accepts
/// ([`super::grant_types::supported_names`]: the jwt-bearer grant with enterprise IdPs configured,
/// `client_credentials` when enabled).
pub fn metadata(services: &Services, grant_types: &[&str]) -> Value {
    let mut methods = vec!["none"];
    if services.config.cimd.enabled {
        methods.push("private_key_jwt");
    }
    methods.extend(["client_secret_basic", "client_secret_post"]);
    let e = &services.endpoints;
    let mut m = json!({
        "issuer": services.issuer,
        "authorization_endpoint": e.authorization,
        "token_endpoint": e.token,
        "revocation_endpoint": e.revocation,
        "jwks_uri": e.jwks,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "scopes_supported": services.advertised_scopes().iter().collect::<Vec<_>>(),
        "authorization_response_iss_parameter_supported": true,
    });
    if services.config.dcr_enabled() {
        m["registration_endpoint"] = json!(e.registration);
    }
    if services.config.cimd.enabled {
        let algs = assertion_algs();
        m["token_endpoint_auth_signing_alg_values_supported"] = json!(algs);
        m["revocation_endpoint_auth_signing_alg_values_supported"] = json!(algs);
        m["client_id_metadata_document_supported"] = json!(true);
    }
    m
}

fn json_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Pre-rendered documents.
#[derive(Debug, Clone)]
pub struct Documents {
    /// RFC 8414 metadata.
    pub metadata: Bytes,
    /// JWK Set.
    pub jwks: Bytes,
    /// The issuer's path (`""` for a bare origin), for the path-aware routes.
    pub issuer_path: String,
}

impl Documents {
    /// Render.
    pub fn new(services: &Services, jwks: &Value, grant_types: &[&str]) -> Self {
        let path = url::Url::parse(&services.issuer)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        Documents {
            metadata: json_bytes(&metadata(services, grant_types)),
            jwks: json_bytes(jwks),
            issuer_path: path,
        }
    }
}

fn cached_json(body: Bytes) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no metadata for this path").into_response()
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub async fn root_metadata(State(d): State<Arc<Documents>>) -> Response {
    cached_json(d.metadata.clone())
}

/// `GET /.well-known/oauth-authorization-server/{*path}` (RFC 8414 §3.1 path insertion) and the
/// OpenID equivalent: only for this issuer's path.
pub async fn inserted_metadata(
    State(d): State<Arc<Documents>>,
    Path(rest): Path<String>,
) -> Response {
    let rest = rest.trim_end_matches('/');
    if !d.issuer_path.is_empty() && d.issuer_path.trim_start_matches('/') == rest {
        cached_json(d.metadata.clone())
    } else {
        not_found()
    }
}

/// `GET /{a}/.well-known/openid-configuration` (OIDC Discovery §4 appends to the issuer).
pub async fn appended_metadata_1(
    State(d): State<Arc<Documents>>,
    Path(a): Path<String>,
) -> Response {
    appended(&d, &format!("/{a}"))
}

/// `GET /{a}/{b}/.well-known/openid-configuration`.
pub async fn appended_metadata_2(
    State(d): State<Arc<Documents>>,
    Path((a, b)): Path<(String, String)>,
) -> Response {
    appended(&d, &format!("/{a}/{b}"))
}

fn appended(d: &Documents, prefix: &str) -> Response {
    if !d.issuer_path.is_empty() && d.issuer_path == prefix {
        cached_json(d.metadata.clone())
    } else {
        not_found()
    }
}

/// `GET /jwks.json`.
pub async fn jwks(State(d): State<Arc<Documents>>) -> Response {
    cached_json(d.jwks.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertion_alg_names_are_jose_names() {
        let algs = assertion_algs();
        for want in ["RS256", "PS512", "ES256", "ES384", "EdDSA"] {
            assert!(algs.iter().any(|a| a == want), "{want} in {algs:?}");
        }
        assert!(!algs.iter().any(|a| a.starts_with("HS")));
    }
}

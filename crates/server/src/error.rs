//! OAuth error responses (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2) in one place, with MCP's
//! status codes (SPEC §3.7): failed client authentication → 401 `invalid_client`; every token
//! endpoint response carries `Cache-Control: no-store`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An OAuth error for JSON endpoints (`/token`, `/revoke`, `/register`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: StatusCode,
    /// RFC 6749 error code.
    pub error: &'static str,
    /// Human-readable description naming the problem.
    pub description: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

macro_rules! ctor {
    ($(#[$doc:meta])* $name:ident, $status:expr, $code:literal) => {
        $(#[$doc])*
        pub fn $name(description: impl Into<String>) -> Self {
            OAuthError { status: $status, error: $code, description: description.into() }
        }
    };
}

impl OAuthError {
    ctor!(/// 400 `invalid_request`.
        invalid_request, StatusCode::BAD_REQUEST, "invalid_request");
    ctor!(/// 401 `invalid_client` (client authentication failed).
        invalid_client, StatusCode::UNAUTHORIZED, "invalid_client");
    ctor!(/// 400 `invalid_grant` (bad, expired, reused code or refresh token; PKCE mismatch).
        invalid_grant, StatusCode::BAD_REQUEST, "invalid_grant");
    ctor!(/// 400 `unauthorized_client`.
        unauthorized_client, StatusCode::BAD_REQUEST, "unauthorized_client");
    ctor!(/// 400 `unsupported_grant_type`.
        unsupported_grant_type, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    ctor!(/// 400 `invalid_scope`.
        invalid_scope, StatusCode::BAD_REQUEST, "invalid_scope");
    ctor!(/// 400 `invalid_target` (RFC 8707: unknown resource).
        invalid_target, StatusCode::BAD_REQUEST, "invalid_target");
    ctor!(/// 400 `invalid_client_metadata` (RFC 7591).
        invalid_client_metadata, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    ctor!(/// 400 `invalid_redirect_uri` (RFC 7591).
        invalid_redirect_uri, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    ctor!(/// 429 `slow_down`-style refusal when a rate limit is hit.
        rate_limited, StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable");
    ctor!(/// 503 `temporarily_unavailable` (store or upstream down).
        unavailable, StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    ctor!(/// 500 `server_error`.
        server_error, StatusCode::INTERNAL_SERVER_ERROR, "server_error");
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl From<cimdgate_store::StoreError> for OAuthError {
    fn from(e: cimdgate_store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        OAuthError::unavailable("the server's store is unavailable; retry shortly")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                error: self.error,
                error_description: &self.description,
            }),
        )
            .into_response();
        let h = response.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cimdgate\""),
            );
        }
        response
    }
}

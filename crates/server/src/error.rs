//! The crate's errors, in one place:
//!
//! - [`ErrorCode`]: every OAuth error code this server sends (RFC 6749 §4.1.2.1 and §5.2,
//!   RFC 7009 §2.2.1, RFC 7591 §3.2.2, RFC 8707 §2), each with its default HTTP status;
//! - [`OAuthError`]: a code, a status and a description naming the problem. Domain functions
//!   return it; the channels render it three ways — JSON with `Cache-Control: no-store`
//!   (RFC 6749 §5.1–5.2, [`IntoResponse`] below), a redirect to the client's verified redirect
//!   URI (`front::pages::error_redirect`) and an HTML page (`front::pages::ErrorPage`);
//! - [`StartError`]: why the server cannot start.
//!
//! MCP's status rules (MCP authorization, "Error Handling"): a failed client authentication is
//! 401 `invalid_client` with a `WWW-Authenticate` challenge; store and IdP outages are 503.

use std::net::SocketAddr;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::ConfigError;

/// An OAuth error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// RFC 6749 §5.2: missing, repeated or malformed parameter.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed or the client cannot be used.
    InvalidClient,
    /// RFC 6749 §5.2: bad, expired or reused code or refresh token; PKCE mismatch.
    InvalidGrant,
    /// RFC 6749 §5.2 / §4.1.2.1: the client may not use this grant or is not allowed here.
    UnauthorizedClient,
    /// RFC 6749 §5.2.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1.
    UnsupportedResponseType,
    /// RFC 6749 §5.2 / §4.1.2.1.
    InvalidScope,
    /// RFC 8707 §2: unknown or mismatched resource.
    InvalidTarget,
    /// RFC 7591 §3.2.2.
    InvalidClientMetadata,
    /// RFC 7591 §3.2.2.
    InvalidRedirectUri,
    /// RFC 6749 §4.1.2.1: the user (or a policy) refused.
    AccessDenied,
    /// RFC 6750 §3.1: a missing or wrong bearer token (the initial access token of RFC 7591 §3).
    InvalidToken,
    /// RFC 6749 §4.1.2.1: overloaded, rate-limited or a dependency is down.
    TemporarilyUnavailable,
    /// RFC 6749 §4.1.2.1: a fault of this server.
    ServerError,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
        }
    }

    /// The status this code is sent with unless the situation says otherwise (a rate limit is
    /// `temporarily_unavailable` with 429).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::UnauthorizedClient | ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error: what went wrong, for the client and its developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// HTTP status (the code's own unless set otherwise).
    pub status: StatusCode,
    /// Human-readable description naming the problem.
    pub description: String,
}

macro_rules! ctor {
    ($(#[$doc:meta])* $name:ident, $code:ident) => {
        $(#[$doc])*
        pub fn $name(description: impl Into<String>) -> Self {
            OAuthError::new(ErrorCode::$code, description)
        }
    };
}

impl OAuthError {
    /// An error with the code's default status.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            status: code.status(),
            description: description.into(),
        }
    }

    /// The same error with another HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    ctor!(/// `invalid_request`.
        invalid_request, InvalidRequest);
    ctor!(/// 401 `invalid_client` (client authentication failed).
        invalid_client, InvalidClient);
    ctor!(/// `invalid_grant`.
        invalid_grant, InvalidGrant);
    ctor!(/// `unsupported_grant_type`.
        unsupported_grant_type, UnsupportedGrantType);
    ctor!(/// `unsupported_response_type`.
        unsupported_response_type, UnsupportedResponseType);
    ctor!(/// `invalid_scope`.
        invalid_scope, InvalidScope);
    ctor!(/// `invalid_target` (RFC 8707: unknown or mismatched resource).
        invalid_target, InvalidTarget);
    ctor!(/// `invalid_client_metadata` (RFC 7591).
        invalid_client_metadata, InvalidClientMetadata);
    ctor!(/// `invalid_redirect_uri` (RFC 7591).
        invalid_redirect_uri, InvalidRedirectUri);
    ctor!(/// 503 `temporarily_unavailable` (store or IdP down).
        unavailable, TemporarilyUnavailable);
    ctor!(/// 500 `server_error`.
        server_error, ServerError);

    /// 400 `unauthorized_client` at the token endpoint (RFC 6749 §5.2: a client that may not
    /// use this grant).
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        OAuthError::new(ErrorCode::UnauthorizedClient, description)
            .with_status(StatusCode::BAD_REQUEST)
    }

    /// 429 `temporarily_unavailable`: a rate limit was hit.
    pub fn rate_limited(description: impl Into<String>) -> Self {
        OAuthError::new(ErrorCode::TemporarilyUnavailable, description)
            .with_status(StatusCode::TOO_MANY_REQUESTS)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}

impl From<cimdgate_store::StoreError> for OAuthError {
    fn from(e: cimdgate_store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        OAuthError::unavailable("the server's store is unavailable; retry shortly")
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// The JSON rendering (token, revocation and registration endpoints): `{error,
/// error_description}`, `Cache-Control: no-store`, and a `WWW-Authenticate` challenge on 401.
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                error: self.code.as_str(),
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
                HeaderValue::from_static(if self.code == ErrorCode::InvalidToken {
                    "Bearer realm=\"cimdgate\", error=\"invalid_token\""
                } else {
                    "Basic realm=\"cimdgate\""
                }),
            );
        }
        response
    }
}

/// Why the server cannot start. Each variant says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration (names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store cannot be opened.
    #[error("store {url}: {reason}")]
    Store {
        /// `store.url` (password redacted).
        url: String,
        /// What failed.
        reason: String,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        reason: String,
    },
    /// Another component failed to initialise (keys, identity provider, …).
    #[error("{component}: {reason}")]
    Init {
        /// Which component.
        component: &'static str,
        /// What failed.
        reason: String,
    },
}

impl StartError {
    /// An [`StartError::Init`] of `component`.
    pub fn init(component: &'static str, reason: impl Into<String>) -> Self {
        StartError::Init {
            component,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_wire_name_and_status() {
        let cases = [
            (ErrorCode::InvalidRequest, "invalid_request", 400),
            (ErrorCode::InvalidClient, "invalid_client", 401),
            (ErrorCode::InvalidGrant, "invalid_grant", 400),
            (ErrorCode::UnauthorizedClient, "unauthorized_client", 403),
            (
                ErrorCode::UnsupportedGrantType,
                "unsupported_grant_type",
                400,
            ),
            (
                ErrorCode::UnsupportedResponseType,
                "unsupported_response_type",
                400,
            ),
            (ErrorCode::InvalidScope, "invalid_scope", 400),
            (ErrorCode::InvalidTarget, "invalid_target", 400),
            (
                ErrorCode::InvalidClientMetadata,
                "invalid_client_metadata",
                400,
            ),
            (ErrorCode::InvalidRedirectUri, "invalid_redirect_uri", 400),
            (ErrorCode::AccessDenied, "access_denied", 403),
            (ErrorCode::InvalidToken, "invalid_token", 401),
            (
                ErrorCode::TemporarilyUnavailable,
                "temporarily_unavailable",
                503,
            ),
            (ErrorCode::ServerError, "server_error", 500),
        ];
        for (code, name, status) in cases {
            assert_eq!((code.as_str(), code.status().as_u16()), (name, status));
        }
        assert_eq!(
            OAuthError::rate_limited("x").status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            OAuthError::unauthorized_client("x").status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn json_rendering_is_no_store_and_challenges_on_401() {
        let r = OAuthError::invalid_client("who?").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let r = OAuthError::invalid_grant("no").into_response();
        assert!(!r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}

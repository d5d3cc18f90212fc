//! What the identity-provider client hands to the rest of the server: the pending sign-in the
//! front channel seals into a cookie, the callback parameters, the signed-in user with the
//! IdP's tokens, and why a sign-in failed.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::secret::{self, SecretString};

/// Default scopes for an OIDC upstream.
pub const DEFAULT_OIDC_SCOPES: &[&str] = &["openid", "email", "profile"];
/// How long a pending upstream sign-in stays valid (the front's cookie should not outlive it).
pub const MAX_PENDING_AGE_SECS: u64 = 600;
/// Longest `error_description` from the callback kept for the error page.
pub(super) const MAX_DESCRIPTION_CHARS: usize = 300;

/// cimdgate's own per-sign-in secrets toward the IdP; the front seals it into a short-lived
/// cookie between `Idp::begin` and `Idp::finish`.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct IdpPending {
    /// `state` sent to the IdP (32 random bytes, base64url).
    #[serde(serialize_with = "secret::serialize")]
    pub state: SecretString,
    /// OIDC `nonce` sent to the IdP (32 random bytes, base64url).
    #[serde(serialize_with = "secret::serialize")]
    pub nonce: SecretString,
    /// PKCE `code_verifier` (RFC 7636 §4.1; 43 characters).
    #[serde(serialize_with = "secret::serialize")]
    pub pkce_verifier: SecretString,
    /// Unix seconds when the sign-in started.
    pub created_at: u64,
}

/// The query parameters of `GET /upstream/callback` (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207).
#[derive(Debug, Deserialize, Default, Clone)]
pub struct CallbackParams {
    /// Authorization code.
    pub code: Option<SecretString>,
    /// The `state` we sent.
    pub state: Option<SecretString>,
    /// Error code when the IdP did not authorize.
    pub error: Option<String>,
    /// Human-readable error text from the IdP.
    pub error_description: Option<String>,
    /// The IdP's issuer identifier (RFC 9207).
    pub iss: Option<String>,
}

/// The signed-in upstream user.
#[derive(Debug, Clone)]
pub struct IdpUser {
    /// Stable subject: the OIDC `sub` as is, `github:<id>` for GitHub, userinfo `sub`/`id` else.
    pub subject: String,
    /// Display name, when the IdP gave one.
    pub name: Option<String>,
    /// Email, when the IdP gave one.
    pub email: Option<String>,
    /// cimdgate's tokens at the IdP (stored encrypted; never given to MCP clients).
    pub tokens: IdpTokens,
}

/// cimdgate's tokens at the IdP. `Debug` shows only which ones are present.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct IdpTokens {
    /// The IdP's access token.
    #[serde(serialize_with = "secret::serialize")]
    pub access_token: SecretString,
    /// The IdP's refresh token.
    #[serde(serialize_with = "secret::serialize_opt")]
    pub refresh_token: Option<SecretString>,
    /// The IdP's id_token (OIDC).
    #[serde(serialize_with = "secret::serialize_opt")]
    pub id_token: Option<SecretString>,
    /// Unix seconds when the access token expires, if the IdP said.
    pub expires_at: Option<u64>,
}

/// Why an upstream sign-in failed. `Display` is a sentence for the error page (never contains
/// tokens or codes); [`IdpError::status`] is the page's HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdpError {
    /// The IdP could not be reached, timed out, or answered 5xx.
    #[error(
        "The sign-in provider {host} is unavailable right now ({reason}). Please try again later."
    )]
    Unavailable {
        /// `host[:port]` of the IdP.
        host: String,
        /// What failed.
        reason: String,
    },
    /// Discovery worked at the transport level but the document is unusable (issuer mismatch…).
    #[error("The sign-in provider {host} is misconfigured: {reason}")]
    Discovery {
        /// `host[:port]` of the IdP.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// The IdP returned an error to the callback (RFC 6749 §4.1.2.1), e.g. the user declined.
    #[error("Sign-in was not completed at the provider ({error}){}", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied {
        /// The `error` code (sanitised).
        error: String,
        /// The `error_description` (sanitised, shortened).
        description: Option<String>,
    },
    /// The callback's `state` is missing or is not the one this browser's sign-in sent.
    #[error(
        "This sign-in response does not belong to the sign-in started in this browser (state mismatch). Please start again."
    )]
    StateMismatch,
    /// The pending sign-in is older than [`MAX_PENDING_AGE_SECS`].
    #[error("The sign-in took too long. Please start again.")]
    Expired,
    /// The callback's `iss` is not the configured issuer (RFC 9207).
    #[error(
        "The sign-in response names issuer {got:?}, not the configured provider {expected:?}; it was refused (RFC 9207)."
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the callback carried (`None`: missing although the IdP promised it).
        got: Option<String>,
    },
    /// The callback has neither `code` nor `error`.
    #[error("The sign-in provider returned neither an authorization code nor an error.")]
    MissingCode,
    /// The token endpoint refused the code exchange.
    #[error("The sign-in provider {host} refused to complete the sign-in: {reason}")]
    Exchange {
        /// `host[:port]` of the token endpoint.
        host: String,
        /// Why (the IdP's `error` code, or the status).
        reason: String,
    },
    /// The id_token failed validation.
    #[error("The sign-in provider's ID token was refused: {reason}.")]
    InvalidIdToken {
        /// The rule that failed.
        reason: String,
    },
    /// The user's profile could not be read.
    #[error("The sign-in provider {host} did not return the user's profile: {reason}")]
    UserInfo {
        /// `host[:port]` of the userinfo endpoint.
        host: String,
        /// What failed.
        reason: String,
    },
    /// A local fault (random number generator).
    #[error("Internal error while signing in: {0}")]
    Internal(String),
}

impl IdpError {
    /// HTTP status for the error page: 502 when the IdP is down or misbehaves, 403 when the user
    /// or IdP declined, 400 for a bad or stale callback, 500 for local faults.
    pub fn status(&self) -> StatusCode {
        match self {
            IdpError::Unavailable { .. }
            | IdpError::Discovery { .. }
            | IdpError::Exchange { .. }
            | IdpError::InvalidIdToken { .. }
            | IdpError::UserInfo { .. } => StatusCode::BAD_GATEWAY,
            IdpError::Denied { .. } => StatusCode::FORBIDDEN,
            IdpError::StateMismatch
            | IdpError::Expired
            | IdpError::IssuerMismatch { .. }
            | IdpError::MissingCode => StatusCode::BAD_REQUEST,
            IdpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OAuth error code of the page shown for it.
    pub fn code(&self) -> ErrorCode {
        match self.status() {
            StatusCode::BAD_GATEWAY => ErrorCode::TemporarilyUnavailable,
            StatusCode::FORBIDDEN => ErrorCode::AccessDenied,
            StatusCode::BAD_REQUEST => ErrorCode::InvalidRequest,
            _ => ErrorCode::ServerError,
        }
    }

    /// A short machine name for audit events (`upstream_unavailable`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            IdpError::Unavailable { .. } => "upstream_unavailable",
            IdpError::Discovery { .. } => "upstream_misconfigured",
            IdpError::Denied { .. } => "upstream_denied",
            IdpError::StateMismatch => "state_mismatch",
            IdpError::Expired => "expired",
            IdpError::IssuerMismatch { .. } => "issuer_mismatch",
            IdpError::MissingCode => "missing_code",
            IdpError::Exchange { .. } => "code_exchange_failed",
            IdpError::InvalidIdToken { .. } => "invalid_id_token",
            IdpError::UserInfo { .. } => "userinfo_failed",
            IdpError::Internal(_) => "internal",
        }
    }
}

/// Keep only the characters RFC 6749 §4.1.2.1 allows in `error`/`error_description`
/// (%x20-21 / %x23-5B / %x5D-7E), shortened: the value comes from the browser.
pub(super) fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(*c, ' '..='!' | '#'..='[' | ']'..='~'))
        .take(MAX_DESCRIPTION_CHARS)
        .collect()
}

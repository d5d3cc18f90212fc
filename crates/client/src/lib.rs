//! # cimdgate-client — the client side of MCP authorization
//!
//! What an MCP client does before its first tool call against a protected server (MCP
//! 2026-07-28 "Authorization", still compatible with 2025-11-25 servers), as small pieces a
//! CLI, a demo or a test can compose. It works against any compliant server: it depends on
//! none of cimdgate's server crates.
//!
//! - [`challenge`]: parse the 401's `WWW-Authenticate: Bearer resource_metadata="…"` (RFC 6750
//!   §3, RFC 9728 §5.1);
//! - [`discovery`]: fetch the Protected Resource Metadata (RFC 9728 §3) and the authorization
//!   server's metadata (RFC 8414 §3, path-aware, with the OpenID Connect Discovery fallback;
//!   its `issuer` must be identical to the one the URL was built from, §3.3);
//! - [`flow`]: choose the client identity (a Client ID Metadata Document URL when the server
//!   advertises `client_id_metadata_document_supported`, else Dynamic Client Registration,
//!   RFC 7591, with `application_type` per SEP-837), build the authorization request (PKCE S256
//!   per RFC 7636, `state`, `resource` per RFC 8707), check the callback (`state`, then `iss`
//!   per RFC 9207 and the MCP 2026-07-28 table), exchange the code and refresh tokens;
//! - [`scope`]: which scope to ask for — the challenge's, the union with the stored scope on
//!   step-up (SEP-2350), `offline_access` only when the AS lists it (SEP-2207);
//! - [`callback`]: the loopback redirect listener on an ephemeral port (RFC 8252 §7.3);
//! - [`store`]: the token file (`tokens.json`, mode 0600);
//! - [`mod@login`]: the whole interactive login, and "give me a valid token" for scripts;
//! - [`form`]: a browser stand-in that fills cimdgate's login and consent forms (demos, tests);
//! - [`mcp`]: the few MCP Streamable HTTP calls a smoke test needs, dual-era: a
//!   `server/discover` probe, then 2026-07-28 stateless requests (per-request `_meta`,
//!   `Mcp-Method`/`Mcp-Name` headers) or, with a legacy server, the 2025-11-25 `initialize`
//!   session.
//!
//! Non-goals: a general MCP client (use rmcp), confidential clients (`private_key_jwt`), token
//! storage in an OS keychain.
#![forbid(unsafe_code)]
// Panics in request paths are bugs: no unwrap/expect outside tests (STYLE.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

pub mod callback;
pub mod challenge;
pub mod discovery;
pub mod flow;
pub mod form;
pub mod login;
pub mod mcp;
pub mod pkce;
pub mod scope;
pub mod store;

pub use callback::{CallbackParams, CallbackServer};
pub use challenge::BearerChallenge;
pub use discovery::{AuthorizationServerMetadata, Discovery, ProtectedResourceMetadata};
pub use flow::{AuthorizationRequest, TokenSet};
pub use login::{LoginOptions, login, step_up_scope, valid_access_token};
pub use mcp::McpSession;
pub use secrecy::{ExposeSecret, SecretString};
pub use store::{StoredLogin, TokenStore};

/// Why a step of the client flow failed. Each message names the step and what to check.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A request could not be sent or its answer not read.
    #[error("{step}: request to {url} failed: {reason}")]
    Http {
        /// The step.
        step: &'static str,
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A server answered something the protocol does not allow.
    #[error("{step}: {reason}")]
    Protocol {
        /// The step.
        step: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The authorization server refused (an OAuth error response, RFC 6749 §4.1.2.1 / §5.2).
    #[error("{step}: the authorization server answered {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    OAuth {
        /// The step.
        step: &'static str,
        /// The `error` code.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The resource refused the token for lack of scope (403 with `Bearer
    /// error="insufficient_scope"`, RFC 6750 §3.1; MCP "Scope Challenge Handling"). Log in
    /// again asking for [`login::step_up_scope`] of the stored scope and the challenge's.
    #[error("{step}: the server needs more scope{}", .challenge.scope.as_deref().map(|s| format!(" ({s:?}); log in again with --scope {s:?} (it is added to the scope you have)")).unwrap_or_default())]
    InsufficientScope {
        /// The step.
        step: &'static str,
        /// The 403's `Bearer` challenge.
        challenge: BearerChallenge,
    },
    /// No login is stored for this MCP server (and none could be made).
    #[error("no stored login for {0}; run `cimdgate login {0} --client-id URL` first")]
    NotLoggedIn(String),
    /// The token file could not be read or written.
    #[error("token store {path}: {reason}")]
    Store {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl ClientError {
    /// A [`ClientError::Protocol`] for `step`.
    pub fn protocol(step: &'static str, reason: impl Into<String>) -> Self {
        ClientError::Protocol {
            step,
            reason: reason.into(),
        }
    }

    /// A [`ClientError::Http`] for `step`.
    pub fn http(step: &'static str, url: impl Into<String>, reason: impl ToString) -> Self {
        ClientError::Http {
            step,
            url: url.into(),
            reason: reason.to_string(),
        }
    }
}

/// An HTTP client suitable for the flow: no redirects followed (a redirect in discovery or at
/// the token endpoint is an error, and the form driver handles its own), bounded timeouts.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("cimdgate-client/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::http("http client", "-", e))
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

//! The identity provider ("OAuth proxy" mode): cimdgate signs the user in at an
//! operator-configured OpenID Connect provider, or at GitHub, acting as an ordinary OAuth
//! client of that IdP with **its own** `state`, `nonce` and PKCE (RFC 7636, S256) — nothing from
//! the MCP client's request is forwarded to the IdP, and the IdP's tokens never reach the MCP
//! client.
//!
//! Three flavours, chosen from `[identity.upstream]` (the configuration key keeps its name):
//! - **OIDC** (`issuer`): endpoints and keys from discovery (OIDC Discovery 1.0 §4, issuer must
//!   match exactly), fetched lazily on first use and cached (`oidc`); the id_token is validated
//!   per OIDC Core §3.1.3.7 (asymmetric `alg` advertised by the IdP, signature, `iss`,
//!   `aud` = `client_id`, `exp`, `nonce`). The subject is the id_token's `sub` **as is**: it is
//!   unique only within this issuer, and one cimdgate installation has exactly one upstream
//!   issuer, so no prefix is added (changing the issuer would make every user new anyway).
//! - **GitHub** (`preset = "github"`): fixed endpoints, subject `github:<numeric id>` (`github`).
//! - **Plain OAuth 2.0** (no issuer, no preset): explicit `authorization_endpoint`,
//!   `token_endpoint` and `userinfo_endpoint`; the subject is the userinfo `sub` (or `id`).
//!
//! Explicit endpoints override discovered or preset ones.
//!
//! Callback checks, in order ([`Idp::finish`]): pending request age; `state` (constant
//! time); `iss` (RFC 9207 mix-up defence — required when the IdP advertises
//! `authorization_response_iss_parameter_supported`); `error` (RFC 6749 §4.1.2.1 →
//! [`IdpError::Denied`]); code exchange (`client_secret_basic` when a secret is configured —
//! `client_secret_post` for GitHub — else `none`; always with the PKCE verifier); identity.
//!
//! Transport: one reqwest client (rustls, OS roots + `extra_ca_file`, no redirects, 5 s connect /
//! 10 s total). The IdP is operator-chosen, so the CIMD SSRF policy does not apply; upstream URLs
//! must be `https`, except on loopback hosts (`127.0.0.1`, `::1`, `localhost`) where `http` is
//! allowed for tests and local development (`net`). Tokens are never logged.

mod client;
mod exchange;
mod github;
pub(crate) mod net;
mod oidc;
#[cfg(test)]
mod tests;
mod types;
pub mod vault;

pub use client::Idp;
pub use types::{
    CallbackParams, DEFAULT_OIDC_SCOPES, IdpError, IdpPending, IdpTokens, IdpUser,
    MAX_PENDING_AGE_SECS,
};

//! # cimdgate-server — the OAuth 2.1 authorization server (SPEC §4)
//!
//! Serves CIMD clients (and DCR clients for those without CIMD): RFC 8414 metadata,
//! `/authorize` with login (local users or an upstream IdP) and consent, `/token` (authorization
//! code + PKCE S256, refresh rotation, `private_key_jwt`), `/revoke` (RFC 7009), `/register`
//! (RFC 7591) and `/jwks.json`.
//!
//! Layout:
//! - [`config`]: the one typed configuration (file + `CIMDGATE_*` environment overrides);
//! - [`state`]: [`state::AppState`] = shared services + front-channel state + back-channel state;
//! - [`clients`]: resolving a `client_id` (CIMD document through the core cache, or a DCR
//!   record) with the trust policy applied **before** any fetch;
//! - [`front`]: browser-facing endpoints (`/authorize`, login, consent, upstream callback);
//! - [`back`]: machine-facing endpoints (`/token`, `/revoke`, `/register`, metadata, JWKS);
//! - [`identity`]: who the user is (local users, upstream IdP);
//! - [`error`]: OAuth error responses (RFC 6749 §5.2) in one place;
//! - [`audit`]: audit events (tracing target `audit`), never with secrets.
#![forbid(unsafe_code)]
// Panics in request paths are bugs: no unwrap/expect outside tests (STYLE.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

pub mod app;
pub mod audit;
pub mod back;
pub mod clients;
pub mod config;
pub mod error;
pub mod front;
pub mod identity;
pub mod ratelimit;
pub mod shared_cache;
pub mod state;
pub mod upstream_tokens;

pub use app::{RunningServer, StartError, serve, start};
pub use config::Config;

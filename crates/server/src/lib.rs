//! # cimdgate-server — the OAuth 2.1 authorization server
//!
//! Serves CIMD clients (and DCR clients for those without CIMD): RFC 8414 metadata,
//! `/authorize` with login (local users or an identity provider) and consent, `/token`
//! (authorization code + PKCE S256, refresh rotation, `private_key_jwt`), `/revoke` (RFC 7009),
//! `/register` (RFC 7591) and `/jwks.json`; and wires the gateway in front of the protected MCP
//! servers.
//!
//! ## Layers: leaf ← domain ← channels ← app
//!
//! Every module belongs to one layer and imports only its own layer and the ones below it;
//! the file-level import graph has no cycle. `tests/layering.rs` reads the source and fails
//! when an import breaks this (docs/architecture.md, *Layering of `crates/server`*).
//!
//! | layer | modules | may import |
//! |---|---|---|
//! | leaf | [`error`], [`config`], [`page_headers`], [`audit`](mod@audit), [`seal`], [`secret`], [`rand`], [`time`], [`tls`], [`telemetry`] | leaf |
//! | domain | [`services`], [`clients`], [`governance`], [`grant`], [`tokens`], [`identity`] (with `identity::idp`), [`ratelimit`], [`store_adapters`], [`store_metrics`] | leaf, domain; never axum |
//! | channels | [`front`] (browser), [`back`] (machine), [`admin`] (the admin listener) | leaf, domain, their own modules; never each other |
//! | app | [`app`] | everything |
//!
//! "Upstream" means only the MCP server the gateway proxies to; the identity provider is the
//! IdP (`identity::idp`). The configuration keeps its historical keys (`identity.mode =
//! "upstream"`, `[identity.upstream]`, `forward_upstream_token`).
//!
//! ## The flow of one login
//!
//! `GET /authorize` ([`front::authorize`]: parameters, [`clients::resolve_client`], the
//! redirect URI, PKCE, resource and scopes from [`grant`]) → [`front::flow`] (session? else
//! [`front::login`] or [`front::idp_callback`]) → [`front::consent`], which issues the code
//! ([`grant::issue_code`]: one [`grant::Grant`] stored with it) → `POST /token`
//! ([`back::token`]: [`back::client_auth`], the code checks, [`grant::binding`],
//! [`tokens::Tokens::prepare`], one atomic store write) → refresh ([`back::refresh`]) → the
//! gateway verifies the access token ([`tokens::Tokens::verify`] for in-process users).
#![forbid(unsafe_code)]
// Panics in request paths are bugs: no unwrap/expect outside tests (STYLE.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

// leaf
pub mod audit;
pub mod config;
pub mod error;
pub mod page_headers;
pub mod rand;
pub mod seal;
pub mod secret;
pub mod telemetry;
pub mod time;
pub mod tls;
// domain
pub mod clients;
pub mod governance;
pub mod grant;
pub mod identity;
pub mod ratelimit;
pub mod services;
pub mod store_adapters;
pub mod store_metrics;
pub mod tokens;
// channels
pub mod admin;
pub mod back;
pub mod front;
// app
pub mod app;

pub use app::{App, RunningServer, serve, serve_with_admin, start};
pub use config::Config;
pub use error::StartError;

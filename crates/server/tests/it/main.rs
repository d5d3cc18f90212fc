//! The integration tests of `cimdgate-server`, one test binary (linked once), one module per
//! feature: real servers on 127.0.0.1, real HTTPS CIMD hosts with certificates made in the
//! test, a real OIDC provider, real Redis, real MCP client libraries and the real browser.
//!
//! Shared harnesses: [`common`] (a running server with a CIMD host, the cookie-keeping HTTP
//! browser), [`back_util`] (codes minted in the store, token and revocation calls),
//! [`gateway_util`] (MCP calls through the gateway), [`interop_util`] (upstream MCP servers for
//! the SDK interop tests). Fixtures used by other crates too (test CA, HTTPS host, DNS, Redis,
//! signing keys, the test configuration, the node runner) are in `cimdgate-test-support`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod back_util;
mod common;
mod gateway_util;
mod interop_util;

// The authorization request and the browser steps.
mod authorization_request;
mod consent_in_a_browser;
mod form_harness;
mod login_and_consent;
// The token endpoint and the other machine-facing endpoints.
mod client_authentication;
mod code_exchange;
mod dynamic_registration;
mod enterprise_grants;
mod governance;
mod metadata_and_keys;
mod rate_limits;
mod refresh_tokens;
mod revocation;
mod slow_clients;
// Signing in at an identity provider.
mod idp_sign_in;
// The gateway, other issuers, several instances, real MCP clients.
mod failover;
mod gateway;
mod interop_2026_sdks;
mod interop_rmcp;
mod interop_ts;
mod mcp_2026;
mod multi_instance;
mod real_clients;
mod trusted_issuers;
// Operations: the admin listener, the admin console and the metrics.
mod admin_console;
mod console_in_a_browser;
mod operations;
// The structure of the crate itself.
mod layering;

//! # cimdgate-gateway — the resource server in front of MCP servers (RFC 9728)
//!
//! What an operator puts in front of an MCP server: every request needs a bearer token that
//! cimdgate's authorization server (or another trusted issuer) issued **for this resource**;
//! the request then goes to the upstream MCP server with the verified identity attached and the
//! token removed.
//!
//! Layout, one concern per module:
//! - [`config`]: [`GatewayConfig`] and its named defaults;
//! - [`keys`]: where verification keys come from ([`KeySource`]: in process or remote JWKS);
//! - [`verify`]: token checks and the verified-token cache ([`Verifier`], [`Verified`]);
//! - [`layer`]: the tower layer — RFC 9728 metadata, RFC 6750 §3 challenges, identity headers;
//! - [`operations`]: the MCP operation a request carries (its JSON-RPC body and the mirrored
//!   `Mcp-Method`/`Mcp-Name` headers of 2026-07-28) and the scopes it needs;
//! - [`proxy`]: the Streamable HTTP reverse proxy (MCP 2025-11-25 and 2026-07-28 "Transports");
//! - [`demo`]: the built-in demo MCP server (`builtin:demo`) on rmcp.
//!
//! [`Gateway::router`] assembles it all: the metadata routes plus, for each resource, its path
//! (and sub-paths, for proxied upstreams) behind the resource layer.
//!
//! Non-goals: issuing tokens (that is `cimdgate-server`), token introspection, CORS for browser
//! MCP clients on the MCP endpoint itself.
#![forbid(unsafe_code)]
// Panics in request paths are bugs: no unwrap/expect outside tests (STYLE.md).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

pub mod config;
pub mod demo;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod layer;
pub mod metrics;
pub mod operations;
pub mod proxy;
pub mod verify;

use std::sync::Arc;

use axum::Router;
use axum::routing::any;

pub use config::{GatewayConfig, ResourceSpec, Upstream};
pub use keys::KeySource;
pub use layer::{ProtectedResource, ResourceLayer};
pub use proxy::UpstreamTokens;
pub use verify::{TokenSource, Verified, Verifier, VerifyError};

/// Why a gateway cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A resource entry is unusable (names it).
    #[error("resource {path:?}: {reason}")]
    Resource {
        /// Its path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The upstream HTTP client cannot be built.
    #[error("{0}")]
    Client(String),
}

/// A configured gateway.
pub struct Gateway {
    config: GatewayConfig,
    verifier: Arc<Verifier>,
    resources: Vec<Arc<ProtectedResource>>,
    client: reqwest::Client,
    upstream_tokens: Option<Arc<dyn UpstreamTokens>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Check the resources and build the verifier (trying `sources` in order) and the upstream
    /// client.
    pub fn new(config: GatewayConfig, sources: Vec<TokenSource>) -> Result<Self, GatewayError> {
        let mut seen = std::collections::HashSet::new();
        for r in &config.resources {
            let bad = |reason: &str| GatewayError::Resource {
                path: r.path.clone(),
                reason: reason.to_owned(),
            };
            if !r.path.starts_with('/') || r.path.contains(['?', '#', ' ', '{', '}', '*']) {
                return Err(bad(
                    "must be an absolute path without ?, #, spaces, braces or *",
                ));
            }
            if r.path.starts_with("/.well-known/") {
                return Err(bad("must not be under /.well-known/"));
            }
            if !seen.insert(r.path.trim_end_matches('/')) {
                return Err(bad("is listed twice"));
            }
        }
        let client = proxy::upstream_client(&config).map_err(GatewayError::Client)?;
        let verifier = Arc::new(Verifier::new(sources, &config));
        let resources = config
            .resources
            .iter()
            .map(|spec| Arc::new(ProtectedResource::new(&config, spec, verifier.clone())))
            .collect();
        Ok(Gateway {
            config,
            verifier,
            resources,
            client,
            upstream_tokens: None,
        })
    }

    /// Provide upstream-IdP tokens for resources with `forward_upstream_token` (default: none).
    pub fn with_upstream_tokens(mut self, tokens: Arc<dyn UpstreamTokens>) -> Self {
        self.upstream_tokens = Some(tokens);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The verifier (shared by all resources).
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// The protected resources, in configuration order.
    pub fn resources(&self) -> &[Arc<ProtectedResource>] {
        &self.resources
    }

    /// Every route: metadata, then each resource behind its layer.
    pub fn router(&self) -> Router {
        let mut router = layer::metadata_routes(&self.resources);
        for (spec, resource) in self.config.resources.iter().zip(&self.resources) {
            let path = spec.path.trim_end_matches('/');
            let path = if path.is_empty() { "/" } else { path };
            let routes = match &spec.upstream {
                Upstream::BuiltinDemo => Router::new().route_service(
                    path,
                    demo::service(&self.config.public_url, self.config.max_body_bytes),
                ),
                Upstream::Http(url) => {
                    let forwarding = spec.forward_upstream_token.then(|| {
                        if self.upstream_tokens.is_none() {
                            tracing::warn!(resource = %resource.resource_id,
                                "forward_upstream_token is set but no upstream-token provider is configured; every request is refused");
                        }
                        proxy::Forwarding {
                            tokens: self.upstream_tokens.clone(),
                            resource: resource.clone(),
                        }
                    });
                    let proxy = Arc::new(proxy::Proxy::new(
                        path,
                        url.clone(),
                        self.client.clone(),
                        &self.config,
                        forwarding,
                    ));
                    let p2 = proxy.clone();
                    let rest = format!("{}/{{*rest}}", path.trim_end_matches('/'));
                    Router::new()
                        .route(
                            path,
                            any(move |req| async move { proxy.forward(req).await }),
                        )
                        .route(&rest, any(move |req| async move { p2.forward(req).await }))
                }
            };
            router = router.merge(routes.route_layer(resource.layer()));
        }
        router
    }
}

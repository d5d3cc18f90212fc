//! Application state: services shared by every endpoint ([`Shared`]), plus the front-channel
//! ([`crate::front::FrontState`]) and back-channel ([`crate::back::BackState`]) parts, each
//! built by its own module.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use cimd::cache::Resolver;
use cimd::fetch::Fetcher;
use cimd::policy::TrustPolicy;
use cimd::redirect::RedirectAllowList;
use cimdgate_store::Store;

use crate::config::Config;
use crate::ratelimit::RateLimits;

/// Endpoint URLs exactly as advertised in the metadata (SPEC §3.7: the assertion `aud` must
/// equal the token endpoint "exactly as advertised").
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `/authorize`
    pub authorization: String,
    /// `/token`
    pub token: String,
    /// `/register`
    pub registration: String,
    /// `/revoke`
    pub revocation: String,
    /// `/jwks.json`
    pub jwks: String,
}

impl Endpoints {
    /// Derive every endpoint from the issuer (no double slashes on bare origins — FastMCP #4789).
    pub fn for_issuer(issuer: &str) -> Self {
        let base = issuer.trim_end_matches('/');
        Endpoints {
            authorization: format!("{base}/authorize"),
            token: format!("{base}/token"),
            registration: format!("{base}/register"),
            revocation: format!("{base}/revoke"),
            jwks: format!("{base}/jwks.json"),
        }
    }
}

/// A protected resource this server issues tokens for (RFC 8707).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource identifier: `public_url` + path (the token `aud`).
    pub id: String,
    /// Path on this server.
    pub path: String,
    /// Scopes it offers.
    pub scopes: Vec<String>,
    /// Upstream MCP server (gateway issue).
    pub upstream: String,
}

/// Services every endpoint uses.
pub struct Shared {
    /// The configuration.
    pub config: Arc<Config>,
    /// Issuer identifier (RFC 8414 §2), no trailing slash.
    pub issuer: String,
    /// Advertised endpoint URLs.
    pub endpoints: Endpoints,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// The SSRF-safe fetcher (documents, `jwks_uri`, logos).
    pub fetcher: Arc<Fetcher>,
    /// CIMD document resolver (cache ▸ fetch ▸ validate).
    pub resolver: Resolver,
    /// Trust policy; swappable on config reload.
    pub policy: ArcSwap<TrustPolicy>,
    /// Operator redirect-URI allow-list (both it and the document must pass).
    pub redirect_allow_list: Option<RedirectAllowList>,
    /// Protected resources.
    pub resources: Vec<Resource>,
    /// Rate limits on fetch-triggering requests.
    pub limits: RateLimits,
    /// Clients recorded as seen recently (skips a store write per request).
    pub seen: moka::sync::Cache<String, ()>,
}

/// How long a client stays in [`Shared::seen`] before its `last_seen` is written again.
pub const SEEN_REFRESH: Duration = Duration::from_secs(3600);

impl Shared {
    /// The resource with this identifier.
    pub fn resource(&self, id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// The resource used when a request names none: the only one, or none when ambiguous.
    pub fn default_resource(&self) -> Option<&Resource> {
        match self.resources.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Every scope any resource offers (metadata `scopes_supported`).
    pub fn all_scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        for s in self.resources.iter().flat_map(|r| &r.scopes) {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        scopes
    }
}

/// The axum state: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Shared services.
    pub shared: Arc<Shared>,
    /// Browser-facing endpoints' state.
    pub front: Arc<crate::front::FrontState>,
    /// Machine-facing endpoints' state.
    pub back: Arc<crate::back::BackState>,
    /// The gateway (resource server + proxy) for `[[resources]]` (SPEC §5).
    pub gateway: Arc<cimdgate_gateway::Gateway>,
}

//! The services every part of the server uses ([`Services`]): configuration, store, CIMD
//! fetcher and resolver, trust policy, redirect allow-list, protected resources, rate limits and
//! the sealer of browser-carried state — and how they are built from a checked configuration
//! ([`Services::build`]). Domain layer: no HTTP framework, no channel.

use std::sync::Arc;

use arc_swap::ArcSwap;

use cimd::cache::{MemoryDocumentStore, Resolver};
use cimd::fetch::Fetcher;
use cimd::policy::TrustPolicy;
use cimd::redirect::RedirectAllowList;
use cimdgate_store::embedded::EmbeddedStore;
use cimdgate_store::redis::{RedisOptions, RedisStore, is_redis_url};
use cimdgate_store::{Scopes, Store};

use crate::config::{Config, ConfigError};
use crate::error::StartError;
use crate::governance::Governance;
use crate::ratelimit::RateLimits;
use crate::seal::{self, Sealer};
use crate::store_adapters::RedisDocumentStore;

/// Endpoint URLs exactly as advertised in the metadata (RFC 7523 §3 with
/// draft-ietf-oauth-rfc7523bis: a client assertion's `aud` must equal the token endpoint
/// exactly as advertised).
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
    pub scopes: Scopes,
    /// Upstream MCP server (`builtin:demo` or a URL).
    pub upstream: String,
    /// Whether the user's IdP access token is forwarded to the upstream
    /// (`forward_upstream_token`).
    pub forwards_idp_token: bool,
}

/// Services every endpoint uses.
pub struct Services {
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
    /// The client inventory and the administrators' decisions.
    pub governance: Governance,
    /// Seals browser-carried state and IdP tokens at rest; computes CSRF tags.
    pub sealer: Sealer,
}

impl Services {
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

    /// The address a request comes from, for rate limits: the peer, or behind a trusted proxy
    /// the address it forwarded for (see [`RateLimits::client_ip`]).
    pub fn client_ip(&self, peer: std::net::IpAddr, headers: &http::HeaderMap) -> std::net::IpAddr {
        let trusted = &self.config.server.trusted_proxies;
        if trusted.is_empty() {
            return peer;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        RateLimits::client_ip(peer, &forwarded, trusted)
    }

    /// Every scope any resource offers.
    pub fn all_scopes(&self) -> Scopes {
        Scopes::from_tokens(self.resources.iter().flat_map(|r| r.scopes.iter()))
    }

    /// The authorization server's `scopes_supported`: every resource scope, and
    /// `offline_access` (MCP 2026-07-28, "Refresh Tokens": the AS advertises it, a resource
    /// never does).
    pub fn advertised_scopes(&self) -> Scopes {
        Scopes::from_tokens(
            self.resources
                .iter()
                .flat_map(|r| r.scopes.iter())
                .chain([crate::config::OFFLINE_ACCESS]),
        )
    }
}

/// The opened store, and the Redis handle when it is Redis (for the shared CIMD cache and the
/// shared rate-limit counters).
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The same store as [`RedisStore`] when `store.url` is a Redis URL (one server, a
    /// cluster or Sentinel).
    pub redis: Option<Arc<RedisStore>>,
}

/// Open the store at `url` with the default settings.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StartError> {
    let config = crate::config::StoreConfig {
        url: url.to_owned(),
        ..Default::default()
    };
    Ok(open_store_with(&config).await?.store)
}

/// Open the configured store (`[store]`: the URL, and for Redis the key prefix and the
/// replication wait).
pub async fn open_store_with(
    config: &crate::config::StoreConfig,
) -> Result<OpenedStore, StartError> {
    let url = config.url.as_str();
    let err = |reason: String| StartError::Store {
        url: cimdgate_store::redis::redacted_url(url),
        reason,
    };
    if url.starts_with("embedded:") {
        let options = cimdgate_store::embedded::EmbeddedOptions {
            cache_size: usize::try_from(config.cache_mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1024 * 1024),
            ..Default::default()
        };
        let store = EmbeddedStore::open_url_with(url, options).map_err(|e| err(e.to_string()))?;
        return Ok(OpenedStore {
            store: Arc::new(store),
            redis: None,
        });
    }
    if is_redis_url(url) {
        let mut options = RedisOptions::default();
        if let Some(p) = &config.key_prefix {
            options.key_prefix = p.clone();
        }
        options.wait_replicas = config.wait_replicas;
        options.wait_timeout = std::time::Duration::from_millis(config.wait_timeout_ms);
        let redis = RedisStore::open_with(url, options)
            .await
            .map_err(|e| StartError::Store {
                url: cimdgate_store::redis::redacted_url(url),
                reason: e.to_string(),
            })?;
        let redis = Arc::new(redis);
        return Ok(OpenedStore {
            store: redis.clone(),
            redis: Some(redis),
        });
    }
    Err(err(
        "unsupported store URL (expected embedded:PATH, redis://HOST:PORT/DB, rediss://…, \
         redis+cluster://H1:P1,H2:P2,… or redis+sentinel://S1:P1,S2:P2,…/SERVICE)"
            .into(),
    ))
}

impl Services {
    /// Build the services from a checked configuration: open the store, the fetcher and the
    /// resolver (sharing the CIMD cache through Redis when the store is Redis), the trust
    /// policy, the rate limits and the sealer.
    pub async fn build(config: Config) -> Result<Services, StartError> {
        if config.dev_hooks_enabled() {
            tracing::warn!(
                "fetch dev hooks are ON (dev_allow_loopback / extra_ca_file / resolve / dns_server): \
                 never use them in production"
            );
        }
        let public = &config.server.public_url;
        let loopback = public.host().is_some_and(|h| match h {
            url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        });
        if public.scheme() == "http" && !loopback {
            tracing::warn!(
                public_url = %public,
                "server.public_url is plain http on a non-loopback host: passwords, codes and \
                 tokens cross the network unencrypted and cookies lose their Secure flag; put \
                 cimdgate behind TLS and set an https public_url"
            );
        }
        let opened = open_store_with(&config.store).await?;
        // Every store call is timed (`cimdgate_store_operation_duration_seconds`).
        let store = crate::store_metrics::MeteredStore::wrap(opened.store);
        let fetcher =
            Arc::new(
                Fetcher::new(config.fetch.fetch_config()?).map_err(|e| StartError::Init {
                    component: "fetcher",
                    reason: e.to_string(),
                })?,
            );
        let cache = config.cimd.cache();
        // With Redis the CIMD cache and negative cache are shared, so N instances fetch once.
        // Each instance keeps a process-local L1 in front of it (fresh hits without a Redis round
        // trip for at most `cache.local_ttl`, see `cimd::cache`).
        let resolver = match &opened.redis {
            Some(redis) => Resolver::shared(
                fetcher.clone(),
                Arc::new(RedisDocumentStore::new(redis.clone())),
                cache,
                config.cimd.profile,
            ),
            None => Resolver::new(
                fetcher.clone(),
                Arc::new(MemoryDocumentStore::new(&cache)),
                cache,
                config.cimd.profile,
            ),
        };
        let policy = TrustPolicy::from_config(&config.cimd.policy()).map_err(|e| {
            StartError::Config(ConfigError::Key {
                key: "cimd".into(),
                reason: e.to_string(),
            })
        })?;
        let redirect_allow_list = match &config.cimd.redirect_allow_list {
            Some(list) => Some(RedirectAllowList::parse(list).map_err(|e| {
                StartError::Config(ConfigError::Key {
                    key: "cimd.redirect_allow_list".into(),
                    reason: e.to_string(),
                })
            })?),
            None => None,
        };
        let issuer = config.issuer();
        let resources = config
            .resources
            .iter()
            .map(|r| Resource {
                id: format!("{issuer}{}", r.path),
                path: r.path.clone(),
                scopes: Scopes::from_tokens(&r.scopes),
                upstream: r.upstream.clone(),
                forwards_idp_token: r.forward_upstream_token,
            })
            .collect();
        let sealer = load_sealer(store.as_ref()).await?;
        let governance = Governance::new(
            store.clone(),
            config.cimd.reapprove_on_change,
            config.cimd.inventory_max_clients,
        );
        Ok(Services {
            governance,
            sealer,
            endpoints: Endpoints::for_issuer(&issuer),
            issuer,
            store,
            fetcher,
            resolver,
            policy: ArcSwap::from_pointee(policy),
            redirect_allow_list,
            resources,
            limits: match &opened.redis {
                Some(redis) => RateLimits::with_shared(&config.limits, redis.clone()),
                None => RateLimits::new(&config.limits),
            },
            config: Arc::new(config),
        })
    }
}

/// Load the sealing secret from the store (created by the first instance, so every replica
/// seals and opens with the same keys) and build the [`Sealer`].
async fn load_sealer(store: &dyn Store) -> Result<Sealer, StartError> {
    let init = |reason: String| StartError::init("sealing keys", reason);
    let secret = store
        .init_secret(seal::SECRET_NAME, &crate::rand::bytes::<32>())
        .await
        .map_err(|e| init(e.to_string()))?;
    if secret.len() < 32 {
        return Err(init(format!(
            "stored secret {} is too short",
            seal::SECRET_NAME
        )));
    }
    Sealer::new(&secret).map_err(|_| init("cannot build keys".into()))
}

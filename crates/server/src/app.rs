//! Building and running the server: open the store, build shared services, let the front and
//! back channels build their state, assemble the router, serve until shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use cimd::cache::{MemoryDocumentStore, Resolver};
use cimd::fetch::Fetcher;
use cimd::policy::TrustPolicy;
use cimd::redirect::RedirectAllowList;
use cimdgate_store::Store;
use cimdgate_store::embedded::EmbeddedStore;
use cimdgate_store::redis::{RedisOptions, RedisStore, is_redis_url};

use crate::config::{Config, ConfigError};
use crate::ratelimit::RateLimits;
use crate::shared_cache::RedisDocumentStore;
use crate::state::{AppState, Endpoints, Resource, SEEN_REFRESH, Shared};

/// Why the server cannot start. Each variant says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration (names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store cannot be opened.
    #[error("store {url}: {reason}")]
    Store {
        /// `store.url`.
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

/// The opened store, and the Redis handle when it is Redis (for the shared CIMD cache and the
/// shared rate-limit counters).
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The same store as [`RedisStore`] when `store.url` is `redis://` / `rediss://`.
    pub redis: Option<Arc<RedisStore>>,
}

/// Open the configured store.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StartError> {
    Ok(open_store_with(url, None).await?.store)
}

/// Open the configured store with an optional Redis key prefix (`store.key_prefix`).
pub async fn open_store_with(
    url: &str,
    key_prefix: Option<&str>,
) -> Result<OpenedStore, StartError> {
    let err = |reason: String| StartError::Store {
        url: url.to_owned(),
        reason,
    };
    if url.starts_with("embedded:") {
        let store = EmbeddedStore::open_url(url).map_err(|e| err(e.to_string()))?;
        return Ok(OpenedStore {
            store: Arc::new(store),
            redis: None,
        });
    }
    if is_redis_url(url) {
        let mut options = RedisOptions::default();
        if let Some(p) = key_prefix {
            options.key_prefix = p.to_owned();
        }
        let redis = RedisStore::open_with(url, options)
            .await
            .map_err(|e| StartError::Store {
                url: redact_url(url),
                reason: e.to_string(),
            })?;
        let redis = Arc::new(redis);
        return Ok(OpenedStore {
            store: redis.clone(),
            redis: Some(redis),
        });
    }
    Err(err(
        "unsupported store URL (expected embedded:PATH, redis://HOST:PORT/DB or rediss://…)".into(),
    ))
}

/// A store URL without its password.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Build the shared services from a checked configuration.
pub async fn build_shared(config: Config) -> Result<Shared, StartError> {
    if config.dev_hooks_enabled() {
        tracing::warn!(
            "fetch dev hooks are ON (dev_allow_loopback / extra_ca_file / resolve / dns_server): \
             never use them in production"
        );
    }
    let opened = open_store_with(&config.store.url, config.store.key_prefix.as_deref()).await?;
    let store = opened.store;
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
            scopes: r.scopes.clone(),
            upstream: r.upstream.clone(),
        })
        .collect();
    Ok(Shared {
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
        seen: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(SEEN_REFRESH)
            .build(),
        config: Arc::new(config),
    })
}

/// Build the whole application state.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let shared = Arc::new(build_shared(config).await?);
    let front = Arc::new(crate::front::FrontState::new(&shared).await?);
    let back = Arc::new(crate::back::BackState::new(&shared).await?);
    let gateway = Arc::new(build_gateway(&shared, &front, &back)?);
    Ok(AppState {
        shared,
        front,
        back,
        gateway,
    })
}

/// The gateway for `[[resources]]`: tokens verified with this server's own public keys (in
/// process) and its store's revocations; each resource's scopes are advertised and required;
/// resources with `forward_upstream_token` get the user's IdP token from the store.
fn build_gateway(
    shared: &Arc<Shared>,
    front: &Arc<crate::front::FrontState>,
    back: &crate::back::BackState,
) -> Result<cimdgate_gateway::Gateway, StartError> {
    use cimdgate_gateway::{
        Gateway, GatewayConfig, KeySource, ResourceSpec, TokenSource, Upstream,
    };
    let init = |reason: String| StartError::Init {
        component: "gateway",
        reason,
    };
    let mut config = GatewayConfig::new(
        shared.config.server.public_url.clone(),
        vec![shared.issuer.clone()],
    );
    for r in &shared.config.resources {
        let upstream = Upstream::parse(&r.upstream).map_err(init)?;
        let mut spec = ResourceSpec::new(&r.path, upstream, r.scopes.clone());
        spec.forward_upstream_token = r.forward_upstream_token;
        config.resources.push(spec);
    }
    let keys = KeySource::local_jwks(&back.keys.jwks()).map_err(init)?;
    let mut sources = vec![TokenSource::local(
        shared.issuer.clone(),
        keys,
        shared.store.clone(),
    )];
    for (i, t) in shared.config.trusted_issuers.iter().enumerate() {
        sources.push(trusted_source(i, t).map_err(init)?);
    }
    let gateway = Gateway::new(config, sources).map_err(|e| init(e.to_string()))?;
    Ok(
        if shared
            .config
            .resources
            .iter()
            .any(|r| r.forward_upstream_token)
        {
            gateway.with_upstream_tokens(Arc::new(
                crate::upstream_tokens::StoredUpstreamTokens::new(shared.clone(), front.clone()),
            ))
        } else {
            gateway
        },
    )
}

/// A `[[trusted_issuers]]` entry as a token source: its JWKS fetched over https (OS roots plus
/// its `extra_ca_file`; no redirects, no proxy), no revocation check (its tokens are not ours).
fn trusted_source(
    i: usize,
    t: &crate::config::TrustedIssuerConfig,
) -> Result<cimdgate_gateway::TokenSource, String> {
    use cimdgate_gateway::{KeySource, TokenSource};
    let roots = match &t.extra_ca_file {
        Some(path) => crate::identity::upstream::net::extra_roots(
            path,
            &format!("trusted_issuers[{i}].extra_ca_file"),
        )?,
        None => Vec::new(),
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(true)
        .connect_timeout(std::time::Duration::from_secs(5))
        .tls_certs_merge(roots)
        .build()
        .map_err(|e| format!("trusted_issuers[{i}]: HTTP client: {e}"))?;
    Ok(TokenSource {
        name: t.name.clone(),
        issuer: t.issuer.clone(),
        keys: KeySource::remote(t.jwks_uri.clone(), client),
        audience: t.audience.clone(),
        require_at_jwt: t.require_at_jwt,
        revocation: None,
    })
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    // The gateway routes carry their own body limit (`GatewayConfig::max_body_bytes`).
    let gateway = state.gateway.router();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(crate::front::routes())
        .merge(crate::back::routes())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            state.shared.config.limits.max_body_bytes,
        ))
        .with_state(state)
        .merge(gateway)
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.shared.store.health().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: store unavailable: {e}"),
        )
            .into_response(),
    }
}

/// A running server (tests and the binary).
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The state (tests inspect the store through it).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Stop accepting, finish in-flight requests, and wait.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Wait until the server stops (the binary's main loop).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Serve on an already-bound listener (tests bind `127.0.0.1:0` first so `public_url` can carry
/// the port). Spawns background sweeps; returns once the server is accepting.
pub async fn serve(config: Config, listener: TcpListener) -> Result<RunningServer, StartError> {
    let addr = listener.local_addr().map_err(|e| StartError::Bind {
        addr: config.server.listen,
        reason: e.to_string(),
    })?;
    let state = build_state(config).await?;
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (tx, rx) = oneshot::channel::<()>();
    let sweeper = state.clone();
    // Small responses (MCP JSON-RPC, SSE events) must not wait for Nagle + delayed ACK
    // (~40 ms per round trip without this).
    let listener = {
        use axum::serve::ListenerExt;
        listener.tap_io(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        })
    };
    let task = tokio::spawn(async move {
        let sweep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                sweeper.shared.limits.sweep();
            }
        });
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        sweep.abort();
        if let Err(e) = result {
            tracing::error!(error = %e, "server stopped with an error");
        }
    });
    Ok(RunningServer {
        addr,
        state,
        shutdown: Some(tx),
        task,
    })
}

/// Bind `config.server.listen` and serve.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Bind {
            addr,
            reason: e.to_string(),
        })?;
    serve(config, listener).await
}

//! The application layer: build the services, the token service and the identity source, give
//! each channel its context, wire their routers with the gateway's, and serve until shut down.
//! Nothing else imports this module.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use cimdgate_gateway::operations::{NamePattern, OperationRule, OperationRules};
use cimdgate_gateway::{Gateway, GatewayConfig, KeySource, ResourceSpec, TokenSource, Upstream};

use crate::admin::AdminCtx;
use crate::back::BackCtx;
use crate::config::{Config, ResourceConfig, TrustedIssuerConfig};
use crate::error::StartError;
use crate::front::FrontCtx;
use crate::identity::Identity;
use crate::identity::idp::vault::IdpTokenVault;
use crate::services::Services;
use crate::tokens::Tokens;

/// The whole application: cheap to clone.
#[derive(Clone)]
pub struct App {
    /// Shared services.
    pub services: Arc<Services>,
    /// Token signing, issuing and verification.
    pub tokens: Arc<Tokens>,
    /// Local users or the identity provider.
    pub identity: Arc<Identity>,
    /// Browser-facing channel.
    pub front: Arc<FrontCtx>,
    /// Machine-facing channel.
    pub back: Arc<BackCtx>,
    /// The gateway (resource server + proxy) for `[[resources]]`.
    pub gateway: Arc<Gateway>,
    /// The admin listener's context (`/metrics`, health, `/admin/`).
    pub admin: Arc<AdminCtx>,
}

impl App {
    /// Build everything from a checked configuration.
    pub async fn build(config: Config) -> Result<App, StartError> {
        let services = Arc::new(Services::build(config).await?);
        let tokens = Arc::new(
            Tokens::load(
                &services.config.tokens,
                &services.issuer,
                services.store.clone(),
            )
            .await?,
        );
        let identity = Arc::new(Identity::from_config(&services.config, &services.issuer)?);
        let front = Arc::new(FrontCtx::new(services.clone(), identity.clone()));
        let back = Arc::new(BackCtx::new(
            services.clone(),
            tokens.clone(),
            identity.clone(),
        )?);
        let gateway = Arc::new(build_gateway(&services, &tokens, &identity)?);
        let admin_token = services.config.admin.load_token()?;
        if admin_token.is_none() && services.config.admin.listen.addr().is_some() {
            tracing::warn!(
                "no admin token ([admin] token_file or CIMDGATE_ADMIN__TOKEN): every request to /admin/ is refused"
            );
        }
        let admin = Arc::new(AdminCtx::new(
            services.clone(),
            tokens.clone(),
            identity.clone(),
            admin_token.as_ref(),
        ));
        Ok(App {
            services,
            tokens,
            identity,
            front,
            back,
            gateway,
            admin,
        })
    }

    /// The admin listener's router: `/metrics`, `/healthz`, `/readyz`, and `/admin/v1/…`
    /// ([`crate::admin::api::routes`]) behind the admin token and a per-IP rate limit.
    pub fn admin_router(&self) -> Router {
        crate::admin::router(self.admin.clone())
    }

    /// The router with every endpoint.
    pub fn router(&self) -> Router {
        let limits = &self.services.config.limits;
        let max_body = limits.max_body_bytes;
        let body_idle = Duration::from_secs(limits.body_idle_timeout_secs);
        let deadline = Duration::from_secs(limits.request_timeout_secs);
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(self.services.clone())
            .merge(crate::front::routes(self.front.clone()))
            .merge(crate::back::routes(self.back.clone()))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
            // A whole request, body included, within `request_timeout_secs` (slow POST: a body
            // trickled under the pause limit). Not on the gateway's routes (long MCP streams).
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                deadline,
            ))
            // The gateway routes carry their own body limit (`GatewayConfig::max_body_bytes`).
            .merge(self.gateway.router())
            // A body that stalls between two pieces fails the request instead of holding the
            // handler (and, at the gateway, an upstream connection) open.
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_idle))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(RouteResources::new(&self.services.resources)),
                track_http,
            ))
    }
}

/// The gateway for `[[resources]]`: tokens verified with this server's own public keys (in
/// process) and its store's revocations; each resource's scopes are advertised and required;
/// resources with `forward_upstream_token` get the user's IdP token from the vault.
fn build_gateway(
    services: &Arc<Services>,
    tokens: &Tokens,
    identity: &Arc<Identity>,
) -> Result<Gateway, StartError> {
    let init = |reason: String| StartError::init("gateway", reason);
    let mut config = GatewayConfig::new(
        services.config.server.public_url.clone(),
        vec![services.issuer.clone()],
    );
    for r in &services.config.resources {
        let upstream = Upstream::parse(&r.upstream).map_err(init)?;
        let mut spec = ResourceSpec::new(&r.path, upstream, r.scopes.clone());
        spec.required_scopes = r.base_scopes();
        spec.operations = operation_rules(r).map_err(init)?;
        spec.allowed_origins = r
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect();
        spec.forward_upstream_token = r.forward_upstream_token;
        config.resources.push(spec);
    }
    let keys = KeySource::local_jwks(&tokens.keys.jwks()).map_err(init)?;
    let mut sources = vec![TokenSource::local(
        services.issuer.clone(),
        keys,
        services.store.clone(),
    )];
    for (i, t) in services.config.trusted_issuers.iter().enumerate() {
        sources.push(trusted_source(i, t).map_err(init)?);
    }
    let gateway = Gateway::new(config, sources).map_err(|e| init(e.to_string()))?;
    Ok(if services.resources.iter().any(|r| r.forwards_idp_token) {
        gateway.with_upstream_tokens(Arc::new(IdpTokenVault::new(
            services.clone(),
            identity.clone(),
        )))
    } else {
        gateway
    })
}

/// A resource's `[[resources.operation_scopes]]` as the gateway's rules (checked at load).
fn operation_rules(r: &ResourceConfig) -> Result<OperationRules, String> {
    let mut rules = Vec::with_capacity(r.operation_scopes.len());
    for o in &r.operation_scopes {
        rules.push(OperationRule {
            method: o.method.clone(),
            name: o.name.as_deref().map(NamePattern::parse).transpose()?,
            scopes: o.scopes.clone(),
        });
    }
    Ok(OperationRules::new(rules))
}

/// A `[[trusted_issuers]]` entry as a token source: its JWKS fetched over https (OS roots plus
/// its `extra_ca_file`; no redirects, no proxy), no revocation check (its tokens are not ours).
fn trusted_source(i: usize, t: &TrustedIssuerConfig) -> Result<TokenSource, String> {
    let client =
        crate::tls::jwks_client(t.extra_ca_file.as_deref(), &format!("trusted_issuers[{i}]"))?;
    Ok(TokenSource {
        name: t.name.clone(),
        issuer: t.issuer.clone(),
        keys: KeySource::remote(t.jwks_uri.clone(), client),
        audience: t.audience.clone(),
        require_at_jwt: t.require_at_jwt,
        revocation: None,
    })
}

async fn readyz(State(services): State<Arc<Services>>) -> impl IntoResponse {
    match services.store.health().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: store unavailable: {e}"),
        )
            .into_response(),
    }
}

/// Which route templates belong to which protected resource (the gateway metric's label).
struct RouteResources(std::collections::HashMap<String, String>);

impl RouteResources {
    fn new(resources: &[crate::services::Resource]) -> Self {
        let mut map = std::collections::HashMap::new();
        for r in resources {
            let path = r.path.trim_end_matches('/');
            let path = if path.is_empty() { "/" } else { path };
            map.insert(path.to_owned(), r.path.clone());
            map.insert(
                format!("{}/{{*rest}}", path.trim_end_matches('/')),
                r.path.clone(),
            );
        }
        RouteResources(map)
    }
}

/// Count and time every response by route template (never the raw path: its label set is
/// the router's, bounded), and requests to protected resources by resource.
async fn track_http(
    State(resources): State<Arc<RouteResources>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let route = route.as_deref().unwrap_or(crate::telemetry::UNMATCHED);
    crate::telemetry::http_request(route, status, started.elapsed().as_secs_f64());
    if let Some(resource) = resources.0.get(route) {
        crate::telemetry::gateway_request(resource, crate::telemetry::gateway_outcome(status));
    }
    resp
}

/// A running server (tests and the binary).
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The admin listener's address (`None` when `[admin] listen = "off"`).
    pub admin_addr: Option<SocketAddr>,
    /// The application (tests inspect the store and keys through it).
    pub state: App,
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
/// the port); the admin listener is bound from `[admin] listen` (none when `"off"`). Spawns
/// background sweeps; returns once the server is accepting.
pub async fn serve(config: Config, listener: TcpListener) -> Result<RunningServer, StartError> {
    serve_with_admin(config, listener, None).await
}

/// [`serve`] with an already-bound admin listener too: `Some` is used whatever `[admin]
/// listen` says; `None` binds `[admin] listen` unless it is `"off"`.
pub async fn serve_with_admin(
    config: Config,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
) -> Result<RunningServer, StartError> {
    let addr = listener.local_addr().map_err(|e| StartError::Bind {
        addr: config.server.listen,
        reason: e.to_string(),
    })?;
    let admin_listener = match (admin_listener, config.admin.listen.addr()) {
        (Some(l), _) => Some(l),
        (None, Some(a)) => Some(bind(a).await?),
        (None, None) => None,
    };
    let admin_addr = match &admin_listener {
        Some(l) => Some(l.local_addr().map_err(|e| StartError::Bind {
            addr,
            reason: e.to_string(),
        })?),
        None => None,
    };
    if admin_addr.is_some_and(|a| a.port() == addr.port() && a.ip() == addr.ip()) {
        return Err(StartError::Config(crate::config::ConfigError::Key {
            key: "admin.listen".into(),
            reason: "the admin listener needs its own port".into(),
        }));
    }
    crate::telemetry::install();
    let state = App::build(config).await?;
    let router = state.router();
    let admin_router = state.admin_router();
    let timeouts = ConnTimeouts::from(&state.services.config.limits);
    let (tx, rx) = oneshot::channel::<()>();
    let sweeper = state.clone();
    let state_for_flush = state.clone();
    let task = tokio::spawn(async move {
        let flusher = sweeper.clone();
        let sweep = tokio::spawn(sweep_loop(sweeper));
        let flush = tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::governance::FLUSH_INTERVAL);
            loop {
                tick.tick().await;
                flusher.services.governance.flush().await;
            }
        });
        let (admin_tx, admin_rx) = oneshot::channel::<()>();
        let admin_task =
            admin_listener.map(|l| tokio::spawn(accept_loop(l, admin_router, timeouts, admin_rx)));
        accept_loop(listener, router, timeouts, rx).await;
        let _ = admin_tx.send(());
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        sweep.abort();
        flush.abort();
        // What the inventory holds in memory (last seen, tokens issued) is written before
        // the server stops.
        state_for_flush.services.governance.flush().await;
    });
    Ok(RunningServer {
        addr,
        admin_addr,
        state,
        shutdown: Some(tx),
        task,
    })
}

/// How often histograms are compacted ([`crate::telemetry::upkeep`]).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// How often rate-limit state is swept and the client gauge refreshed.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Background housekeeping, until aborted: metrics upkeep; rate-limit sweeps; the client gauge.
async fn sweep_loop(app: App) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    let per_sweep = (SWEEP_EVERY.as_secs() / UPKEEP_EVERY.as_secs()).max(1);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        crate::telemetry::upkeep();
        if n.is_multiple_of(per_sweep) {
            app.services.limits.sweep();
            app.admin.sweep();
            match app.services.store.list_client_records().await {
                Ok(records) => {
                    let counts: Vec<(&str, u64)> = cimdgate_store::ClientStatus::ALL
                        .iter()
                        .map(|st| {
                            let n = records.iter().filter(|r| r.admin.status == *st).count();
                            (st.as_str(), u64::try_from(n).unwrap_or(u64::MAX))
                        })
                        .collect();
                    crate::telemetry::set_client_gauges(&counts);
                }
                Err(e) => tracing::debug!(error = %e, "client gauge: store unavailable"),
            }
        }
        n = n.wrapping_add(1);
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| StartError::Bind {
        addr,
        reason: e.to_string(),
    })
}

/// Connection-level time limits (slowloris defence).
#[derive(Clone, Copy)]
struct ConnTimeouts {
    header_read: Duration,
}

impl From<&crate::config::LimitsConfig> for ConnTimeouts {
    fn from(limits: &crate::config::LimitsConfig) -> Self {
        ConnTimeouts {
            header_read: Duration::from_secs(limits.header_read_timeout_secs),
        }
    }
}

/// How long shutdown waits for in-flight requests (long-lived event streams included) before
/// it drops them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept connections and serve HTTP/1.1 on each until `shutdown` fires, then drain.
///
/// Written on hyper directly rather than `axum::serve` because axum's loop sets no timer, so a
/// client that trickles its headers (or idles between requests) would hold a connection and a
/// task forever; here every connection gets `header_read_timeout` (from connect and after each
/// response). The peer address reaches handlers as axum's `ConnectInfo<SocketAddr>`.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    timeouts: ConnTimeouts,
    mut shutdown: oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Small responses (MCP JSON-RPC, SSE events) must not wait for Nagle + delayed ACK
        // (~40 ms per round trip without this).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still running after {DRAIN_TIMEOUT:?} were dropped");
    }
}

/// Bind `config.server.listen` (and `[admin] listen`) and serve.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let listener = bind(config.server.listen).await?;
    serve(config, listener).await
}

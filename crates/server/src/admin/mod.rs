//! The admin listener's routes (a channel, like `front` and `back`; docs/architecture.md,
//! *Operations*): served on its own address (`[admin] listen`, default `127.0.0.1:9090`), never
//! on the public one.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /metrics` | none (internal port) | Prometheus text ([`crate::telemetry`]) |
//! | `GET /healthz` | none | `ok` while the process serves |
//! | `GET /readyz` | none | `ready` when the store answers, else 503 |
//! | `/admin/v1/…` | `Authorization: Bearer <admin token>` | [`api::routes`]: the JSON API |
//! | `/admin/login` | none (it is the sign-in) | [`console`]: the console's sign-in |
//! | `/admin/…` else | the console cookie | [`console::routes`]: the admin console |
//!
//! Everything under `/admin/` passes, in order: a per-source-IP rate limit (429), then the
//! authentication of its area (`require_auth`). The API checks the bearer token — a
//! constant-time comparison of SHA-256 digests, so neither the token's bytes nor its length
//! leak through timing; a missing or wrong token gets a 401 JSON error and an
//! `admin_login_failed` audit event, never data. The console checks its sealed cookie (issued
//! by `POST /admin/login` after the same token comparison); without one it answers with the
//! 401 sign-in page (`GET /admin/` with no cookie: a 303 to it), never data. Without a
//! configured token every request to `/admin/` is refused.

pub mod api;
pub mod clients;
pub mod console;
mod console_pages;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::identity::Identity;
use crate::secret::{ExposeSecret, SecretString};
use crate::services::Services;
use crate::tokens::Tokens;

/// Admin requests per source IP per second (burst: twice this). Enough for a script or a
/// dashboard; a guessing attack gets 10 tries a second against a 256-bit token.
pub const ADMIN_PER_IP_PER_SECOND: u32 = 10;

/// What the admin handlers share: the same services the public channels use.
pub struct AdminCtx {
    /// Shared services (store, resolver, policy, configuration).
    pub services: Arc<Services>,
    /// Token signing, issuing and verification (revocation).
    pub tokens: Arc<Tokens>,
    /// Local users or the identity provider.
    pub identity: Arc<Identity>,
    /// SHA-256 of the admin token; `None`: no token configured, `/admin/` refuses everyone.
    token_digest: Option<[u8; 32]>,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl AdminCtx {
    /// The context; `token` is the admin token (`None` locks `/admin/`).
    pub fn new(
        services: Arc<Services>,
        tokens: Arc<Tokens>,
        identity: Arc<Identity>,
        token: Option<&SecretString>,
    ) -> Self {
        let rate =
            std::num::NonZeroU32::new(ADMIN_PER_IP_PER_SECOND).unwrap_or(std::num::NonZeroU32::MIN);
        let burst = std::num::NonZeroU32::new(ADMIN_PER_IP_PER_SECOND * 2).unwrap_or(rate);
        AdminCtx {
            services,
            tokens,
            identity,
            token_digest: token.map(|t| digest(t.expose_secret().as_bytes())),
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Whether `presented` is the admin token (constant time).
    fn token_matches(&self, presented: &[u8]) -> bool {
        match &self.token_digest {
            Some(expected) => bool::from(digest(presented).ct_eq(expected)),
            None => false,
        }
    }

    /// Forget rate-limit state of idle addresses (the server's sweep calls this).
    pub fn sweep(&self) {
        self.limiter.retain_recent();
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The whole admin listener: `/metrics`, `/healthz`, `/readyz` and `/admin/v1/…` behind the
/// rate limit and the token check.
pub fn router(ctx: Arc<AdminCtx>) -> Router {
    let admin = Router::new()
        .nest("/v1", api::routes(ctx.clone()))
        .merge(console::routes(ctx.clone()))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            require_auth,
        ))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), limit));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(ctx)
        // Nested at `/admin/` so that the console's inventory is `GET /admin/` (a router
        // nested at `/admin` would answer `/admin` but not `/admin/`); `/admin` redirects.
        .route(
            "/admin",
            get(|| async { axum::response::Redirect::permanent("/admin/") }),
        )
        .nest("/admin/", admin)
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        crate::telemetry::render(),
    )
        .into_response()
}

async fn readyz(State(ctx): State<Arc<AdminCtx>>) -> Response {
    match ctx.services.store.health().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: store unavailable: {e}"),
        )
            .into_response(),
    }
}

/// 404: JSON on the API, a page (with the security headers) on the console.
async fn not_found(uri: axum::http::Uri) -> Response {
    if Area::of(uri.path()) == Area::Api {
        error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
    } else {
        console_pages::not_found()
    }
}

/// A JSON error `{"error", "error_description"}` with `Cache-Control: no-store`.
pub fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Per-source-IP rate limit (the peer address: nothing forwarded is believed on this port).
async fn limit(State(ctx): State<Arc<AdminCtx>>, req: Request, next: Next) -> Response {
    let ip = peer_ip(&req).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if ctx.limiter.check_key(&ip).is_err() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many admin requests from this address; slow down",
        );
    }
    next.run(req).await
}

/// The part of `/admin/` a path (relative to `/admin`) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// `/v1…`: the JSON API, bearer token.
    Api,
    /// `/login`: the console's sign-in, open.
    SignIn,
    /// Everything else: the console, its cookie.
    Console,
}

impl Area {
    fn of(path: &str) -> Area {
        if path == "/v1" || path.starts_with("/v1/") {
            Area::Api
        } else if path == "/login" {
            Area::SignIn
        } else {
            Area::Console
        }
    }
}

/// Authentication by area: the API's bearer token, the console's cookie (the session is
/// handed to the handlers as an extension), or none for the sign-in itself.
async fn require_auth(State(ctx): State<Arc<AdminCtx>>, mut req: Request, next: Next) -> Response {
    match Area::of(req.uri().path()) {
        Area::Api => require_token(ctx, req, next).await,
        Area::SignIn => next.run(req).await,
        Area::Console => match console::session_of(&ctx, req.headers()) {
            Ok(session) => {
                req.extensions_mut().insert(session);
                next.run(req).await
            }
            Err(why) => {
                let ip = peer_ip(&req).map(|ip| ip.to_string()).unwrap_or_default();
                let is_get = req.method() == axum::http::Method::GET;
                console::unauthorized(req.uri().path(), is_get, why, &ip)
            }
        },
    }
}

/// `Authorization: Bearer <admin token>` or 401.
async fn require_token(ctx: Arc<AdminCtx>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let reason = match presented {
        None => "missing",
        Some(t) if ctx.token_matches(t.as_bytes()) => return next.run(req).await,
        Some(_) if ctx.token_digest.is_none() => "no_token_configured",
        Some(_) => "wrong",
    };
    let ip = peer_ip(&req).map(|ip| ip.to_string()).unwrap_or_default();
    crate::audit!(event = "admin_login_failed", ip = %ip, reason, path = %req.uri().path().chars().take(200).collect::<String>());
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this endpoint needs Authorization: Bearer <admin token> ([admin] token_file)",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"cimdgate-admin\""),
    );
    r
}

//! Browser-facing endpoints (SPEC §4): `GET /authorize` ([`authorize`]), the login and consent
//! forms posted back to `POST /authorize` ([`login`], [`consent`]), and the upstream IdP
//! callback ([`upstream`]).
//!
//! State between steps lives in the browser, sealed ([`seal`]): the pending authorization
//! request rides in a hidden form field, the user session and an upstream sign-in in cookies
//! ([`session`]). Unauthenticated `GET /authorize` traffic therefore writes nothing to the
//! store and keeps nothing in memory (FastMCP keeps a 15-minute transaction per request).
//!
//! Form contract (SPEC §4): `<form method="post">`; login inputs `username`, `password`;
//! consent buttons `name="decision"` values `approve`/`deny`; a hidden `csrf` input; plus hidden
//! `step` (`login`/`consent`) and `request` (the sealed pending request).

pub mod authorize;
pub mod consent;
pub mod login;
pub mod pages;
pub mod seal;
pub mod session;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

use crate::app::StartError;
use crate::clients::Client;
use crate::identity::{CALLBACK_PATH, Identity};
use crate::state::{AppState, Shared};
use authorize::{PendingAuth, check_rate_limit};
use pages::{ErrorPage, wants_json};
use seal::{Purpose, Sealer, random_b64};
use session::Cookies;

/// Front-channel state: keys, identity source, cookie names.
pub struct FrontState {
    /// Seals browser-carried state; CSRF tokens.
    pub sealer: Sealer,
    /// Local users or the upstream IdP.
    pub identity: Identity,
    /// Cookie names/attributes.
    pub cookies: Cookies,
    /// This server's origin (`Origin` header check on POSTs).
    pub origin: String,
}

impl FrontState {
    /// Build: load (or create) the sealing secret in the store so replicas share it, and the
    /// identity source from the configuration.
    pub async fn new(shared: &Shared) -> Result<Self, StartError> {
        let init = |reason: String| StartError::Init {
            component: "front-channel keys",
            reason,
        };
        let mut candidate = [0u8; 32];
        aws_lc_rs::rand::fill(&mut candidate).map_err(|_| init("no randomness".into()))?;
        let secret = shared
            .store
            .init_secret(seal::SECRET_NAME, &candidate)
            .await
            .map_err(|e| init(e.to_string()))?;
        if secret.len() < 32 {
            return Err(init(format!(
                "stored secret {} is too short",
                seal::SECRET_NAME
            )));
        }
        let sealer = Sealer::new(&secret).map_err(|_| init("cannot build keys".into()))?;
        let identity = Identity::from_config(&shared.config, &shared.issuer)?;
        let public = &shared.config.server.public_url;
        Ok(FrontState {
            sealer,
            identity,
            cookies: Cookies::new(public.scheme() == "https"),
            origin: public.origin().ascii_serialization(),
        })
    }

    /// Decrypt upstream tokens stored by the callback (`store.get_upstream_tokens`), for the
    /// gateway's token pass-through.
    pub fn open_upstream_tokens(
        &self,
        sealed: &[u8],
    ) -> Option<crate::identity::upstream::UpstreamTokens> {
        let s = std::str::from_utf8(sealed).ok()?;
        self.sealer.open(Purpose::UpstreamTokens, s).ok()
    }
}

/// Routes: `GET/POST /authorize`, `GET /upstream/callback`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/authorize",
            get(authorize::get_authorize).post(post_authorize),
        )
        .route(CALLBACK_PATH, get(upstream::callback))
}

/// The last step of `GET /authorize` (and of the login/callback steps): a signed-in user goes
/// to the consent decision; otherwise the identity source takes over.
pub(crate) async fn respond(
    app: &AppState,
    headers: &HeaderMap,
    client: &Client,
    mut pending: PendingAuth,
) -> Response {
    let front = &app.front;
    let json = wants_json(headers);
    let (browser, new_browser) = match session::get(headers, front.cookies.browser) {
        Some(b) if b.len() <= 64 => (b.to_owned(), false),
        _ => match random_b64(16) {
            Ok(b) => (b, true),
            Err(_) => return ErrorPage::server_fault("start the sign-in").respond(json),
        },
    };
    pending.browser = browser;
    let mut response = if let Some(s) = front.cookies.session(headers, &front.sealer) {
        consent::decide(app, &s, client, &pending, None).await
    } else {
        match &front.identity {
            Identity::Local(_) => login::page(app, client, &pending, None, "", StatusCode::OK),
            Identity::Upstream(idp) => upstream::begin(app, idp, &pending).await,
        }
    };
    if new_browser
        && let Some(v) = front
            .cookies
            .set(front.cookies.browser, &pending.browser, None)
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `POST /authorize`: the login or consent form.
async fn post_authorize(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(page) = check_rate_limit(&app.shared, peer.ip()).await {
        return page.respond(false);
    }
    if let Err(page) = check_same_origin(&headers, &app.front.origin) {
        return page.respond(false);
    }
    match form.get("step").map(String::as_str) {
        Some("login") => login::submit(&app, &headers, &form).await,
        Some("consent") => consent::submit(&app, &headers, &form).await,
        _ => ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Unexpected form",
            "This form submission is not a sign-in or consent form of this server.",
            "Go back to the application and start signing in again.",
        )
        .respond(false),
    }
}

/// Refuse cross-site form posts: `Sec-Fetch-Site` must be `same-origin` (or `none`, a
/// user-typed navigation) when sent; `Origin`, when sent and not `null` (browsers send `null`
/// under `Referrer-Policy: no-referrer`), must be ours. The CSRF token is the primary defence.
pub fn check_same_origin(headers: &HeaderMap, origin: &str) -> Result<(), ErrorPage> {
    let forbidden = |what: &str| {
        ErrorPage::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "Request refused",
            format!("This form was submitted from another site ({what})."),
            "Go back to the application and start signing in again.",
        )
    };
    let get = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(forbidden(&format!("Sec-Fetch-Site: {site}")));
    }
    if let Some(o) = get("origin")
        && o != "null"
        && o != origin
    {
        return Err(forbidden(&format!("Origin: {o}")));
    }
    Ok(())
}

/// Reopen the pending request from a form, checking it belongs to this browser.
pub(crate) fn open_pending(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<PendingAuth, ErrorPage> {
    let expired = || {
        ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "This sign-in has expired",
            "The sign-in form is too old or was not issued by this server.",
            "Go back to the application and start signing in again.",
        )
    };
    let raw = form.get("request").ok_or_else(expired)?;
    let pending: PendingAuth = app
        .front
        .sealer
        .open(Purpose::PendingAuth, raw)
        .map_err(|_| expired())?;
    let browser = session::get(headers, app.front.cookies.browser);
    if browser != Some(pending.browser.as_str()) {
        return Err(ErrorPage::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "Request refused",
            "This form belongs to a sign-in started in another browser (or cookies are disabled).",
            "Enable cookies for this site, go back to the application and start again.",
        ));
    }
    Ok(pending)
}

/// The 403 page for a missing or wrong CSRF token.
pub(crate) fn csrf_refused() -> ErrorPage {
    ErrorPage::new(
        StatusCode::FORBIDDEN,
        "access_denied",
        "Request refused",
        "The form's security token is missing or does not match your session (CSRF protection).",
        "Go back to the application and start signing in again.",
    )
}

/// Re-resolve the client and re-check the redirect URI for a pending request (the document may
/// have changed since `GET /authorize`).
pub(crate) async fn recheck_client(
    app: &AppState,
    pending: &PendingAuth,
) -> Result<Client, ErrorPage> {
    let p = authorize::Params {
        client_id: Some(pending.client_id.clone()),
        redirect_uri: Some(pending.redirect_uri.clone()),
        ..Default::default()
    };
    let client = authorize::check_client(&app.shared, &p).await?;
    authorize::check_redirect_uri(&app.shared, &client, &p)?;
    Ok(client)
}

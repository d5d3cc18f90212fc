//! The whole interactive login ([`login`]) and "a valid token, refreshed if needed" for
//! scripts ([`valid_access_token`]).
//!
//! A login for a server that already has one stored for the same resource is a step-up
//! (MCP 2026-07-28 "Scope Challenge Handling", SEP-2350): the scope requested is the union of
//! the stored scope and the new one ([`step_up_scope`]), so a 403 `insufficient_scope` for one
//! tool never costs the scope another tool needed. `offline_access` is added only when the
//! authorization server lists it ([`crate::scope::with_offline_access`]).

use secrecy::ExposeSecret;
use std::process::{Command, Stdio};
use std::time::Duration;

use url::Url;

use crate::ClientError;
use crate::callback::{CallbackServer, DOCUMENT_REDIRECT_URI};
use crate::discovery::discover;
use crate::flow::{AuthorizationRequest, ClientChoice, choose_client, refresh, register};
use crate::scope::login_scope;
pub use crate::scope::step_up_scope;
use crate::store::{StoredLogin, TokenStore};

/// How long a login waits for the browser to come back by default.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// What to log in to, and how.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// The MCP server URL.
    pub mcp_url: Url,
    /// The client's metadata document URL (used when the server supports CIMD).
    pub client_id: Option<String>,
    /// Scope to request (default: the challenge's, else the PRM's `scopes_supported`). After a
    /// 403 `insufficient_scope`, the challenge's `scope`: it is added to the stored login's.
    pub scope: Option<String>,
    /// Try to open the system browser.
    pub open_browser: bool,
    /// `client_name` for Dynamic Client Registration.
    pub client_name: String,
    /// How long to wait for the redirect back.
    pub timeout: Duration,
}

impl LoginOptions {
    /// Defaults for `mcp_url`: no client_id, default scope, open the browser, 5 min.
    pub fn new(mcp_url: Url) -> Self {
        LoginOptions {
            mcp_url,
            client_id: None,
            scope: None,
            open_browser: true,
            client_name: "cimdgate login".into(),
            timeout: DEFAULT_LOGIN_TIMEOUT,
        }
    }
}

/// Discover, pick CIMD or DCR, send the user to `/authorize` (`announce` gets the URL to
/// show; the browser is opened when asked), wait for the loopback callback, check it, redeem
/// the code and save the tokens.
pub async fn login(
    http: &reqwest::Client,
    opts: &LoginOptions,
    store: &TokenStore,
    announce: impl FnOnce(&Url),
) -> Result<StoredLogin, ClientError> {
    let discovery = discover(http, &opts.mcp_url).await?;
    let callback = CallbackServer::bind().await?;
    // SEP-2350: a stored login for the same resource contributes its scope.
    let previous = store
        .load(opts.mcp_url.as_str())?
        .filter(|l| l.resource == discovery.prm.resource)
        .and_then(|l| l.scope);
    let scope = login_scope(&discovery, opts.scope.as_deref(), previous.as_deref());
    let client_id = match choose_client(&discovery.metadata, opts.client_id.as_deref())? {
        ClientChoice::Cimd(url) => url,
        ClientChoice::Register(endpoint) => {
            register(
                http,
                &endpoint,
                &opts.client_name,
                DOCUMENT_REDIRECT_URI,
                scope.as_deref(),
            )
            .await?
        }
    };
    let request = AuthorizationRequest::new(
        &discovery,
        &client_id,
        &callback.redirect_uri(),
        scope.as_deref(),
    )?;
    announce(&request.url);
    if opts.open_browser {
        open_in_browser(request.url.as_str());
    }
    let params = callback.wait(opts.timeout).await?;
    let code = request.check_callback(&params)?;
    let tokens = request.exchange(http, &code).await?;
    let login = StoredLogin {
        mcp_url: opts.mcp_url.to_string(),
        resource: request.resource.clone(),
        issuer: request.issuer.clone(),
        token_endpoint: request.token_endpoint.clone(),
        client_id,
        scope: tokens.scope.clone().or(scope),
        expires_at: tokens.expires_at(),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    };
    store.save(&login)?;
    Ok(login)
}

/// The stored access token for `mcp_url` if still fresh; else refresh it (saving the new
/// tokens). `Ok(None)` when there is no login, or it cannot be refreshed (no refresh token, or
/// the server refused it with `invalid_grant`): the caller logs in again.
pub async fn valid_access_token(
    http: &reqwest::Client,
    store: &TokenStore,
    mcp_url: &str,
) -> Result<Option<String>, ClientError> {
    let Some(login) = store.load(mcp_url)? else {
        return Ok(None);
    };
    if login.is_fresh() {
        return Ok(Some(login.access_token.expose_secret().to_owned()));
    }
    match refresh_login(http, store, login).await {
        Ok(l) => Ok(Some(l.access_token.expose_secret().to_owned())),
        Err(ClientError::OAuth { error, .. }) if error == "invalid_grant" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refresh `login` now and save the result.
pub async fn refresh_login(
    http: &reqwest::Client,
    store: &TokenStore,
    mut login: StoredLogin,
) -> Result<StoredLogin, ClientError> {
    let Some(rt) = login.refresh_token.clone() else {
        return Err(ClientError::OAuth {
            step: "token refresh",
            error: "invalid_grant".into(),
            description: Some("no refresh token stored".into()),
        });
    };
    let tokens = refresh(
        http,
        &login.token_endpoint,
        &login.client_id,
        rt.expose_secret(),
        &login.resource,
    )
    .await?;
    login.expires_at = tokens.expires_at();
    login.access_token = tokens.access_token;
    if tokens.refresh_token.is_some() {
        login.refresh_token = tokens.refresh_token;
    }
    if tokens.scope.is_some() {
        login.scope = tokens.scope;
    }
    store.save(&login)?;
    Ok(login)
}

/// Ask the desktop to open `url` (`open` on macOS, `start` on Windows, `xdg-open`
/// elsewhere). Failure is ignored: the URL is always shown too.
pub fn open_in_browser(url: &str) -> bool {
    let mut cmd = if cfg!(target_os = "macos") {
        Command::new("open")
    } else if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else {
        Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}

//! Upstream identity provider (SPEC §4 "upstream IdP proxy mode"): cimdgate signs the user in at
//! an operator-configured OpenID Connect provider, or at GitHub, acting as an ordinary OAuth
//! client of that IdP with **its own** `state`, `nonce` and PKCE (RFC 7636, S256) — nothing from
//! the MCP client's request is forwarded upstream, and the upstream tokens never reach the MCP
//! client.
//!
//! Three flavours, chosen from `[identity.upstream]`:
//! - **OIDC** (`issuer`): endpoints and keys from discovery (OIDC Discovery 1.0 §4, issuer must
//!   match exactly), fetched lazily on first use and cached ([`oidc`]); the id_token is validated
//!   per OIDC Core §3.1.3.7 (asymmetric `alg` advertised by the IdP, signature, `iss`,
//!   `aud` = `client_id`, `exp`, `nonce`). The subject is the id_token's `sub` **as is**: it is
//!   unique only within this issuer, and one cimdgate installation has exactly one upstream
//!   issuer, so no prefix is added (changing the issuer would make every user new anyway).
//! - **GitHub** (`preset = "github"`): fixed endpoints, subject `github:<numeric id>` ([`github`]).
//! - **Plain OAuth 2.0** (no issuer, no preset): explicit `authorization_endpoint`,
//!   `token_endpoint` and `userinfo_endpoint`; the subject is the userinfo `sub` (or `id`).
//!
//! Explicit endpoints override discovered or preset ones.
//!
//! Callback checks, in order ([`UpstreamIdp::finish`]): pending request age; `state` (constant
//! time); `iss` (RFC 9207 mix-up defence — required when the IdP advertises
//! `authorization_response_iss_parameter_supported`); `error` (RFC 6749 §4.1.2.1 →
//! [`UpstreamError::Denied`]); code exchange (`client_secret_basic` when a secret is configured —
//! `client_secret_post` for GitHub — else `none`; always with the PKCE verifier); identity.
//!
//! Transport: one reqwest client (rustls, OS roots + `extra_ca_file`, no redirects, 5 s connect /
//! 10 s total). The IdP is operator-chosen, so the CIMD SSRF policy does not apply; upstream URLs
//! must be `https`, except on loopback hosts (`127.0.0.1`, `::1`, `localhost`) where `http` is
//! allowed for tests and local development ([`net`]). Tokens are never logged.

mod exchange;
mod github;
pub(crate) mod net;
mod oidc;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use url::Url;

use crate::app::StartError;
use crate::config::{UpstreamConfig, UpstreamPreset};
use net::{check_url, host_of, init_err};
use oidc::{Discovered, OidcCache};

/// Default scopes for an OIDC upstream.
pub const DEFAULT_OIDC_SCOPES: &[&str] = &["openid", "email", "profile"];
/// How long a pending upstream sign-in stays valid (the front's cookie should not outlive it).
pub const MAX_PENDING_AGE_SECS: u64 = 600;
/// Longest `error_description` from the callback kept for the error page.
const MAX_DESCRIPTION_CHARS: usize = 300;

/// cimdgate's client of the upstream IdP. Built at startup without network I/O.
pub struct UpstreamIdp {
    flavor: Flavor,
    explicit: ExplicitEndpoints,
    client_id: String,
    client_secret: Option<String>,
    scope: String,
    callback_url: Url,
    http: reqwest::Client,
}

enum Flavor {
    Oidc(Box<OidcCache>),
    Github,
    OAuth,
}

#[derive(Default)]
struct ExplicitEndpoints {
    authorization: Option<Url>,
    token: Option<Url>,
    userinfo: Option<Url>,
}

/// Endpoints in force for one request.
struct Endpoints {
    authorization: Url,
    token: Url,
    userinfo: Option<Url>,
    oidc: Option<Arc<Discovered>>,
}

/// cimdgate's own per-sign-in secrets toward the IdP; the front seals it into a short-lived
/// cookie between [`UpstreamIdp::begin`] and [`UpstreamIdp::finish`].
#[derive(Serialize, Deserialize, Clone)]
pub struct UpstreamPending {
    /// `state` sent upstream (32 random bytes, base64url).
    pub state: String,
    /// OIDC `nonce` sent upstream (32 random bytes, base64url).
    pub nonce: String,
    /// PKCE `code_verifier` (RFC 7636 §4.1; 43 characters).
    pub pkce_verifier: String,
    /// Unix seconds when the sign-in started.
    pub created_at: u64,
}

impl std::fmt::Debug for UpstreamPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPending")
            .field("state", &"<redacted>")
            .field("nonce", &"<redacted>")
            .field("pkce_verifier", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The query parameters of `GET /upstream/callback` (RFC 6749 §4.1.2, §4.1.2.1; RFC 9207).
#[derive(Deserialize, Default, Clone)]
pub struct CallbackParams {
    /// Authorization code.
    pub code: Option<String>,
    /// The `state` we sent.
    pub state: Option<String>,
    /// Error code when the IdP did not authorize.
    pub error: Option<String>,
    /// Human-readable error text from the IdP.
    pub error_description: Option<String>,
    /// The IdP's issuer identifier (RFC 9207).
    pub iss: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .field("state", &self.state.as_ref().map(|_| "<redacted>"))
            .field("error", &self.error)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

/// The signed-in upstream user.
#[derive(Debug, Clone)]
pub struct UpstreamUser {
    /// Stable subject: the OIDC `sub` as is, `github:<id>` for GitHub, userinfo `sub`/`id` else.
    pub subject: String,
    /// Display name, when the IdP gave one.
    pub name: Option<String>,
    /// Email, when the IdP gave one.
    pub email: Option<String>,
    /// cimdgate's tokens at the IdP (stored encrypted; never given to MCP clients).
    pub tokens: UpstreamTokens,
}

/// cimdgate's tokens at the upstream IdP. `Debug` shows only which ones are present.
#[derive(Serialize, Deserialize, Clone)]
pub struct UpstreamTokens {
    /// Upstream access token.
    pub access_token: String,
    /// Upstream refresh token.
    pub refresh_token: Option<String>,
    /// Upstream id_token (OIDC).
    pub id_token: Option<String>,
    /// Unix seconds when the access token expires, if the IdP said.
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let present = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("UpstreamTokens")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &present(&self.refresh_token))
            .field("id_token", &present(&self.id_token))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why an upstream sign-in failed. `Display` is a sentence for the error page (never contains
/// tokens or codes); [`UpstreamError::status`] is the page's HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The IdP could not be reached, timed out, or answered 5xx.
    #[error(
        "The sign-in provider {host} is unavailable right now ({reason}). Please try again later."
    )]
    Unavailable {
        /// `host[:port]` of the IdP.
        host: String,
        /// What failed.
        reason: String,
    },
    /// Discovery worked at the transport level but the document is unusable (issuer mismatch…).
    #[error("The sign-in provider {host} is misconfigured: {reason}")]
    Discovery {
        /// `host[:port]` of the IdP.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// The IdP returned an error to the callback (RFC 6749 §4.1.2.1), e.g. the user declined.
    #[error("Sign-in was not completed at the provider ({error}){}", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied {
        /// The `error` code (sanitised).
        error: String,
        /// The `error_description` (sanitised, shortened).
        description: Option<String>,
    },
    /// The callback's `state` is missing or is not the one this browser's sign-in sent.
    #[error(
        "This sign-in response does not belong to the sign-in started in this browser (state mismatch). Please start again."
    )]
    StateMismatch,
    /// The pending sign-in is older than [`MAX_PENDING_AGE_SECS`].
    #[error("The sign-in took too long. Please start again.")]
    Expired,
    /// The callback's `iss` is not the configured issuer (RFC 9207).
    #[error(
        "The sign-in response names issuer {got:?}, not the configured provider {expected:?}; it was refused (RFC 9207)."
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the callback carried (`None`: missing although the IdP promised it).
        got: Option<String>,
    },
    /// The callback has neither `code` nor `error`.
    #[error("The sign-in provider returned neither an authorization code nor an error.")]
    MissingCode,
    /// The token endpoint refused the code exchange.
    #[error("The sign-in provider {host} refused to complete the sign-in: {reason}")]
    Exchange {
        /// `host[:port]` of the token endpoint.
        host: String,
        /// Why (the IdP's `error` code, or the status).
        reason: String,
    },
    /// The id_token failed validation.
    #[error("The sign-in provider's ID token was refused: {reason}.")]
    InvalidIdToken {
        /// The rule that failed.
        reason: String,
    },
    /// The user's profile could not be read.
    #[error("The sign-in provider {host} did not return the user's profile: {reason}")]
    UserInfo {
        /// `host[:port]` of the userinfo endpoint.
        host: String,
        /// What failed.
        reason: String,
    },
    /// A local fault (random number generator).
    #[error("Internal error while signing in: {0}")]
    Internal(String),
}

impl UpstreamError {
    /// HTTP status for the error page: 502 when the IdP is down or misbehaves, 403 when the user
    /// or IdP declined, 400 for a bad or stale callback, 500 for local faults.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Unavailable { .. }
            | UpstreamError::Discovery { .. }
            | UpstreamError::Exchange { .. }
            | UpstreamError::InvalidIdToken { .. }
            | UpstreamError::UserInfo { .. } => StatusCode::BAD_GATEWAY,
            UpstreamError::Denied { .. } => StatusCode::FORBIDDEN,
            UpstreamError::StateMismatch
            | UpstreamError::Expired
            | UpstreamError::IssuerMismatch { .. }
            | UpstreamError::MissingCode => StatusCode::BAD_REQUEST,
            UpstreamError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine name for audit events (`upstream_unavailable`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable { .. } => "upstream_unavailable",
            UpstreamError::Discovery { .. } => "upstream_misconfigured",
            UpstreamError::Denied { .. } => "upstream_denied",
            UpstreamError::StateMismatch => "state_mismatch",
            UpstreamError::Expired => "expired",
            UpstreamError::IssuerMismatch { .. } => "issuer_mismatch",
            UpstreamError::MissingCode => "missing_code",
            UpstreamError::Exchange { .. } => "code_exchange_failed",
            UpstreamError::InvalidIdToken { .. } => "invalid_id_token",
            UpstreamError::UserInfo { .. } => "userinfo_failed",
            UpstreamError::Internal(_) => "internal",
        }
    }
}

impl UpstreamIdp {
    /// Check the configuration and build the HTTP client. No network I/O: OIDC discovery runs on
    /// the first [`begin`](Self::begin). `callback_url` is `{issuer}/upstream/callback`.
    pub fn new(cfg: &UpstreamConfig, callback_url: String) -> Result<Self, StartError> {
        let key = |k: &str, reason: String| init_err(format!("identity.upstream.{k}: {reason}"));
        if cfg.client_id.trim().is_empty() {
            return Err(key("client_id", "is required".into()));
        }
        let callback_url = Url::parse(&callback_url)
            .map_err(|e| init_err(format!("upstream callback URL {callback_url:?}: {e}")))?;
        let explicit = ExplicitEndpoints {
            authorization: cfg.authorization_endpoint.clone(),
            token: cfg.token_endpoint.clone(),
            userinfo: cfg.userinfo_endpoint.clone(),
        };
        for (k, url) in [
            ("authorization_endpoint", &explicit.authorization),
            ("token_endpoint", &explicit.token),
            ("userinfo_endpoint", &explicit.userinfo),
            ("issuer", &cfg.issuer),
        ] {
            if let Some(url) = url {
                check_url(url).map_err(|e| key(k, e))?;
            }
        }
        let flavor = match (&cfg.issuer, cfg.preset) {
            (Some(_), Some(_)) => {
                return Err(key(
                    "preset",
                    "set either `issuer` (OIDC discovery) or `preset`, not both".into(),
                ));
            }
            (Some(issuer), None) => {
                if issuer.query().is_some() {
                    return Err(key("issuer", "must not have a query".into()));
                }
                Flavor::Oidc(Box::new(OidcCache::new(issuer.clone())))
            }
            (None, Some(UpstreamPreset::Github)) => Flavor::Github,
            (None, None) => {
                if explicit.authorization.is_none()
                    || explicit.token.is_none()
                    || explicit.userinfo.is_none()
                {
                    return Err(key(
                        "issuer",
                        "set `issuer` (OIDC), `preset = \"github\"`, or all of \
                         `authorization_endpoint`, `token_endpoint` and `userinfo_endpoint`"
                            .into(),
                    ));
                }
                Flavor::OAuth
            }
        };
        let scope = scope_for(&flavor, &cfg.scopes);
        Ok(UpstreamIdp {
            http: net::build_client(cfg)?,
            flavor,
            explicit,
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone().filter(|s| !s.is_empty()),
            scope,
            callback_url,
        })
    }

    /// `host[:port]` of the IdP, for pages ("Sign in with idp.example.com").
    pub fn provider_host(&self) -> String {
        match (&self.flavor, &self.explicit.authorization) {
            (_, Some(url)) => host_of(url),
            (Flavor::Oidc(c), None) => host_of(c.issuer()),
            (Flavor::Github, None) => "github.com".into(),
            (Flavor::OAuth, None) => "?".into(),
        }
    }

    /// Start a sign-in: fresh `state`, `nonce` and PKCE pair; the URL to send the browser to.
    /// For OIDC this may run discovery (cached after the first success).
    pub async fn begin(&self) -> Result<(Url, UpstreamPending), UpstreamError> {
        let ep = self.endpoints().await?;
        let pending = UpstreamPending {
            state: random_b64()?,
            nonce: random_b64()?,
            pkce_verifier: random_b64()?,
            created_at: now_secs(),
        };
        let challenge = pkce_challenge(&pending.pkce_verifier);
        let mut url = ep.authorization;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", self.callback_url.as_str())
                .append_pair("scope", &self.scope)
                .append_pair("state", &pending.state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if ep.oidc.is_some() {
                q.append_pair("nonce", &pending.nonce);
            }
        }
        Ok((url, pending))
    }

    /// Complete a sign-in from the callback parameters and the pending request (see the module
    /// docs for the order of checks).
    pub async fn finish(
        &self,
        params: &CallbackParams,
        pending: &UpstreamPending,
    ) -> Result<UpstreamUser, UpstreamError> {
        check_age(pending, now_secs())?;
        check_state(params, pending)?;
        let ep = self.endpoints().await?;
        check_iss(params, ep.oidc.as_deref())?;
        check_error(params)?;
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(UpstreamError::MissingCode)?;
        let tokens = self.exchange(&ep, code, &pending.pkce_verifier).await?;
        let (subject, name, email) = match (&self.flavor, &ep.oidc) {
            (Flavor::Oidc(cache), Some(d)) => {
                self.oidc_identity(cache, d, &ep, &tokens, pending).await?
            }
            (Flavor::Github, _) => {
                let url = ep
                    .userinfo
                    .as_ref()
                    .ok_or_else(|| UpstreamError::UserInfo {
                        host: "github".into(),
                        reason: "no user endpoint".into(),
                    })?;
                github::user(&self.http, url, &tokens.access_token).await?
            }
            _ => self.oauth_identity(&ep, &tokens).await?,
        };
        Ok(UpstreamUser {
            subject,
            name,
            email,
            tokens,
        })
    }

    async fn endpoints(&self) -> Result<Endpoints, UpstreamError> {
        let ex = &self.explicit;
        let pick = |explicit: &Option<Url>, fallback: Url| explicit.clone().unwrap_or(fallback);
        match &self.flavor {
            Flavor::Oidc(cache) => {
                let d = cache.discovered(&self.http).await?;
                Ok(Endpoints {
                    authorization: pick(&ex.authorization, d.authorization_endpoint.clone()),
                    token: pick(&ex.token, d.token_endpoint.clone()),
                    userinfo: ex.userinfo.clone().or_else(|| d.userinfo_endpoint.clone()),
                    oidc: Some(d),
                })
            }
            Flavor::Github => Ok(Endpoints {
                authorization: pick(&ex.authorization, preset_url(github::AUTHORIZE)?),
                token: pick(&ex.token, preset_url(github::TOKEN)?),
                userinfo: Some(pick(&ex.userinfo, preset_url(github::USER)?)),
                oidc: None,
            }),
            Flavor::OAuth => match (&ex.authorization, &ex.token) {
                (Some(a), Some(t)) => Ok(Endpoints {
                    authorization: a.clone(),
                    token: t.clone(),
                    userinfo: ex.userinfo.clone(),
                    oidc: None,
                }),
                // `new` refuses this configuration.
                _ => Err(UpstreamError::Internal("upstream endpoints missing".into())),
            },
        }
    }
}

fn preset_url(s: &str) -> Result<Url, UpstreamError> {
    Url::parse(s).map_err(|e| UpstreamError::Internal(format!("preset URL {s}: {e}")))
}

fn scope_for(flavor: &Flavor, configured: &[String]) -> String {
    let mut scopes: Vec<String> = if configured.is_empty() {
        let defaults = match flavor {
            Flavor::Github => github::DEFAULT_SCOPES,
            Flavor::Oidc(_) | Flavor::OAuth => DEFAULT_OIDC_SCOPES,
        };
        defaults.iter().map(|s| (*s).to_owned()).collect()
    } else {
        configured.to_vec()
    };
    // An OIDC sign-in without `openid` would return no id_token.
    if matches!(flavor, Flavor::Oidc(_)) && !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    scopes.join(" ")
}

/// Rule: a pending sign-in older than [`MAX_PENDING_AGE_SECS`] is refused.
fn check_age(pending: &UpstreamPending, now: u64) -> Result<(), UpstreamError> {
    if now.saturating_sub(pending.created_at) > MAX_PENDING_AGE_SECS {
        return Err(UpstreamError::Expired);
    }
    Ok(())
}

/// Rule: `state` must equal the pending one (constant-time). An error response without `state`
/// is reported as the error (there is nothing to protect), a code without `state` is refused.
fn check_state(params: &CallbackParams, pending: &UpstreamPending) -> Result<(), UpstreamError> {
    match params.state.as_deref() {
        Some(s) if bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())) => Ok(()),
        None if params.error.is_some() && params.code.is_none() => Ok(()),
        _ => Err(UpstreamError::StateMismatch),
    }
}

/// Rule (RFC 9207 §2.4): an `iss` parameter must equal the IdP's issuer; it must be present when
/// the IdP advertises `authorization_response_iss_parameter_supported`.
fn check_iss(params: &CallbackParams, oidc: Option<&Discovered>) -> Result<(), UpstreamError> {
    let Some(d) = oidc else {
        // GitHub / plain OAuth: no issuer identifier to compare with.
        return Ok(());
    };
    match params.iss.as_deref() {
        Some(iss) if iss == d.issuer => Ok(()),
        None if !d.iss_parameter_supported => Ok(()),
        got => Err(UpstreamError::IssuerMismatch {
            expected: d.issuer.clone(),
            got: got.map(sanitize),
        }),
    }
}

/// Rule (RFC 6749 §4.1.2.1): an `error` parameter ends the sign-in as [`UpstreamError::Denied`].
fn check_error(params: &CallbackParams) -> Result<(), UpstreamError> {
    match &params.error {
        Some(error) => Err(UpstreamError::Denied {
            error: sanitize(error),
            description: params.error_description.as_deref().map(sanitize),
        }),
        None => Ok(()),
    }
}

/// Keep only the characters RFC 6749 §4.1.2.1 allows in `error`/`error_description`
/// (%x20-21 / %x23-5B / %x5D-7E), shortened: the value comes from the browser.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(*c, ' '..='!' | '#'..='[' | ']'..='~'))
        .take(MAX_DESCRIPTION_CHARS)
        .collect()
}

fn random_b64() -> Result<String, UpstreamError> {
    let mut buf = [0u8; 32];
    aws_lc_rs::rand::fill(&mut buf)
        .map_err(|_| UpstreamError::Internal("random number generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(verifier))`.
fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

//! cimdgate as an OAuth client of the identity provider: configuration checked at startup,
//! endpoints (explicit, discovered or preset), the redirect to the IdP ([`Idp::begin`]) and the
//! callback checks ([`Idp::finish`]); the token endpoint calls are in `exchange`.

use std::sync::Arc;

use subtle::ConstantTimeEq as _;
use url::Url;

use crate::secret::{ExposeSecret, SecretString};

use super::github;
use super::net::{self, check_url, host_of, init_err};
use super::oidc::{Discovered, OidcCache};
use super::types::{
    CallbackParams, DEFAULT_OIDC_SCOPES, IdpError, IdpPending, IdpUser, MAX_PENDING_AGE_SECS,
    sanitize,
};
use crate::config::{IdpConfig, IdpPreset};
use crate::error::StartError;

/// cimdgate's client of the upstream IdP. Built at startup without network I/O.
pub struct Idp {
    pub(super) flavor: Flavor,
    explicit: ExplicitEndpoints,
    pub(super) client_id: String,
    pub(super) client_secret: Option<SecretString>,
    pub(super) scope: String,
    pub(super) callback_url: Url,
    pub(super) http: reqwest::Client,
}

pub(super) enum Flavor {
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
pub(super) struct Endpoints {
    pub(super) authorization: Url,
    pub(super) token: Url,
    pub(super) userinfo: Option<Url>,
    pub(super) oidc: Option<Arc<Discovered>>,
}

impl Idp {
    /// Check the configuration and build the HTTP client. No network I/O: OIDC discovery runs on
    /// the first [`begin`](Self::begin). `callback_url` is `{issuer}/upstream/callback`.
    pub fn new(cfg: &IdpConfig, callback_url: String) -> Result<Self, StartError> {
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
            (None, Some(IdpPreset::Github)) => Flavor::Github,
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
        Ok(Idp {
            http: net::build_client(cfg)?,
            flavor,
            explicit,
            client_id: cfg.client_id.clone(),
            client_secret: cfg
                .client_secret
                .clone()
                .filter(|s| !s.expose_secret().is_empty()),
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
    pub async fn begin(&self) -> Result<(Url, IdpPending), IdpError> {
        let ep = self.endpoints().await?;
        let pending = IdpPending {
            state: crate::rand::token(32).into(),
            nonce: crate::rand::token(32).into(),
            pkce_verifier: crate::rand::token(32).into(),
            created_at: crate::time::now_secs(),
        };
        let challenge = crate::grant::pkce::s256(pending.pkce_verifier.expose_secret());
        let mut url = ep.authorization;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", self.callback_url.as_str())
                .append_pair("scope", &self.scope)
                .append_pair("state", pending.state.expose_secret())
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if ep.oidc.is_some() {
                q.append_pair("nonce", pending.nonce.expose_secret());
            }
        }
        Ok((url, pending))
    }

    /// Complete a sign-in from the callback parameters and the pending request (see the module
    /// docs for the order of checks).
    pub async fn finish(
        &self,
        params: &CallbackParams,
        pending: &IdpPending,
    ) -> Result<IdpUser, IdpError> {
        check_age(pending, crate::time::now_secs())?;
        check_state(params, pending)?;
        let ep = self.endpoints().await?;
        check_iss(params, ep.oidc.as_deref())?;
        check_error(params)?;
        let code = params
            .code
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .filter(|c| !c.is_empty())
            .ok_or(IdpError::MissingCode)?;
        let tokens = self
            .exchange(&ep, code, pending.pkce_verifier.expose_secret())
            .await?;
        let (subject, name, email) = match (&self.flavor, &ep.oidc) {
            (Flavor::Oidc(cache), Some(d)) => {
                self.oidc_identity(cache, d, &ep, &tokens, pending).await?
            }
            (Flavor::Github, _) => {
                let url = ep.userinfo.as_ref().ok_or_else(|| IdpError::UserInfo {
                    host: "github".into(),
                    reason: "no user endpoint".into(),
                })?;
                github::user(&self.http, url, tokens.access_token.expose_secret()).await?
            }
            _ => self.oauth_identity(&ep, &tokens).await?,
        };
        Ok(IdpUser {
            subject,
            name,
            email,
            tokens,
        })
    }

    pub(super) async fn endpoints(&self) -> Result<Endpoints, IdpError> {
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
                _ => Err(IdpError::Internal("upstream endpoints missing".into())),
            },
        }
    }
}

pub(super) fn preset_url(s: &str) -> Result<Url, IdpError> {
    Url::parse(s).map_err(|e| IdpError::Internal(format!("preset URL {s}: {e}")))
}

pub(super) fn scope_for(flavor: &Flavor, configured: &[String]) -> String {
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
pub(super) fn check_age(pending: &IdpPending, now: u64) -> Result<(), IdpError> {
    if now.saturating_sub(pending.created_at) > MAX_PENDING_AGE_SECS {
        return Err(IdpError::Expired);
    }
    Ok(())
}

/// Rule: `state` must equal the pending one (constant-time). An error response without `state`
/// is reported as the error (there is nothing to protect), a code without `state` is refused.
pub(super) fn check_state(params: &CallbackParams, pending: &IdpPending) -> Result<(), IdpError> {
    let expected = pending.state.expose_secret().as_bytes();
    match params.state.as_ref().map(ExposeSecret::expose_secret) {
        Some(s) if bool::from(s.as_bytes().ct_eq(expected)) => Ok(()),
        None if params.error.is_some() && params.code.is_none() => Ok(()),
        _ => Err(IdpError::StateMismatch),
    }
}

/// Rule (RFC 9207 §2.4): an `iss` parameter must equal the IdP's issuer; it must be present when
/// the IdP advertises `authorization_response_iss_parameter_supported`.
pub(super) fn check_iss(
    params: &CallbackParams,
    oidc: Option<&Discovered>,
) -> Result<(), IdpError> {
    let Some(d) = oidc else {
        // GitHub / plain OAuth: no issuer identifier to compare with.
        return Ok(());
    };
    match params.iss.as_deref() {
        Some(iss) if iss == d.issuer => Ok(()),
        None if !d.iss_parameter_supported => Ok(()),
        got => Err(IdpError::IssuerMismatch {
            expected: d.issuer.clone(),
            got: got.map(sanitize),
        }),
    }
}

/// Rule (RFC 6749 §4.1.2.1): an `error` parameter ends the sign-in as [`IdpError::Denied`].
pub(super) fn check_error(params: &CallbackParams) -> Result<(), IdpError> {
    match &params.error {
        Some(error) => Err(IdpError::Denied {
            error: sanitize(error),
            description: params.error_description.as_deref().map(sanitize),
        }),
        None => Ok(()),
    }
}

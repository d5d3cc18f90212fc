//! The back half of an upstream sign-in: the code exchange at the IdP's token endpoint
//! (RFC 6749 §4.1.3–§4.1.4, with the PKCE verifier of RFC 7636 §4.5), then who the user is —
//! the validated id_token (OIDC), GitHub's user API, or a userinfo endpoint.

use serde::Deserialize;
use url::Url;

use crate::secret::ExposeSecret;

use super::client::{Endpoints, Flavor, Idp};
use super::net::{self, basic_auth, form_body, host_of};
use super::oidc::{Discovered, IdTokenProblem, IdTokenRules, OidcCache, validate_id_token};
use super::types::{IdpError, IdpPending, IdpTokens, sanitize};

/// The token endpoint's success response (RFC 6749 §5.1; OIDC Core §3.1.3.3).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

/// The token endpoint's error response (RFC 6749 §5.2). GitHub sends these with HTTP 200.
#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Userinfo (OIDC Core §5.3.2) — or a plain OAuth API answering `id`.
#[derive(Deserialize)]
struct UserInfo {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

impl Idp {
    /// Exchange `code` for tokens. Client authentication: `client_secret_basic` when a secret is
    /// configured (`client_secret_post` for GitHub, which documents only that), otherwise `none`
    /// (client_id in the body). The PKCE verifier is always sent.
    pub(super) async fn exchange(
        &self,
        ep: &Endpoints,
        code: &str,
        verifier: &str,
    ) -> Result<IdpTokens, IdpError> {
        self.token_request(
            ep,
            vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.callback_url.as_str()),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// Renew upstream tokens with the upstream refresh token (RFC 6749 §6), authenticating as
    /// for the code exchange. An IdP that rotates refresh tokens returns a new one; one that
    /// does not keeps the old one valid, so it is carried over.
    pub async fn refresh(&self, old: &IdpTokens) -> Result<IdpTokens, IdpError> {
        let Some(refresh_token) = old.refresh_token.as_ref().map(ExposeSecret::expose_secret)
        else {
            return Err(IdpError::Exchange {
                host: self.provider_host(),
                reason: "the provider gave no refresh token, so an expired access token cannot \
                         be renewed"
                    .into(),
            });
        };
        let ep = self.endpoints().await?;
        let mut new = self
            .token_request(
                &ep,
                vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await?;
        if new.refresh_token.is_none() {
            new.refresh_token = old.refresh_token.clone();
        }
        if new.id_token.is_none() {
            new.id_token = old.id_token.clone();
        }
        Ok(new)
    }

    async fn token_request(
        &self,
        ep: &Endpoints,
        mut pairs: Vec<(&str, &str)>,
    ) -> Result<IdpTokens, IdpError> {
        let url = &ep.token;
        let mut req = self
            .http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        match (&self.client_secret, &self.flavor) {
            (Some(secret), Flavor::Github) => {
                pairs.push(("client_id", &self.client_id));
                pairs.push(("client_secret", secret.expose_secret()));
            }
            (Some(secret), _) => {
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    basic_auth(&self.client_id, secret.expose_secret()),
                );
            }
            (None, _) => pairs.push(("client_id", &self.client_id)),
        }
        let body = net::send(url, req.body(form_body(&pairs))).await?;
        let refused = |reason: String| IdpError::Exchange {
            host: host_of(url),
            reason,
        };
        if let Ok(err) = net::parse_json::<TokenError>(&body) {
            let desc = err
                .error_description
                .map(|d| format!(" ({})", sanitize(&d)))
                .unwrap_or_default();
            return Err(refused(format!("{}{desc}", sanitize(&err.error))));
        }
        if !body.status.is_success() {
            return Err(refused(format!(
                "token endpoint answered HTTP {}",
                body.status
            )));
        }
        let t: TokenResponse = net::parse_json(&body).map_err(refused)?;
        if let Some(tt) = &t.token_type
            && !tt.eq_ignore_ascii_case("bearer")
        {
            return Err(refused(format!(
                "unsupported token_type {:?}",
                sanitize(tt)
            )));
        }
        if t.access_token.is_empty() {
            return Err(refused("empty access_token".into()));
        }
        Ok(IdpTokens {
            access_token: t.access_token.into(),
            refresh_token: t.refresh_token.filter(|r| !r.is_empty()).map(Into::into),
            id_token: t.id_token.filter(|i| !i.is_empty()).map(Into::into),
            expires_at: t
                .expires_in
                .map(|s| crate::time::now_secs().saturating_add(s)),
        })
    }

    /// OIDC: validate the id_token (refetching the JWKS once for an unknown `kid`); name and
    /// email from its claims, completed from userinfo when missing (userinfo `sub` must match,
    /// OIDC Core §5.3.4).
    pub(super) async fn oidc_identity(
        &self,
        cache: &OidcCache,
        d: &Discovered,
        ep: &Endpoints,
        tokens: &IdpTokens,
        pending: &IdpPending,
    ) -> Result<(String, Option<String>, Option<String>), IdpError> {
        let id_token = tokens
            .id_token
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .ok_or_else(|| IdpError::InvalidIdToken {
                reason: "the token response has no id_token (is `openid` among the scopes?)".into(),
            })?;
        let rules = IdTokenRules {
            issuer: &d.issuer,
            client_id: &self.client_id,
            nonce: pending.nonce.expose_secret(),
            algorithms: &d.algorithms,
        };
        let keys = cache.keys(&self.http, &d.jwks_uri, false).await?;
        let claims = match validate_id_token(id_token, &keys, &rules) {
            Err(IdTokenProblem::UnknownKey(_)) => {
                let keys = cache.keys(&self.http, &d.jwks_uri, true).await?;
                validate_id_token(id_token, &keys, &rules)
            }
            other => other,
        }
        .map_err(|p| IdpError::InvalidIdToken {
            reason: match p {
                IdTokenProblem::UnknownKey(kid) => format!(
                    "it is signed with a key the IdP does not publish (kid {:?})",
                    kid.as_deref().map(sanitize)
                ),
                IdTokenProblem::Invalid(r) => r,
            },
        })?;
        let mut name = claims.name.or(claims.preferred_username);
        let mut email = claims.email;
        if (name.is_none() || email.is_none())
            && let Some(url) = &ep.userinfo
        {
            let info = self
                .userinfo(url, tokens.access_token.expose_secret())
                .await?;
            if info.sub.as_deref() != Some(claims.sub.as_str()) {
                return Err(IdpError::UserInfo {
                    host: host_of(url),
                    reason: "userinfo describes a different user than the ID token".into(),
                });
            }
            name = name.or(info.name).or(info.preferred_username);
            email = email.or(info.email);
        }
        Ok((claims.sub, name, email))
    }

    /// Plain OAuth 2.0: the subject is userinfo's `sub`, or its `id`.
    pub(super) async fn oauth_identity(
        &self,
        ep: &Endpoints,
        tokens: &IdpTokens,
    ) -> Result<(String, Option<String>, Option<String>), IdpError> {
        let url = ep
            .userinfo
            .as_ref()
            .ok_or_else(|| IdpError::Internal("no userinfo endpoint configured".into()))?;
        let info = self
            .userinfo(url, tokens.access_token.expose_secret())
            .await?;
        let subject = match (info.sub, info.id) {
            (Some(s), _) if !s.is_empty() => s,
            (_, Some(serde_json::Value::String(s))) if !s.is_empty() => s,
            (_, Some(serde_json::Value::Number(n))) => n.to_string(),
            _ => {
                return Err(IdpError::UserInfo {
                    host: host_of(url),
                    reason: "the profile has neither `sub` nor `id`".into(),
                });
            }
        };
        Ok((subject, info.name.or(info.preferred_username), info.email))
    }

    async fn userinfo(&self, url: &Url, access_token: &str) -> Result<UserInfo, IdpError> {
        let req = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .bearer_auth(access_token);
        let body = net::send(url, req).await?;
        let bad = |reason: String| IdpError::UserInfo {
            host: host_of(url),
            reason,
        };
        if !body.status.is_success() {
            return Err(bad(format!("{url} answered HTTP {}", body.status)));
        }
        net::parse_json(&body).map_err(bad)
    }
}

//! The Identity Assertion JWT Authorization Grant (ID-JAG): the rules of MCP's enterprise-
//! managed authorization extension (SEP-990; draft-ietf-oauth-identity-assertion-authz-grant,
//! an RFC 7523 §2.1 JWT bearer grant). An enterprise IdP the operator configured
//! (`[[enterprise_idps]]`) vouches that its user may use a given client at this server; `/token`
//! exchanges that assertion for an access token without a browser.
//!
//! One named check per rule (the order is `back::jwt_bearer`'s):
//!
//! | check | rule | error |
//! |---|---|---|
//! | [`check_header`] | `typ` = `oauth-id-jag+jwt`; `alg` asymmetric ([`cimd::jose::ALLOWED_ALGORITHMS`]: never `none` or `HS*`); a `kid` | `invalid_grant` |
//! | [`EnterpriseIdps::find`] | `iss` (read unverified, only to pick the keys) is a configured IdP, exactly | `invalid_grant` |
//! | [`EnterpriseIdp::verify_signature`] | the signature verifies with the IdP's JWKS (cached; `cimdgate_gateway::keys::KeySource`) | `invalid_grant` |
//! | [`EnterpriseIdp::check_allowed_client`] | the IdP may speak for this client (`allowed_clients`) | `unauthorized_client` |
//! | [`check_audience`] | `aud` (string or array) holds an accepted audience (default: our issuer) | `invalid_grant` |
//! | [`check_client_id`] | `client_id` = the authenticated client, exactly | `invalid_grant` |
//! | [`check_times`] | `exp` required, not past; `iat` required, not in the future; `exp − iat` ≤ [`MAX_ID_JAG_LIFETIME_SECS`]; [`ID_JAG_SKEW_SECS`] of skew | `invalid_grant` |
//! | [`check_jti`] | `jti` required (single use: [`replay_key`] in the store's `jti` records) | `invalid_grant` |
//! | [`subject`] | `sub` required; the user is [`subject`]'s `"<iss>#<sub>"` | `invalid_grant` |
//! | [`select_resource`] | the `resource` claim and parameter agree and name a configured resource | `invalid_grant` / `invalid_target` |
//! | [`grant_scopes`] | scopes within the ID-JAG's `scope`, the resource's and the client's | `invalid_scope` |

use cimdgate_gateway::keys::KeySource;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use cimdgate_store::Scopes;

use super::{resource, scopes};
use crate::config::EnterpriseIdpConfig;
use crate::error::{OAuthError, StartError};
use crate::services::Resource;

/// The ID-JAG's media type in the JWT `typ` header (draft-ietf-oauth-identity-assertion-authz-
/// grant §3.1), compared case-insensitively, with or without the `application/` prefix.
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";

/// Longest accepted ID-JAG lifetime, `exp − iat` (*product limit*: the draft leaves it to the
/// AS; like client assertions, five minutes is ample for a token exchange made just before).
pub const MAX_ID_JAG_LIFETIME_SECS: u64 = 300;

/// Clock skew allowed on `exp` and `iat` (the skew every token check of this server allows).
pub const ID_JAG_SKEW_SECS: u64 = crate::tokens::VERIFY_LEEWAY_SECS;

/// Largest ID-JAG read (*product limit*; the same bound as client assertions).
pub const MAX_ID_JAG_BYTES: usize = cimd::assertion::MAX_ASSERTION_BYTES;

/// Prefix of the store's `jti` record key of an ID-JAG ([`replay_key`]): client_ids are
/// `https://…` URLs or `dcr_…`, so an ID-JAG's `jti` can never collide with a client
/// assertion's.
pub const REPLAY_KEY_PREFIX: &str = "id-jag:";

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::invalid_grant(msg)
}

/// One configured enterprise IdP.
#[derive(Debug)]
pub struct EnterpriseIdp {
    /// `iss`, exactly.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Clients it may issue ID-JAGs for (empty: any).
    pub allowed_clients: Vec<String>,
    keys: KeySource,
}

/// The configured enterprise IdPs.
#[derive(Debug, Default)]
pub struct EnterpriseIdps(Vec<EnterpriseIdp>);

impl EnterpriseIdps {
    /// Build from `[[enterprise_idps]]`; `own_issuer` is the default audience. No network I/O
    /// (each JWKS is fetched on first use).
    pub fn from_config(
        configs: &[EnterpriseIdpConfig],
        own_issuer: &str,
    ) -> Result<Self, StartError> {
        let mut idps = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            let client = crate::tls::jwks_client(
                c.extra_ca_file.as_deref(),
                &format!("enterprise_idps[{i}]"),
            )
            .map_err(|e| StartError::init("enterprise_idps", e))?;
            idps.push(EnterpriseIdp {
                issuer: c.issuer.clone(),
                audiences: if c.audiences.is_empty() {
                    vec![own_issuer.to_owned()]
                } else {
                    c.audiences.clone()
                },
                allowed_clients: c.allowed_clients.clone(),
                keys: KeySource::remote(c.jwks_uri.clone(), client),
            });
        }
        Ok(EnterpriseIdps(idps))
    }

    /// No IdP configured: the grant is not offered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The IdP whose issuer is `iss`, exactly.
    pub fn find(&self, iss: &str) -> Result<&EnterpriseIdp, OAuthError> {
        self.0.iter().find(|i| i.issuer == iss).ok_or_else(|| {
            invalid(format!(
                "the ID-JAG's issuer {iss:?} is not a trusted enterprise identity provider here"
            ))
        })
    }
}

/// What the header says, once accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdJagHeader {
    /// An allowed asymmetric algorithm.
    pub alg: Algorithm,
    /// The signing key's id.
    pub kid: String,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
}

fn segment<T: serde::de::DeserializeOwned>(assertion: &str, index: usize) -> Option<T> {
    use base64::Engine;
    let part = assertion.split('.').nth(index)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `check_header`: size, `typ` = [`ID_JAG_TYP`], `alg` in the JOSE allow-list, a `kid`.
pub fn check_header(assertion: &str) -> Result<IdJagHeader, OAuthError> {
    if assertion.len() > MAX_ID_JAG_BYTES {
        return Err(invalid(format!(
            "the assertion is {} bytes; the limit is {MAX_ID_JAG_BYTES}",
            assertion.len()
        )));
    }
    if assertion.split('.').count() != 3 {
        return Err(invalid("the assertion is not a signed JWT (three parts)"));
    }
    let header: RawHeader = segment(assertion, 0)
        .ok_or_else(|| invalid("the assertion's JWT header is not valid JSON"))?;
    let typ = header.typ.unwrap_or_default();
    let media = typ.strip_prefix("application/").unwrap_or(&typ);
    if !media.eq_ignore_ascii_case(ID_JAG_TYP) {
        return Err(invalid(format!(
            "the assertion's typ is {typ:?}; an ID-JAG has typ {ID_JAG_TYP:?}"
        )));
    }
    let name = header.alg.unwrap_or_default();
    let alg = cimd::jose::ALLOWED_ALGORITHMS
        .iter()
        .copied()
        .find(|a| cimd::jose::alg_name(*a) == name)
        .ok_or_else(|| {
            invalid(format!(
                "the assertion's alg {name:?} is not allowed (asymmetric algorithms only: RS256, \
                 PS256, ES256, EdDSA, …)"
            ))
        })?;
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid("the assertion's header has no kid"))?;
    Ok(IdJagHeader { alg, kid })
}

/// The `iss` of an assertion, read WITHOUT verifying, only to pick the IdP whose keys verify it.
pub fn peek_issuer(assertion: &str) -> Result<String, OAuthError> {
    segment::<serde_json::Value>(assertion, 1)
        .and_then(|p| p.get("iss").and_then(|v| v.as_str()).map(str::to_owned))
        .ok_or_else(|| invalid("the assertion has no iss claim"))
}

/// `aud`: one string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// The claims of a verified ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant §3.1).
/// Required claims are `Option` so each absence gets its own message.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct IdJagClaims {
    /// The IdP.
    pub iss: String,
    /// The user at the IdP.
    pub sub: Option<String>,
    /// Who it is for: this AS.
    pub aud: Option<Audience>,
    /// The client it was issued for.
    pub client_id: Option<String>,
    /// Expiry (seconds).
    pub exp: Option<u64>,
    /// Issued at (seconds).
    pub iat: Option<u64>,
    /// Unique id.
    pub jti: Option<String>,
    /// Scopes the IdP allows (space-separated).
    pub scope: Option<String>,
    /// The resource (RFC 8707) the IdP allows.
    pub resource: Option<String>,
}

impl EnterpriseIdp {
    /// `verify_signature`: the signature with this IdP's key for `header.kid` (its JWKS, cached
    /// and refetched on an unknown `kid`, under the [`cimd::jose`] key rules); the claims
    /// parsed. Time claims are checked by [`check_times`], with their own messages.
    pub async fn verify_signature(
        &self,
        assertion: &str,
        header: &IdJagHeader,
    ) -> Result<IdJagClaims, OAuthError> {
        let key = self.keys.key(&header.kid, header.alg).await.map_err(|e| {
            invalid(format!(
                "no key of {} verifies the ID-JAG: {e}",
                self.issuer
            ))
        })?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<IdJagClaims>(assertion, &key.key, &validation)
            .map_err(|e| invalid(format!("the ID-JAG's signature or claims are invalid: {e}")))?
            .claims;
        if claims.iss != self.issuer {
            return Err(invalid("the ID-JAG's iss changed between reads"));
        }
        Ok(claims)
    }

    /// `check_allowed_client`: the IdP's `allowed_clients` (empty: any admitted client).
    pub fn check_allowed_client(&self, client_id: &str) -> Result<(), OAuthError> {
        if self.allowed_clients.is_empty() || self.allowed_clients.iter().any(|c| c == client_id) {
            Ok(())
        } else {
            Err(OAuthError::unauthorized_client(format!(
                "the enterprise identity provider {} may not issue ID-JAGs for client {client_id} \
                 here",
                self.issuer
            )))
        }
    }
}

/// `check_audience`: `aud` names one of `accepted`, exactly.
pub fn check_audience(claims: &IdJagClaims, accepted: &[String]) -> Result<(), OAuthError> {
    let auds: Vec<&str> = match &claims.aud {
        None => return Err(invalid("the ID-JAG has no aud claim")),
        Some(Audience::One(a)) => vec![a.as_str()],
        Some(Audience::Many(v)) => v.iter().map(String::as_str).collect(),
    };
    if auds.iter().any(|a| accepted.iter().any(|x| x == a)) {
        Ok(())
    } else {
        Err(invalid(format!(
            "the ID-JAG's aud {auds:?} does not name this authorization server ({})",
            accepted.join(", ")
        )))
    }
}

/// `check_client_id`: the `client_id` claim is the authenticated client, exactly.
pub fn check_client_id(claims: &IdJagClaims, client_id: &str) -> Result<(), OAuthError> {
    match claims.client_id.as_deref() {
        None => Err(invalid("the ID-JAG has no client_id claim")),
        Some(c) if c == client_id => Ok(()),
        Some(c) => Err(invalid(format!(
            "the ID-JAG was issued for client {c:?}, not for the authenticated client {client_id}"
        ))),
    }
}

/// `check_times`: `exp` and `iat` required; `exp` not past and `iat` not in the future (both
/// with [`ID_JAG_SKEW_SECS`]); `exp − iat` ≤ [`MAX_ID_JAG_LIFETIME_SECS`]. Returns `exp`.
pub fn check_times(claims: &IdJagClaims, now: u64) -> Result<u64, OAuthError> {
    let exp = claims
        .exp
        .ok_or_else(|| invalid("the ID-JAG has no exp claim"))?;
    let iat = claims
        .iat
        .ok_or_else(|| invalid("the ID-JAG has no iat claim"))?;
    if exp.saturating_add(ID_JAG_SKEW_SECS) <= now {
        return Err(invalid("the ID-JAG has expired"));
    }
    if iat > now.saturating_add(ID_JAG_SKEW_SECS) {
        return Err(invalid("the ID-JAG's iat is in the future"));
    }
    if exp.saturating_sub(iat) > MAX_ID_JAG_LIFETIME_SECS {
        return Err(invalid(format!(
            "the ID-JAG's lifetime (exp - iat = {} s) exceeds {MAX_ID_JAG_LIFETIME_SECS} s",
            exp.saturating_sub(iat)
        )));
    }
    Ok(exp)
}

/// `check_jti`: required and non-empty.
pub fn check_jti(claims: &IdJagClaims) -> Result<&str, OAuthError> {
    claims
        .jti
        .as_deref()
        .filter(|j| !j.is_empty())
        .ok_or_else(|| invalid("the ID-JAG has no jti claim"))
}

/// The key an ID-JAG's `jti` is recorded under in the store's replay records: its issuer
/// behind [`REPLAY_KEY_PREFIX`] (never a client_id).
pub fn replay_key(issuer: &str) -> String {
    format!("{REPLAY_KEY_PREFIX}{issuer}")
}

/// `subject`: the user the token is for — `"<iss>#<sub>"`, e.g.
/// `https://idp.example.com#00u1ab`. The IdP's issuer is an `https://` URL, and the
/// configuration refuses local usernames starting with `https://` whenever an enterprise IdP is
/// configured, so this cannot name a local user; two enterprise IdPs cannot share a subject
/// (their issuers differ); an upstream-IdP subject is that IdP's `sub` as is (or
/// `github:<id>`), which would have to be a URL with a fragment to look alike.
pub fn subject(claims: &IdJagClaims) -> Result<String, OAuthError> {
    let sub = claims
        .sub
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the ID-JAG has no sub claim"))?;
    Ok(format!("{}#{sub}", claims.iss))
}

/// `select_resource`: the `resource` claim and the `resource` parameter, when both are sent,
/// name the same configured resource; the token's audience is that resource. Neither sent:
/// the only configured resource, as for the code grant ([`resource::select`]).
pub fn select_resource<'a>(
    resources: &'a [Resource],
    claim: Option<&str>,
    param: Option<&str>,
) -> Result<&'a Resource, OAuthError> {
    match (claim, param) {
        (Some(c), Some(p)) => {
            let (c, p) = (
                resource::select(resources, Some(c))?,
                resource::select(resources, Some(p))?,
            );
            if c.id == p.id {
                Ok(c)
            } else {
                Err(invalid(format!(
                    "the resource parameter ({}) differs from the ID-JAG's resource claim ({})",
                    p.id, c.id
                )))
            }
        }
        (c, p) => resource::select(resources, c.or(p)),
    }
}

/// `grant_scopes`: requested scopes must be within the ID-JAG's `scope` (when it has one), the
/// resource's and the client document's ([`scopes::grant`]); omitted, the grant is their
/// intersection. Scope strings split on runs of whitespace.
pub fn grant_scopes(
    requested: Option<&str>,
    id_jag_scope: Option<&str>,
    offered: &Scopes,
    declared: Option<&Scopes>,
) -> Result<Scopes, OAuthError> {
    let allowed = id_jag_scope.map(Scopes::parse);
    if let (Some(req), Some(allowed)) = (requested, &allowed)
        && let Some(s) = Scopes::parse(req).first_missing_from(allowed)
    {
        return Err(OAuthError::invalid_scope(format!(
            "scope {s:?} is beyond the ID-JAG's scope ({allowed})"
        )));
    }
    let granted = scopes::grant(requested, offered, declared)?;
    let granted = match &allowed {
        Some(a) => granted.intersection(a),
        None => granted,
    };
    if granted.is_empty() && !offered.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "none of the ID-JAG's scopes is offered by this resource ({offered})"
        )));
    }
    Ok(granted)
}

#[cfg(test)]
mod tests;

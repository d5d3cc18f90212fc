//! OpenID Connect pieces: discovery (OIDC Discovery 1.0 §4), the IdP's signing keys, and
//! id_token validation (OIDC Core 1.0 §3.1.3.7).
//!
//! Discovery runs lazily on first use, is cached after the first success, and after a failure is
//! retried on the next request once a short back-off ([`DISCOVERY_RETRY`]) has passed — a failure
//! is never remembered for long, so an IdP that was down at startup is picked up as soon as it
//! returns. The IdP's keys are cached for [`JWKS_TTL`] and refetched once when an id_token names
//! a `kid` we do not know (key rotation).

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cimd::jose::{KeyError, KeySet};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::net::{self, check_url, host_of};
use super::types::IdpError;

/// How long a failed discovery blocks new attempts (requests in that window get the same error).
pub(crate) const DISCOVERY_RETRY: Duration = Duration::from_secs(2);
/// How long the IdP's JWKS is trusted before it is fetched again.
pub(crate) const JWKS_TTL: Duration = Duration::from_secs(3600);
/// Clock skew accepted on `exp`/`iat`/`nbf`, seconds.
pub(crate) const ID_TOKEN_LEEWAY_SECS: u64 = 60;

/// The id_token algorithms cimdgate accepts at all: the same asymmetric set as client
/// assertions. `none` cannot be represented and HS* (keyed with the client secret, or — the
/// classic attack — with the public key) are never accepted.
const ASYMMETRIC: [Algorithm; 9] = cimd::jose::ALLOWED_ALGORITHMS;

/// The parts of the discovery document cimdgate uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DiscoveryDoc {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: Url,
    pub(crate) token_endpoint: Url,
    #[serde(default)]
    pub(crate) userinfo_endpoint: Option<Url>,
    pub(crate) jwks_uri: Url,
    #[serde(default)]
    pub(crate) id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: bool,
}

/// A discovery result, checked.
#[derive(Debug, Clone)]
pub(crate) struct Discovered {
    /// The issuer exactly as the IdP spells it (compared with `iss` claims and parameters).
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: Url,
    pub(crate) token_endpoint: Url,
    pub(crate) userinfo_endpoint: Option<Url>,
    pub(crate) jwks_uri: Url,
    /// Advertised algorithms ∩ [`ASYMMETRIC`] (RS256 when the IdP advertises none).
    pub(crate) algorithms: Vec<Algorithm>,
    /// RFC 9207: the IdP promises `iss` on every authorization response.
    pub(crate) iss_parameter_supported: bool,
}

/// `{issuer}/.well-known/openid-configuration` (OIDC Discovery §4: a terminating `/` of the
/// issuer's path is removed before appending).
pub(crate) fn discovery_url(issuer: &Url) -> Result<Url, String> {
    let base = issuer.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/openid-configuration")).map_err(|e| e.to_string())
}

/// The configured issuer may equal the document's `issuer` exactly, or differ only by the `/`
/// that URL parsing adds to an empty path (`https://idp.example` vs `https://idp.example/`).
pub(crate) fn issuer_matches(configured: &Url, advertised: &str) -> bool {
    let c = configured.as_str();
    advertised == c || (configured.path() == "/" && advertised == c.trim_end_matches('/'))
}

/// Check a discovery document against the configured issuer (OIDC Discovery §4.3).
pub(crate) fn check_discovery(configured: &Url, doc: DiscoveryDoc) -> Result<Discovered, String> {
    if !issuer_matches(configured, &doc.issuer) {
        return Err(format!(
            "the discovery document names issuer {:?}, but identity.upstream.issuer is {:?}; \
             they must match exactly (OIDC Discovery §4.3)",
            doc.issuer,
            configured.as_str()
        ));
    }
    for url in [
        Some(&doc.authorization_endpoint),
        Some(&doc.token_endpoint),
        doc.userinfo_endpoint.as_ref(),
        Some(&doc.jwks_uri),
    ]
    .into_iter()
    .flatten()
    {
        check_url(url).map_err(|e| format!("discovery document endpoint: {e}"))?;
    }
    let algorithms = if doc.id_token_signing_alg_values_supported.is_empty() {
        vec![Algorithm::RS256]
    } else {
        doc.id_token_signing_alg_values_supported
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .filter(|a| ASYMMETRIC.contains(a))
            .collect()
    };
    if algorithms.is_empty() {
        return Err(format!(
            "the IdP advertises no id_token algorithm cimdgate accepts ({:?}); \
             cimdgate accepts RS*, PS*, ES256, ES384 and EdDSA, never none or HS*",
            doc.id_token_signing_alg_values_supported
        ));
    }
    Ok(Discovered {
        issuer: doc.issuer,
        authorization_endpoint: doc.authorization_endpoint,
        token_endpoint: doc.token_endpoint,
        userinfo_endpoint: doc.userinfo_endpoint,
        jwks_uri: doc.jwks_uri,
        algorithms,
        iss_parameter_supported: doc.authorization_response_iss_parameter_supported,
    })
}

#[derive(Default)]
struct DiscoveryState {
    ok: Option<Arc<Discovered>>,
    failed: Option<(Instant, IdpError)>,
}

#[derive(Default)]
struct KeysState {
    keys: Option<(Arc<JwkSet>, Instant)>,
}

/// Lazily discovered OIDC metadata and keys for one issuer.
pub(crate) struct OidcCache {
    issuer: Url,
    discovery: Mutex<DiscoveryState>,
    keys: Mutex<KeysState>,
}

impl OidcCache {
    pub(crate) fn new(issuer: Url) -> Self {
        OidcCache {
            issuer,
            discovery: Mutex::new(DiscoveryState::default()),
            keys: Mutex::new(KeysState::default()),
        }
    }

    /// The configured issuer.
    pub(crate) fn issuer(&self) -> &Url {
        &self.issuer
    }

    /// The discovery result: cached after the first success; concurrent first callers share one
    /// fetch (the mutex); a failure is returned as-is for [`DISCOVERY_RETRY`], then retried.
    pub(crate) async fn discovered(
        &self,
        client: &reqwest::Client,
    ) -> Result<Arc<Discovered>, IdpError> {
        let mut st = self.discovery.lock().await;
        if let Some(d) = &st.ok {
            return Ok(d.clone());
        }
        if let Some((at, err)) = &st.failed
            && at.elapsed() < DISCOVERY_RETRY
        {
            return Err(err.clone());
        }
        match self.fetch_discovery(client).await {
            Ok(d) => {
                let d = Arc::new(d);
                st.ok = Some(d.clone());
                st.failed = None;
                Ok(d)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "upstream OIDC discovery failed");
                st.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    async fn fetch_discovery(&self, client: &reqwest::Client) -> Result<Discovered, IdpError> {
        let url = discovery_url(&self.issuer).map_err(|reason| IdpError::Discovery {
            host: host_of(&self.issuer),
            reason,
        })?;
        let body = net::send(&url, client.get(url.clone())).await?;
        let bad = |reason: String| IdpError::Discovery {
            host: host_of(&url),
            reason,
        };
        if !body.status.is_success() {
            return Err(bad(format!("{url} answered HTTP {}", body.status)));
        }
        let doc: DiscoveryDoc = net::parse_json(&body).map_err(bad)?;
        check_discovery(&self.issuer, doc).map_err(bad)
    }

    /// The IdP's keys; `refresh` forces a refetch (unknown `kid`).
    pub(crate) async fn keys(
        &self,
        client: &reqwest::Client,
        jwks_uri: &Url,
        refresh: bool,
    ) -> Result<Arc<JwkSet>, IdpError> {
        let mut st = self.keys.lock().await;
        if !refresh
            && let Some((set, at)) = &st.keys
            && at.elapsed() < JWKS_TTL
        {
            return Ok(set.clone());
        }
        let body = net::send(jwks_uri, client.get(jwks_uri.clone())).await?;
        let bad = |reason: String| IdpError::InvalidIdToken {
            reason: format!("the IdP's key set at {jwks_uri}: {reason}"),
        };
        if !body.status.is_success() {
            return Err(bad(format!("HTTP {}", body.status)));
        }
        let set: JwkSet = net::parse_json(&body).map_err(bad)?;
        let set = Arc::new(set);
        st.keys = Some((set.clone(), Instant::now()));
        Ok(set)
    }
}

/// What an id_token must satisfy.
pub(crate) struct IdTokenRules<'a> {
    /// The IdP's issuer, exactly.
    pub(crate) issuer: &'a str,
    /// cimdgate's client id (the required audience).
    pub(crate) client_id: &'a str,
    /// The nonce sent in the authorization request.
    pub(crate) nonce: &'a str,
    /// Allowed `alg` values (already ⊆ asymmetric).
    pub(crate) algorithms: &'a [Algorithm],
}

/// The id_token claims cimdgate reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IdClaims {
    pub(crate) sub: String,
    #[serde(default)]
    pub(crate) nonce: Option<String>,
    #[serde(default)]
    pub(crate) azp: Option<String>,
    /// One string or an array (OIDC Core §2); membership is checked by jsonwebtoken.
    #[serde(default)]
    pub(crate) aud: serde_json::Value,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) preferred_username: Option<String>,
    #[serde(default)]
    pub(crate) email: Option<String>,
}

/// Why an id_token was refused. `UnknownKey` lets the caller refetch the JWKS once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdTokenProblem {
    /// No key in the set matches the token's `kid`.
    UnknownKey(Option<String>),
    /// Any other rule failed.
    Invalid(String),
}

/// Validate an id_token (OIDC Core §3.1.3.7): header `alg` in `rules.algorithms` (never `none`
/// or HS*), signature by a key of the IdP's set, `iss`, `aud` ∋ client_id (and `azp` = client_id
/// when several audiences), `exp` (with [`ID_TOKEN_LEEWAY_SECS`]), and `nonce`.
pub(crate) fn validate_id_token(
    token: &str,
    keys: &JwkSet,
    rules: &IdTokenRules<'_>,
) -> Result<IdClaims, IdTokenProblem> {
    let invalid = |s: String| IdTokenProblem::Invalid(s);
    let header = jsonwebtoken::decode_header(token).map_err(|e| {
        invalid(format!(
            "its header cannot be read or names an unsupported algorithm ({e})"
        ))
    })?;
    if !rules.algorithms.contains(&header.alg) || !ASYMMETRIC.contains(&header.alg) {
        return Err(invalid(format!(
            "it is signed with {:?}, which is not among the IdP's accepted asymmetric algorithms",
            header.alg
        )));
    }
    // The one JOSE key rule set (`cimd::jose`): a key the IdP's set does not name (or names
    // ambiguously) may be a rotation, so the caller refreshes the set once; a key that breaks a
    // rule is refused outright.
    let key = match KeySet::from_jwks(keys).select(header.kid.as_deref(), header.alg) {
        Ok(k) => k.key.clone(),
        Err(
            KeyError::UnknownKid { .. } | KeyError::NoUsableKeys | KeyError::KidRequired { .. },
        ) => {
            return Err(IdTokenProblem::UnknownKey(header.kid.clone()));
        }
        Err(e) => return Err(invalid(format!("the IdP's key cannot be used: {e}"))),
    };
    let mut v = Validation::new(header.alg);
    v.algorithms = vec![header.alg];
    v.leeway = ID_TOKEN_LEEWAY_SECS;
    v.set_issuer(&[rules.issuer]);
    v.set_audience(&[rules.client_id]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<IdClaims>(token, &key, &v)
        .map_err(|e| invalid(describe_jwt_error(&e)))?;
    let claims = data.claims;
    if let serde_json::Value::Array(list) = &claims.aud
        && list.len() > 1
        && claims.azp.as_deref() != Some(rules.client_id)
    {
        return Err(invalid(
            "it has several audiences but no azp naming cimdgate".into(),
        ));
    }
    if let Some(azp) = &claims.azp
        && azp != rules.client_id
    {
        return Err(invalid("its azp is not cimdgate's client id".into()));
    }
    let nonce_ok = claims.nonce.as_deref().is_some_and(|n| {
        use subtle::ConstantTimeEq as _;
        bool::from(n.as_bytes().ct_eq(rules.nonce.as_bytes()))
    });
    if !nonce_ok {
        return Err(invalid(
            "its nonce does not match the one cimdgate sent".into(),
        ));
    }
    if claims.sub.is_empty() {
        return Err(invalid("its sub is empty".into()));
    }
    Ok(claims)
}

fn describe_jwt_error(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => "its signature does not verify".into(),
        K::ExpiredSignature => "it has expired".into(),
        K::ImmatureSignature => "it is not valid yet".into(),
        K::InvalidIssuer => "its iss is not the configured issuer".into(),
        K::InvalidAudience => "its aud does not include cimdgate's client id".into(),
        K::MissingRequiredClaim(c) => format!("the {c} claim is missing"),
        K::InvalidAlgorithm => "its algorithm does not fit the key".into(),
        _ => format!("it is malformed ({e})"),
    }
}

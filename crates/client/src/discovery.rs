//! Discovery (MCP 2025-11-25 "Authorization Server Discovery"): from the MCP URL to the
//! authorization server's endpoints.
//!
//! 1. Send the MCP request without a token; expect 401 with a `Bearer` challenge whose
//!    `resource_metadata` names the Protected Resource Metadata (RFC 9728 §5.1). Without it,
//!    try the well-known URLs ([`protected_resource_metadata_urls`], RFC 9728 §3.1).
//! 2. Fetch the PRM; its `resource` must be the MCP URL (RFC 9728 §3.3) and it must name an
//!    authorization server.
//! 3. Fetch the authorization server's metadata from [`authorization_server_metadata_urls`]
//!    (RFC 8414 §3.1 path insertion, then OpenID Connect Discovery); its `issuer` must be
//!    identical to the identifier it was found under (RFC 8414 §3.3, a plain string compare)
//!    and it must offer PKCE S256.

use serde::Deserialize;
use url::Url;

use crate::ClientError;
use crate::challenge::{BearerChallenge, parse_bearer};

/// RFC 9728 §3: the well-known suffix of Protected Resource Metadata.
pub const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
/// RFC 8414 §3: the well-known suffix of authorization server metadata.
pub const AS_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect Discovery 1.0 §4: the provider configuration suffix.
pub const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// The fields of RFC 9728 Protected Resource Metadata this client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier (the token audience, RFC 8707).
    pub resource: String,
    /// Issuer identifiers of the authorization servers.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// The fields of RFC 8414 authorization server metadata this client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// Issuer identifier.
    pub issuer: String,
    /// `/authorize`.
    pub authorization_endpoint: String,
    /// `/token`.
    pub token_endpoint: String,
    /// RFC 7591 registration endpoint.
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    /// PKCE methods (must contain `S256`).
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// draft-ietf-oauth-client-id-metadata-document: URL client_ids accepted.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// RFC 9207 §3: the authorization response carries `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Scopes offered.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// Everything discovery found.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The MCP URL discovery started from.
    pub mcp_url: Url,
    /// The `Bearer` challenge of the unauthenticated request (if any).
    pub challenge: Option<BearerChallenge>,
    /// Where the PRM came from.
    pub prm_url: Url,
    /// The PRM.
    pub prm: ProtectedResourceMetadata,
    /// Where the AS metadata came from.
    pub as_metadata_url: Url,
    /// The AS metadata.
    pub metadata: AuthorizationServerMetadata,
}

impl Discovery {
    /// The scope to request: the challenge's, else every scope the PRM lists, else none.
    pub fn default_scope(&self) -> Option<String> {
        if let Some(s) = self.challenge.as_ref().and_then(|c| c.scope.clone()) {
            return Some(s);
        }
        (!self.prm.scopes_supported.is_empty()).then(|| self.prm.scopes_supported.join(" "))
    }
}

/// RFC 9728 §3.1: PRM URLs for a resource, most specific first — the well-known suffix
/// inserted between host and path, then (for a resource with a path) the root document.
pub fn protected_resource_metadata_urls(resource: &Url) -> Vec<Url> {
    well_known_urls(resource, PRM_WELL_KNOWN, false)
}

/// AS metadata URLs for an issuer, in the order MCP 2025-11-25 prescribes: RFC 8414 path
/// insertion, OIDC path insertion, OIDC path appending (the last two only for issuers with a
/// path; for a bare origin there is one of each).
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let mut urls = well_known_urls(issuer, AS_WELL_KNOWN, true);
    urls.extend(well_known_urls(issuer, OIDC_WELL_KNOWN, true));
    let path = issuer.path().trim_end_matches('/');
    if !path.is_empty() {
        let mut u = issuer.clone();
        u.set_path(&format!("{path}{OIDC_WELL_KNOWN}"));
        u.set_query(None);
        u.set_fragment(None);
        urls.push(u);
    }
    urls
}

fn well_known_urls(base: &Url, suffix: &str, exact_only: bool) -> Vec<Url> {
    let path = base.path().trim_end_matches('/');
    let mut at = base.clone();
    at.set_query(None);
    at.set_fragment(None);
    at.set_path(&format!("{suffix}{path}"));
    let mut urls = vec![at.clone()];
    if !path.is_empty() && !exact_only {
        at.set_path(suffix);
        urls.push(at);
    }
    urls
}

/// Same identifier, ignoring one trailing slash (`https://a/` and `https://a` name one origin).
pub fn same_identifier(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Step 1: the unauthenticated request. Returns the `Bearer` challenge of the 401.
pub async fn probe(
    http: &reqwest::Client,
    mcp_url: &Url,
) -> Result<Option<BearerChallenge>, ClientError> {
    const STEP: &str = "discovery (unauthenticated request)";
    let resp = http
        .get(mcp_url.clone())
        .header("accept", "application/json, text/event-stream")
        .send()
        .await
        .map_err(|e| ClientError::http(STEP, mcp_url.as_str(), e))?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(ClientError::protocol(
            STEP,
            format!(
                "{mcp_url} answered {} without a token; expected 401 with a Bearer challenge",
                resp.status()
            ),
        ));
    }
    let values = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    Ok(parse_bearer(values))
}

/// GET `url` and parse its JSON body as `T`.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    step: &'static str,
    url: &Url,
) -> Result<T, ClientError> {
    let resp = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| ClientError::http(step, url.as_str(), e))?;
    if !resp.status().is_success() {
        return Err(ClientError::protocol(
            step,
            format!("{url} answered {}", resp.status()),
        ));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| ClientError::http(step, url.as_str(), e))?;
    serde_json::from_slice(&body)
        .map_err(|e| ClientError::protocol(step, format!("{url}: not the expected JSON: {e}")))
}

/// Step 2: the Protected Resource Metadata, from the challenge or the well-known URLs.
pub async fn fetch_prm(
    http: &reqwest::Client,
    mcp_url: &Url,
    challenge: Option<&BearerChallenge>,
) -> Result<(Url, ProtectedResourceMetadata), ClientError> {
    const STEP: &str = "discovery (protected resource metadata)";
    let candidates = match challenge.and_then(|c| c.resource_metadata.as_deref()) {
        Some(u) => vec![Url::parse(u).map_err(|e| {
            ClientError::protocol(STEP, format!("resource_metadata {u:?} is not a URL: {e}"))
        })?],
        None => protected_resource_metadata_urls(mcp_url),
    };
    let mut last = None;
    for url in candidates {
        match get_json::<ProtectedResourceMetadata>(http, STEP, &url).await {
            Ok(prm) => {
                if !same_identifier(&prm.resource, mcp_url.as_str()) {
                    return Err(ClientError::protocol(
                        STEP,
                        format!(
                            "{url} describes resource {:?}, not {mcp_url} (RFC 9728 §3.3)",
                            prm.resource
                        ),
                    ));
                }
                if prm.authorization_servers.is_empty() {
                    return Err(ClientError::protocol(
                        STEP,
                        format!("{url} names no authorization_servers"),
                    ));
                }
                return Ok((url, prm));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::protocol(STEP, "no metadata URL to try")))
}

/// Step 3: the authorization server metadata for `issuer`.
pub async fn fetch_as_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<(Url, AuthorizationServerMetadata), ClientError> {
    const STEP: &str = "discovery (authorization server metadata)";
    let issuer_url = Url::parse(issuer)
        .map_err(|e| ClientError::protocol(STEP, format!("issuer {issuer:?} is not a URL: {e}")))?;
    let mut last = None;
    for url in authorization_server_metadata_urls(&issuer_url) {
        match get_json::<AuthorizationServerMetadata>(http, STEP, &url).await {
            Ok(m) => {
                check_as_metadata(&url, issuer, &m)?;
                return Ok((url, m));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::protocol(STEP, "no metadata URL to try")))
}

/// The checks on authorization server metadata fetched for `issuer` from `url`: `issuer`
/// identical to the one the URL was built from (RFC 8414 §3.3; MCP "Authorization Server
/// Metadata Discovery": a plain string compare — no trailing-slash, case, default-port or
/// percent-encoding normalisation), and PKCE S256 offered.
pub fn check_as_metadata(
    url: &Url,
    issuer: &str,
    m: &AuthorizationServerMetadata,
) -> Result<(), ClientError> {
    const STEP: &str = "discovery (authorization server metadata)";
    if m.issuer != issuer {
        return Err(ClientError::protocol(
            STEP,
            format!(
                "{url} names issuer {:?}, not {issuer:?} (RFC 8414 §3.3)",
                m.issuer
            ),
        ));
    }
    if !m
        .code_challenge_methods_supported
        .iter()
        .any(|x| x == "S256")
    {
        return Err(ClientError::protocol(
            STEP,
            "the server does not advertise PKCE S256 (code_challenge_methods_supported)",
        ));
    }
    Ok(())
}

/// Steps 1–3.
pub async fn discover(http: &reqwest::Client, mcp_url: &Url) -> Result<Discovery, ClientError> {
    let challenge = probe(http, mcp_url).await?;
    let (prm_url, prm) = fetch_prm(http, mcp_url, challenge.as_ref()).await?;
    let issuer = prm.authorization_servers.first().cloned().ok_or_else(|| {
        ClientError::protocol("discovery", "the resource names no authorization server")
    })?;
    let (as_metadata_url, metadata) = fetch_as_metadata(http, &issuer).await?;
    Ok(Discovery {
        mcp_url: mcp_url.clone(),
        challenge,
        prm_url,
        prm,
        as_metadata_url,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(String::from).collect()
    }

    #[test]
    fn prm_urls_table() {
        let cases: &[(&str, &[&str])] = &[
            (
                "http://127.0.0.1:8080/mcp",
                &[
                    "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
                    "http://127.0.0.1:8080/.well-known/oauth-protected-resource",
                ],
            ),
            (
                "https://example.com/a/b/?q=1#f",
                &[
                    "https://example.com/.well-known/oauth-protected-resource/a/b",
                    "https://example.com/.well-known/oauth-protected-resource",
                ],
            ),
            (
                "https://example.com",
                &["https://example.com/.well-known/oauth-protected-resource"],
            ),
            (
                "https://example.com/",
                &["https://example.com/.well-known/oauth-protected-resource"],
            ),
        ];
        for (resource, want) in cases {
            let got = strs(protected_resource_metadata_urls(
                &Url::parse(resource).unwrap(),
            ));
            assert_eq!(got, *want, "resource {resource}");
        }
    }

    #[test]
    fn as_metadata_urls_table() {
        let cases: &[(&str, &[&str])] = &[
            (
                "http://127.0.0.1:8080",
                &[
                    "http://127.0.0.1:8080/.well-known/oauth-authorization-server",
                    "http://127.0.0.1:8080/.well-known/openid-configuration",
                ],
            ),
            (
                "https://auth.example.com/",
                &[
                    "https://auth.example.com/.well-known/oauth-authorization-server",
                    "https://auth.example.com/.well-known/openid-configuration",
                ],
            ),
            (
                "https://example.com/tenant1",
                &[
                    "https://example.com/.well-known/oauth-authorization-server/tenant1",
                    "https://example.com/.well-known/openid-configuration/tenant1",
                    "https://example.com/tenant1/.well-known/openid-configuration",
                ],
            ),
            (
                "https://example.com/a/b/",
                &[
                    "https://example.com/.well-known/oauth-authorization-server/a/b",
                    "https://example.com/.well-known/openid-configuration/a/b",
                    "https://example.com/a/b/.well-known/openid-configuration",
                ],
            ),
        ];
        for (issuer, want) in cases {
            let got = strs(authorization_server_metadata_urls(
                &Url::parse(issuer).unwrap(),
            ));
            assert_eq!(got, *want, "issuer {issuer}");
        }
    }

    #[test]
    fn identifiers_compare_ignoring_one_trailing_slash() {
        assert!(same_identifier("https://a.example", "https://a.example/"));
        assert!(same_identifier("http://h/mcp", "http://h/mcp"));
        assert!(!same_identifier("http://h/mcp", "http://h/mcp2"));
    }

    #[test]
    fn as_metadata_issuer_must_be_identical_table() {
        let url = Url::parse("https://as.example/.well-known/oauth-authorization-server").unwrap();
        let cases: &[(&str, &str, bool)] = &[
            ("https://as.example", "https://as.example", true),
            (
                "https://as.example/tenant",
                "https://as.example/tenant",
                true,
            ),
            // Normalisation traps: each is a different issuer.
            ("https://as.example", "https://as.example/", false),
            ("https://as.example/", "https://as.example", false),
            ("https://as.example", "https://AS.example", false),
            ("https://as.example", "HTTPS://as.example", false),
            ("https://as.example", "https://as.example:443", false),
            ("https://as.example/t%41", "https://as.example/tA", false),
            ("https://as.example", "https://evil.example", false),
        ];
        for (issuer, advertised, ok) in cases {
            let m: AuthorizationServerMetadata = serde_json::from_value(serde_json::json!({
                "issuer": advertised, "authorization_endpoint": "a", "token_endpoint": "t",
                "code_challenge_methods_supported": ["S256"],
            }))
            .unwrap();
            let got = check_as_metadata(&url, issuer, &m);
            assert_eq!(got.is_ok(), *ok, "{issuer} vs {advertised}: {got:?}");
        }
    }

    #[test]
    fn default_scope_prefers_the_challenge() {
        let prm = ProtectedResourceMetadata {
            resource: "r".into(),
            authorization_servers: vec!["i".into()],
            scopes_supported: vec!["a".into(), "b".into()],
        };
        let meta: AuthorizationServerMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "i", "authorization_endpoint": "a", "token_endpoint": "t"
        }))
        .unwrap();
        let u = Url::parse("http://h/").unwrap();
        let mut d = Discovery {
            mcp_url: u.clone(),
            challenge: None,
            prm_url: u.clone(),
            prm,
            as_metadata_url: u,
            metadata: meta,
        };
        assert_eq!(d.default_scope().as_deref(), Some("a b"));
        d.challenge = Some(BearerChallenge {
            scope: Some("mcp".into()),
            ..Default::default()
        });
        assert_eq!(d.default_scope().as_deref(), Some("mcp"));
    }
}

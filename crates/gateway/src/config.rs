//! The gateway's one typed configuration ([`GatewayConfig`]) with its defaults and the named
//! constants they come from (STYLE.md: constants named, documented, configurable).

use std::time::Duration;

use url::Url;

/// `upstream = "builtin:demo"`: the in-process demo MCP server.
pub const BUILTIN_DEMO: &str = "builtin:demo";

/// Allowed clock difference for `exp`/`nbf` (RFC 9068 §4, RFC 7519 §4.1.4). 30 s matches the
/// authorization server's own leeway (`cimdgate_server::back::tokens::VERIFY_LEEWAY_SECS`).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// Longest time a verified token stays in the token cache (the entry also never outlives the
/// token's `exp`).
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

/// Most entries in the token cache (each is a few hundred bytes).
pub const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10_000;

/// Staleness bound of the revocation check: a "not revoked" answer from the store is reused for
/// this long, so a revoked family is refused at most this long after `/revoke` returned.
pub const DEFAULT_REVOCATION_CACHE_TTL: Duration = Duration::from_secs(5);

/// Largest MCP request body the gateway accepts (JSON-RPC messages are small; 1 MiB leaves room
/// for large tool arguments).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Time allowed to open a TCP (+TLS) connection to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed from sending a request upstream to receiving its response headers.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest silence between two chunks of an upstream response body. An SSE stream has no total
/// deadline; rmcp servers send a keep-alive every 15 s, so 5 min only cuts dead streams.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Where a resource's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The built-in demo MCP server ([`crate::demo`]), served in-process.
    BuiltinDemo,
    /// An MCP server reached over Streamable HTTP at this URL.
    Http(Url),
}

impl Upstream {
    /// Parse `builtin:demo` or an `http(s)` URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == BUILTIN_DEMO {
            return Ok(Upstream::BuiltinDemo);
        }
        let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        match url.scheme() {
            "http" | "https" => Ok(Upstream::Http(url)),
            other => Err(format!(
                "{s:?}: scheme {other:?} is not supported (http, https or {BUILTIN_DEMO})"
            )),
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::BuiltinDemo => f.write_str(BUILTIN_DEMO),
            Upstream::Http(u) => f.write_str(u.as_str()),
        }
    }
}

/// One protected resource (a `[[resources]]` entry).
#[derive(Debug, Clone)]
pub struct ResourceSpec {
    /// Path on the gateway, e.g. `/mcp`. The resource identifier (token `aud`) is
    /// `public_url` + path.
    pub path: String,
    /// Where requests go.
    pub upstream: Upstream,
    /// Scopes advertised in the metadata (`scopes_supported`).
    pub scopes: Vec<String>,
    /// Scopes a token must carry (all of them); sent as `scope=` in challenges. Empty: any
    /// valid token for this resource is enough.
    pub required_scopes: Vec<String>,
    /// Forward the user's upstream-IdP access token to the upstream as `Authorization: Bearer`
    /// (docs/architecture.md, *Gateway*: only if configured). Needs an [`crate::UpstreamTokens`]
    /// provider; default off.
    pub forward_upstream_token: bool,
    /// Scopes particular MCP operations need on top of `required_scopes`
    /// (docs/architecture.md, *Gateway*, "Per-operation scopes").
    pub operations: crate::operations::OperationRules,
    /// Browser origins allowed to call the resource besides the gateway's own (`Origin`
    /// header; `*` = any). Requests without `Origin` (non-browser clients) are not affected.
    pub allowed_origins: Vec<String>,
}

impl ResourceSpec {
    /// A resource whose advertised scopes are also required (how `cimdgate serve` maps
    /// `[[resources]] scopes`).
    pub fn new(path: impl Into<String>, upstream: Upstream, scopes: Vec<String>) -> Self {
        ResourceSpec {
            path: path.into(),
            upstream,
            required_scopes: scopes.clone(),
            scopes,
            forward_upstream_token: false,
            operations: Default::default(),
            allowed_origins: Vec::new(),
        }
    }
}

/// The gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Public base URL of the gateway (resource identifiers and metadata URLs derive from it).
    pub public_url: Url,
    /// Authorization servers advertised in the metadata (RFC 9728 §2 `authorization_servers`).
    pub authorization_servers: Vec<String>,
    /// Protected resources.
    pub resources: Vec<ResourceSpec>,
    /// See [`DEFAULT_CLOCK_SKEW`].
    pub clock_skew: Duration,
    /// See [`DEFAULT_TOKEN_CACHE_TTL`].
    pub token_cache_ttl: Duration,
    /// See [`DEFAULT_TOKEN_CACHE_CAPACITY`].
    pub token_cache_capacity: u64,
    /// See [`DEFAULT_REVOCATION_CACHE_TTL`]; zero asks the store on every request.
    pub revocation_cache_ttl: Duration,
    /// See [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// See [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`DEFAULT_RESPONSE_TIMEOUT`].
    pub response_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl GatewayConfig {
    /// Defaults for everything but the URLs and resources.
    pub fn new(public_url: Url, authorization_servers: Vec<String>) -> Self {
        GatewayConfig {
            public_url,
            authorization_servers,
            resources: Vec::new(),
            clock_skew: DEFAULT_CLOCK_SKEW,
            token_cache_ttl: DEFAULT_TOKEN_CACHE_TTL,
            token_cache_capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
            revocation_cache_ttl: DEFAULT_REVOCATION_CACHE_TTL,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// `public_url` without a trailing slash.
    pub fn base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    /// The resource identifier of `path`: `public_url` + path (what the AS puts in `aud`).
    pub fn resource_id(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The RFC 9728 §3.1 metadata URL of `path`: `/.well-known/oauth-protected-resource`
    /// inserted between the origin and the resource path.
    pub fn metadata_url(&self, path: &str) -> String {
        let origin = self.public_url.origin().ascii_serialization();
        let full = format!("{}{path}", self.public_url.path().trim_end_matches('/'));
        format!("{origin}{}", metadata_path(&full))
    }
}

/// `/.well-known/oauth-protected-resource` + `path` (nothing appended for `/`).
pub fn metadata_path(path: &str) -> String {
    let p = path.trim_end_matches('/');
    format!("/.well-known/oauth-protected-resource{p}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_well_known_between_origin_and_path() {
        let c = GatewayConfig::new(Url::parse("https://gw.example:8443/").unwrap(), vec![]);
        assert_eq!(c.resource_id("/mcp"), "https://gw.example:8443/mcp");
        assert_eq!(
            c.metadata_url("/mcp"),
            "https://gw.example:8443/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(metadata_path("/"), "/.well-known/oauth-protected-resource");
    }

    #[test]
    fn upstream_parses_builtin_and_http_only() {
        assert_eq!(
            Upstream::parse("builtin:demo").unwrap(),
            Upstream::BuiltinDemo
        );
        assert!(matches!(
            Upstream::parse("http://127.0.0.1:9/mcp"),
            Ok(Upstream::Http(_))
        ));
        assert!(Upstream::parse("ftp://x/").is_err());
        assert!(Upstream::parse("builtin:other").is_err());
    }
}

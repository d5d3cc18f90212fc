//! The one typed configuration (`docs/reference-config.toml` is a commented example): a TOML file, every key overridable by environment
//! variables `CIMDGATE_<SECTION>__<KEY>`, defaults in one place, unknown keys and bad values
//! rejected at startup with the key named.
//!
//! Relative paths in the file resolve against the file's folder.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::secret::{ExposeSecret, SecretString};

use cimd::document::Profile;
use cimd::policy::{TrustMode, TrustPolicyConfig};

mod error;
mod grants;
mod ops;
pub(crate) mod redact;
pub use error::ConfigError;
use error::key_err;
pub use grants::{ClientCredentialsConfig, EnterpriseIdpConfig};
pub use ops::{
    AdminConfig, AdminListen, AuditConfig, AuditSink, DEFAULT_ADMIN_LISTEN, MIN_ADMIN_TOKEN_CHARS,
};
pub use redact::REDACTED;
use redact::{redact, redact_opt, redact_store_url};

/// Prefix of environment overrides: `CIMDGATE_SERVER__LISTEN=127.0.0.1:9000`.
pub const ENV_PREFIX: &str = "CIMDGATE_";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[store]`
    pub store: StoreConfig,
    /// `[identity]`
    pub identity: IdentityConfig,
    /// `[cimd]`
    pub cimd: CimdConfig,
    /// `[fetch]`
    pub fetch: FetchSettings,
    /// `[[resources]]`
    pub resources: Vec<ResourceConfig>,
    /// `[[trusted_issuers]]`
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
    /// `[[enterprise_idps]]`: IdPs whose ID-JAGs `/token` accepts (SEP-990).
    pub enterprise_idps: Vec<EnterpriseIdpConfig>,
    /// `[client_credentials]`: the client credentials grant (SEP-1046).
    pub client_credentials: ClientCredentialsConfig,
    /// `[tokens]`
    pub tokens: TokenConfig,
    /// `[limits]`
    pub limits: LimitsConfig,
    /// `[consent]`
    pub consent: ConsentConfig,
    /// `[dcr]`
    pub dcr: DcrConfig,
    /// `[admin]`: the internal listener (metrics, health, `/admin/`).
    pub admin: AdminConfig,
    /// `[audit]`: where audit events go.
    pub audit: AuditConfig,
}

/// `[dcr]`: OAuth 2.0 Dynamic Client Registration (RFC 7591) for clients without a metadata
/// document. Anyone can register, and a registered client is identified by nothing a user can
/// check, so it stays outside the CIMD trust policy: it is off unless the trust policy is
/// `open`, or the operator turns it on (review finding H2).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcrConfig {
    /// `true` serves `/register`; unset or `false`: off (deprecated by MCP 2026-07-28).
    pub enabled: Option<bool>,
    /// A registration that completes no code exchange within this many seconds is forgotten
    /// (review finding M8); default one day.
    pub unused_ttl_secs: u64,
    /// When set, `/register` requires `Authorization: Bearer <this token>` (RFC 7591 §3: an
    /// initial access token). Prefer the `CIMDGATE_DCR__INITIAL_ACCESS_TOKEN` environment
    /// variable to writing it into the file.
    #[serde(serialize_with = "redact_opt")]
    pub initial_access_token: Option<SecretString>,
}

impl Default for DcrConfig {
    fn default() -> Self {
        DcrConfig {
            enabled: None,
            unused_ttl_secs: 86_400,
            initial_access_token: None,
        }
    }
}

impl Config {
    /// Whether `/register` is served and registered clients may sign in: only when
    /// `[dcr] enabled = true`. Dynamic registration is deprecated by MCP 2026-07-28 ("retained
    /// for backwards compatibility with authorization servers that do not support Client ID
    /// Metadata Documents"), so it is off unless asked for.
    pub fn dcr_enabled(&self) -> bool {
        self.dcr.enabled.unwrap_or(false)
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The externally visible base URL; also the issuer identifier (RFC 8414).
    pub public_url: Url,
    /// Load balancers and reverse proxies in front of cimdgate (CIDRs, e.g. `["10.0.0.0/8"]`).
    /// A request from one of them is attributed to the address it names in
    /// `X-Forwarded-For` (the right-most one not itself a trusted proxy), so per-client rate
    /// limits work behind them; from anyone else the header is ignored. Default: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            // The literal is a valid URL; parsing cannot fail.
            public_url: Url::parse("http://127.0.0.1:8080").unwrap_or_else(|_| unreachable!()),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[store]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `embedded:PATH` (redb file in folder PATH), or `redis://HOST:PORT/DB` / `rediss://…`
    /// (TLS) to share all state between several instances; `redis+cluster://H1:P1,H2:P2,…`
    /// for a Redis Cluster, `redis+sentinel://S1:P1,S2:P2,…/SERVICE[/DB]` for the master behind
    /// Sentinel (docs/redis.md).
    #[serde(serialize_with = "redact_store_url")]
    pub url: String,
    /// Prefix of every Redis key (default `cg:`), so several deployments can share one Redis.
    /// Ignored by the embedded store.
    pub key_prefix: Option<String>,
    /// Redis replicas that must acknowledge each single-use write (code, refresh token,
    /// `jti`, revocation) before it counts (`WAIT`), so a failover cannot promote a replica
    /// that lacks it (docs/redis.md, *Durability*). 0 (default): no wait. Ignored by the
    /// embedded store.
    pub wait_replicas: u32,
    /// How long to wait for those acknowledgements, in milliseconds (default 500, at most
    /// 900); fewer by then answer the request with 503.
    pub wait_timeout_ms: u64,
    /// Memory for the embedded store's page cache, in MiB (default 16, 1–4096): the largest
    /// part of a busy server's resident memory. A miss costs a `pread` served by the OS page
    /// cache, not a disk read. Ignored by Redis.
    pub cache_mib: u32,
}

/// Default `store.cache_mib`.
pub const DEFAULT_STORE_CACHE_MIB: u32 = 16;
/// Largest `store.cache_mib`.
pub const MAX_STORE_CACHE_MIB: u32 = 4096;

/// Largest `store.wait_timeout_ms`: below the Redis connection's 1 s response timeout.
pub const MAX_WAIT_TIMEOUT_MS: u64 = 900;

/// Written by hand so a Redis password in `url` never reaches a log line (`{:?}` of the
/// configuration shows `redis://:***@host`); the URL stays a plain string because the Redis
/// client needs it whole and everything that prints it goes through this or
/// [`cimdgate_store::redis::redacted_url`].
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout_ms", &self.wait_timeout_ms)
            .field("cache_mib", &self.cache_mib)
            .finish()
    }
}

impl StoreConfig {
    /// `url` fit for banners and logs: a Redis password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        cimdgate_store::redis::redacted_url(&self.url)
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "embedded:./cimdgate-data".into(),
            key_prefix: None,
            wait_replicas: 0,
            wait_timeout_ms: u64::try_from(cimdgate_store::redis::DEFAULT_WAIT_TIMEOUT.as_millis())
                .unwrap_or(500),
            cache_mib: DEFAULT_STORE_CACHE_MIB,
        }
    }
}

/// How users log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// Users from `[[identity.users]]`.
    #[default]
    Local,
    /// An upstream identity provider (OIDC or GitHub preset).
    Upstream,
}

/// `[identity]`
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// `local` or `upstream`.
    pub mode: IdentityMode,
    /// Local users (`mode = "local"`).
    pub users: Vec<LocalUser>,
    /// Upstream IdP (`mode = "upstream"`).
    pub upstream: Option<IdpConfig>,
}

/// One local user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUser {
    /// Login name.
    pub username: String,
    /// argon2id PHC string (`cimdgate hash-password`).
    #[serde(serialize_with = "redact")]
    pub password_hash: SecretString,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Preset upstream providers with fixed endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdpPreset {
    /// GitHub OAuth apps: authorize/token/user endpoints, no OIDC.
    Github,
}

/// `[identity.upstream]`
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IdpConfig {
    /// OIDC issuer; endpoints come from its discovery document.
    pub issuer: Option<Url>,
    /// A preset instead of discovery.
    pub preset: Option<IdpPreset>,
    /// Explicit authorization endpoint (overrides discovery/preset).
    pub authorization_endpoint: Option<Url>,
    /// Explicit token endpoint.
    pub token_endpoint: Option<Url>,
    /// Explicit userinfo endpoint.
    pub userinfo_endpoint: Option<Url>,
    /// cimdgate's client id at the upstream.
    pub client_id: String,
    /// cimdgate's client secret at the upstream.
    #[serde(serialize_with = "redact_opt")]
    pub client_secret: Option<SecretString>,
    /// Scopes requested upstream (default `openid email profile` for OIDC).
    pub scopes: Vec<String>,
    /// Extra PEM trust roots for the upstream (tests, private CAs).
    pub extra_ca_file: Option<PathBuf>,
}

/// `[cimd]`: trust policy (docs/architecture.md, *Trust policy*), profile, cache bounds
/// (*Caching*), redirect allow-list.
///
/// The policy keys repeat `cimd::policy::TrustPolicyConfig`'s fields because serde cannot
/// combine `#[serde(flatten)]` with `deny_unknown_fields`; [`CimdConfig::policy`] maps them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CimdConfig {
    /// Accept CIMD clients at all.
    pub enabled: bool,
    /// `open`, `allowlist` or `approval` (untrusted clients wait for an administrator).
    pub mode: TrustMode,
    /// Approval mode: an approved client whose redirect_uris, auth method, keys or scope change
    /// returns to `pending` until an administrator approves it again.
    pub reapprove_on_change: bool,
    /// Most clients the inventory records (review finding M8: every distinct valid document URL
    /// on a wildcard domain would add a record). Beyond it new clients are not recorded (and in
    /// approval mode stay pending).
    pub inventory_max_clients: u64,
    /// Trusted hosts (`example.com`, `*.example.com`).
    pub trusted_domains: Vec<String>,
    /// Blocked hosts (checked before any fetch).
    pub blocked_domains: Vec<String>,
    /// Skip consent (not login) for trusted hosts.
    pub auto_approve_trusted: bool,
    /// Exact client_ids always admitted.
    pub allowed_client_ids: Vec<String>,
    /// Exact client_ids always refused.
    pub denied_client_ids: Vec<String>,
    /// `mcp` (client_name required) or `lenient`.
    pub profile: Profile,
    /// Operator redirect-URI allow-list patterns; both it and the document must pass.
    pub redirect_allow_list: Option<Vec<String>>,
    /// TTL when the document's response has no cache headers, seconds.
    pub cache_default_ttl_secs: u64,
    /// Lower TTL clamp, seconds.
    pub cache_min_ttl_secs: u64,
    /// Upper TTL clamp, seconds.
    pub cache_max_ttl_secs: u64,
    /// How long failures are remembered, seconds.
    pub negative_ttl_secs: u64,
    /// Stale-if-error window for /token and refresh, seconds.
    pub stale_if_error_secs: u64,
    /// Most documents cached.
    pub cache_max_entries: u64,
    /// With a shared (Redis) store: how long an instance reuses a document it read from the
    /// shared cache before reading it again, seconds (never past the document's freshness).
    /// Bounds how late an instance sees another instance's refetch. 0: read the store every
    /// time.
    pub shared_cache_local_ttl_secs: u64,
}

impl Default for CimdConfig {
    fn default() -> Self {
        let cache = cimd::cache::CacheConfig::default();
        CimdConfig {
            enabled: true,
            mode: TrustMode::Open,
            reapprove_on_change: false,
            inventory_max_clients: 100_000,
            trusted_domains: Vec::new(),
            blocked_domains: Vec::new(),
            auto_approve_trusted: false,
            allowed_client_ids: Vec::new(),
            denied_client_ids: Vec::new(),
            profile: Profile::Mcp,
            redirect_allow_list: None,
            cache_default_ttl_secs: cache.default_ttl.as_secs(),
            cache_min_ttl_secs: cache.min_ttl.as_secs(),
            cache_max_ttl_secs: cache.max_ttl.as_secs(),
            negative_ttl_secs: cache.negative_ttl.as_secs(),
            stale_if_error_secs: cache.stale_if_error.as_secs(),
            cache_max_entries: cache.max_entries,
            shared_cache_local_ttl_secs: cache.local_ttl.as_secs(),
        }
    }
}

impl CimdConfig {
    /// The trust-policy part, in the core library's form.
    pub fn policy(&self) -> TrustPolicyConfig {
        TrustPolicyConfig {
            mode: self.mode,
            trusted_domains: self.trusted_domains.clone(),
            blocked_domains: self.blocked_domains.clone(),
            auto_approve_trusted: self.auto_approve_trusted,
            allowed_client_ids: self.allowed_client_ids.clone(),
            denied_client_ids: self.denied_client_ids.clone(),
        }
    }

    /// The cache part, in the core library's form.
    pub fn cache(&self) -> cimd::cache::CacheConfig {
        cimd::cache::CacheConfig {
            default_ttl: Duration::from_secs(self.cache_default_ttl_secs),
            min_ttl: Duration::from_secs(self.cache_min_ttl_secs),
            max_ttl: Duration::from_secs(self.cache_max_ttl_secs),
            negative_ttl: Duration::from_secs(self.negative_ttl_secs),
            stale_if_error: Duration::from_secs(self.stale_if_error_secs),
            max_entries: self.cache_max_entries,
            local_ttl: Duration::from_secs(self.shared_cache_local_ttl_secs),
            ..cimd::cache::CacheConfig::default()
        }
    }
}

/// `[fetch]`: the SSRF-safe fetcher's settings and dev hooks (docs/architecture.md, *Fetching
/// (SSRF-safe)*).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchSettings {
    /// Connect timeout, milliseconds.
    pub connect_timeout_ms: u64,
    /// Total deadline, milliseconds.
    pub total_timeout_ms: u64,
    /// DEV/TEST: allow 127.0.0.0/8 and ::1.
    pub dev_allow_loopback: bool,
    /// DEV/TEST: extra PEM trust roots.
    pub extra_ca_file: Option<PathBuf>,
    /// DEV/TEST: fixed host → IP mappings (the IP policy still applies).
    pub resolve: HashMap<String, IpAddr>,
    /// DEV/TEST: DNS server to use instead of the system resolver.
    pub dns_server: Option<SocketAddr>,
    /// Outbound fetches per host per minute.
    pub per_host_per_minute: u32,
}

impl Default for FetchSettings {
    fn default() -> Self {
        let f = cimd::fetch::FetchConfig::default();
        FetchSettings {
            connect_timeout_ms: duration_ms(f.connect_timeout),
            total_timeout_ms: duration_ms(f.total_timeout),
            dev_allow_loopback: false,
            extra_ca_file: None,
            resolve: HashMap::new(),
            dns_server: None,
            per_host_per_minute: f.per_host_per_minute,
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl FetchSettings {
    /// Build the core fetcher's configuration (reads `extra_ca_file`).
    pub fn fetch_config(&self) -> Result<cimd::fetch::FetchConfig, ConfigError> {
        let mut cfg = cimd::fetch::FetchConfig {
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            total_timeout: Duration::from_millis(self.total_timeout_ms),
            dev_allow_loopback: self.dev_allow_loopback,
            resolve: self
                .resolve
                .iter()
                .map(|(h, ip)| (h.to_ascii_lowercase(), *ip))
                .collect(),
            dns_server: self.dns_server,
            per_host_per_minute: self.per_host_per_minute,
            ..cimd::fetch::FetchConfig::default()
        };
        if let Some(path) = &self.extra_ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                key_err(
                    "fetch.extra_ca_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            cfg.extra_ca_pem.push(pem);
        }
        Ok(cfg)
    }
}

/// `[[resources]]`: a protected resource (MCP server) this installation fronts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// Path on this server, e.g. `/mcp`; the resource identifier is `public_url` + path.
    pub path: String,
    /// Upstream MCP server URL, or `builtin:demo`.
    pub upstream: String,
    /// Scopes this resource offers.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes every request must carry (a subset of `scopes`). Default: all of `scopes`. Set it
    /// to the base scopes when `operation_scopes` asks for more on particular calls.
    #[serde(default)]
    pub required_scopes: Option<Vec<String>>,
    /// `[[resources.operation_scopes]]`: MCP operations that need scopes on top of
    /// `required_scopes` (per-tool authorization with step-up).
    #[serde(default)]
    pub operation_scopes: Vec<OperationScopesConfig>,
    /// Web origins (`https://inspector.example`) whose pages may call this resource from a
    /// browser, besides this server's own; `"*"` allows any. A request with any other `Origin`
    /// is refused with 403 (MCP "Transports", DNS-rebinding defence); requests without `Origin`
    /// (desktop, CLI and server-side clients) are not affected.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Send the user's upstream-IdP access token to the upstream as `Authorization: Bearer`
    /// (renewed with the IdP's refresh token when it expires). Needs `identity.mode =
    /// "upstream"` and an HTTP upstream. Default off: the upstream sees only the identity headers.
    #[serde(default)]
    pub forward_upstream_token: bool,
}

/// `[[resources.operation_scopes]]`: calls of `method` (and, when given, whose name matches
/// `name`, `*` matching any run of characters) need all of `scopes`. A token without them is
/// answered 403 `insufficient_scope` naming the scopes, and the client re-authorizes for them
/// (MCP step-up). The gateway reads the name from the JSON-RPC body (`params.name` of
/// `tools/call` and `prompts/get`, `params.uri` of `resources/read`), never from the headers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperationScopesConfig {
    /// JSON-RPC method, exactly (`tools/call`).
    pub method: String,
    /// Tool/prompt name or resource URI pattern (`delete_*`); omitted: every call of `method`.
    #[serde(default)]
    pub name: Option<String>,
    /// Scopes the call needs (each among the resource's `scopes`).
    pub scopes: Vec<String>,
}

/// `[[trusted_issuers]]`: another issuer whose JWT access tokens the gateway accepts besides
/// cimdgate's own (docs/architecture.md, *Gateway*; FastMCP's `MultiAuth`) — e.g. an enterprise IdP's machine-to-machine
/// tokens. Tried in order after cimdgate's own issuer, by the token's `iss`; a failing source
/// never blocks the next. Which source vouched reaches the upstream in
/// `X-Forwarded-Token-Source`. The resource's `scopes` are required of these tokens too.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// Name sent upstream in `X-Forwarded-Token-Source`.
    pub name: String,
    /// Expected `iss`, exactly.
    pub issuer: String,
    /// The issuer's JWK Set (https). Fetched on first use, refetched for an unknown `kid` at
    /// most every 30 s.
    pub jwks_uri: Url,
    /// Expected `aud`. Default: the resource's URL, as for cimdgate's own tokens.
    #[serde(default)]
    pub audience: Option<String>,
    /// Require the RFC 9068 `typ: at+jwt` header (default: not required; many IdPs send `JWT`).
    #[serde(default)]
    pub require_at_jwt: bool,
    /// PEM file of extra CA certificates for the JWKS host (a private PKI).
    #[serde(default)]
    pub extra_ca_file: Option<PathBuf>,
}

/// Access-token signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum SigningAlg {
    /// Ed25519 (default).
    #[default]
    EdDSA,
    /// ECDSA P-256.
    ES256,
}

/// `[tokens]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Access-token lifetime, seconds (default 1 h).
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime, seconds.
    pub refresh_token_ttl_secs: u64,
    /// Longest life of a whole grant (a refresh-token family), seconds, however often it is
    /// refreshed (default 90 days): then the user signs in again.
    pub grant_lifetime_secs: u64,
    /// Authorization-code lifetime, seconds (≤ 60).
    pub code_ttl_secs: u64,
    /// Signing algorithm for generated keys.
    pub signing_alg: SigningAlg,
    /// PEM (PKCS#8) private key file; without it a key is generated into the store.
    pub signing_key_file: Option<PathBuf>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            grant_lifetime_secs: 90 * 24 * 3600,
            code_ttl_secs: 60,
            signing_alg: SigningAlg::EdDSA,
            signing_key_file: None,
        }
    }
}

/// `[limits]`: rate limits on requests that can trigger a fetch, and body sizes.
/// Defaults never get in the way of one user's flows or a test burst of ~50 req/s.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per source IP per second (burst = 2× this) on fetch-triggering endpoints.
    pub per_ip_per_second: u32,
    /// Requests per client_id host per second on fetch-triggering endpoints.
    pub per_client_host_per_second: u32,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Seconds a client may take to send a request's headers, counted from when the connection
    /// opens or falls idle after a response; slower connections are closed (slowloris).
    pub header_read_timeout_secs: u64,
    /// Longest pause, seconds, between two pieces of a request body before the request fails.
    pub body_idle_timeout_secs: u64,
    /// Longest time, seconds, a request to the authorization server's endpoints may take from
    /// its headers to its answer, body included; then it fails with 408. Without it a body
    /// trickled just faster than `body_idle_timeout_secs` holds a connection for hours (slow
    /// POST). Not applied to `[[resources]]`, whose MCP streams may last.
    pub request_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_ip_per_second: 200,
            per_client_host_per_second: 200,
            max_body_bytes: 64 * 1024,
            header_read_timeout_secs: 10,
            body_idle_timeout_secs: 10,
            request_timeout_secs: 30,
        }
    }
}

/// `[consent]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// How long "remember this decision" lasts, days.
    pub remember_days: u64,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig { remember_days: 30 }
    }
}

impl Config {
    /// Load from an optional file plus environment overrides, then check every value.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut table, base) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.to_owned(),
                    reason: e.to_string(),
                })?;
                let table: toml::Table =
                    toml::from_str(&text).map_err(|e| ConfigError::Syntax {
                        path: p.display().to_string(),
                        reason: e.to_string(),
                    })?;
                (table, p.parent().map(Path::to_owned))
            }
            // Without a file, relative paths stay relative to the working directory.
            None => (toml::Table::new(), None),
        };
        apply_env(&mut table, env)?;
        let mut config = Self::from_table(table)?;
        if let Some(base) = base {
            config.resolve_paths(&base);
        }
        config.check()?;
        Ok(config)
    }

    /// Parse a TOML string (tests, examples). Relative paths resolve against `.`.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: "<string>".into(),
            reason: e.to_string(),
        })?;
        let config = Self::from_table(table)?;
        config.check()?;
        Ok(config)
    }

    fn from_table(table: toml::Table) -> Result<Config, ConfigError> {
        let value = toml::Value::Table(table);
        serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            key_err(
                if key == "." { "(top level)" } else { &key },
                e.into_inner().to_string(),
            )
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = self.fetch.extra_ca_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.tokens.signing_key_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self
            .identity
            .upstream
            .as_mut()
            .and_then(|u| u.extra_ca_file.as_mut())
        {
            fix(p);
        }
        for t in &mut self.trusted_issuers {
            if let Some(p) = t.extra_ca_file.as_mut() {
                fix(p);
            }
        }
        for e in &mut self.enterprise_idps {
            if let Some(p) = e.extra_ca_file.as_mut() {
                fix(p);
            }
        }
        if let Some(p) = self.admin.token_file.as_mut() {
            fix(p);
        }
        if let AuditSink::File(p) = &mut self.audit.sink {
            fix(p);
        }
        if let Some(rest) = self.store.url.strip_prefix("embedded:") {
            let p = Path::new(rest);
            if p.is_relative() {
                self.store.url = format!("embedded:{}", base.join(p).display());
            }
        }
    }

    fn check_trusted_issuers(&self) -> Result<(), ConfigError> {
        let own = self.issuer();
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.trusted_issuers.iter().enumerate() {
            let key = |k: &str| format!("trusted_issuers[{i}].{k}");
            if t.name.trim().is_empty() || t.name.contains(|c: char| c.is_control()) {
                return Err(key_err(&key("name"), "must be a non-empty printable name"));
            }
            if t.name == cimdgate_gateway::verify::LOCAL_SOURCE || !names.insert(t.name.as_str()) {
                return Err(key_err(
                    &key("name"),
                    format!(
                        "{:?} is taken (names must be unique and not \"cimdgate\")",
                        t.name
                    ),
                ));
            }
            if t.issuer.trim().is_empty() {
                return Err(key_err(&key("issuer"), "is required"));
            }
            if t.issuer == own {
                return Err(key_err(
                    &key("issuer"),
                    "is this server's own issuer, which is always trusted",
                ));
            }
            if t.jwks_uri.scheme() != "https" || t.jwks_uri.host_str().is_none() {
                return Err(key_err(
                    &key("jwks_uri"),
                    format!("{} must be an https URL", t.jwks_uri),
                ));
            }
            if t.audience.as_deref().is_some_and(|a| a.trim().is_empty()) {
                return Err(key_err(&key("audience"), "must not be empty when set"));
            }
        }
        Ok(())
    }

    /// Check values serde cannot: URLs, paths, policy patterns, lifetimes.
    pub fn check(&self) -> Result<(), ConfigError> {
        let url = &self.server.public_url;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(key_err(
                "server.public_url",
                "must be an http(s) URL with a host",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(key_err(
                "server.public_url",
                "must not have a query or fragment (it is the issuer identifier)",
            ));
        }
        if self.store.wait_timeout_ms == 0 || self.store.wait_timeout_ms > MAX_WAIT_TIMEOUT_MS {
            return Err(key_err(
                "store.wait_timeout_ms",
                format!("must be 1–{MAX_WAIT_TIMEOUT_MS} ms"),
            ));
        }
        if !(1..=MAX_STORE_CACHE_MIB).contains(&self.store.cache_mib) {
            return Err(key_err(
                "store.cache_mib",
                format!("must be 1–{MAX_STORE_CACHE_MIB} (MiB)"),
            ));
        }
        if !(self.store.url.starts_with("embedded:")
            || cimdgate_store::redis::is_redis_url(&self.store.url))
        {
            return Err(key_err(
                "store.url",
                format!(
                    "{:?}: expected embedded:PATH, redis://HOST:PORT/DB, rediss://HOST:PORT/DB, \
                     redis+cluster://H1:P1,H2:P2,… or redis+sentinel://S1:P1,S2:P2,…/SERVICE",
                    self.store.url
                ),
            ));
        }
        cimd::policy::TrustPolicy::from_config(&self.cimd.policy())
            .map_err(|e| key_err("cimd", e.to_string()))?;
        if let Some(list) = &self.cimd.redirect_allow_list {
            cimd::redirect::RedirectAllowList::parse(list)
                .map_err(|e| key_err("cimd.redirect_allow_list", e.to_string()))?;
        }
        if self.tokens.code_ttl_secs == 0 || self.tokens.code_ttl_secs > 60 {
            return Err(key_err(
                "tokens.code_ttl_secs",
                "must be between 1 and 60 seconds",
            ));
        }
        if self.tokens.access_token_ttl_secs == 0 {
            return Err(key_err("tokens.access_token_ttl_secs", "must be positive"));
        }
        if self.tokens.refresh_token_ttl_secs < self.tokens.access_token_ttl_secs {
            return Err(key_err(
                "tokens.refresh_token_ttl_secs",
                "must be at least tokens.access_token_ttl_secs",
            ));
        }
        for (key, secs) in [
            (
                "limits.header_read_timeout_secs",
                self.limits.header_read_timeout_secs,
            ),
            (
                "limits.body_idle_timeout_secs",
                self.limits.body_idle_timeout_secs,
            ),
            (
                "limits.request_timeout_secs",
                self.limits.request_timeout_secs,
            ),
        ] {
            if secs == 0 || secs > 300 {
                return Err(key_err(key, "must be between 1 and 300 seconds"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.resources.iter().enumerate() {
            let key = format!("resources[{i}].path");
            if !r.path.starts_with('/') || r.path.contains(['?', '#', ' ']) {
                return Err(key_err(
                    &key,
                    format!("{:?} must be an absolute path", r.path),
                ));
            }
            if !seen.insert(r.path.trim_end_matches('/')) {
                return Err(key_err(&key, format!("{:?} is listed twice", r.path)));
            }
            if r.upstream != "builtin:demo" && Url::parse(&r.upstream).is_err() {
                return Err(key_err(
                    &format!("resources[{i}].upstream"),
                    format!("{:?} must be a URL or builtin:demo", r.upstream),
                ));
            }
            check_resource_scopes(i, r)?;
            if r.forward_upstream_token {
                let key = format!("resources[{i}].forward_upstream_token");
                if self.identity.mode != IdentityMode::Upstream {
                    return Err(key_err(
                        &key,
                        "needs identity.mode = \"upstream\" (local users have no IdP token)",
                    ));
                }
                if r.upstream == "builtin:demo" {
                    return Err(key_err(
                        &key,
                        "needs an HTTP upstream (the built-in demo server takes no token)",
                    ));
                }
            }
        }
        self.check_trusted_issuers()?;
        grants::check_enterprise_idps(&self.enterprise_idps, &self.issuer())?;
        self.admin.check(self.server.listen)?;
        match self.identity.mode {
            IdentityMode::Local => {
                for (i, u) in self.identity.users.iter().enumerate() {
                    if u.username.is_empty() {
                        return Err(key_err(
                            &format!("identity.users[{i}].username"),
                            "is empty",
                        ));
                    }
                    if !self.enterprise_idps.is_empty() && u.username.starts_with("https://") {
                        return Err(key_err(
                            &format!("identity.users[{i}].username"),
                            "must not start with https:// while enterprise_idps are configured \
                             (such names are the subjects of enterprise users)",
                        ));
                    }
                    if !u.password_hash.expose_secret().starts_with("$argon2id$") {
                        return Err(key_err(
                            &format!("identity.users[{i}].password_hash"),
                            "must be an argon2id PHC string (see `cimdgate hash-password`)",
                        ));
                    }
                }
            }
            IdentityMode::Upstream => {
                let Some(up) = &self.identity.upstream else {
                    return Err(key_err(
                        "identity.upstream",
                        "required when identity.mode = \"upstream\"",
                    ));
                };
                if up.client_id.is_empty() {
                    return Err(key_err("identity.upstream.client_id", "is required"));
                }
                let explicit = up.authorization_endpoint.is_some() && up.token_endpoint.is_some();
                if up.issuer.is_none() && up.preset.is_none() && !explicit {
                    return Err(key_err(
                        "identity.upstream",
                        "set issuer (OIDC discovery), preset = \"github\", or both \
                         authorization_endpoint and token_endpoint",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The issuer identifier: `public_url` without a trailing slash (RFC 8414 §2).
    pub fn issuer(&self) -> String {
        self.server
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    }

    /// True when any fetch dev hook is on (startup prints a warning).
    pub fn dev_hooks_enabled(&self) -> bool {
        self.fetch.dev_allow_loopback
            || self.fetch.extra_ca_file.is_some()
            || !self.fetch.resolve.is_empty()
            || self.fetch.dns_server.is_some()
    }
}

/// Apply `CIMDGATE_SECTION__KEY=value` overrides. Values are parsed as TOML (numbers, booleans,
/// arrays, inline tables) and fall back to a plain string.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var,
                reason: "expected CIMDGATE_<SECTION>__<KEY>".into(),
            });
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let mut node = &mut *table;
        let (last, parents) = path.split_last().ok_or_else(|| ConfigError::Env {
            var: var.clone(),
            reason: "empty key".into(),
        })?;
        for part in parents {
            let entry = node
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Env {
                        var,
                        reason: format!("`{part}` is not a section"),
                    });
                }
            };
        }
        node.insert(last.clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// `offline_access` asks the authorization server for a refresh token (MCP 2026-07-28,
/// "Refresh Tokens"): it is never a resource's scope.
pub const OFFLINE_ACCESS: &str = "offline_access";

impl ResourceConfig {
    /// The scopes every request must carry: `required_scopes`, else all of `scopes`.
    pub fn base_scopes(&self) -> Vec<String> {
        self.required_scopes
            .clone()
            .unwrap_or_else(|| self.scopes.clone())
    }
}

/// `resources[i]`'s scope keys: `offline_access` is not a resource scope (it belongs to the
/// authorization server's metadata, never to the resource's); `required_scopes` and every
/// `operation_scopes` entry stay within `scopes`; a rule whose scopes every request already
/// needs has no effect, which is surely a mistake.
fn check_resource_scopes(i: usize, r: &ResourceConfig) -> Result<(), ConfigError> {
    if r.scopes.iter().any(|s| s == OFFLINE_ACCESS) {
        return Err(key_err(
            &format!("resources[{i}].scopes"),
            "offline_access is not a resource scope: the authorization server offers it \
             (a refresh token) by itself",
        ));
    }
    let offered = |key: &str, list: &[String]| -> Result<(), ConfigError> {
        match list.iter().find(|s| !r.scopes.contains(s)) {
            Some(s) => Err(key_err(
                key,
                format!("{s:?} is not among the resource's scopes {:?}", r.scopes),
            )),
            None => Ok(()),
        }
    };
    if let Some(required) = &r.required_scopes {
        offered(&format!("resources[{i}].required_scopes"), required)?;
    }
    for (j, o) in r.allowed_origins.iter().enumerate() {
        let ok = o == "*"
            || Url::parse(o).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.origin().ascii_serialization() == o.trim_end_matches('/')
            });
        if !ok {
            return Err(key_err(
                &format!("resources[{i}].allowed_origins[{j}]"),
                format!(
                    "{o:?} must be an origin such as https://app.example (scheme, host, optional port; no path) or \"*\""
                ),
            ));
        }
    }
    let base = r.base_scopes();
    for (j, rule) in r.operation_scopes.iter().enumerate() {
        let key = |k: &str| format!("resources[{i}].operation_scopes[{j}].{k}");
        if rule.method.trim().is_empty() || rule.method.contains(char::is_whitespace) {
            return Err(key_err(
                &key("method"),
                "must be a JSON-RPC method such as tools/call",
            ));
        }
        if let Some(name) = &rule.name {
            cimdgate_gateway::operations::NamePattern::parse(name)
                .map_err(|why| key_err(&key("name"), why))?;
        }
        if rule.scopes.is_empty() {
            return Err(key_err(&key("scopes"), "must name at least one scope"));
        }
        offered(&key("scopes"), &rule.scopes)?;
        if rule.scopes.iter().all(|s| base.contains(s)) {
            return Err(key_err(
                &key("scopes"),
                format!(
                    "every request already needs {:?}, so this rule changes nothing; set \
                     resources[{i}].required_scopes to the scopes every call needs",
                    rule.scopes
                ),
            ));
        }
    }
    Ok(())
}

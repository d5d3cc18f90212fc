//! The SSRF-safe HTTPS fetcher for metadata documents, `jwks_uri` and `logo_uri`.
//!
//! draft-ietf-oauth-client-id-metadata-document-02 §5 (fetching), §8.6 (SSRF: MUST NOT fetch a URL
//! that resolves to a special-use address), §8.7 (cap what is read; 5 KB recommended);
//! docs/architecture.md, *Fetching (SSRF-safe)*. One [`Fetcher`] holds one `reqwest::Client`, built
//! once and reused (connection pool, TLS configuration).
//!
//! # What a fetch does, in order
//!
//! 1. **URL checks** before any network traffic: `https` only, no userinfo, a host. IP-literal
//!    hosts are judged by the [`IpPolicy`] here, because reqwest dials IP literals without
//!    calling the resolver; the host is classified both as parsed (URL parsers normalise
//!    `127.1` → `127.0.0.1`) and as written in the raw string. Non-canonical IPv4 spellings
//!    of public addresses (`134744072`) are refused as invalid.
//! 2. **Per-host rate limit** (outbound, a product rule): [`FetchConfig::per_host_per_minute`].
//! 3. **Resolve and pin**: the client's resolver looks the name up (a `fetch.resolve` override,
//!    `fetch.dns_server`, or the system resolver), rejects the host if **any** answer is blocked,
//!    and hands reqwest exactly the checked addresses. reqwest never resolves again, so DNS
//!    rebinding between check and connect is impossible. TLS SNI and `Host` are the original
//!    host (`Host` keeps a non-default port).
//! 4. **Request**: `GET`, `Accept: application/json`, a product `User-Agent`, optional
//!    `If-None-Match`/`If-Modified-Since`; no cookies, no credentials, no proxy (environment
//!    proxies such as `HTTPS_PROXY` are ignored), no redirects followed.
//! 5. **Status**: `200` is read; `304` only if a validator was sent; other `3xx` become
//!    [`FetchError::Redirect`] naming the `Location`; anything else [`FetchError::HttpStatus`].
//! 6. **Content type** of a `200` must be `application/json` or `*/*+json` (parameters
//!    ignored); a missing type is an error.
//! 7. **Body**: a `Content-Length` over the cap is refused before reading; otherwise the body is
//!    streamed with a running count and abandoned the moment it passes the cap.
//!
//! The connect timeout bounds DNS + TCP + TLS; the total deadline bounds the whole fetch,
//! including reading the body (a server that stalls mid-body is cut off). No connection is kept
//! once a fetch is over, so the number of hosts fetched from never decides how much is held.
//!
//! # Dev/test hooks (draft -02 §8.6: loopback for development only)
//!
//! [`FetchConfig::dev_allow_loopback`], [`FetchConfig::extra_ca_pem`], [`FetchConfig::resolve`]
//! and [`FetchConfig::dns_server`] are off by default; [`Fetcher::new`] logs a `WARN` when any is
//! on. `resolve` overrides are subject to the IP policy like any DNS answer.

mod errors;
mod resolver;
mod target;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::header::{ACCEPT, CONTENT_TYPE, IF_MODIFIED_SINCE, IF_NONE_MATCH, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::ip::{BlockedAddress, IpPolicy};
use resolver::{PinningResolver, normalise_host};

/// Default connect timeout (product default).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default total deadline for one fetch, body included (product default).
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default outbound requests per host per minute. Generous: the cache absorbs normal traffic;
/// this only stops a flood of distinct client_ids on one host from turning us into a cannon.
pub const DEFAULT_PER_HOST_PER_MINUTE: u32 = 120;
/// The product `User-Agent` (docs/architecture.md, *Fetching (SSRF-safe)*).
pub const DEFAULT_USER_AGENT: &str = concat!(
    "cimdgate/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/cimdgate/cimdgate)"
);
/// The `Accept` header sent with every fetch (draft §5).
pub const ACCEPT_JSON: &str = "application/json";
/// Hosts tracked by the rate limiter before idle entries are purged (bounds memory).
const RATE_LIMIT_PURGE_THRESHOLD: usize = 10_000;

/// Fetcher configuration. Build with [`FetchConfig::default`] and override fields.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// Bound on DNS + TCP connect + TLS handshake. Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Bound on the whole fetch, body included. Default [`DEFAULT_TOTAL_TIMEOUT`].
    pub total_timeout: Duration,
    /// **Dev hook**: permit `127.0.0.0/8` and `::1` (never other special-purpose ranges).
    /// MUST NOT be on in production (draft-02 §8.6).
    pub dev_allow_loopback: bool,
    /// **Dev hook**: extra trust roots, each a PEM bundle, in addition to the platform roots.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// **Dev hook**: fixed host → IP mappings, like curl's `--resolve`. The IP policy still
    /// applies to the mapped address.
    pub resolve: HashMap<String, IpAddr>,
    /// **Dev hook**: a DNS server (UDP) to use instead of the system resolver.
    pub dns_server: Option<SocketAddr>,
    /// `User-Agent` header. Default [`DEFAULT_USER_AGENT`].
    pub user_agent: String,
    /// Outbound fetches allowed per host per minute (burst = the same number); `0` disables the
    /// limit. Default [`DEFAULT_PER_HOST_PER_MINUTE`].
    pub per_host_per_minute: u32,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            dev_allow_loopback: false,
            extra_ca_pem: Vec::new(),
            resolve: HashMap::new(),
            dns_server: None,
            user_agent: DEFAULT_USER_AGENT.to_string(),
            per_host_per_minute: DEFAULT_PER_HOST_PER_MINUTE,
        }
    }
}

impl FetchConfig {
    /// True if any dev/test hook is on (docs/architecture.md, *Fetching (SSRF-safe)*).
    pub fn dev_hooks_enabled(&self) -> bool {
        self.dev_allow_loopback
            || !self.extra_ca_pem.is_empty()
            || !self.resolve.is_empty()
            || self.dns_server.is_some()
    }

    /// The address policy these settings imply.
    pub fn ip_policy(&self) -> IpPolicy {
        IpPolicy {
            allow_loopback: self.dev_allow_loopback,
        }
    }
}

/// One fetch.
#[derive(Clone, Copy, Debug)]
pub struct FetchRequest<'a> {
    /// The URL, exactly as written (e.g. the client_id).
    pub url: &'a str,
    /// Byte cap on the body (e.g. [`crate::document::MAX_DOCUMENT_BYTES`]).
    pub max_bytes: usize,
    /// `If-None-Match` validator (an entity tag from a cached response).
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since` validator (an HTTP date from a cached response).
    pub if_modified_since: Option<&'a str>,
    /// A refresh of a document or key set already held (from an earlier successful fetch). It
    /// counts against its own per-host budget, so that requests for URLs nobody has fetched
    /// before — which anyone can send — cannot use up the budget that keeps known clients
    /// working.
    pub refresh: bool,
}

impl<'a> FetchRequest<'a> {
    /// An unconditional fetch of `url` capped at `max_bytes`.
    pub fn new(url: &'a str, max_bytes: usize) -> Self {
        FetchRequest {
            url,
            max_bytes,
            if_none_match: None,
            if_modified_since: None,
            refresh: false,
        }
    }

    fn has_validator(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
}

/// A successful fetch: `200` with a JSON body, or `304` to a conditional request.
#[derive(Clone, Debug)]
pub struct FetchResponse {
    /// `200 OK` or `304 Not Modified`.
    pub status: StatusCode,
    /// Response headers (for RFC 9111 caching).
    pub headers: HeaderMap,
    /// The body (empty for `304`), at most `max_bytes` long.
    pub body: Bytes,
    /// The URL fetched, as given in [`FetchRequest::url`].
    pub url: String,
}

/// Why a fetch failed. `Clone` so a negative cache and coalesced waiters can share it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL cannot be fetched as written.
    #[error("cannot fetch {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host is, or resolves to, a special-purpose address (draft-02 §8.6).
    #[error(
        "refusing to fetch from {host}: {blocked}; special-purpose addresses are never fetched"
    )]
    BlockedAddress {
        /// The host from the URL.
        host: String,
        /// The address and the range that forbids it.
        blocked: BlockedAddress,
    },
    /// DNS lookup failed.
    #[error("DNS lookup for {host} failed: {message}")]
    Dns {
        /// The host looked up.
        host: String,
        /// The resolver's message.
        message: String,
    },
    /// DNS returned no A/AAAA records.
    #[error("DNS lookup for {host} returned no addresses")]
    NoAddresses {
        /// The host looked up.
        host: String,
    },
    /// TCP connection failed.
    #[error("could not connect to {host}: {message}")]
    Connect {
        /// The host.
        host: String,
        /// The underlying error.
        message: String,
    },
    /// TLS handshake or certificate verification failed.
    #[error("TLS with {host} failed: {message}")]
    Tls {
        /// The host.
        host: String,
        /// The underlying error.
        message: String,
    },
    /// A deadline passed.
    #[error("fetching {url} timed out ({phase} limit {limit:?})")]
    Timeout {
        /// The URL.
        url: String,
        /// `"connect"`, `"response"` or `"total"`.
        phase: &'static str,
        /// The limit that was hit.
        limit: Duration,
    },
    /// The server answered with a redirect; redirects are never followed.
    #[error("server answered HTTP {status} redirecting to {}; redirects are not followed, serve the document at the URL itself", location.as_deref().unwrap_or("(no Location)"))]
    Redirect {
        /// The 3xx status.
        status: u16,
        /// The `Location` header, if any.
        location: Option<String>,
    },
    /// The server answered with a status other than 200 (or 304 to a conditional request).
    #[error("server answered HTTP {status}; expected 200")]
    HttpStatus {
        /// The status.
        status: u16,
    },
    /// A `200` without a JSON content type.
    #[error("Content-Type must be application/json (or */*+json), got {}", found.as_deref().unwrap_or("none"))]
    ContentType {
        /// The `Content-Type` header, if any.
        found: Option<String>,
    },
    /// The response's header block exceeds [`MAX_RESPONSE_HEADER_BYTES`].
    #[error("response headers exceed the {limit}-byte limit")]
    HeadersTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The body (or its announced `Content-Length`) exceeds the cap.
    #[error("response body exceeds the {limit}-byte limit")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The outbound per-host rate limit is exhausted.
    #[error("too many fetches to {host}; try again in a minute")]
    RateLimited {
        /// The host.
        host: String,
    },
    /// Any other transport error.
    #[error("fetch failed: {message}")]
    Io {
        /// Description.
        message: String,
    },
    /// The fetcher configuration is unusable (e.g. a bad CA PEM).
    #[error("invalid fetch configuration: {message}")]
    Config {
        /// Description.
        message: String,
    },
    /// A failure remembered by a shared negative cache (another instance's fetch failed):
    /// the original error's message, word for word.
    #[error("{message}")]
    Remembered {
        /// The original error's `Display`.
        message: String,
    },
}

/// The SSRF-safe fetcher. Cheap to share (`Arc<Fetcher>`); holds one `reqwest::Client`.
pub struct Fetcher {
    client: reqwest::Client,
    policy: IpPolicy,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    connect_timeout: Duration,
    total_timeout: Duration,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .field("connect_timeout", &self.connect_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("rate_limited", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

fn config_err(message: impl fmt::Display) -> FetchError {
    FetchError::Config {
        message: message.to_string(),
    }
}

impl Fetcher {
    /// Builds the fetcher and its single HTTP client.
    ///
    /// Fails with [`FetchError::Config`] if a CA PEM bundle holds no certificate or the TLS or
    /// DNS configuration cannot be built.
    pub fn new(cfg: FetchConfig) -> Result<Self, FetchError> {
        if cfg.dev_hooks_enabled() {
            tracing::warn!(
                dev_allow_loopback = cfg.dev_allow_loopback,
                extra_ca_bundles = cfg.extra_ca_pem.len(),
                resolve_overrides = cfg.resolve.len(),
                dns_server = ?cfg.dns_server,
                "fetch dev/test hooks are enabled; they weaken SSRF protection and MUST NOT be used in production"
            );
        }
        let policy = cfg.ip_policy();
        let resolver =
            PinningResolver::new(policy, &cfg.resolve, cfg.dns_server, cfg.connect_timeout)
                .map_err(config_err)?;
        let mut roots = Vec::new();
        for (i, pem) in cfg.extra_ca_pem.iter().enumerate() {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| config_err(format_args!("extra CA bundle #{i}: {e}")))?;
            if certs.is_empty() {
                return Err(config_err(format_args!(
                    "extra CA bundle #{i} contains no certificate"
                )));
            }
            roots.extend(certs);
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .referer(false)
            .retry(reqwest::retry::never())
            .user_agent(cfg.user_agent.as_str())
            // No idle connections: every distinct client_id host would otherwise keep one open
            // for reqwest's 90 s idle timeout (a file descriptor and ~60 KiB of TLS and HTTP/2
            // state each), so wildcard names made memory and descriptors grow with the number of
            // names (the adversarial suite measured +450 MiB and 5 400 descriptors for 10 000
            // names). Documents and key sets are cached, so a fetch rarely follows another to
            // the same host soon enough for a kept connection to pay off.
            .pool_max_idle_per_host(0)
            .connect_timeout(cfg.connect_timeout)
            .dns_resolver(resolver)
            .tls_certs_merge(roots)
            .build()
            .map_err(|e| config_err(errors::root_message(&e)))?;
        let limiter = NonZeroU32::new(cfg.per_host_per_minute)
            .map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Ok(Fetcher {
            client,
            policy,
            limiter,
            connect_timeout: cfg.connect_timeout,
            total_timeout: cfg.total_timeout,
        })
    }

    /// The address policy in force.
    pub fn ip_policy(&self) -> IpPolicy {
        self.policy
    }

    /// Fetches `req.url` under every rule in the module documentation.
    pub async fn fetch(&self, req: &FetchRequest<'_>) -> Result<FetchResponse, FetchError> {
        let target = target::check_target(req.url, self.policy)?;
        self.check_rate(&target.host, req.refresh)?;
        match tokio::time::timeout(self.total_timeout, self.fetch_checked(&target, req)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                url: req.url.to_string(),
                phase: "total",
                limit: self.total_timeout,
            }),
        }
    }

    /// The per-host budget: one bucket for first fetches of a URL, another for refreshes of what
    /// is already held ([`FetchRequest::refresh`]).
    fn check_rate(&self, host: &str, refresh: bool) -> Result<(), FetchError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > RATE_LIMIT_PURGE_THRESHOLD {
            limiter.retain_recent();
        }
        let host = normalise_host(host);
        let key = format!("{}{host}", if refresh { "refresh " } else { "new " });
        limiter
            .check_key(&key)
            .map_err(|_| FetchError::RateLimited { host })
    }

    async fn fetch_checked(
        &self,
        target: &target::Target,
        req: &FetchRequest<'_>,
    ) -> Result<FetchResponse, FetchError> {
        let classify = |e: &reqwest::Error| {
            errors::classify(
                e,
                &target.host,
                req.url,
                self.connect_timeout,
                self.total_timeout,
            )
        };
        let mut builder = self
            .client
            .get(target.url.clone())
            .header(ACCEPT, HeaderValue::from_static(ACCEPT_JSON));
        for (name, value) in [
            (IF_NONE_MATCH, req.if_none_match),
            (IF_MODIFIED_SINCE, req.if_modified_since),
        ] {
            if let Some(v) = value {
                let v = HeaderValue::from_str(v).map_err(|_| FetchError::Io {
                    message: format!("cached validator for {name} is not a valid header value"),
                })?;
                builder = builder.header(name, v);
            }
        }
        let mut resp = builder.send().await.map_err(|e| classify(&e))?;
        check_header_bytes(resp.headers())?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED && req.has_validator() {
            return Ok(FetchResponse {
                status,
                headers: resp.headers().clone(),
                body: Bytes::new(),
                url: req.url.to_string(),
            });
        }
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            return Err(FetchError::Redirect {
                status: status.as_u16(),
                location: resp.headers().get(LOCATION).map(shown),
            });
        }
        if status != StatusCode::OK {
            return Err(FetchError::HttpStatus {
                status: status.as_u16(),
            });
        }
        check_content_type(resp.headers().get(CONTENT_TYPE))?;
        if resp
            .content_length()
            .is_some_and(|n| n > req.max_bytes as u64)
        {
            return Err(FetchError::TooLarge {
                limit: req.max_bytes,
            });
        }
        let headers = resp.headers().clone();
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e))? {
            if body.len() + chunk.len() > req.max_bytes {
                return Err(FetchError::TooLarge {
                    limit: req.max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchResponse {
            status,
            headers,
            body: body.freeze(),
            url: req.url.to_string(),
        })
    }
}

impl FetchError {
    /// What may be told to whoever sent the URL (an anonymous client at `/authorize`, a client at
    /// `/token`): the class of the failure, without what it reveals about the network this
    /// server sits in — no resolved address or range, no resolver or OS message, nothing that
    /// tells a closed port from an open one. The [`Display`](std::fmt::Display) text has the
    /// details for logs, audit events and the operator's `cimdgate cimd validate`.
    pub fn public_message(&self) -> String {
        match self {
            FetchError::BlockedAddress { host, .. } => format!(
                "{host} is, or resolves to, an address that is never fetched (not a public \
                 Internet address)"
            ),
            FetchError::Dns { host, .. } | FetchError::NoAddresses { host } => {
                format!("the host name {host} could not be resolved to a public address")
            }
            FetchError::Connect { host, .. } | FetchError::Tls { host, .. } => {
                format!("could not fetch the document from {host}")
            }
            FetchError::Io { .. } => "could not fetch the document".to_owned(),
            FetchError::Timeout { .. } => "fetching the document timed out".to_owned(),
            FetchError::Config { .. } => "the server cannot fetch documents right now".to_owned(),
            other => other.to_string(),
        }
    }
}

/// `application/json` or any `type/subtype+json`, parameters ignored, case-insensitive.
fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((ty, subtype)) = essence.split_once('/') else {
        return false;
    };
    let token = |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '/');
    token(ty)
        && token(subtype)
        && ((ty == "application" && subtype == "json")
            || subtype.ends_with("+json") && subtype.len() > 5)
}

fn check_content_type(value: Option<&HeaderValue>) -> Result<(), FetchError> {
    match value {
        Some(v) if is_json_media_type(&String::from_utf8_lossy(v.as_bytes())) => Ok(()),
        _ => Err(FetchError::ContentType {
            found: value.map(shown),
        }),
    }
}

/// Most bytes (names and values) of a response's header block. A document host that sends more
/// is refused before anything of it is kept (an error, a cache entry, a log line); real
/// responses carry well under 4 KiB.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 16 * 1024;

/// Longest header value quoted back in an error (`Location`, `Content-Type`): errors are cached
/// and shown, so a host must not choose their size.
pub const MAX_QUOTED_HEADER_CHARS: usize = 256;

fn check_header_bytes(headers: &http::HeaderMap) -> Result<(), FetchError> {
    let total: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if total > MAX_RESPONSE_HEADER_BYTES {
        return Err(FetchError::HeadersTooLarge {
            limit: MAX_RESPONSE_HEADER_BYTES,
        });
    }
    Ok(())
}

/// A header value as quoted in an error: lossy UTF-8, at most [`MAX_QUOTED_HEADER_CHARS`].
fn shown(v: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(v.as_bytes());
    let mut out: String = text.chars().take(MAX_QUOTED_HEADER_CHARS).collect();
    if text.chars().count() > MAX_QUOTED_HEADER_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_over_the_cap_is_refused() {
        let mut h = http::HeaderMap::new();
        h.insert("cache-control", HeaderValue::from_static("max-age=60"));
        assert!(check_header_bytes(&h).is_ok());
        for i in 0..MAX_RESPONSE_HEADER_BYTES / 400 {
            h.insert(
                http::HeaderName::from_bytes(format!("x-pad-{i}").as_bytes()).unwrap(),
                HeaderValue::from_str(&"A".repeat(400)).unwrap(),
            );
        }
        assert!(check_header_bytes(&h).is_ok(), "just under the cap");
        h.insert(
            "x-one-more",
            HeaderValue::from_str(&"A".repeat(400)).unwrap(),
        );
        assert!(matches!(
            check_header_bytes(&h),
            Err(FetchError::HeadersTooLarge {
                limit: MAX_RESPONSE_HEADER_BYTES
            })
        ));
    }

    #[test]
    fn quoted_header_values_are_cut_short() {
        let long = HeaderValue::from_str(&"x".repeat(10_000)).unwrap();
        assert_eq!(shown(&long).chars().count(), MAX_QUOTED_HEADER_CHARS + 1);
        assert_eq!(shown(&HeaderValue::from_static("text/html")), "text/html");
    }

    #[test]
    fn content_type_must_be_json_or_plus_json() {
        for (v, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/jwk-set+json", true),
            ("application/vnd.example+json;v=1", true),
            ("text/json+json", true),
            ("text/html", false),
            ("text/plain", false),
            ("application/jsonx", false),
            ("application/+json", false),
            ("application/x-json", false),
            ("json", false),
            ("", false),
            ("/json", false),
            ("application/json/x", false),
        ] {
            assert_eq!(is_json_media_type(v), ok, "{v:?}");
        }
        assert!(matches!(
            check_content_type(None),
            Err(FetchError::ContentType { found: None })
        ));
    }

    #[test]
    fn default_config_has_no_dev_hooks_and_spec_timeouts() {
        let cfg = FetchConfig::default();
        assert!(!cfg.dev_hooks_enabled());
        assert_eq!(cfg.connect_timeout, Duration::from_secs(3));
        assert_eq!(cfg.total_timeout, Duration::from_secs(5));
        assert!(cfg.user_agent.starts_with("cimdgate/"));
        assert!(
            cfg.user_agent
                .ends_with("(+https://github.com/cimdgate/cimdgate)")
        );
        assert_eq!(cfg.ip_policy(), IpPolicy::STRICT);
    }

    #[test]
    fn dev_hooks_are_detected() {
        let on = [
            FetchConfig {
                dev_allow_loopback: true,
                ..Default::default()
            },
            FetchConfig {
                extra_ca_pem: vec![b"x".to_vec()],
                ..Default::default()
            },
            FetchConfig {
                resolve: HashMap::from([("a.test".to_string(), IpAddr::from([127, 0, 0, 1]))]),
                ..Default::default()
            },
            FetchConfig {
                dns_server: Some(SocketAddr::from(([127, 0, 0, 1], 53))),
                ..Default::default()
            },
        ];
        for cfg in on {
            assert!(cfg.dev_hooks_enabled(), "{cfg:?}");
        }
    }

    #[test]
    fn bad_extra_ca_pem_is_a_config_error() {
        let cfg = FetchConfig {
            extra_ca_pem: vec![b"not a pem".to_vec()],
            ..Default::default()
        };
        assert!(matches!(Fetcher::new(cfg), Err(FetchError::Config { .. })));
    }
}

//! The pinning DNS resolver handed to reqwest (draft §8.6; docs/architecture.md,
//! *Fetching (SSRF-safe)*: resolve the host ourselves, connect to the validated address).
//!
//! reqwest's connector dials exactly the addresses a custom [`reqwest::dns::Resolve`] returns and
//! never resolves again, so "resolve → check every answer → connect" is one step: a DNS rebinding
//! between check and connect is impossible. This resolver
//!
//! 1. uses a `fetch.resolve` override if the host has one (the IP policy still applies),
//! 2. otherwise asks `fetch.dns_server` (hickory, UDP) or the system resolver (hickory with the
//!    system configuration, or `getaddrinfo` via tokio if that configuration cannot be read),
//! 3. rejects the host if **any** answer is blocked by the [`IpPolicy`], and
//! 4. returns the checked addresses with port 0 (the connector fills in the URL's port).
//!
//! Failures travel through reqwest as a boxed [`ResolveFailure`], which
//! [`super::errors`] finds again in the error's source chain.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::ip::{BlockedAddress, IpPolicy};

/// Upper bound on addresses we accept for one name (more is not a real document host).
const MAX_ADDRESSES: usize = 32;

/// Why a host could not be resolved to a connectable address.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ResolveFailure {
    /// An answer (or the override) is a special-purpose address.
    #[error("{host} resolves to a blocked address: {blocked}")]
    Blocked {
        host: String,
        blocked: BlockedAddress,
    },
    /// The lookup itself failed.
    #[error("DNS lookup for {host} failed: {message}")]
    Dns { host: String, message: String },
    /// The lookup succeeded with no A/AAAA answers.
    #[error("DNS lookup for {host} returned no addresses")]
    NoAddresses { host: String },
}

/// Where names are looked up.
enum Backend {
    /// hickory (system configuration or a configured server).
    Hickory(Box<TokioResolver>),
    /// `getaddrinfo` through `tokio::net::lookup_host` (when the system config is unreadable).
    System,
}

/// The resolver reqwest calls for every connection.
pub(crate) struct PinningResolver {
    policy: IpPolicy,
    overrides: Arc<HashMap<String, IpAddr>>,
    backend: Arc<Backend>,
}

/// Lower-cases and drops one trailing dot, so `CIMD.test.` and `cimd.test` share an override
/// and a rate-limit bucket.
pub(crate) fn normalise_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

impl PinningResolver {
    /// Builds the resolver. `dns_server` replaces the system resolver (dev hook).
    pub(crate) fn new(
        policy: IpPolicy,
        overrides: &HashMap<String, IpAddr>,
        dns_server: Option<SocketAddr>,
        lookup_timeout: Duration,
    ) -> Result<Self, String> {
        let mut opts = ResolverOpts::default();
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = lookup_timeout;
        opts.attempts = 2;
        let backend = match dns_server {
            Some(addr) => {
                let mut conn = ConnectionConfig::udp();
                conn.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![conn]);
                let config = ResolverConfig::from_parts(None, Vec::new(), vec![ns]);
                let mut builder =
                    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
                *builder.options_mut() = opts;
                Backend::Hickory(Box::new(builder.build().map_err(|e| e.to_string())?))
            }
            None => match TokioResolver::builder_tokio() {
                Ok(mut builder) => {
                    let sys = builder.options_mut();
                    sys.ip_strategy = opts.ip_strategy;
                    sys.timeout = sys.timeout.min(lookup_timeout);
                    match builder.build() {
                        Ok(r) => Backend::Hickory(Box::new(r)),
                        Err(e) => {
                            tracing::debug!(error = %e, "hickory system resolver unavailable; using getaddrinfo");
                            Backend::System
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "system DNS configuration unreadable; using getaddrinfo");
                    Backend::System
                }
            },
        };
        Ok(PinningResolver {
            policy,
            overrides: Arc::new(
                overrides
                    .iter()
                    .map(|(h, ip)| (normalise_host(h), *ip))
                    .collect(),
            ),
            backend: Arc::new(backend),
        })
    }

    /// Looks `host` up and applies the policy to every answer.
    async fn lookup_checked(
        policy: IpPolicy,
        overrides: &HashMap<String, IpAddr>,
        backend: &Backend,
        host: &str,
    ) -> Result<Vec<IpAddr>, ResolveFailure> {
        let key = normalise_host(host);
        let ips: Vec<IpAddr> = match overrides.get(&key) {
            Some(ip) => vec![*ip],
            None => lookup(backend, &key).await?,
        };
        if ips.is_empty() {
            return Err(ResolveFailure::NoAddresses { host: key });
        }
        for ip in &ips {
            policy
                .check(*ip)
                .map_err(|blocked| ResolveFailure::Blocked {
                    host: key.clone(),
                    blocked,
                })?;
        }
        let mut unique = Vec::with_capacity(ips.len());
        for ip in ips {
            // Canonical form (`::ffff:a.b.c.d` → `a.b.c.d`) so the socket family matches.
            let ip = ip.to_canonical();
            if !unique.contains(&ip) {
                unique.push(ip);
            }
        }
        Ok(unique)
    }
}

async fn lookup(backend: &Backend, host: &str) -> Result<Vec<IpAddr>, ResolveFailure> {
    let dns_err = |message: String| ResolveFailure::Dns {
        host: host.to_string(),
        message,
    };
    match backend {
        // A dotted name is looked up as fully qualified, so resolv.conf search domains never
        // turn `cimd.example` into `cimd.example.corp.internal`.
        Backend::Hickory(resolver) => match resolver
            .lookup_ip(if host.contains('.') {
                format!("{host}.")
            } else {
                host.to_string()
            })
            .await
        {
            Ok(lookup) => Ok(lookup.iter().take(MAX_ADDRESSES + 1).collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                Err(ResolveFailure::NoAddresses {
                    host: host.to_string(),
                })
            }
            Err(e) => Err(dns_err(e.to_string())),
        },
        Backend::System => tokio::net::lookup_host((host, 0))
            .await
            .map(|addrs| addrs.take(MAX_ADDRESSES + 1).map(|a| a.ip()).collect())
            .map_err(|e| dns_err(e.to_string())),
    }
}

impl Resolve for PinningResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let overrides = self.overrides.clone();
        let backend = self.backend.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = Self::lookup_checked(policy, &overrides, &backend, &host)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

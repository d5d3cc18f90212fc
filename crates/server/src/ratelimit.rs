//! Rate limits on requests that can trigger an outbound fetch (docs/architecture.md, *Fetching (SSRF-safe)*): per source IP and
//! per client_id host, GCRA via `governor` in each instance, plus — when the store is Redis —
//! a shared fixed-window counter per key (one-second windows, the same burst allowance) so N
//! instances together allow what one would (docs/architecture.md, *Storage and scale*). A Redis failure in the shared check fails
//! open (logged): requests that need the store fail with 503 on their own, and a cache outage
//! must not add refusals. Defaults leave room for a test burst of ~50 req/s from one address
//! (docs/architecture.md, *Audit and logging*).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use cimdgate_store::redis::RedisStore;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use crate::error::OAuthError;

/// The keyed limiters.
pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_client_host: Option<DefaultKeyedRateLimiter<String>>,
    shared: Option<Shared>,
}

/// Shared counters in Redis: hits allowed per one-second window.
struct Shared {
    redis: Arc<RedisStore>,
    per_ip_window: u64,
    per_client_host_window: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

fn quota(per_second: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    // Burst of two seconds' worth; `per_second >= 1`, so `2 * rate` saturates at u32::MAX.
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits {
    /// Build from config; a limit of 0 disables that limiter.
    pub fn new(cfg: &LimitsConfig) -> Self {
        RateLimits {
            per_ip: quota(cfg.per_ip_per_second).map(RateLimiter::keyed),
            per_client_host: quota(cfg.per_client_host_per_second).map(RateLimiter::keyed),
            shared: None,
        }
    }

    /// Like [`RateLimits::new`], plus counters shared by every instance in `redis`.
    pub fn with_shared(cfg: &LimitsConfig, redis: Arc<RedisStore>) -> Self {
        let mut limits = Self::new(cfg);
        limits.shared = Some(Shared {
            redis,
            per_ip_window: u64::from(cfg.per_ip_per_second).saturating_mul(2),
            per_client_host_window: u64::from(cfg.per_client_host_per_second).saturating_mul(2),
        });
        limits
    }

    /// Whether the shared counter for `(ns, key)` is over `allowed` (0 = no limit).
    async fn shared_over(&self, ns: &str, key: &str, allowed: impl Fn(&Shared) -> u64) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let allowed = allowed(shared);
        if allowed == 0 {
            return false;
        }
        match shared.redis.count_hit(ns, key, WINDOW).await {
            Ok(n) => n > allowed,
            Err(e) => {
                tracing::warn!(error = %e, "shared rate-limit counter unavailable; allowing");
                false
            }
        }
    }

    /// Count one request from `ip`.
    pub async fn check_ip(&self, ip: IpAddr) -> Result<(), OAuthError> {
        // One IPv6 subscriber usually holds a whole /64: counting each address apart would let
        // one client rotate through 2^64 budgets.
        let ip = rate_key(ip);
        let refuse = || {
            Err(OAuthError::rate_limited(format!(
                "too many requests from {ip}; slow down"
            )))
        };
        if let Some(l) = &self.per_ip
            && l.check_key(&ip).is_err()
        {
            return refuse();
        }
        if self
            .shared_over("ip", &ip.to_string(), |s| s.per_ip_window)
            .await
        {
            return refuse();
        }
        Ok(())
    }

    /// The address a request comes from: the connection's peer, or — when the peer is a trusted
    /// proxy (`server.trusted_proxies`) — the right-most `X-Forwarded-For` address that is not
    /// itself a trusted proxy. Anything unparsable ends the walk at the last trusted hop.
    pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded_for
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !is_trusted(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }

    /// Count one request that can trigger a fetch for a client_id host. Requests for client_ids
    /// this server already holds a document for (`known`) count in a budget of their own, so
    /// that requests for unknown client_ids on the same host — which anyone can send — cannot
    /// lock the host's real clients out.
    pub async fn check_client_host(&self, host: &str, known: bool) -> Result<(), OAuthError> {
        let refuse = || {
            Err(OAuthError::rate_limited(format!(
                "too many requests for clients of {host}; slow down"
            )))
        };
        let key = format!("{}{host}", if known { "known " } else { "new " });
        if let Some(l) = &self.per_client_host
            && l.check_key(&key).is_err()
        {
            return refuse();
        }
        if self
            .shared_over("host", &key, |s| s.per_client_host_window)
            .await
        {
            return refuse();
        }
        Ok(())
    }

    /// Drop idle keys so memory stays bounded (called periodically).
    pub fn sweep(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_client_host {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_ip_limit_refuses_after_burst_and_is_per_key() {
        let limits = RateLimits::new(&LimitsConfig {
            per_ip_per_second: 5,
            per_client_host_per_second: 0,
            ..LimitsConfig::default()
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let mut allowed = 0;
        for _ in 0..20 {
            allowed += usize::from(limits.check_ip(a).await.is_ok());
        }
        assert_eq!(allowed, 10, "burst of two seconds' worth");
        assert!(
            limits.check_ip(b).await.is_ok(),
            "other addresses unaffected"
        );
        assert!(
            limits.check_client_host("x.test", false).await.is_ok(),
            "0 disables"
        );
    }

    /// Requests for unknown client_ids on a host (anyone can send them) cannot use up the budget
    /// of the host's known clients (review finding F-fetch-1).
    #[tokio::test]
    async fn unknown_client_ids_cannot_drain_the_known_clients_budget() {
        let limits = RateLimits::new(&LimitsConfig {
            per_ip_per_second: 0,
            per_client_host_per_second: 2,
            ..LimitsConfig::default()
        });
        let mut allowed = 0;
        for _ in 0..20 {
            allowed += usize::from(limits.check_client_host("app.test", false).await.is_ok());
        }
        assert_eq!(allowed, 4, "the unknown-client budget is used up");
        assert!(limits.check_client_host("app.test", true).await.is_ok());
        assert!(limits.check_client_host("other.test", false).await.is_ok());
    }

    #[test]
    fn the_client_address_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // (peer, X-Forwarded-For values, counted as)
        let cases: [(&str, &[&str], &str); 7] = [
            ("203.0.113.5", &[], "203.0.113.5"),
            // Not from a trusted proxy: the header is the client's own word, ignored.
            ("203.0.113.5", &["198.51.100.1"], "203.0.113.5"),
            ("10.0.0.2", &["198.51.100.1"], "198.51.100.1"),
            // A client-sent prefix before the proxy's own entry changes nothing.
            ("10.0.0.2", &["1.1.1.1, 198.51.100.1"], "198.51.100.1"),
            ("10.0.0.2", &["198.51.100.1", "10.0.0.7"], "198.51.100.1"),
            ("10.0.0.2", &["garbage"], "10.0.0.2"),
            ("10.0.0.2", &[], "10.0.0.2"),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(
                RateLimits::client_ip(ip(peer), xff, &trusted),
                ip(want),
                "{peer} {xff:?}"
            );
        }
    }

    #[tokio::test]
    async fn ipv6_addresses_are_counted_by_their_64() {
        let limits = RateLimits::new(&LimitsConfig {
            per_ip_per_second: 1,
            per_client_host_per_second: 0,
            ..LimitsConfig::default()
        });
        let mut allowed = 0;
        for i in 0..10u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            allowed += usize::from(limits.check_ip(ip).await.is_ok());
        }
        assert_eq!(allowed, 2, "one /64, one budget");
        assert!(
            limits
                .check_ip("2001:db8:1:3::1".parse().unwrap())
                .await
                .is_ok()
        );
        assert_eq!(
            rate_key("192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn default_limits_allow_a_test_burst() {
        let limits = RateLimits::new(&LimitsConfig::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..100 {
            assert!(limits.check_ip(ip).await.is_ok());
            assert!(limits.check_client_host("cimd.test", false).await.is_ok());
        }
    }
}

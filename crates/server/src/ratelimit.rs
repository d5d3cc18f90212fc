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

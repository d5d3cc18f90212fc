//! Rate limits on requests that can trigger an outbound fetch (SPEC §4, §3.3): per source IP and
//! per client_id host, GCRA via `governor`. Limits are per instance; the Redis backend adds
//! shared counters later (issue 5). Defaults leave room for a test burst of ~50 req/s from one
//! address (SPEC §7).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use crate::error::OAuthError;

/// The keyed limiters.
pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_client_host: Option<DefaultKeyedRateLimiter<String>>,
}

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
        }
    }

    /// Count one request from `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), OAuthError> {
        match &self.per_ip {
            Some(l) if l.check_key(&ip).is_err() => Err(OAuthError::rate_limited(format!(
                "too many requests from {ip}; slow down"
            ))),
            _ => Ok(()),
        }
    }

    /// Count one request for a client_id host.
    pub fn check_client_host(&self, host: &str) -> Result<(), OAuthError> {
        match &self.per_client_host {
            Some(l) if l.check_key(&host.to_owned()).is_err() => Err(OAuthError::rate_limited(
                format!("too many requests for clients of {host}; slow down"),
            )),
            _ => Ok(()),
        }
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

    #[test]
    fn per_ip_limit_refuses_after_burst_and_is_per_key() {
        let limits = RateLimits::new(&LimitsConfig {
            per_ip_per_second: 5,
            per_client_host_per_second: 0,
            ..LimitsConfig::default()
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let allowed = (0..20).filter(|_| limits.check_ip(a).is_ok()).count();
        assert_eq!(allowed, 10, "burst of two seconds' worth");
        assert!(limits.check_ip(b).is_ok(), "other addresses unaffected");
        assert!(limits.check_client_host("x.test").is_ok(), "0 disables");
    }

    #[test]
    fn default_limits_allow_a_test_burst() {
        let limits = RateLimits::new(&LimitsConfig::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!((0..100).all(|_| limits.check_ip(ip).is_ok()));
        assert!((0..100).all(|_| limits.check_client_host("cimd.test").is_ok()));
    }
}

//! Time as the protocol carries it: whole seconds since the Unix epoch (JWT `exp`/`iat`,
//! RFC 7519 §2 NumericDate; sealed values' expiry) and deadlines `now + secs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch of `t` (0 before 1970).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    unix(SystemTime::now())
}

/// `now + secs`, saturating far in the future rather than overflowing.
pub fn after(now: SystemTime, secs: u64) -> SystemTime {
    now.checked_add(Duration::from_secs(secs))
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// The instant `secs` seconds after the Unix epoch.
pub fn from_unix(secs: u64) -> SystemTime {
    after(UNIX_EPOCH, secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_round_trip_and_clamp() {
        assert_eq!(unix(from_unix(1_800_000_000)), 1_800_000_000);
        assert_eq!(unix(UNIX_EPOCH - Duration::from_secs(5)), 0);
        let now = SystemTime::now();
        assert_eq!(after(now, 10), now + Duration::from_secs(10));
        assert!(after(now, u64::MAX) > now);
    }
}

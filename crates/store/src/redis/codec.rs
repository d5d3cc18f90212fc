//! Value encoding for the Redis backend: JSON records, whole-second expiries, hashed keys.

pub(crate) use crate::types::from_hex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::unix_secs;
use crate::{StoreError, hex, unix_secs as unix_secs_serde};

/// `sha256(a NUL b)` hex: keys built from client-controlled strings.
pub(super) fn pair_hash(a: &str, b: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(a.as_bytes());
    h.update([0u8]);
    h.update(b.as_bytes());
    hex(&h.finalize())
}

pub(super) fn encode<T: Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        reason: format!("cannot encode: {e}"),
    })
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        reason: e.to_string(),
    })
}

pub(super) fn parse_secs(what: &str, s: &str) -> Result<SystemTime, StoreError> {
    s.parse::<u64>()
        .map(|n| UNIX_EPOCH + Duration::from_secs(n))
        .map_err(|e| StoreError::Corrupt {
            key: what.to_owned(),
            reason: format!("expiry {s:?}: {e}"),
        })
}

/// Same rule as the embedded store: live during the whole second before its expiry.
pub(super) fn is_expired(expires_at: SystemTime, now: SystemTime) -> bool {
    unix_secs(expires_at) <= unix_secs(now)
}

/// A sealed IdP token blob with its expiry.
#[derive(Serialize, Deserialize)]
pub(super) struct IdpTokensValue {
    pub(super) sealed_hex: String,
    #[serde(with = "unix_secs_serde")]
    pub(super) expires_at: SystemTime,
}

pub(super) fn corrupt_status(what: &str, status: i64) -> StoreError {
    StoreError::Corrupt {
        key: what.to_owned(),
        reason: format!("unexpected script status {status}"),
    }
}

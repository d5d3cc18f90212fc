//! Table definitions, stored value shapes and (de)serialisation for the embedded backend.
//!
//! Every value is JSON (`serde_json`) of a crate record type, wrapped where the backend needs
//! extra state (a code's `redeemed` flag, a refresh token's `spent` flag). Every expiring
//! value has a top-level `expires_at` (Unix seconds) so the sweep can read any of them with
//! one tiny decoder ([`Expiry`]).

pub(crate) use crate::types::from_hex;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::TableDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CodeRecord, RefreshRecord, StoreError, unix_secs};

/// A table keyed by a string, holding JSON bytes.
pub(crate) type StrTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Authorization codes by hash → [`StoredCode`].
pub(crate) const CODES: StrTable = TableDefinition::new("codes");
/// Refresh tokens by hash → [`StoredRefresh`].
pub(crate) const REFRESH: StrTable = TableDefinition::new("refresh_tokens");
/// Revoked families by id → [`FamilyRevocation`].
pub(crate) const FAMILIES: StrTable = TableDefinition::new("revoked_families");
/// Consent decisions by `subject\0client_id` → [`crate::ConsentRecord`].
pub(crate) const CONSENTS: StrTable = TableDefinition::new("consents");
/// DCR clients by client_id → [`crate::RegisteredClient`].
pub(crate) const CLIENTS: StrTable = TableDefinition::new("clients");
/// Signing keys by insertion sequence → [`crate::SigningKeyRecord`] (oldest first).
pub(crate) const SIGNING_KEYS: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("signing_keys");
/// Server secrets by name → raw bytes.
pub(crate) const SECRETS: StrTable = TableDefinition::new("secrets");
/// Client-assertion replay records by `client_id\0jti` → [`StoredJti`].
pub(crate) const JTIS: StrTable = TableDefinition::new("jtis");
/// Sealed IdP tokens by id → [`IdpTokensRecord`].
// The table keeps its first name: databases written before the IdP naming stay readable.
pub(crate) const IDP_TOKENS: StrTable = TableDefinition::new("upstream_tokens");
/// The client inventory by client_id → [`crate::ClientRecord`].
// The table keeps its first name: inventories written before the full record stay readable
// (the old rows decode as records with defaults).
pub(crate) const INVENTORY: StrTable = TableDefinition::new("seen_clients");
/// Grants by `client_id\0family_id` → [`crate::GrantEntry`].
pub(crate) const GRANTS: StrTable = TableDefinition::new("client_grants");

/// The same grants by `client_id\0subject\0family_id` → [`crate::GrantEntry`]: one user's
/// grants to a client without reading the others' ([`crate::Store::list_subject_grants`]).
pub(crate) const SUBJECT_GRANTS: StrTable = TableDefinition::new("client_subject_grants");

/// The tables whose rows carry `expires_at` and are swept.
pub(crate) const EXPIRING: [StrTable; 9] = [
    CODES,
    REFRESH,
    FAMILIES,
    CONSENTS,
    JTIS,
    IDP_TOKENS,
    GRANTS,
    CLIENTS,
    SUBJECT_GRANTS,
];

/// A code plus whether it has been redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredCode {
    #[serde(flatten)]
    pub record: CodeRecord,
    #[serde(default)]
    pub redeemed: bool,
}

/// A refresh token plus whether it has been rotated (spent records are kept until expiry to
/// detect reuse).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredRefresh {
    #[serde(flatten)]
    pub record: RefreshRecord,
    #[serde(default)]
    pub spent: bool,
}

/// A revoked family, remembered until `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FamilyRevocation {
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

/// A recorded client-assertion `jti`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredJti {
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

/// A sealed IdP token blob (hex, so the JSON stays compact).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdpTokensRecord {
    pub sealed_hex: String,
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

/// Only the expiry of any expiring value (serde ignores the other fields).
#[derive(Debug, Deserialize)]
pub(crate) struct Expiry {
    /// `None`: a row of an expiring table that does not expire (a registration in use).
    #[serde(default, with = "crate::unix_secs_opt")]
    pub expires_at: Option<SystemTime>,
}

impl Expiry {
    /// Whether the row has expired at `now`.
    pub fn passed(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|e| is_expired(e, now))
    }
}

/// Whether `expires_at` has passed at `now`. Stored times have whole-second precision, so
/// `now` is truncated the same way: a record is live during the whole second before its expiry.
pub(crate) fn is_expired(expires_at: SystemTime, now: SystemTime) -> bool {
    secs(expires_at) <= secs(now)
}

/// Whole seconds since the Unix epoch (0 before 1970).
pub(crate) fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The later of two times.
pub(crate) fn later(a: SystemTime, b: SystemTime) -> SystemTime {
    if a >= b { a } else { b }
}

/// `UNIX_EPOCH + secs`.
#[cfg(test)]
pub(crate) fn from_secs(s: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_secs(s)
}

/// Serialise a value to JSON bytes.
pub(crate) fn encode<T: Serialize>(
    what: &str,
    key: &str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        key: format!("{what} {key}"),
        reason: format!("cannot encode: {e}"),
    })
}

/// Decode JSON bytes read from `what` under `key`.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{what} {}", printable_key(key)),
        reason: e.to_string(),
    })
}

/// A key joined from two parts with a NUL separator (neither part may contain NUL in practice:
/// client ids are URLs, subjects and jtis are printable).
/// `client_id\0subject\0family_id`: the key of [`SUBJECT_GRANTS`]; with an empty family, the
/// prefix of one user's rows.
pub(crate) fn subject_grant_key(client_id: &str, subject: &str, family_id: &str) -> String {
    pair_key(&pair_key(client_id, subject), family_id)
}

pub(crate) fn pair_key(a: &str, b: &str) -> String {
    let mut k = String::with_capacity(a.len() + b.len() + 1);
    k.push_str(a);
    k.push('\0');
    k.push_str(b);
    k
}

/// A key for error messages: NUL shown as `|`, and long keys (token hashes) shortened.
pub(crate) fn printable_key(key: &str) -> String {
    let shown: String = key
        .chars()
        .take(80)
        .map(|c| if c == '\0' { '|' } else { c })
        .collect();
    if key.chars().count() > 80 {
        format!("{shown}…")
    } else {
        shown
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// Map any redb error to [`StoreError::Unavailable`], naming the operation.
pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let cases: &[&[u8]] = &[b"", b"\x00", b"\xff\x10abc"];
        for bytes in cases {
            assert_eq!(from_hex(&to_hex(bytes)).as_deref(), Some(*bytes));
        }
        assert_eq!(from_hex("abc"), None, "odd length");
        assert_eq!(from_hex("zz"), None, "not hex");
    }

    #[test]
    fn expiry_is_whole_second_and_inclusive() {
        let t = from_secs(1000);
        let cases = [(999, false), (1000, true), (1001, true)];
        for (now, expired) in cases {
            assert_eq!(is_expired(t, from_secs(now)), expired, "now={now}");
        }
        assert!(!is_expired(
            t,
            from_secs(999) + std::time::Duration::from_millis(999)
        ));
    }

    #[test]
    fn printable_key_hides_nul_and_shortens() {
        assert_eq!(printable_key("alice\0https://c"), "alice|https://c");
        assert!(printable_key(&"a".repeat(200)).ends_with('…'));
    }
}

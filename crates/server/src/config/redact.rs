//! How secrets serialise: [`Config`](super::Config) is serialised only to be shown (`cimdgate
//! check-config`), and every secret in it as [`REDACTED`].

use crate::secret::SecretString;

/// What every secret serialises as ([`Config`](super::Config) is serialised only to be shown: `cimdgate
/// check-config`).
pub const REDACTED: &str = "<redacted>";

pub(super) fn redact<S: serde::Serializer>(_: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(REDACTED)
}

pub(super) fn redact_opt<S: serde::Serializer>(
    v: &Option<SecretString>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => ser.serialize_str(REDACTED),
        None => ser.serialize_none(),
    }
}

pub(super) fn redact_store_url<S: serde::Serializer>(url: &str, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&cimdgate_store::redis::redacted_url(url))
}

//! Secrets in memory: [`SecretString`] (the `secrecy` crate) redacts itself in `Debug`, so a
//! struct holding a token, code, verifier or password hash can derive `Debug` safely; reading
//! the value takes an explicit [`ExposeSecret::expose_secret`].
//!
//! `secrecy` deliberately does not serialise a `SecretString`. The few secrets this server
//! must write out — always into a sealed value (IdP tokens at rest, the IdP sign-in cookie) —
//! name [`serialize`] or [`serialize_opt`] on the field, which keeps every such place visible.

pub use secrecy::{ExposeSecret, SecretString};

/// `#[serde(serialize_with = "crate::secret::serialize")]` for a `SecretString` that goes
/// into a sealed value.
pub fn serialize<S: serde::Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose_secret())
}

/// [`serialize`] for an `Option<SecretString>`.
pub fn serialize_opt<S: serde::Serializer>(
    s: &Option<SecretString>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.expose_secret()),
        None => ser.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Sealed {
        #[serde(serialize_with = "serialize")]
        token: SecretString,
        #[serde(serialize_with = "serialize_opt", default)]
        refresh: Option<SecretString>,
    }

    #[test]
    fn secrets_redact_in_debug_and_round_trip_only_where_named() {
        let v = Sealed {
            token: "at-123".into(),
            refresh: Some("rt-456".into()),
        };
        let debug = format!("{v:?}");
        assert!(
            !debug.contains("at-123") && !debug.contains("rt-456"),
            "{debug}"
        );
        let json = serde_json::to_string(&v).unwrap();
        let back: Sealed = serde_json::from_str(&json).unwrap();
        assert_eq!(back.token.expose_secret(), "at-123");
        assert_eq!(back.refresh.unwrap().expose_secret(), "rt-456");
    }
}

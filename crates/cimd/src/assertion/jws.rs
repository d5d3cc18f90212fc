//! Parsing the compact JWS (RFC 7515 §7.1) and checking its protected header before any key is
//! looked up: the `alg` allow-list (RFC 7523 §3, [`crate::jose`]), `none` and HMAC refused, `crit`
//! refused (RFC 7515 §4.1.11: we implement no extensions).
//!
//! The header is parsed here rather than by `jsonwebtoken::decode_header`, whose `Algorithm` enum
//! cannot represent `none` and would hide the reason behind a generic deserialisation error.
//! Header-supplied keys (`jwk`, `jku`, `x5u`, `x5c`) are ignored: keys only ever come from the
//! client's metadata document.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::error::AssertionError;

/// The algorithms a client assertion may use: the JOSE allow-list ([`crate::jose`]).
pub use crate::jose::ALLOWED_ALGORITHMS;

/// A compact JWS split into its parts, with the header checked.
#[derive(Debug)]
pub(crate) struct ParsedJws<'a> {
    /// The header `alg`, already in the allow-list.
    pub alg: Algorithm,
    /// The header `kid`, if any.
    pub kid: Option<String>,
    /// `base64url(header) "." base64url(payload)`: the signing input.
    pub signing_input: &'a str,
    /// The base64url payload.
    pub payload_b64: &'a str,
    /// The base64url signature.
    pub signature_b64: &'a str,
}

pub(crate) use crate::jose::alg_name;

/// Map a header `alg` string to an allowed algorithm, with a specific error for `none` and HMAC.
pub(crate) fn allowed_alg(alg: &str) -> Result<Algorithm, AssertionError> {
    if alg.eq_ignore_ascii_case("none") {
        return Err(AssertionError::AlgNone);
    }
    if alg.starts_with("HS") {
        return Err(AssertionError::AlgHmac {
            alg: alg.to_owned(),
        });
    }
    ALLOWED_ALGORITHMS
        .into_iter()
        .find(|a| alg_name(*a) == alg)
        .ok_or_else(|| AssertionError::AlgUnsupported {
            alg: alg.to_owned(),
        })
}

/// Decode one base64url part into a JSON object.
pub(crate) fn decode_json_object(part: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("not base64url without padding ({e})"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object".to_owned()),
        Err(e) => Err(format!("not JSON ({e})")),
    }
}

/// Split a compact JWS and check its header (alg allow-list, `crit`, `kid` type).
pub(crate) fn parse(assertion: &str) -> Result<ParsedJws<'_>, AssertionError> {
    let malformed = |reason: &str| AssertionError::Malformed {
        reason: reason.to_owned(),
    };
    let mut parts = assertion.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "expected exactly three dot-separated parts (an encrypted JWT has five; it is not accepted)",
        ));
    };
    if header_b64.is_empty() {
        return Err(malformed("empty header part"));
    }
    // The header is checked first, so an unsigned (`alg: none`) or HMAC assertion gets that
    // precise error rather than a shape error.
    let header = decode_json_object(header_b64)
        .map_err(|reason| AssertionError::InvalidHeader { reason })?;

    let alg = match header.get("alg") {
        Some(Value::String(alg)) => allowed_alg(alg)?,
        Some(_) => {
            return Err(AssertionError::InvalidHeader {
                reason: "alg is not a string".to_owned(),
            });
        }
        None => {
            return Err(AssertionError::InvalidHeader {
                reason: "alg is missing".to_owned(),
            });
        }
    };
    if let Some(crit) = header.get("crit") {
        let names = match crit {
            Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        return Err(AssertionError::CritUnsupported { names });
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => {
            return Err(AssertionError::InvalidHeader {
                reason: "kid is not a string".to_owned(),
            });
        }
    };
    if payload_b64.is_empty() {
        return Err(malformed("empty payload part"));
    }
    if signature_b64.is_empty() {
        return Err(malformed("empty signature part"));
    }
    let signing_input = &assertion[..header_b64.len() + 1 + payload_b64.len()];
    Ok(ParsedJws {
        alg,
        kid,
        signing_input,
        payload_b64,
        signature_b64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(r#"{"iss":"x"}"#))
    }

    #[test]
    fn header_rules_table() {
        type Check = fn(&Result<ParsedJws<'_>, AssertionError>) -> bool;
        let cases: &[(&str, String, Check)] = &[
            ("alg none", token(r#"{"alg":"none"}"#), |r| {
                matches!(r, Err(AssertionError::AlgNone))
            }),
            (
                "alg none, no signature",
                format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}")),
                |r| matches!(r, Err(AssertionError::AlgNone)),
            ),
            ("alg NONE", token(r#"{"alg":"NONE"}"#), |r| {
                matches!(r, Err(AssertionError::AlgNone))
            }),
            (
                "HS256",
                token(r#"{"alg":"HS256"}"#),
                |r| matches!(r, Err(AssertionError::AlgHmac { alg }) if alg == "HS256"),
            ),
            ("HS512", token(r#"{"alg":"HS512"}"#), |r| {
                matches!(r, Err(AssertionError::AlgHmac { .. }))
            }),
            (
                "ES512",
                token(r#"{"alg":"ES512"}"#),
                |r| matches!(r, Err(AssertionError::AlgUnsupported { alg }) if alg == "ES512"),
            ),
            ("lowercase rs256", token(r#"{"alg":"rs256"}"#), |r| {
                matches!(r, Err(AssertionError::AlgUnsupported { .. }))
            }),
            ("alg missing", token(r#"{"kid":"a"}"#), |r| {
                matches!(r, Err(AssertionError::InvalidHeader { .. }))
            }),
            ("alg number", token(r#"{"alg":256}"#), |r| {
                matches!(r, Err(AssertionError::InvalidHeader { .. }))
            }),
            (
                "crit",
                token(r#"{"alg":"ES256","crit":["exp"]}"#),
                |r| matches!(r, Err(AssertionError::CritUnsupported { names }) if names == &["exp"]),
            ),
            ("crit empty", token(r#"{"alg":"ES256","crit":[]}"#), |r| {
                matches!(r, Err(AssertionError::CritUnsupported { .. }))
            }),
            ("kid number", token(r#"{"alg":"ES256","kid":1}"#), |r| {
                matches!(r, Err(AssertionError::InvalidHeader { .. }))
            }),
            ("header array", token(r#"["ES256"]"#), |r| {
                matches!(r, Err(AssertionError::InvalidHeader { .. }))
            }),
            (
                "two parts",
                format!("{}.{}", b64(r#"{"alg":"ES256"}"#), b64("{}")),
                |r| matches!(r, Err(AssertionError::Malformed { .. })),
            ),
            ("five parts (JWE)", "a.b.c.d.e".to_owned(), |r| {
                matches!(r, Err(AssertionError::Malformed { .. }))
            }),
            (
                "empty signature",
                format!("{}.{}.", b64(r#"{"alg":"ES256"}"#), b64("{}")),
                |r| matches!(r, Err(AssertionError::Malformed { .. })),
            ),
            (
                "padded base64",
                format!("{}=.{}.c2ln", b64(r#"{"alg":"ES256"}"#), b64("{}")),
                |r| matches!(r, Err(AssertionError::InvalidHeader { .. })),
            ),
            (
                "ok ES256 with kid",
                token(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#),
                |r| matches!(r, Ok(p) if p.alg == Algorithm::ES256 && p.kid.as_deref() == Some("k1")),
            ),
            (
                "ok EdDSA",
                token(r#"{"alg":"EdDSA"}"#),
                |r| matches!(r, Ok(p) if p.alg == Algorithm::EdDSA),
            ),
            (
                "ok PS512",
                token(r#"{"alg":"PS512"}"#),
                |r| matches!(r, Ok(p) if p.alg == Algorithm::PS512),
            ),
        ];
        for (name, tok, check) in cases {
            let r = parse(tok);
            assert!(check(&r), "{name}: unexpected {r:?}");
        }
    }

    #[test]
    fn every_allowed_alg_round_trips_by_name() {
        for alg in ALLOWED_ALGORITHMS {
            assert_eq!(allowed_alg(alg_name(alg)).ok(), Some(alg));
        }
    }

    #[test]
    fn signing_input_is_header_dot_payload() {
        let tok = token(r#"{"alg":"ES256"}"#);
        let p = parse(&tok).expect("valid");
        assert_eq!(format!("{}.{}", p.signing_input, p.signature_b64), tok);
        assert!(p.signing_input.ends_with(p.payload_b64));
    }
}

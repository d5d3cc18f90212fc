//! Claim checks for a client assertion (RFC 7523 §3, RFC 7519 §4.1).
//!
//! Done here rather than with `jsonwebtoken::Validation`, whose single `leeway` applies to both
//! `exp` and `nbf` and whose errors do not name the claim. Every time comparison is in whole
//! seconds (JWT NumericDate; fractions are floored) with the configured skew:
//!
//! | claim | rule |
//! |---|---|
//! | `iss`, `sub` | both equal the client_id exactly (RFC 7523 §3 items 1–2) |
//! | `aud` | string or array; one value equals a configured audience exactly (item 3) |
//! | `exp` | required; `exp ≥ now − skew` (item 4) |
//! | `iat` | optional; `iat ≤ now + skew`, `iat ≤ exp`, `exp − iat ≤ max_lifetime` |
//! | (no `iat`) | `exp ≤ now + max_lifetime + skew` (the lifetime cap cannot be dodged by omitting `iat`) |
//! | `nbf` | optional; `nbf ≤ now + skew` (item 5) |
//! | `jti` | required non-empty string of at most [`MAX_JTI_LENGTH`] bytes (item 7) |

use std::time::Duration;

use serde_json::{Map, Value};

use super::error::AssertionError;

/// Longest accepted `jti`, in bytes. A UUID is 36; this only bounds what the replay store keeps.
pub const MAX_JTI_LENGTH: usize = 256;

/// What the claims are checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimRules<'a> {
    pub client_id: &'a str,
    pub audiences: &'a [String],
    pub skew: Duration,
    pub max_lifetime: Duration,
    /// Seconds since the epoch.
    pub now: i64,
}

/// The claims the caller still needs after the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedClaims {
    pub jti: String,
    /// Seconds since the epoch.
    pub exp: i64,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn string_claim(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<String, AssertionError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Err(AssertionError::MissingClaim { claim }),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(AssertionError::InvalidClaim {
            claim,
            reason: "not a string".to_owned(),
        }),
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds; fractions are floored.
fn date_claim(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<i64>, AssertionError> {
    let invalid = |reason: &str| AssertionError::InvalidClaim {
        claim,
        reason: reason.to_owned(),
    };
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                match n.as_f64() {
                    // `as` saturates for out-of-range floats; the range checks below then reject.
                    Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
                    _ => Err(invalid("not a finite number of seconds")),
                }
            }
        }
        Some(_) => Err(invalid(
            "not a number (NumericDate, seconds since the epoch)",
        )),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, AssertionError> {
    let invalid = |reason: &str| AssertionError::InvalidClaim {
        claim: "aud",
        reason: reason.to_owned(),
    };
    match claims.get("aud") {
        None | Some(Value::Null) => Err(AssertionError::MissingClaim { claim: "aud" }),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(invalid("empty array"));
            }
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid("array item is not a string"))
                })
                .collect()
        }
        Some(_) => Err(invalid("neither a string nor an array of strings")),
    }
}

/// Check every claim rule; the first failure is returned.
pub(crate) fn check(
    claims: &Map<String, Value>,
    rules: &ClaimRules<'_>,
) -> Result<CheckedClaims, AssertionError> {
    let iss = string_claim(claims, "iss")?;
    if iss != rules.client_id {
        return Err(AssertionError::IssMismatch {
            found: iss,
            expected: rules.client_id.to_owned(),
        });
    }
    let sub = string_claim(claims, "sub")?;
    if sub != rules.client_id {
        return Err(AssertionError::SubMismatch {
            found: sub,
            expected: rules.client_id.to_owned(),
        });
    }
    let aud = audiences(claims)?;
    if !aud
        .iter()
        .any(|a| rules.audiences.iter().any(|ours| ours == a))
    {
        return Err(AssertionError::AudMismatch {
            found: aud,
            expected: rules.audiences.to_vec(),
        });
    }

    let now = rules.now;
    let skew = secs(rules.skew);
    let max = secs(rules.max_lifetime);
    let skew_secs = rules.skew.as_secs();
    let exp = date_claim(claims, "exp")?.ok_or(AssertionError::MissingClaim { claim: "exp" })?;
    if exp.saturating_add(skew) < now {
        return Err(AssertionError::Expired {
            exp,
            now,
            skew_secs,
        });
    }
    match date_claim(claims, "iat")? {
        Some(iat) => {
            if iat > now.saturating_add(skew) {
                return Err(AssertionError::IatInFuture {
                    iat,
                    now,
                    skew_secs,
                });
            }
            if exp < iat {
                return Err(AssertionError::ExpBeforeIat { exp, iat });
            }
            let lifetime = exp.saturating_sub(iat);
            if lifetime > max {
                return Err(AssertionError::LifetimeTooLong {
                    lifetime_secs: lifetime,
                    max_secs: rules.max_lifetime.as_secs(),
                });
            }
        }
        None => {
            if exp > now.saturating_add(max).saturating_add(skew) {
                return Err(AssertionError::ExpTooFarInFuture {
                    exp,
                    now,
                    max_secs: rules.max_lifetime.as_secs(),
                    skew_secs,
                });
            }
        }
    }
    if let Some(nbf) = date_claim(claims, "nbf")?
        && nbf > now.saturating_add(skew)
    {
        return Err(AssertionError::NotYetValid {
            nbf,
            now,
            skew_secs,
        });
    }

    let jti = string_claim(claims, "jti")?;
    if jti.is_empty() {
        return Err(AssertionError::InvalidClaim {
            claim: "jti",
            reason: "empty string".to_owned(),
        });
    }
    if jti.len() > MAX_JTI_LENGTH {
        return Err(AssertionError::InvalidClaim {
            claim: "jti",
            reason: format!("{} bytes; at most {MAX_JTI_LENGTH} are accepted", jti.len()),
        });
    }
    Ok(CheckedClaims { jti, exp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CID: &str = "https://app.example.com/client.json";
    const NOW: i64 = 1_800_000_000;

    fn audiences() -> Vec<String> {
        vec![
            "https://as.example.com/token".to_owned(),
            "https://as.example.com".to_owned(),
        ]
    }

    fn base() -> Value {
        json!({"iss": CID, "sub": CID, "aud": "https://as.example.com/token",
               "exp": NOW + 60, "iat": NOW, "jti": "j-1"})
    }

    fn run(patch: Value) -> Result<CheckedClaims, AssertionError> {
        let mut claims = base();
        if let (Some(c), Some(p)) = (claims.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                c.insert(k.clone(), v.clone());
            }
        }
        let aud = audiences();
        let rules = ClaimRules {
            client_id: CID,
            audiences: &aud,
            skew: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(300),
            now: NOW,
        };
        check(claims.as_object().expect("object"), &rules)
    }

    /// Every claim rule, with the boundary on both sides where there is one.
    #[test]
    fn claim_rules_table() {
        type Check = fn(&Result<CheckedClaims, AssertionError>) -> bool;
        let ok: Check = |r| r.is_ok();
        let cases: Vec<(&str, Value, Check)> = vec![
            (
                "baseline",
                json!({}),
                |r| matches!(r, Ok(c) if c.jti == "j-1" && c.exp == NOW + 60),
            ),
            ("iss missing", json!({"iss": null}), |r| {
                matches!(r, Err(AssertionError::MissingClaim { claim: "iss" }))
            }),
            ("iss other", json!({"iss": "https://evil.example/c"}), |r| {
                matches!(r, Err(AssertionError::IssMismatch { .. }))
            }),
            (
                "iss trailing slash",
                json!({"iss": format!("{CID}/")}),
                |r| matches!(r, Err(AssertionError::IssMismatch { .. })),
            ),
            ("iss number", json!({"iss": 1}), |r| {
                matches!(r, Err(AssertionError::InvalidClaim { claim: "iss", .. }))
            }),
            ("sub missing", json!({"sub": null}), |r| {
                matches!(r, Err(AssertionError::MissingClaim { claim: "sub" }))
            }),
            ("sub other", json!({"sub": "someone"}), |r| {
                matches!(r, Err(AssertionError::SubMismatch { .. }))
            }),
            ("aud missing", json!({"aud": null}), |r| {
                matches!(r, Err(AssertionError::MissingClaim { claim: "aud" }))
            }),
            (
                "aud wrong",
                json!({"aud": "https://other.example/token"}),
                |r| matches!(r, Err(AssertionError::AudMismatch { .. })),
            ),
            ("aud issuer", json!({"aud": "https://as.example.com"}), ok),
            (
                "aud issuer trailing slash",
                json!({"aud": "https://as.example.com/"}),
                |r| matches!(r, Err(AssertionError::AudMismatch { .. })),
            ),
            (
                "aud array containing ours",
                json!({"aud": ["x", "https://as.example.com/token"]}),
                ok,
            ),
            ("aud array without ours", json!({"aud": ["x", "y"]}), |r| {
                matches!(r, Err(AssertionError::AudMismatch { .. }))
            }),
            ("aud empty array", json!({"aud": []}), |r| {
                matches!(r, Err(AssertionError::InvalidClaim { claim: "aud", .. }))
            }),
            ("aud number", json!({"aud": 5}), |r| {
                matches!(r, Err(AssertionError::InvalidClaim { claim: "aud", .. }))
            }),
            ("exp missing", json!({"exp": null}), |r| {
                matches!(r, Err(AssertionError::MissingClaim { claim: "exp" }))
            }),
            ("exp string", json!({"exp": "soon"}), |r| {
                matches!(r, Err(AssertionError::InvalidClaim { claim: "exp", .. }))
            }),
            (
                "exp past beyond skew",
                json!({"exp": NOW - 31, "iat": NOW - 60}),
                |r| matches!(r, Err(AssertionError::Expired { .. })),
            ),
            (
                "exp past within skew",
                json!({"exp": NOW - 30, "iat": NOW - 60}),
                ok,
            ),
            (
                "exp fractional",
                json!({"exp": (NOW + 60) as f64 + 0.9}),
                |r| matches!(r, Ok(c) if c.exp == NOW + 60),
            ),
            ("exp huge", json!({"exp": u64::MAX, "iat": null}), |r| {
                matches!(r, Err(AssertionError::ExpTooFarInFuture { .. }))
            }),
            ("lifetime 301", json!({"iat": NOW, "exp": NOW + 301}), |r| {
                matches!(
                    r,
                    Err(AssertionError::LifetimeTooLong {
                        lifetime_secs: 301,
                        ..
                    })
                )
            }),
            ("lifetime 300", json!({"iat": NOW, "exp": NOW + 300}), ok),
            ("exp before iat", json!({"iat": NOW, "exp": NOW - 1}), |r| {
                matches!(r, Err(AssertionError::ExpBeforeIat { .. }))
            }),
            (
                "iat future beyond skew",
                json!({"iat": NOW + 31, "exp": NOW + 90}),
                |r| matches!(r, Err(AssertionError::IatInFuture { .. })),
            ),
            (
                "iat future within skew",
                json!({"iat": NOW + 30, "exp": NOW + 90}),
                ok,
            ),
            (
                "no iat exp too far",
                json!({"iat": null, "exp": NOW + 331}),
                |r| matches!(r, Err(AssertionError::ExpTooFarInFuture { .. })),
            ),
            (
                "no iat exp at limit",
                json!({"iat": null, "exp": NOW + 330}),
                ok,
            ),
            ("nbf future beyond skew", json!({"nbf": NOW + 31}), |r| {
                matches!(r, Err(AssertionError::NotYetValid { .. }))
            }),
            ("nbf future within skew", json!({"nbf": NOW + 30}), ok),
            ("nbf string", json!({"nbf": "x"}), |r| {
                matches!(r, Err(AssertionError::InvalidClaim { claim: "nbf", .. }))
            }),
            ("jti missing", json!({"jti": null}), |r| {
                matches!(r, Err(AssertionError::MissingClaim { claim: "jti" }))
            }),
            ("jti empty", json!({"jti": ""}), |r| {
                matches!(r, Err(AssertionError::InvalidClaim { claim: "jti", .. }))
            }),
            ("jti number", json!({"jti": 7}), |r| {
                matches!(r, Err(AssertionError::InvalidClaim { claim: "jti", .. }))
            }),
            (
                "jti too long",
                json!({"jti": "j".repeat(MAX_JTI_LENGTH + 1)}),
                |r| matches!(r, Err(AssertionError::InvalidClaim { claim: "jti", .. })),
            ),
            (
                "jti at limit",
                json!({"jti": "j".repeat(MAX_JTI_LENGTH)}),
                ok,
            ),
        ];
        for (name, patch, check) in cases {
            let r = run(patch);
            assert!(check(&r), "{name}: unexpected {r:?}");
        }
    }

    #[test]
    fn error_messages_name_the_claim() {
        let cases = [
            (json!({"iss": "x"}), "iss"),
            (json!({"sub": "x"}), "sub"),
            (json!({"aud": "x"}), "aud"),
            (json!({"exp": null}), "exp"),
            (json!({"iat": NOW, "exp": NOW + 301}), "exp - iat"),
            (json!({"iat": NOW + 100, "exp": NOW + 110}), "iat"),
            (json!({"nbf": NOW + 100}), "nbf"),
            (json!({"jti": null}), "jti"),
        ];
        for (patch, needle) in cases {
            let err = run(patch).expect_err("must fail");
            assert!(
                err.to_string().contains(needle),
                "{err} should name {needle}"
            );
        }
    }
}

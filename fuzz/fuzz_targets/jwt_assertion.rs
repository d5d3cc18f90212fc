//! The client-assertion header and claims parser (RFC 7523 §3, RFC 7515 §7.1; crates/cimd/src/
//! assertion/jws.rs and claims.rs) through `cimd::fuzzing::assertion_header_and_claims`: the
//! verifier's pipeline minus the key lookup and the signature.
//!
//! Input: a mode byte, then either (even mode) the assertion itself, or (odd mode) three
//! newline-separated parts — header JSON, claims JSON, signature bytes — that the target
//! base64url-encodes, so the fuzzer explores the JSON rather than the base64 alphabet.
//! Invariants: no panic; an accepted assertion has an allowed `alg`, `iss` = `sub` = the
//! client_id, an audience of ours, a `jti` of 1..=256 bytes, an `exp` not long past and never
//! further ahead than the lifetime cap allows.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cimd::assertion::{ALLOWED_ALGORITHMS, CLOCK_SKEW, MAX_ASSERTION_LIFETIME, MAX_JTI_LENGTH};
use cimd::fuzzing::assertion_header_and_claims;
use libfuzzer_sys::fuzz_target;

const CLIENT_ID: &str = "https://app.example.com/client.json";
/// Tue, 14 Nov 2023 22:13:20 GMT (the seeds' `iat`).
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let assertion = if mode & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(s) => s.to_owned(),
            Err(_) => return,
        }
    } else {
        let mut parts = rest.splitn(3, |b| *b == b'\n');
        let header = parts.next().unwrap_or_default();
        let claims = parts.next().unwrap_or_default();
        let signature = parts.next().unwrap_or_default();
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(signature)
        )
    };
    let audiences = vec![
        "https://as.example.com/token".to_owned(),
        "https://as.example.com".to_owned(),
    ];
    // The clock moves a little with the mode byte, around the seeds' times.
    let now = NOW + i64::from(mode >> 1) * 7 - 400;
    let Ok(checked) = assertion_header_and_claims(&assertion, CLIENT_ID, &audiences, now) else {
        return;
    };
    assert!(ALLOWED_ALGORITHMS.contains(&checked.alg));
    assert!(!checked.jti.is_empty() && checked.jti.len() <= MAX_JTI_LENGTH);
    let skew = CLOCK_SKEW.as_secs() as i64;
    let max = MAX_ASSERTION_LIFETIME.as_secs() as i64;
    assert!(checked.exp >= now - skew, "expired: {checked:?} at {now}");
    assert!(
        checked.exp <= now + skew + max,
        "too far ahead: {checked:?} at {now}"
    );

    // The accepted claims say what the rules require.
    let payload = assertion.split('.').nth(1).expect("three parts");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON");
    assert_eq!(claims["iss"], CLIENT_ID);
    assert_eq!(claims["sub"], CLIENT_ID);
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => audiences.contains(a),
        serde_json::Value::Array(items) => items
            .iter()
            .any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|o| o == a))),
        _ => false,
    };
    assert!(aud_ok, "{claims}");
});

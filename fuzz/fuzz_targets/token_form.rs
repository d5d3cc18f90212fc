//! The token endpoint's request parsing (crates/server/src/back/form.rs, token.rs,
//! client_auth.rs; RFC 6749 §2.3, §3.2, §4.1.3, §6, RFC 7636 §4.6, RFC 7523 §2.2, RFC 8707):
//! `parse_form`, then the checks `/token` runs before any store or network access —
//! `check_grant_type`, `presented_credentials` (HTTP Basic, `client_secret`,
//! `client_assertion` with `peek_assertion_client`), `check_code_params`, `check_redirect_uri`,
//! `resource::check_bound`, `scopes::narrow` and the PKCE verification.
//!
//! Input: a `Content-Type` line, an `Authorization` line (empty for none), then the body.
//! Invariants: an accepted form holds each name once with a non-empty value, exactly as a plain
//! reading of the body; every client_id source agrees; a verifier is 43–128 unreserved
//! characters; a narrowed scope stays within the grant's.
#![no_main]

use cimdgate_server::back::client_auth::presented_credentials;
use cimdgate_server::back::form::parse_form;
use cimdgate_server::back::grant_types::OptionalGrants;
use cimdgate_server::back::token::{check_code_params, check_grant_type, check_redirect_uri};
use cimdgate_server::grant::pkce::{CodeChallenge, s256};
use cimdgate_server::grant::{resource, scopes};
use cimdgate_store::Scopes;
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

const BOUND_REDIRECT: &str = "https://app.example.com/callback";
const BOUND_RESOURCE: &str = "https://as.example.com/mcp";
/// The verifier the seeds use (RFC 7636 appendix B).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |b| *b == b'\n');
    let content_type = lines.next().unwrap_or_default();
    let authorization = lines.next().unwrap_or_default();
    let body = lines.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if !authorization.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(authorization)
    {
        headers.insert(header::AUTHORIZATION, v);
    }

    let Ok(params) = parse_form(&headers, body) else {
        return;
    };
    // The accepted form is the body read plainly: each non-empty name once.
    let mut seen = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if v.is_empty() {
            continue;
        }
        assert!(
            seen.insert(k.clone().into_owned(), v.clone().into_owned())
                .is_none(),
            "{k} twice"
        );
        assert_eq!(params.get(&k), Some(v.as_ref()));
    }
    // Nothing that was not sent with a value: a form without `grant_type` has none.
    if !seen.contains_key("grant_type") {
        assert_eq!(params.get("grant_type"), None);
    }

    // Every grant type on offer, so the optional ones are parsed too.
    let all = OptionalGrants {
        jwt_bearer: true,
        client_credentials: true,
    };
    let _ = check_grant_type(&params, all);
    if let Ok(creds) = presented_credentials(&headers, &params) {
        if let (Some(id), Some(sent)) = (&creds.client_id, params.get("client_id")) {
            assert_eq!(id, sent);
        }
        if creds.assertion.is_some() {
            assert_eq!(
                params.get("client_assertion_type"),
                Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            );
            assert!(creds.secret.is_none());
        }
    }
    if let Ok((code, verifier)) = check_code_params(&params) {
        assert!(!code.is_empty());
        assert!((43..=128).contains(&verifier.len()));
        let challenge = CodeChallenge::from_stored(s256(VERIFIER));
        assert_eq!(challenge.verify(verifier).is_ok(), verifier == VERIFIER);
    }
    let sent = params.get("redirect_uri");
    assert_eq!(
        check_redirect_uri(BOUND_REDIRECT, sent).is_ok(),
        sent.is_none_or(|s| s == BOUND_REDIRECT)
    );
    let sent = params.get("resource");
    assert_eq!(
        resource::check_bound(BOUND_RESOURCE, sent).is_ok(),
        sent.is_none_or(|s| s == BOUND_RESOURCE)
    );
    let granted = Scopes::parse("mcp:read mcp:write");
    if let Ok(narrowed) = scopes::narrow(&granted, params.get("scope")) {
        assert!(
            narrowed.first_missing_from(&granted).is_none(),
            "{narrowed}"
        );
    }
});

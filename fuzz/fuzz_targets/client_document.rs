//! `cimd::document::validate_document` (draft §4, §4.1, RFC 7591 §2 and the product rules of
//! crates/cimd/src/document.rs) on any bytes, in both profiles, with and without the URL the
//! document was fetched from. Invariants: a rejected document's report holds an error; an
//! accepted one has no error among its warnings, a non-empty `redirect_uris`, a `client_id`
//! equal to the fetched URL, only supported grant/response types and auth methods, and a
//! digest; an accepted document stays accepted when fetched from its own `client_id`.
#![no_main]

use cimd::document::{
    ALLOWED_SIGNING_ALGS, AuthMethod, MAX_DOCUMENT_BYTES, Profile, SUPPORTED_GRANT_TYPES,
    SUPPORTED_RESPONSE_TYPES, Severity, validate_document,
};
use cimd::{ClientIdUrl, cache::document_digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let profile = if mode & 1 == 0 {
        Profile::Mcp
    } else {
        Profile::Lenient
    };
    let fetched = ClientIdUrl::parse("https://app.example.com/client.json").expect("valid");
    let expected = (mode & 2 != 0).then_some(&fetched);

    match validate_document(body, expected, profile) {
        Err(report) => {
            assert!(!report.is_valid(), "a rejection without an error");
            assert!(
                report
                    .errors()
                    .all(|p| !p.rule.is_empty() && !p.message.is_empty())
            );
            let _ = report.to_string();
        }
        Ok(valid) => {
            assert!(body.len() <= MAX_DOCUMENT_BYTES);
            assert!(
                valid
                    .warnings
                    .iter()
                    .all(|p| p.severity == Severity::Warning)
            );
            let doc = &valid.document;
            assert!(!doc.redirect_uris.is_empty());
            if let Some(expected) = expected {
                assert_eq!(&doc.client_id, expected);
            }
            if profile == Profile::Mcp {
                assert!(doc.client_name.is_some());
            }
            assert!(
                doc.grant_types
                    .iter()
                    .all(|g| SUPPORTED_GRANT_TYPES.contains(&g.as_str()))
            );
            assert!(doc.grant_types.iter().any(|g| g == "authorization_code"));
            assert!(
                doc.response_types
                    .iter()
                    .all(|r| SUPPORTED_RESPONSE_TYPES.contains(&r.as_str()))
            );
            if let Some(alg) = &doc.token_endpoint_auth_signing_alg {
                assert!(ALLOWED_SIGNING_ALGS.contains(&alg.as_str()), "{alg}");
            }
            if doc.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
                assert!(doc.jwks.is_some() || doc.jwks_uri.is_some());
            }
            assert!(!(doc.jwks.is_some() && doc.jwks_uri.is_some()));
            for uri in [
                &doc.client_uri,
                &doc.logo_uri,
                &doc.tos_uri,
                &doc.policy_uri,
                &doc.jwks_uri,
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(uri.scheme(), "https", "{uri}");
            }
            assert_eq!(document_digest(doc).len(), 64);
            // Fetched from its own client_id, the same bytes are accepted again.
            let again = validate_document(body, Some(&doc.client_id), profile);
            assert!(again.is_ok(), "{:?}", again.err());
        }
    }
});

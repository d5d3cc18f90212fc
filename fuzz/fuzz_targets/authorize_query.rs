//! The `/authorize` query through the request's own checks (crates/server/src/front/
//! authorize.rs; RFC 6749 §4.1.1, OAuth 2.1 §3.1, RFC 7636, RFC 8707): `Params::parse`, the
//! client_id URL rules, redirect URI selection against a registration, no repeated parameter,
//! `response_type`, PKCE, resource and scope selection, then the error redirect back to the
//! chosen URI — every step of `get_authorize` that needs no network or store.
//!
//! Invariants: `Params::parse` keeps the first value of each parameter and records each repeat
//! once; a chosen redirect URI is one of the registration's (the loopback port may differ); a
//! challenge is 43 base64url characters; granted scopes are offered by the resource and
//! declared by the client; the error redirect goes to the chosen URI and carries `state` and
//! `iss` unchanged.
#![no_main]

use cimd::ClientIdUrl;
use cimd::client_id::is_url_client_id;
use cimd::redirect::{RedirectUri, select_redirect_uri};
use cimdgate_server::error::{ErrorCode, OAuthError};
use cimdgate_server::front::authorize::{Params, check_response_type, check_single_values};
use cimdgate_server::front::pages::error_redirect;
use cimdgate_server::grant::pkce::CodeChallenge;
use cimdgate_server::grant::{resource, scopes};
use cimdgate_server::services::Resource;
use cimdgate_store::Scopes;
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://as.example.com";
const NAMES: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "scope",
];

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let p = Params::parse(Some(query));

    // The parser against a plain reading of the same query.
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let fields = [
        &p.response_type,
        &p.client_id,
        &p.redirect_uri,
        &p.state,
        &p.code_challenge,
        &p.code_challenge_method,
        &p.resource,
        &p.scope,
    ];
    for (name, field) in NAMES.iter().zip(fields) {
        let values: Vec<&String> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(field.as_ref(), values.first().copied(), "{name}");
        assert_eq!(p.repeated.contains(name), values.len() > 1, "{name}");
    }
    let mut repeated = p.repeated.clone();
    repeated.dedup();
    assert_eq!(repeated.len(), p.repeated.len());

    // Step 2 (without the fetch): a URL client_id must pass the draft's rules.
    if let Some(id) = p.client_id.as_deref()
        && is_url_client_id(id)
        && let Ok(parsed) = ClientIdUrl::parse(id)
    {
        assert_eq!(parsed.as_str(), id);
    }

    // Step 3: against a registration of one web and one loopback URI.
    let registered = [
        RedirectUri::parse("https://app.example.com/callback").expect("valid"),
        RedirectUri::parse("http://127.0.0.1/callback").expect("valid"),
    ];
    let chosen = match select_redirect_uri(&registered, None, p.redirect_uri.as_deref()) {
        Ok(uri) => {
            assert_eq!(Some(uri.as_str()), p.redirect_uri.as_deref());
            let url = url::Url::parse(uri.as_str()).expect("a redirect URI is a URL");
            assert!(
                (url.scheme() == "https" && url.host_str() == Some("app.example.com"))
                    || (url.scheme() == "http" && url.host_str() == Some("127.0.0.1")),
                "{uri:?}"
            );
            uri
        }
        Err(_) => registered[0].clone(),
    };

    // Steps 4–8.
    let resources = [
        Resource {
            id: "https://as.example.com/mcp".to_owned(),
            path: "/mcp".to_owned(),
            scopes: Scopes::parse("mcp:read mcp:write"),
            upstream: "builtin:demo".to_owned(),
            forwards_idp_token: false,
        },
        Resource {
            id: "https://as.example.com/tools/".to_owned(),
            path: "/tools".to_owned(),
            scopes: Scopes::parse("tools"),
            upstream: "http://127.0.0.1:9/".to_owned(),
            forwards_idp_token: false,
        },
    ];
    let declared = Scopes::parse("mcp:read tools");
    let checked = (|| {
        check_single_values(&p)?;
        check_response_type(&p)?;
        let challenge = CodeChallenge::from_request(
            p.code_challenge.as_deref(),
            p.code_challenge_method.as_deref(),
        )?;
        let resource = resource::select(&resources, p.resource.as_deref())?;
        let scope = scopes::grant(p.scope.as_deref(), &resource.scopes, Some(&declared))?;
        Ok::<_, OAuthError>((challenge, resource, scope))
    })();
    let error = match checked {
        Ok((challenge, resource, scope)) => {
            assert!(p.repeated.is_empty());
            assert_eq!(p.response_type.as_deref(), Some("code"));
            assert_eq!(challenge.as_str().len(), 43);
            assert!(
                challenge
                    .as_str()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert!(
                scope.first_missing_from(&resource.scopes).is_none(),
                "{scope}"
            );
            assert!(scope.first_missing_from(&declared).is_none(), "{scope}");
            OAuthError::new(ErrorCode::AccessDenied, "the user said no")
        }
        Err(e) => e,
    };

    // The error goes back to the chosen URI with state and iss.
    let response = error_redirect(chosen.as_str(), &error, p.state.as_deref(), ISSUER);
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .expect("a redirect")
        .to_str()
        .expect("ASCII");
    let back = url::Url::parse(location).expect("a URL");
    let target = url::Url::parse(chosen.as_str()).expect("a URL");
    assert_eq!(back.origin(), target.origin());
    assert_eq!(back.path(), target.path());
    let got = |name: &str| {
        back.query_pairs()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(got("iss"), vec![ISSUER.to_owned()]);
    assert_eq!(
        got("state"),
        p.state.clone().into_iter().collect::<Vec<_>>()
    );
    assert_eq!(got("error"), vec![error.code.as_str().to_owned()]);
});

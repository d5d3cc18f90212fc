//! Table-driven tests of the `/authorize` checks, named after the rule each proves.
#![allow(clippy::unwrap_used)]

use super::*;

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn params(pairs: &[(&str, &str)]) -> Params {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(Some(&q))
}

fn resources(n: usize) -> Vec<Resource> {
    (0..n)
        .map(|i| Resource {
            id: format!("https://as.test/mcp{i}"),
            path: format!("/mcp{i}"),
            scopes: vec!["read".into(), "write".into()],
            upstream: "builtin:demo".into(),
        })
        .collect()
}

#[test]
fn repeated_parameters_are_recorded_and_refused() {
    let p = params(&[("scope", "a"), ("scope", "b"), ("state", "s")]);
    assert_eq!(p.scope.as_deref(), Some("a"));
    assert_eq!(p.repeated, vec!["scope"]);
    assert_eq!(
        check_single_values(&p).unwrap_err().error,
        "invalid_request"
    );
    assert!(check_single_values(&params(&[("scope", "a")])).is_ok());
}

#[test]
fn response_type_must_be_code() {
    let cases = [
        (Some("code"), None),
        (None, Some("invalid_request")),
        (Some("token"), Some("unsupported_response_type")),
        (Some("code id_token"), Some("unsupported_response_type")),
    ];
    for (rt, want) in cases {
        let p = Params {
            response_type: rt.map(str::to_owned),
            ..Params::default()
        };
        assert_eq!(
            check_response_type(&p).err().map(|e| e.error),
            want,
            "{rt:?}"
        );
    }
}

#[test]
fn pkce_requires_s256_challenge_and_refuses_plain() {
    let cases: [(Option<&str>, Option<&str>, bool); 7] = [
        (Some(CHALLENGE), Some("S256"), true),
        (Some(CHALLENGE), Some("plain"), false),
        (Some(CHALLENGE), None, false),
        (None, Some("S256"), false),
        (Some(""), Some("S256"), false),
        (Some("short"), Some("S256"), false),
        (
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"),
            Some("S256"),
            false,
        ),
    ];
    for (challenge, method, ok) in cases {
        let p = Params {
            code_challenge: challenge.map(str::to_owned),
            code_challenge_method: method.map(str::to_owned),
            ..Params::default()
        };
        let r = check_pkce(&p);
        assert_eq!(r.is_ok(), ok, "{challenge:?} {method:?}: {r:?}");
        if let Err(e) = r {
            assert_eq!(e.error, "invalid_request");
        }
    }
}

#[test]
fn resource_must_be_a_configured_resource_else_invalid_target() {
    let one = resources(1);
    let two = resources(2);
    assert_eq!(
        check_resource(&one, Some("https://as.test/mcp0"))
            .unwrap()
            .path,
        "/mcp0"
    );
    assert_eq!(
        check_resource(&one, Some("https://as.test/mcp0/"))
            .unwrap()
            .path,
        "/mcp0"
    );
    assert_eq!(
        check_resource(&one, None).unwrap().path,
        "/mcp0",
        "absent → the only one"
    );
    let refused = [
        (&one, Some("https://evil.test/mcp0")),
        (&one, Some("https://as.test/other")),
        (&two, None),
    ];
    for (res, req) in refused {
        assert_eq!(
            check_resource(res, req).unwrap_err().error,
            "invalid_target",
            "{req:?}"
        );
    }
    assert_eq!(
        check_resource(&two, Some("https://as.test/mcp1"))
            .unwrap()
            .path,
        "/mcp1"
    );
}

type ScopeCase<'a> = (Option<&'a str>, Option<&'a str>, Result<&'a str, &'a str>);

#[test]
fn scope_must_be_within_resource_and_document_scope() {
    let res: Vec<String> = vec!["read".into(), "write".into()];
    let cases: [ScopeCase; 9] = [
        (Some("read"), None, Ok("read")),
        (Some("read write read"), None, Ok("read write")),
        (None, None, Ok("read write")),
        (Some(""), None, Ok("read write")),
        (None, Some("read"), Ok("read")),
        (Some("admin"), None, Err("invalid_scope")),
        // FastMCP bug: the document's scope must not bypass the resource's allow-list.
        (Some("admin"), Some("admin read"), Err("invalid_scope")),
        (Some("write"), Some("read"), Err("invalid_scope")),
        (None, Some("admin"), Err("invalid_scope")),
    ];
    for (req, doc, want) in cases {
        let got = check_scope(req, &res, doc);
        match want {
            Ok(s) => assert_eq!(got.as_deref().ok(), Some(s), "{req:?} {doc:?}"),
            Err(code) => assert_eq!(got.unwrap_err().error, code, "{req:?} {doc:?}"),
        }
    }
}

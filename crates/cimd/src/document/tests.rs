//! Table-driven tests for document validation, including real-world documents
//! (the published documents of Claude, Claude Code and ChatGPT) in [`auth`].

mod auth;

use serde_json::{Value, json};

use super::validate::rule;
use super::*;
use crate::redirect::ApplicationType;

pub(super) fn id(s: &str) -> ClientIdUrl {
    ClientIdUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(super) fn base() -> Value {
    json!({
        "client_id": "https://app.example.com/client.json",
        "client_name": "Example",
        "redirect_uris": ["https://app.example.com/cb"],
    })
}

pub(super) fn with(mut doc: Value, key: &str, v: Value) -> Value {
    doc.as_object_mut().map(|o| o.insert(key.to_owned(), v));
    doc
}

pub(super) fn without(mut doc: Value, key: &str) -> Value {
    doc.as_object_mut().map(|o| o.remove(key));
    doc
}

pub(super) fn check(doc: &Value) -> Result<ValidatedDocument, ValidationReport> {
    let bytes = serde_json::to_vec(doc).unwrap();
    validate_document(
        &bytes,
        Some(&id("https://app.example.com/client.json")),
        Profile::Mcp,
    )
}

pub(super) fn ok(doc: &Value) -> ValidatedDocument {
    check(doc).unwrap_or_else(|r| panic!("{r}"))
}

/// The report must contain an error with this field and rule.
pub(super) fn has_error(doc: &Value, field: &str, rule: &str) -> ValidationReport {
    let report = match check(doc) {
        Ok(v) => panic!("accepted: {:?}", v.document),
        Err(r) => r,
    };
    assert!(
        report.errors().any(|p| p.field == field && p.rule == rule),
        "expected error {field} [{rule}] in\n{report}"
    );
    report
}

pub(super) fn has_warning(v: &ValidatedDocument, field: &str, rule: &str) {
    assert!(
        v.warnings
            .iter()
            .any(|p| p.field == field && p.rule == rule),
        "expected warning {field} [{rule}] in {:?}",
        v.warnings
    );
}

#[test]
fn rejects_non_https_uri_fields() {
    for key in [
        "client_uri",
        "tos_uri",
        "policy_uri",
        "logo_uri",
        "jwks_uri",
    ] {
        for bad in [
            "http://app.example.com/x",
            "javascript:alert(1)",
            "/relative",
            "ftp://a.com/x",
        ] {
            has_error(&with(base(), key, json!(bad)), key, rule::URI_NOT_HTTPS);
        }
    }
}

/// Review findings L3 and L4: what the consent page shows cannot be made to read as something
/// else.
#[test]
fn displayed_name_and_links_cannot_read_as_something_else() {
    for name in [
        "moc.buhtig\u{202E}".to_owned(),
        "Git\u{200B}Hub".to_owned(),
        "a\u{0007}b".to_owned(),
        "x".repeat(101),
    ] {
        has_error(
            &with(base(), "client_name", json!(name)),
            "client_name",
            rule::DISPLAY_TEXT,
        );
    }
    ok(&with(
        base(),
        "client_name",
        json!("Claude (Anthropic) — für alle"),
    ));
    for key in ["client_uri", "tos_uri", "policy_uri"] {
        has_error(
            &with(base(), key, json!("https://claude.ai@evil.example/")),
            key,
            rule::URI_USERINFO,
        );
        ok(&with(base(), key, json!("https://app.example/terms")));
    }
}

#[test]
fn rejects_unsafe_fetch_urls() {
    for key in ["jwks_uri", "logo_uri"] {
        for bad in [
            "https://u:p@app.example.com/x",
            "https://app.example.com@evil.com/x",
            "https://app.example.com/x#f",
            "https://app.example.com/a/../x",
            "https://app.example.com/%2e%2e/x",
            "https://0x7f.1/x",
        ] {
            has_error(&with(base(), key, json!(bad)), key, rule::UNSAFE_FETCH_URL);
        }
    }
    let v = ok(&with(
        base(),
        "logo_uri",
        json!("https://cdn.example.com/logo.png"),
    ));
    assert!(v.document.logo_uri.is_some());
}

#[test]
fn filters_unsupported_grant_and_response_types() {
    let doc = with(
        with(
            base(),
            "grant_types",
            json!([
                "authorization_code",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "implicit",
                "authorization_code"
            ]),
        ),
        "response_types",
        json!(["code", "token"]),
    );
    let v = ok(&doc);
    assert_eq!(
        v.document.grant_types,
        [
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ]
    );
    assert_eq!(v.document.response_types, ["code"]);
    has_warning(&v, "grant_types[2]", rule::UNSUPPORTED_VALUE);
    has_warning(&v, "response_types[1]", rule::UNSUPPORTED_VALUE);
    // refresh is allowed for every code client, even when not listed (docs/architecture.md, *The
    // document*).
    assert!(v.document.allows_refresh());
}

#[test]
fn requires_authorization_code_flow() {
    for g in [
        json!(["client_credentials"]),
        json!(["refresh_token"]),
        json!([]),
    ] {
        has_error(
            &with(base(), "grant_types", g),
            "grant_types",
            rule::CODE_FLOW_REQUIRED,
        );
    }
    has_error(
        &with(base(), "response_types", json!(["token"])),
        "response_types",
        rule::CODE_FLOW_REQUIRED,
    );
}

#[test]
fn rejects_wrong_json_types() {
    let cases = [
        ("client_id", json!(5), "client_id"),
        ("client_name", json!(5), "client_name"),
        (
            "redirect_uris",
            json!("https://app.example.com/cb"),
            "redirect_uris",
        ),
        ("redirect_uris", json!([7]), "redirect_uris[0]"),
        ("grant_types", json!("authorization_code"), "grant_types"),
        ("response_types", json!({"code": true}), "response_types"),
        ("contacts", json!([1]), "contacts[0]"),
        ("scope", json!(["a", "b"]), "scope"),
        ("jwks_uri", json!(3), "jwks_uri"),
        ("client_uri", json!(false), "client_uri"),
        (
            "token_endpoint_auth_method",
            json!(true),
            "token_endpoint_auth_method",
        ),
        (
            "token_endpoint_auth_methods_supported",
            json!("none"),
            "token_endpoint_auth_methods_supported",
        ),
        (
            "token_endpoint_auth_signing_alg",
            json!(256),
            "token_endpoint_auth_signing_alg",
        ),
        ("software_id", json!(1), "software_id"),
        ("software_version", json!(1.5), "software_version"),
    ];
    for (key, v, field) in cases {
        let r = has_error(&with(base(), key, v), field, rule::WRONG_TYPE);
        assert!(r.to_string().contains("must be"), "{r}");
    }
}

#[test]
fn rejects_client_id_mismatch() {
    for doc_id in [
        "https://app.example.com:443/client.json",
        "https://app.example.com/client.json/",
        "https://APP.example.com/client.json",
        "https://other.example.com/client.json",
    ] {
        has_error(
            &with(base(), "client_id", json!(doc_id)),
            "client_id",
            rule::CLIENT_ID_MISMATCH,
        );
    }
}

#[test]
fn rejects_invalid_client_id_in_document() {
    let doc = with(
        base(),
        "client_id",
        json!("https://u@app.example.com/client.json"),
    );
    let r = validate_document(&serde_json::to_vec(&doc).unwrap(), None, Profile::Mcp).unwrap_err();
    assert!(
        r.errors()
            .any(|p| p.field == "client_id" && p.rule == rule::INVALID_CLIENT_ID),
        "{r}"
    );
}

#[test]
fn warns_on_client_id_query() {
    let doc = with(
        base(),
        "client_id",
        json!("https://app.example.com/client.json?v=2"),
    );
    let v = validate_document(
        &serde_json::to_vec(&doc).unwrap(),
        Some(&id("https://app.example.com/client.json?v=2")),
        Profile::Mcp,
    )
    .unwrap_or_else(|r| panic!("{r}"));
    has_warning(&v, "client_id", rule::CLIENT_ID_QUERY);
}

#[test]
fn requires_fields() {
    for key in ["client_id", "redirect_uris", "client_name"] {
        has_error(&without(base(), key), key, rule::REQUIRED);
    }
    has_error(
        &with(base(), "client_name", json!("  ")),
        "client_name",
        rule::REQUIRED,
    );
    has_error(
        &with(base(), "redirect_uris", json!([])),
        "redirect_uris",
        rule::EMPTY_REDIRECT_URIS,
    );
}

#[test]
fn client_name_is_a_warning_in_lenient_profile() {
    let bytes = serde_json::to_vec(&without(base(), "client_name")).unwrap();
    let v = validate_document(&bytes, None, Profile::Lenient).unwrap_or_else(|r| panic!("{r}"));
    has_warning(&v, "client_name", rule::REQUIRED);
    assert!(validate_document(&bytes, None, Profile::Mcp).is_err());
}

#[test]
fn reports_each_bad_redirect_uri() {
    let doc = with(
        base(),
        "redirect_uris",
        json!([
            "https://app.example.com/cb",
            "javascript:alert(1)",
            "http://evil.com/cb",
            "https://a.com/x#f",
            "com.example.app:/cb"
        ]),
    );
    let r = has_error(&doc, "redirect_uris[1]", rule::INVALID_REDIRECT_URI);
    let fields: Vec<&str> = r.errors().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        ["redirect_uris[1]", "redirect_uris[2]", "redirect_uris[3]"]
    );
}

#[test]
fn reports_every_problem() {
    let doc = json!({
        "client_id": "https://other.example.com/client.json",
        "redirect_uris": ["javascript:x", "http://evil/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": "x",
        "jwks": {"keys": [{"kty": "oct", "k": "x"}]},
        "jwks_uri": "http://a.com/j",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_signing_alg": "HS256",
        "tos_uri": "http://a.com/tos"
    });
    let r = check(&doc).unwrap_err();
    let rules: Vec<&str> = r.errors().map(|p| p.rule).collect();
    for want in [
        rule::CLIENT_ID_MISMATCH,
        rule::INVALID_REDIRECT_URI,
        rule::REQUIRED,
        rule::FORBIDDEN_AUTH_METHOD,
        rule::CLIENT_SECRET,
        rule::PRIVATE_KEY,
        rule::SYMMETRIC_KEY,
        rule::URI_NOT_HTTPS,
        rule::JWKS_CONFLICT,
        rule::CODE_FLOW_REQUIRED,
        rule::SIGNING_ALG,
    ] {
        assert!(rules.contains(&want), "missing {want} in\n{r}");
    }
    assert!(r.errors().count() >= 12, "{r}");
}

#[test]
fn ignores_unknown_fields_and_nulls() {
    let doc = with(
        with(base(), "application_type", json!("native")),
        "x-vendor",
        json!({"a": [1]}),
    );
    let doc = with(
        with(doc, "logo_uri", Value::Null),
        "scope",
        json!("read write"),
    );
    let v = ok(&doc);
    assert!(v.warnings.is_empty());
    assert_eq!(v.document.scope.as_deref(), Some("read write"));
    assert!(v.document.logo_uri.is_none());
}

#[test]
fn rejects_oversized_document() {
    let doc = serde_json::to_string(&base()).unwrap();
    let pad = |n: usize| format!("{doc}{}", " ".repeat(n - doc.len()));
    assert!(validate_document(pad(MAX_DOCUMENT_BYTES).as_bytes(), None, Profile::Mcp).is_ok());
    let r =
        validate_document(pad(MAX_DOCUMENT_BYTES + 1).as_bytes(), None, Profile::Mcp).unwrap_err();
    assert_eq!(r.problems[0].rule, rule::TOO_LARGE);
    assert!(r.to_string().contains("5120"));
}

#[test]
fn rejects_non_json_bodies() {
    let cases: [(&[u8], &str); 5] = [
        (b"\xff\xfe{}", rule::INVALID_UTF8),
        (b"{\"client_id\":", rule::INVALID_JSON),
        (b"<html></html>", rule::INVALID_JSON),
        (b"[]", rule::NOT_AN_OBJECT),
        (b"\"https://a.com/x\"", rule::NOT_AN_OBJECT),
    ];
    for (body, want) in cases {
        let r = validate_document(body, None, Profile::Mcp).unwrap_err();
        assert_eq!(r.problems[0].rule, want);
    }
}

#[test]
fn problem_display_names_field_and_rule() {
    let p = Problem::error("jwks.keys[0].d", rule::PRIVATE_KEY, "no private keys");
    assert_eq!(
        p.to_string(),
        "jwks.keys[0].d: no private keys [private-key-material]"
    );
    let r = ValidationReport {
        problems: vec![
            p,
            Problem::warning("grant_types[1]", rule::UNSUPPORTED_VALUE, "ignored"),
        ],
    };
    assert!(!r.is_valid());
    assert_eq!(r.warnings().count(), 1);
    let text = r.to_string();
    assert!(
        text.contains("1 error") && text.contains("warning: grant_types[1]"),
        "{text}"
    );
}

#[test]
fn document_serialises_for_cache_and_cli() {
    let v = ok(&with(
        base(),
        "jwks_uri",
        json!("https://app.example.com/jwks.json"),
    ));
    let out = serde_json::to_value(&v.document).unwrap();
    assert_eq!(out["client_id"], "https://app.example.com/client.json");
    assert_eq!(out["token_endpoint_auth_method"], "none");
    assert_eq!(out["jwks_uri"], "https://app.example.com/jwks.json");
    assert_eq!(out["redirect_uris"][0], "https://app.example.com/cb");
}

/// SEP-837: `application_type` decides which redirect URIs a client may use; a document that
/// declares none keeps the general rules (Claude Code's and Zed's loopback-only documents).
#[test]
fn application_type_limits_redirect_uris() {
    type Case<'a> = (
        Option<Value>,
        &'a [&'a str],
        Result<Option<ApplicationType>, &'a str>,
    );
    let cases: &[Case] = &[
        (None, &["http://127.0.0.1/callback"], Ok(None)),
        (None, &["https://app.example.com/cb"], Ok(None)),
        (
            Some(json!("web")),
            &["https://app.example.com/cb"],
            Ok(Some(ApplicationType::Web)),
        ),
        (
            Some(json!("web")),
            &["https://app.example.com/cb", "http://127.0.0.1/cb"],
            Err("redirect_uris[1]"),
        ),
        (
            Some(json!("web")),
            &["http://localhost:33418/"],
            Err("redirect_uris[0]"),
        ),
        (
            Some(json!("web")),
            &["com.example.app:/cb"],
            Err("redirect_uris[0]"),
        ),
        (
            Some(json!("native")),
            &["http://127.0.0.1/callback", "http://localhost/callback"],
            Ok(Some(ApplicationType::Native)),
        ),
        (
            Some(json!("native")),
            &["com.example.app:/cb"],
            Ok(Some(ApplicationType::Native)),
        ),
        // VS Code: native, with a claimed https redirect (RFC 8252 §7.2).
        (
            Some(json!("native")),
            &["http://127.0.0.1:33418/", "https://vscode.dev/redirect"],
            Ok(Some(ApplicationType::Native)),
        ),
        (
            Some(json!("Native")),
            &["http://127.0.0.1/cb"],
            Err("application_type"),
        ),
        (
            Some(json!("service")),
            &["https://app.example.com/cb"],
            Err("application_type"),
        ),
    ];
    for (kind, uris, want) in cases {
        let mut doc = with(base(), "redirect_uris", json!(uris));
        if let Some(k) = kind {
            doc = with(doc, "application_type", k.clone());
        }
        match want {
            Ok(t) => assert_eq!(ok(&doc).document.application_type, *t, "{doc}"),
            Err(field) => {
                has_error(&doc, field, rule::APPLICATION_TYPE);
            }
        }
    }
    has_error(
        &with(base(), "application_type", json!(1)),
        "application_type",
        rule::WRONG_TYPE,
    );
}

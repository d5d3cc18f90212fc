//! Auth methods, keys and real-world documents (draft §4.1, §8.2; the published documents of
//! Claude, Claude Code and ChatGPT).
use serde_json::{Value, json};

use super::super::validate::rule;
use super::super::*;
use super::{base, has_error, has_warning, id, ok, with};

#[test]
fn accepts_claude_document_keeping_its_jwt_bearer_grant() {
    let doc = json!({
        "client_id": "https://claude.ai/oauth/mcp-oauth-client-metadata",
        "client_name": "Claude",
        "client_uri": "https://claude.ai",
        "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
        "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    });
    let bytes = serde_json::to_vec(&doc).unwrap();
    let v = validate_document(
        &bytes,
        Some(&id("https://claude.ai/oauth/mcp-oauth-client-metadata")),
        Profile::Mcp,
    )
    .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(
        v.document.grant_types,
        [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ]
    );
    assert_eq!(v.document.token_endpoint_auth_method, AuthMethod::None);
    assert!(v.document.allows_refresh());
    assert!(
        v.document
            .registers_grant_type(crate::document::JWT_BEARER_GRANT_TYPE)
    );
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}

#[test]
fn accepts_claude_code_document_with_portless_loopback() {
    let doc = json!({
        "client_id": "https://claude.ai/oauth/claude-code-client-metadata",
        "client_name": "Claude Code",
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    });
    let v = validate_document(&serde_json::to_vec(&doc).unwrap(), None, Profile::Mcp)
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(v.document.redirect_uris.len(), 2);
    assert!(
        v.document
            .redirect_uris
            .iter()
            .all(RedirectUri::is_loopback)
    );
    assert!(v.warnings.is_empty());
}

#[test]
fn accepts_chatgpt_plural_auth_methods_choosing_private_key_jwt() {
    let doc = json!({
        "client_id": "https://chatgpt.com/oauth/client.json",
        "client_name": "ChatGPT",
        "client_uri": "https://chatgpt.com/",
        "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg": "RS256",
        "jwks_uri": "https://chatgpt.com/oauth/jwks.json"
    });
    let v = validate_document(
        &serde_json::to_vec(&doc).unwrap(),
        Some(&id("https://chatgpt.com/oauth/client.json")),
        Profile::Mcp,
    )
    .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(
        v.document.token_endpoint_auth_method,
        AuthMethod::PrivateKeyJwt
    );
    assert_eq!(
        v.document.jwks_uri.as_ref().map(url::Url::as_str),
        Some("https://chatgpt.com/oauth/jwks.json")
    );
    assert_eq!(
        v.document.client_uri.as_ref().map(url::Url::as_str),
        Some("https://chatgpt.com/")
    );
}

#[test]
fn plural_auth_methods_without_keys_choose_none() {
    let v = ok(&with(
        base(),
        "token_endpoint_auth_methods_supported",
        json!(["private_key_jwt", "none"]),
    ));
    assert_eq!(v.document.token_endpoint_auth_method, AuthMethod::None);
    let v = ok(&with(
        base(),
        "token_endpoint_auth_methods_supported",
        json!(["client_secret_basic", "none"]),
    ));
    assert_eq!(v.document.token_endpoint_auth_method, AuthMethod::None);
    has_warning(
        &v,
        "token_endpoint_auth_methods_supported[0]",
        rule::UNSUPPORTED_VALUE,
    );
    // Only private_key_jwt and no keys: chosen, then missing keys.
    has_error(
        &with(
            base(),
            "token_endpoint_auth_methods_supported",
            json!(["private_key_jwt"]),
        ),
        "token_endpoint_auth_method",
        rule::MISSING_KEYS,
    );
}

#[test]
fn rejects_plural_auth_methods_with_only_forbidden_methods() {
    for methods in [
        json!(["client_secret_basic"]),
        json!(["client_secret_post", "tls_client_auth"]),
        json!([]),
    ] {
        has_error(
            &with(base(), "token_endpoint_auth_methods_supported", methods),
            "token_endpoint_auth_methods_supported",
            rule::FORBIDDEN_AUTH_METHOD,
        );
    }
}

#[test]
fn singular_auth_method_wins_over_plural_with_warning() {
    let doc = with(
        with(base(), "token_endpoint_auth_method", json!("none")),
        "token_endpoint_auth_methods_supported",
        json!(["private_key_jwt"]),
    );
    let doc = with(doc, "jwks_uri", json!("https://app.example.com/jwks.json"));
    let v = ok(&doc);
    assert_eq!(v.document.token_endpoint_auth_method, AuthMethod::None);
    has_warning(
        &v,
        "token_endpoint_auth_methods_supported",
        rule::AUTH_METHODS_CONFLICT,
    );
    let consistent = with(
        with(base(), "token_endpoint_auth_method", json!("none")),
        "token_endpoint_auth_methods_supported",
        json!(["none", "private_key_jwt"]),
    );
    assert!(ok(&consistent).warnings.is_empty());
}

#[test]
fn missing_auth_method_defaults_to_none() {
    let v = ok(&base());
    assert_eq!(v.document.token_endpoint_auth_method, AuthMethod::None);
    assert_eq!(v.document.grant_types, ["authorization_code"]);
    assert_eq!(v.document.response_types, ["code"]);
    assert!(v.warnings.is_empty());
}

#[test]
fn rejects_forbidden_auth_methods() {
    for m in [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "client_secret_foo",
        "tls_client_auth",
        "self_signed_tls_client_auth",
        "bogus",
        "",
    ] {
        let r = has_error(
            &with(base(), "token_endpoint_auth_method", json!(m)),
            "token_endpoint_auth_method",
            rule::FORBIDDEN_AUTH_METHOD,
        );
        assert!(r.to_string().contains(&format!("`{m}`")), "{r}");
    }
}

#[test]
fn rejects_client_secret_fields() {
    for key in ["client_secret", "client_secret_expires_at"] {
        has_error(
            &with(base(), key, json!("s3cret")),
            key,
            rule::CLIENT_SECRET,
        );
    }
    has_error(
        &with(base(), "client_secret_expires_at", json!(0)),
        "client_secret_expires_at",
        rule::CLIENT_SECRET,
    );
}

fn ec_key() -> Value {
    json!({"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
           "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
           "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
}

fn with_key_doc(key: Value) -> Value {
    with(
        with(
            base(),
            "token_endpoint_auth_method",
            json!("private_key_jwt"),
        ),
        "jwks",
        json!({"keys": [key]}),
    )
}

#[test]
fn accepts_inline_public_jwks() {
    let v = ok(&with_key_doc(ec_key()));
    assert_eq!(
        v.document.token_endpoint_auth_method,
        AuthMethod::PrivateKeyJwt
    );
    let set = v.document.jwks.as_ref().map(|s| s.keys.len());
    assert_eq!(set, Some(1));
    assert!(
        v.document
            .jwks
            .as_ref()
            .and_then(|s| s.find("k1"))
            .is_some()
    );
}

#[test]
fn rejects_private_jwk_members() {
    for m in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
        let mut key = ec_key();
        key[m] = json!("AAAA");
        has_error(
            &with_key_doc(key),
            &format!("jwks.keys[0].{m}"),
            rule::PRIVATE_KEY,
        );
    }
}

#[test]
fn rejects_symmetric_jwk() {
    has_error(
        &with_key_doc(json!({"kty": "oct", "k": "c2VjcmV0"})),
        "jwks.keys[0].kty",
        rule::SYMMETRIC_KEY,
    );
    let mut hs = ec_key();
    hs["alg"] = json!("HS256");
    has_error(&with_key_doc(hs), "jwks.keys[0].kty", rule::SYMMETRIC_KEY);
}

#[test]
fn rejects_invalid_jwks() {
    let cases = [
        (json!([ec_key()]), "jwks"),
        (json!({"keys": "x"}), "jwks"),
        (json!({"keys": []}), "jwks.keys"),
        (json!({"keys": [{"crv": "P-256"}]}), "jwks.keys[0].kty"),
        (json!({"keys": [{"kty": "EC"}]}), "jwks.keys[0]"),
        (
            json!({"keys": [{"kty": "RSA", "n": "AQAB"}]}),
            "jwks.keys[0]",
        ),
    ];
    for (jwks, field) in cases {
        let doc = with(
            with(
                base(),
                "token_endpoint_auth_method",
                json!("private_key_jwt"),
            ),
            "jwks",
            jwks,
        );
        has_error(&doc, field, rule::INVALID_JWKS);
    }
    let doc = with_key_doc(json!("not-an-object"));
    has_error(&doc, "jwks.keys[0]", rule::WRONG_TYPE);
}

#[test]
fn rejects_jwks_and_jwks_uri_together() {
    let doc = with(
        with_key_doc(ec_key()),
        "jwks_uri",
        json!("https://app.example.com/jwks.json"),
    );
    has_error(&doc, "jwks", rule::JWKS_CONFLICT);
}

#[test]
fn private_key_jwt_requires_keys() {
    has_error(
        &with(
            base(),
            "token_endpoint_auth_method",
            json!("private_key_jwt"),
        ),
        "token_endpoint_auth_method",
        rule::MISSING_KEYS,
    );
    let v = ok(&with(
        with(
            base(),
            "token_endpoint_auth_method",
            json!("private_key_jwt"),
        ),
        "jwks_uri",
        json!("https://app.example.com/jwks.json"),
    ));
    assert_eq!(
        v.document.token_endpoint_auth_method,
        AuthMethod::PrivateKeyJwt
    );
}

#[test]
fn rejects_unsupported_signing_alg() {
    for alg in ["HS256", "none", "ES512", "rs256", ""] {
        has_error(
            &with(base(), "token_endpoint_auth_signing_alg", json!(alg)),
            "token_endpoint_auth_signing_alg",
            rule::SIGNING_ALG,
        );
    }
    for alg in ALLOWED_SIGNING_ALGS {
        let v = ok(&with(base(), "token_endpoint_auth_signing_alg", json!(alg)));
        assert_eq!(
            v.document.token_endpoint_auth_signing_alg.as_deref(),
            Some(*alg)
        );
    }
}

//! Helpers for the back-channel tests (`tests/back_*.rs`): mint authorization codes directly in
//! the store (white-box, independent of the login pages), call `/token` and `/revoke` keeping
//! the response headers, and sign client assertions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use cimdgate_test_support::keys::{TestKey, jwks_json};

use cimdgate_server::clients::{Purpose, resolve_client};
use cimdgate_store::{CodeRecord, Grant, Scopes, TokenHash};

use crate::common::{TestEnv, encode_form, http_client, pkce_pair};

/// A minted code and its PKCE verifier.
pub struct Minted {
    pub code: String,
    pub verifier: String,
    pub record: CodeRecord,
}

/// Build a code record the way /authorize does for `client_id` (resolving the client for the
/// document binding); `patch` may change it before it is stored.
pub async fn mint_code(
    env: &TestEnv,
    client_id: &str,
    redirect_uri: &str,
    patch: impl FnOnce(&mut CodeRecord),
) -> Minted {
    let services = &env.server().state.services;
    let client = resolve_client(services, client_id, Purpose::Authorize)
        .await
        .unwrap_or_else(|e| panic!("resolve {client_id}: {e}"));
    let (verifier, challenge) = pkce_pair();
    let code = format!("code-{}", cimdgate_store::hex(&rand16()));
    let now = SystemTime::now();
    let mut record = CodeRecord {
        grant: Grant {
            client_id: client_id.to_owned(),
            client_kind: client.kind(),
            subject: "alice".into(),
            scope: Scopes::parse("mcp"),
            resource: env.resource(),
            family_id: format!("fam-{}", cimdgate_store::hex(&rand16())),
            document: client.document_binding(),
            idp_ref: None,
            created_at: None,
        },
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: challenge,
        auth_time: now,
        expires_at: now + Duration::from_secs(60),
    };
    patch(&mut record);
    services
        .store
        .put_code(&TokenHash::of(&code), &record)
        .await
        .unwrap();
    Minted {
        code,
        verifier,
        record,
    }
}

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

/// A response: status, headers, JSON body (`Null` when not JSON).
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// `error` of an error body.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    /// `error_description`.
    pub fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or("")
    }
    /// Assert `Cache-Control: no-store` and `Pragma: no-cache`.
    pub fn assert_no_store(&self) {
        assert_eq!(self.headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(self.headers.get("pragma").unwrap(), "no-cache");
    }
    /// Assert an OAuth error with status and code, with a description.
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(
            (self.status, self.error()),
            (status, error),
            "body: {}",
            self.body
        );
        assert!(!self.description().is_empty(), "error_description present");
        self.assert_no_store();
    }
}

/// POST a form to `path`, with an optional Authorization header.
pub async fn post(env: &TestEnv, path: &str, form: &[(&str, &str)], auth: Option<&str>) -> Resp {
    let mut req = http_client()
        .post(env.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(form));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Resp {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Exchange a minted code for a public client (`client_id` in the form).
pub async fn exchange(env: &TestEnv, m: &Minted, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", m.code.as_str()),
        ("code_verifier", m.verifier.as_str()),
        ("redirect_uri", m.record.redirect_uri.as_str()),
        ("client_id", m.record.grant.client_id.as_str()),
    ];
    for (k, v) in extra {
        form.retain(|(fk, _)| fk != k);
        if !v.is_empty() {
            form.push((k, v));
        }
    }
    post(env, "/token", &form, None).await
}

/// Refresh for a public client.
pub async fn refresh(env: &TestEnv, client_id: &str, token: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", client_id),
    ];
    form.extend_from_slice(extra);
    post(env, "/token", &form, None).await
}

/// Verify an access token with the server's own helper.
pub async fn verify(
    env: &TestEnv,
    token: &str,
) -> Result<cimdgate_server::tokens::AccessClaims, cimdgate_server::tokens::TokenError> {
    env.server().state.tokens.verify(token).await
}

/// `Basic base64(id:secret)`.
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// RFC 7523 §2.2 `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The redirect URI the test clients of `cimd.test` register.
pub fn redirect() -> String {
    TestEnv::default_redirect("cimd.test")
}

/// Whether the minted code is still unused (white-box read of the store).
pub async fn code_unused(env: &TestEnv, m: &Minted) -> bool {
    let got = env
        .server()
        .state
        .services
        .store
        .get_code(&cimdgate_store::TokenHash::of(&m.code), SystemTime::now())
        .await
        .unwrap();
    matches!(got, Some((_, false)))
}

/// Publish a `private_key_jwt` client with `key` inline in its document.
pub fn pkjwt_client(env: &TestEnv, key: &TestKey) -> String {
    env.publish_client(
        "pkjwt",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_json(&[key])}),
    )
}

/// The code-exchange form of minted code `m` with a client assertion.
pub fn assertion_form<'a>(m: &'a Minted, assertion: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", &m.code),
        ("code_verifier", &m.verifier),
        ("redirect_uri", &m.record.redirect_uri),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ]
}

/// Mint and exchange a code for `id`: (access token, refresh token).
pub async fn tokens(env: &TestEnv, id: &str) -> (String, String) {
    let m = mint_code(env, id, &redirect(), |_| {}).await;
    let r = exchange(env, &m, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    (
        r.body["access_token"].as_str().unwrap().to_owned(),
        r.body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

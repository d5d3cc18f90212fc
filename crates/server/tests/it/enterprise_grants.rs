//! The two machine grants of the MCP 2026-07-28 extensions at `/token`
//! (docs/architecture.md, *Enterprise-managed authorization* and *Client credentials*):
//!
//! - the ID-JAG grant (SEP-990): an enterprise IdP fixture with its own ES256 key, its JWKS
//!   served over real HTTPS under a throw-away CA, minting ID-JAGs; one accepted exchange whose
//!   token works at the gateway, then one request per rule that breaks only that rule;
//! - client credentials (SEP-1046) for `private_key_jwt` CIMD clients: accepted for a trusted
//!   (and for an approved) client, refused for each rule.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use cimdgate_server::config::EnterpriseIdpConfig;
use cimdgate_test_support::keys::{TestKey, claims as assertion_claims, fresh_jti, jwks_json};
use cimdgate_test_support::{HttpsHost, TestCa};

use crate::back_util::{JWT_BEARER as CLIENT_ASSERTION, Resp, post};
use crate::common::TestEnv;
use crate::gateway_util::{call_text, mcp_client, resource};

const ENT_ISSUER: &str = "https://idp.ent.test";
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

struct Ent {
    key: TestKey,
    _jwks_host: HttpsHost,
    _ca_dir: tempfile::TempDir,
    env: TestEnv,
}

/// A cimdgate with one enterprise IdP (JWKS: one ES256 key, kid `ent-1`), client credentials
/// on or off, `trusted.test` trusted, resources `/mcp` and `/other` (scope `mcp` each).
async fn start(client_credentials: bool) -> Ent {
    cimdgate_test_support::install_crypto_provider();
    let key = TestKey::es256("ent-1");
    let jwks = jwks_json(&[&key]);
    let ca = TestCa::new();
    let jwks_host = HttpsHost::start(
        &ca,
        &["idp.ent.test"],
        axum::Router::new().route(
            "/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        ),
    )
    .await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ent-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let jwks_uri = url::Url::parse(&jwks_host.url("127.0.0.1", "/jwks.json")).unwrap();
    let env = TestEnv::start_with(|c| {
        c.resources
            .push(resource("/other", "builtin:demo", &["mcp"]));
        c.cimd.trusted_domains = vec!["trusted.test".into()];
        c.client_credentials.enabled = client_credentials;
        c.enterprise_idps.push(EnterpriseIdpConfig {
            issuer: ENT_ISSUER.into(),
            jwks_uri,
            audiences: Vec::new(),
            allowed_clients: Vec::new(),
            extra_ca_file: Some(ca_file),
        });
    })
    .await;
    Ent {
        key,
        _jwks_host: jwks_host,
        _ca_dir: ca_dir,
        env,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn id_jag_header(key: &TestKey) -> Value {
    json!({"alg": "ES256", "kid": key.kid, "typ": "oauth-id-jag+jwt"})
}

/// Valid ID-JAG claims for `client_id` at this server.
fn id_jag_claims(env: &TestEnv, client_id: &str) -> Value {
    let now = now();
    json!({
        "iss": ENT_ISSUER, "sub": "alice@corp", "aud": env.base, "client_id": client_id,
        "iat": now, "exp": now + 120, "jti": fresh_jti(), "scope": "mcp",
        "resource": env.resource(),
    })
}

async fn exchange(env: &TestEnv, client_id: &str, assertion: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("grant_type", JWT_GRANT),
        ("assertion", assertion),
        ("client_id", client_id),
    ];
    form.extend_from_slice(extra);
    post(env, "/token", &form, None).await
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn assert_refused(name: &str, r: &Resp, status: u16, error: &str, fragment: &str) {
    assert_eq!((r.status, r.error()), (status, error), "{name}: {}", r.body);
    assert!(
        r.description().contains(fragment),
        "{name}: {:?} lacks {fragment:?}",
        r.description()
    );
    r.assert_no_store();
}

#[tokio::test]
async fn id_jag_is_exchanged_for_a_token_the_gateway_accepts() {
    let ent = start(false).await;
    let env = &ent.env;
    let client_id = env.publish_client(
        "ent-app",
        json!({"grant_types": ["authorization_code", JWT_GRANT]}),
    );
    let jag = ent
        .key
        .sign_with_header(&id_jag_header(&ent.key), &id_jag_claims(env, &client_id));
    let r = exchange(env, &client_id, &jag, &[("resource", &env.resource())]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.assert_no_store();
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["scope"], "mcp");
    assert!(r.body["expires_in"].as_u64().unwrap() > 0);
    assert!(
        r.body.get("refresh_token").is_none(),
        "no refresh token: {}",
        r.body
    );
    let token = r.body["access_token"].as_str().unwrap();
    let mcp = mcp_client(&env.resource(), token).await;
    let who: Value = serde_json::from_str(&call_text(&mcp, "whoami", json!({})).await).unwrap();
    assert_eq!(
        who,
        json!({"user": format!("{ENT_ISSUER}#alice@corp"), "client_id": client_id,
               "scopes": ["mcp"], "token_source": "cimdgate"})
    );
    mcp.cancel().await.unwrap();

    // Single use: the same ID-JAG again.
    let again = exchange(env, &client_id, &jag, &[]).await;
    assert_refused("replayed jti", &again, 400, "invalid_grant", "already used");

    let metadata: Value = reqwest::get(env.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["authorization_code", "refresh_token", JWT_GRANT])
    );
}

/// How a refused case changes the valid request.
enum Break {
    Claims(&'static str, Value),
    Header(&'static str, Value),
    OtherKey,
    AlgNone,
    Param(&'static str, &'static str),
    PlainClient,
    Blocked,
}

#[tokio::test]
async fn id_jag_rules_each_refuse_what_breaks_them() {
    let ent = start(false).await;
    let env = &ent.env;
    let good = env.publish_client(
        "ent-app",
        json!({"grant_types": ["authorization_code", JWT_GRANT]}),
    );
    let plain = env.publish_client("plain-app", json!({}));
    let doomed = env.publish_client(
        "doomed-app",
        json!({"grant_types": ["authorization_code", JWT_GRANT]}),
    );
    let other_resource = env.url("/other");
    let now = now();
    let cases: Vec<(&str, Break, u16, &str, &str)> = vec![
        (
            "wrong aud",
            Break::Claims("aud", json!("https://elsewhere.test")),
            400,
            "invalid_grant",
            "does not name this authorization server",
        ),
        (
            "wrong client_id",
            Break::Claims("client_id", json!("https://cimd.test/someone-else")),
            400,
            "invalid_grant",
            "not for the authenticated client",
        ),
        (
            "expired",
            Break::Claims("exp", json!(now - 100)),
            400,
            "invalid_grant",
            "expired",
        ),
        (
            "iat in the future",
            Break::Claims("iat", json!(now + 100)),
            400,
            "invalid_grant",
            "in the future",
        ),
        (
            "too long a lifetime",
            Break::Claims("exp", json!(now + 3600)),
            400,
            "invalid_grant",
            "lifetime",
        ),
        (
            "no jti",
            Break::Claims("jti", Value::Null),
            400,
            "invalid_grant",
            "no jti",
        ),
        (
            "no sub",
            Break::Claims("sub", Value::Null),
            400,
            "invalid_grant",
            "no sub",
        ),
        (
            "unknown IdP",
            Break::Claims("iss", json!("https://idp.unknown.test")),
            400,
            "invalid_grant",
            "not a trusted enterprise identity provider",
        ),
        (
            "bad signature",
            Break::OtherKey,
            400,
            "invalid_grant",
            "signature",
        ),
        (
            "wrong typ",
            Break::Header("typ", json!("JWT")),
            400,
            "invalid_grant",
            "typ",
        ),
        (
            "alg none",
            Break::AlgNone,
            400,
            "invalid_grant",
            "alg \"none\"",
        ),
        (
            "alg HS256",
            Break::Header("alg", json!("HS256")),
            400,
            "invalid_grant",
            "alg \"HS256\"",
        ),
        (
            "resource mismatch",
            Break::Param("resource", "OTHER"),
            400,
            "invalid_grant",
            "differs from the ID-JAG's resource",
        ),
        (
            "unknown resource claim",
            Break::Claims("resource", json!("https://nowhere.test/mcp")),
            400,
            "invalid_target",
            "unknown resource",
        ),
        (
            "scope beyond the ID-JAG's",
            Break::Param("scope", "mcp admin"),
            400,
            "invalid_scope",
            "beyond the ID-JAG's scope",
        ),
        (
            "document without the grant type",
            Break::PlainClient,
            400,
            "unauthorized_client",
            "does not list urn:ietf:params:oauth:grant-type:jwt-bearer",
        ),
        (
            "blocked client",
            Break::Blocked,
            401,
            "invalid_client",
            "blocked by an administrator",
        ),
    ];
    for (name, brk, status, error, fragment) in cases {
        let mut client_id = good.clone();
        let mut header = id_jag_header(&ent.key);
        let mut extra: Vec<(&str, String)> = Vec::new();
        let mut key = ent.key.clone();
        let mut none = false;
        match &brk {
            Break::PlainClient => client_id = plain.clone(),
            Break::Blocked => {
                client_id = doomed.clone();
                // Seen once (into the inventory), then blocked by an administrator.
                let seen = exchange(env, &client_id, "x.y.z", &[]).await;
                assert_eq!(seen.error(), "invalid_grant", "{}", seen.body);
                env.server()
                    .state
                    .services
                    .governance
                    .block(&client_id, Some("test"), "127.0.0.1")
                    .await
                    .unwrap();
            }
            Break::Header(k, v) => header[*k] = v.clone(),
            Break::OtherKey => key = TestKey::es256("ent-1"),
            Break::AlgNone => {
                none = true;
                header["alg"] = json!("none");
            }
            Break::Param(k, v) => extra.push((
                k,
                if *v == "OTHER" {
                    other_resource.clone()
                } else {
                    (*v).to_owned()
                },
            )),
            Break::Claims(..) => {}
        }
        let mut claims = id_jag_claims(env, &client_id);
        if let Break::Claims(k, v) = &brk {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(*k);
            } else {
                claims[*k] = v.clone();
            }
        }
        let jag = if none {
            unsigned(&header, &claims)
        } else {
            key.sign_with_header(&header, &claims)
        };
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = exchange(env, &client_id, &jag, &extra).await;
        assert_refused(name, &r, status, error, fragment);
    }
}

// --- client credentials -------------------------------------------------------------------

/// Publish a `private_key_jwt` client on `host` with `grant_types`; returns its id and key.
fn publish_machine(env: &TestEnv, host: &str, name: &str, grant_types: Value) -> (String, TestKey) {
    let key = TestKey::es256(&format!("{name}-key"));
    let id = env.publish_client_on(
        host,
        name,
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_json(&[&key]),
               "grant_types": grant_types}),
    );
    (id, key)
}

async fn client_credentials(
    env: &TestEnv,
    id: &str,
    key: Option<&TestKey>,
    extra: &[(&str, &str)],
) -> Resp {
    let assertion =
        key.map(|k| k.sign(&assertion_claims(id, &env.url("/token"), SystemTime::now())));
    let mut form = vec![("grant_type", "client_credentials"), ("client_id", id)];
    if let Some(a) = &assertion {
        form.extend([
            ("client_assertion_type", CLIENT_ASSERTION),
            ("client_assertion", a),
        ]);
    }
    form.extend_from_slice(extra);
    post(env, "/token", &form, None).await
}

#[tokio::test]
async fn client_credentials_token_for_a_trusted_client_works_at_the_gateway() {
    let ent = start(true).await;
    let env = &ent.env;
    let cc = json!(["authorization_code", "client_credentials"]);
    let (id, key) = publish_machine(env, "trusted.test", "robot", cc.clone());
    let r = client_credentials(
        env,
        &id,
        Some(&key),
        &[("resource", &env.resource()), ("scope", "mcp")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.assert_no_store();
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    assert_eq!(r.body["scope"], "mcp");
    let mcp = mcp_client(&env.resource(), r.body["access_token"].as_str().unwrap()).await;
    let who: Value = serde_json::from_str(&call_text(&mcp, "whoami", json!({})).await).unwrap();
    assert_eq!(
        who,
        json!({"user": id, "client_id": id, "scopes": ["mcp"], "token_source": "cimdgate"})
    );
    mcp.cancel().await.unwrap();

    // An untrusted client once an administrator approved it.
    let (untrusted, ukey) = publish_machine(env, "cimd.test", "approved-robot", cc);
    let first = client_credentials(
        env,
        &untrusted,
        Some(&ukey),
        &[("resource", &env.resource())],
    )
    .await;
    assert_refused(
        "before approval",
        &first,
        400,
        "unauthorized_client",
        "approved by an administrator",
    );
    env.server()
        .state
        .services
        .governance
        .approve(&untrusted, None, "127.0.0.1")
        .await
        .unwrap();
    let r = client_credentials(
        env,
        &untrusted,
        Some(&ukey),
        &[("resource", &env.resource())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "mcp");

    let metadata: Value = reqwest::get(env.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            JWT_GRANT,
            "client_credentials"
        ])
    );
}

#[tokio::test]
async fn client_credentials_rules_each_refuse_what_breaks_them() {
    let ent = start(true).await;
    let env = &ent.env;
    let cc = json!(["authorization_code", "client_credentials"]);
    let (robot, key) = publish_machine(env, "trusted.test", "robot", cc.clone());
    let public = env.publish_client_on("trusted.test", "public-robot", json!({"grant_types": cc}));
    let (no_grant, ng_key) = publish_machine(
        env,
        "trusted.test",
        "code-only",
        json!(["authorization_code"]),
    );
    let (untrusted, u_key) = publish_machine(env, "cimd.test", "stranger", cc.clone());
    let (doomed, d_key) = publish_machine(env, "trusted.test", "doomed", cc);
    let res = env.resource();
    let resource = [("resource", res.as_str())];

    let r = client_credentials(env, &public, None, &resource).await;
    assert_refused(
        "none auth",
        &r,
        401,
        "invalid_client",
        "requires private_key_jwt",
    );
    let r = client_credentials(env, &no_grant, Some(&ng_key), &resource).await;
    assert_refused(
        "grant not in document",
        &r,
        400,
        "unauthorized_client",
        "does not list client_credentials",
    );
    let r = client_credentials(env, &untrusted, Some(&u_key), &resource).await;
    assert_refused(
        "untrusted, unapproved",
        &r,
        400,
        "unauthorized_client",
        "trusted by this server's policy or approved",
    );
    let r = client_credentials(
        env,
        &robot,
        Some(&key),
        &[("resource", &res), ("scope", "mcp nope")],
    )
    .await;
    assert_refused(
        "scope beyond the resource",
        &r,
        400,
        "invalid_scope",
        "\"nope\" is not offered",
    );
    let r = client_credentials(env, &robot, Some(&key), &[]).await;
    assert_refused(
        "resource required with two resources",
        &r,
        400,
        "invalid_target",
        "resource is required",
    );

    let r = client_credentials(env, &doomed, Some(&d_key), &resource).await;
    assert_eq!(r.status, 200, "{}", r.body);
    env.server()
        .state
        .services
        .governance
        .block(&doomed, None, "127.0.0.1")
        .await
        .unwrap();
    let r = client_credentials(env, &doomed, Some(&d_key), &resource).await;
    assert_refused(
        "blocked client",
        &r,
        401,
        "invalid_client",
        "blocked by an administrator",
    );
}

#[tokio::test]
async fn client_credentials_is_refused_when_not_enabled() {
    let ent = start(false).await;
    let env = &ent.env;
    let (robot, key) = publish_machine(
        env,
        "trusted.test",
        "robot",
        json!(["authorization_code", "client_credentials"]),
    );
    let r = client_credentials(env, &robot, Some(&key), &[("resource", &env.resource())]).await;
    assert_refused(
        "disabled",
        &r,
        400,
        "unsupported_grant_type",
        "\"client_credentials\" is not supported",
    );
    let metadata: Value = reqwest::get(env.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_credentials"))
    );
}

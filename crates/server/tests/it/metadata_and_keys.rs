//! Authorization-server metadata (RFC 8414, OIDC Discovery aliases) and the signing keys: the
//! metadata advertises CIMD and every endpoint, path insertion for an issuer with a path, the
//! JWKS publishes public keys only, keys survive a restart, a configured ES256 key signs.

use crate::back_util::{self, tokens};
use crate::common;

use serde_json::{Value, json};

use back_util::{refresh, verify};
use common::{TestEnv, http_client};

async fn get_json(env: &TestEnv, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = http_client().get(env.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn metadata_advertises_cimd_and_endpoints() {
    let env = TestEnv::start_with(|c| c.dcr.enabled = Some(true)).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, headers, m) = get_json(&env, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["cache-control"], "public, max-age=300");
        assert_eq!(m["issuer"], env.base);
        assert_eq!(m["authorization_endpoint"], env.url("/authorize"));
        assert_eq!(m["token_endpoint"], env.url("/token"));
        assert_eq!(m["registration_endpoint"], env.url("/register"));
        assert_eq!(m["revocation_endpoint"], env.url("/revoke"));
        assert_eq!(m["jwks_uri"], env.url("/jwks.json"));
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(
            m["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        let methods = json!([
            "none",
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post"
        ]);
        assert_eq!(m["token_endpoint_auth_methods_supported"], methods);
        assert_eq!(m["revocation_endpoint_auth_methods_supported"], methods);
        let algs = m["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap();
        for alg in ["RS256", "ES256", "EdDSA"] {
            assert!(algs.contains(&json!(alg)), "{alg}");
        }
        assert_eq!(m["scopes_supported"], json!(["mcp", "offline_access"]));
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    }
    // No path-inserted document for an issuer without a path.
    let (status, _, _) = get_json(&env, "/.well-known/oauth-authorization-server/tenant").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn metadata_is_path_inserted_for_an_issuer_with_a_path() {
    let env = TestEnv::start_with(|c| {
        let url = format!(
            "{}/tenant",
            c.server.public_url.as_str().trim_end_matches('/')
        );
        c.server.public_url = url.parse().unwrap();
    })
    .await;
    let issuer = env.url("/tenant");
    for path in [
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
    ] {
        let (status, _, m) = get_json(&env, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(m["issuer"], issuer, "{path}");
        assert_eq!(m["token_endpoint"], format!("{issuer}/token"));
    }
    for path in [
        "/.well-known/oauth-authorization-server/other",
        "/other/.well-known/openid-configuration",
    ] {
        assert_eq!(get_json(&env, path).await.0, 404, "{path}");
    }
}

#[tokio::test]
async fn jwks_publishes_public_keys_only_with_cache_header() {
    let env = TestEnv::start().await;
    let (status, headers, jwks) = get_json(&env, "/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert!(keys[0].get("d").is_none());
}

#[tokio::test]
async fn restart_keeps_the_signing_key_and_issued_tokens() {
    let mut env = TestEnv::start().await;
    let id = env.publish_client("app", json!({}));
    let (at, rt) = tokens(&env, &id).await;
    let before = get_json(&env, "/jwks.json").await.2;
    env.restart().await;
    assert_eq!(
        get_json(&env, "/jwks.json").await.2,
        before,
        "same kid after restart"
    );
    assert!(verify(&env, &at).await.is_ok());
    assert_eq!(refresh(&env, &id, &rt, &[]).await.status, 200);
}

#[tokio::test]
async fn es256_signing_key_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let path = dir.path().join("signing.pem");
    std::fs::write(&path, kp.serialize_pem()).unwrap();
    let env = TestEnv::start_with(|c| c.tokens.signing_key_file = Some(path.clone())).await;
    let id = env.publish_client("app", json!({}));
    let (at, _) = tokens(&env, &id).await;
    let header = jsonwebtoken::decode_header(&at).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwks = get_json(&env, "/jwks.json").await.2;
    let first = &jwks["keys"][0];
    assert_eq!(first["kty"], "EC");
    assert_eq!(first["kid"].as_str(), header.kid.as_deref());
    assert!(verify(&env, &at).await.is_ok());
}

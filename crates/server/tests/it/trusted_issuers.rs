//! `[[trusted_issuers]]` (docs/architecture.md, *Gateway*; FastMCP's `MultiAuth`): the gateway accepts JWTs of another
//! issuer — keys from its JWKS over real HTTPS (a test CA), cached, refetched for an unknown
//! `kid` at most every 30 s — besides cimdgate's own tokens, and tells the upstream which source
//! vouched. Every rule the source adds is tried with a token that breaks only that rule.

use crate::{common, gateway_util};

use cimdgate_test_support::keys as test_keys;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use cimdgate_server::config::TrustedIssuerConfig;
use cimdgate_test_support::{HttpsHost, TestCa};
use serde_json::{Value, json};

use common::TestEnv;
use gateway_util::{claims, mint, spawn_echo_upstream};
use test_keys::{TestKey, jwks_json};

const CORP_ISSUER: &str = "https://idp.corp.test";
const CORP_AUDIENCE: &str = "api://mcp-tools";

struct Corp {
    key: TestKey,
    jwks_host: HttpsHost,
    _ca_dir: tempfile::TempDir,
    env: TestEnv,
}

/// A cimdgate whose `/mcp` proxies to a header-echo upstream and trusts the "corp" issuer,
/// whose JWKS (one ES256 key, kid `corp-1`) is served over HTTPS under a throwaway CA.
async fn start() -> Corp {
    cimdgate_test_support::install_crypto_provider();
    let key = TestKey::es256("corp-1");
    let jwks = jwks_json(&[&key]);
    let ca = TestCa::new();
    let jwks_host = HttpsHost::start(
        &ca,
        &["idp.corp.test"],
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
    let ca_file = ca_dir.path().join("corp-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let (upstream, _) = spawn_echo_upstream().await;
    let jwks_uri = url::Url::parse(&jwks_host.url("127.0.0.1", "/jwks.json")).unwrap();
    let env = TestEnv::start_with(|c| {
        c.resources[0].upstream = format!("{upstream}/mcp");
        c.trusted_issuers.push(TrustedIssuerConfig {
            name: "corp".into(),
            issuer: CORP_ISSUER.into(),
            jwks_uri,
            audience: Some(CORP_AUDIENCE.into()),
            require_at_jwt: false,
            extra_ca_file: Some(ca_file),
        });
    })
    .await;
    Corp {
        key,
        jwks_host,
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

/// Claims of a good machine-to-machine token from the corp IdP.
fn corp_claims() -> Value {
    json!({
        "iss": CORP_ISSUER,
        "sub": "svc-batch",
        "aud": CORP_AUDIENCE,
        "azp": "corp-batch-job",
        "scope": "mcp",
        "iat": now(),
        "exp": now() + 300,
    })
}

fn with(mut claims: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// POST to `/mcp` with `token`: (status, JSON body — the echo upstream's description of the
/// request it got, or the gateway's error).
async fn call(env: &TestEnv, token: &str) -> (u16, Value) {
    let (status, body, _) = env.call_resource(token).await;
    (status.as_u16(), body)
}

#[tokio::test]
async fn corp_token_is_accepted_and_the_source_is_named_upstream() {
    let corp = start().await;
    let (status, seen) = call(&corp.env, &corp.key.sign(&corp_claims())).await;
    assert_eq!(status, 200, "{seen}");
    let headers = &seen["headers"];
    assert_eq!(headers["x-forwarded-user"], "svc-batch");
    assert_eq!(headers["x-forwarded-client-id"], "corp-batch-job");
    assert_eq!(headers["x-forwarded-token-source"], "corp");
    assert!(headers.get("authorization").is_none(), "{headers}");

    // cimdgate's own tokens still work, and are named as such.
    let own = mint(&corp.env, &claims(&corp.env));
    let (status, seen) = call(&corp.env, &own).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-token-source"], "cimdgate");
}

#[tokio::test]
async fn every_rule_of_a_trusted_issuer_is_enforced() {
    let corp = start().await;
    let env = &corp.env;
    let other_key = TestKey::es256("corp-1"); // same kid, different key
    let past = now() - 600;
    // (what is wrong, token, expected status)
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "audience is the resource URL, not the configured audience",
            corp.key
                .sign(&with(corp_claims(), json!({"aud": env.resource()}))),
            401,
        ),
        (
            "issuer not trusted",
            corp.key.sign(&with(
                corp_claims(),
                json!({"iss": "https://idp.other.test"}),
            )),
            401,
        ),
        (
            "signed by another key under the trusted kid",
            other_key.sign(&corp_claims()),
            401,
        ),
        (
            "expired",
            corp.key
                .sign(&with(corp_claims(), json!({"exp": past, "iat": past - 60}))),
            401,
        ),
        (
            "alg none",
            corp.key
                .sign_with_header(&json!({"alg": "none", "kid": "corp-1"}), &corp_claims()),
            401,
        ),
        (
            "missing the resource's scope",
            corp.key
                .sign(&with(corp_claims(), json!({"scope": "other"}))),
            403,
        ),
    ];
    for (why, token, want) in cases {
        let (status, body) = call(env, &token).await;
        assert_eq!(status, want, "{why}: {body}");
        let code = if want == 401 {
            "invalid_token"
        } else {
            "insufficient_scope"
        };
        assert_eq!(body["error"], code, "{why}: {body}");
        assert!(body.get("headers").is_none(), "{why}: reached the upstream");
    }
}

#[tokio::test]
async fn jwks_is_cached_and_unknown_kids_do_not_hammer_the_jwks_host() {
    let corp = start().await;
    for _ in 0..3 {
        let (status, body) = call(&corp.env, &corp.key.sign(&corp_claims())).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        corp.jwks_host.hits("/jwks.json"),
        1,
        "one fetch for three tokens"
    );
    // Unknown kids within 30 s of the last fetch are refused without fetching again: a flood of
    // made-up kids cannot turn the gateway into a load generator against the IdP.
    for kid in ["corp-2", "corp-3", "corp-4"] {
        let (status, body) = call(&corp.env, &corp.key.with_kid(kid).sign(&corp_claims())).await;
        assert_eq!(status, 401, "{kid}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("kid"),
            "{kid}: {body}"
        );
    }
    assert_eq!(corp.jwks_host.hits("/jwks.json"), 1);
}

//! Tests against a mock IdP on 127.0.0.1: discovery, code exchange, key rotation, GitHub.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::*;
use crate::secret::ExposeSecret;

// ---- a mock IdP on 127.0.0.1 ------------------------------------------------------------

#[derive(Default)]
struct Mock {
    discovery: Value,
    jwks: Value,
    token: (u16, Value),
    userinfo: Value,
    token_requests: Vec<(HeaderMap, String)>,
    jwks_fetches: usize,
}

type M = Arc<Mutex<Mock>>;

async fn start_mock() -> (String, M) {
    let mock: M = Arc::default();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(
                |State(m): State<M>| async move { axum::Json(m.lock().unwrap().discovery.clone()) },
            ),
        )
        .route(
            "/jwks",
            get(|State(m): State<M>| async move {
                let mut m = m.lock().unwrap();
                m.jwks_fetches += 1;
                axum::Json(m.jwks.clone())
            }),
        )
        .route(
            "/token",
            post(
                |State(m): State<M>, headers: HeaderMap, body: String| async move {
                    let mut m = m.lock().unwrap();
                    m.token_requests.push((headers, body));
                    let (status, json) = m.token.clone();
                    (StatusCode::from_u16(status).unwrap(), axum::Json(json))
                },
            ),
        )
        .route(
            "/userinfo",
            get(|State(m): State<M>| async move { axum::Json(m.lock().unwrap().userinfo.clone()) }),
        )
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    {
        let mut m = mock.lock().unwrap();
        m.discovery = json!({
            "issuer": base, "authorization_endpoint": format!("{base}/auth"),
            "token_endpoint": format!("{base}/token"), "userinfo_endpoint": format!("{base}/userinfo"),
            "jwks_uri": format!("{base}/jwks"), "id_token_signing_alg_values_supported": ["ES256"],
            "authorization_response_iss_parameter_supported": true,
        });
    }
    (base, mock)
}

fn oidc_idp(issuer: &str, secret: Option<&str>) -> Idp {
    let cfg = IdpConfig {
        issuer: Some(Url::parse(issuer).unwrap()),
        client_id: CLIENT.into(),
        client_secret: secret.map(Into::into),
        ..IdpConfig::default()
    };
    Idp::new(&cfg, "http://127.0.0.1:1/upstream/callback".into()).unwrap()
}

fn callback(p: &IdpPending, iss: Option<&str>) -> CallbackParams {
    CallbackParams {
        code: Some("the-code".into()),
        state: Some(p.state.clone()),
        iss: iss.map(Into::into),
        ..CallbackParams::default()
    }
}

#[tokio::test]
async fn discovery_issuer_mismatch_is_refused() {
    let (base, mock) = start_mock().await;
    mock.lock().unwrap().discovery["issuer"] = json!("https://someone-else.example");
    let err = oidc_idp(&base, None).begin().await.unwrap_err();
    assert!(matches!(err, IdpError::Discovery { .. }), "{err:?}");
    assert!(err.to_string().contains("must match exactly"), "{err}");
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn idp_down_is_unavailable_naming_the_host() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let idp = oidc_idp(&format!("http://127.0.0.1:{port}"), None);
    let err = idp.begin().await.unwrap_err();
    assert!(matches!(err, IdpError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn full_oidc_exchange_against_mock_with_key_rotation() {
    let (base, mock) = start_mock().await;
    let old = test_key("old");
    let new = test_key("new");
    let idp = oidc_idp(&base, Some("s3cret"));
    let (url, p) = idp.begin().await.unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["nonce"], p.nonce.expose_secret());
    assert_eq!(q["code_challenge_method"], "S256");
    {
        let mut m = mock.lock().unwrap();
        m.jwks = json!({"keys": [old.jwk.clone()]});
        let claims = with(
            good_claims(),
            json!({"iss": base, "nonce": p.nonce.expose_secret(), "email": null}),
        );
        m.token = (
            200,
            json!({"access_token": "UP-AT", "token_type": "Bearer", "expires_in": 60,
                               "id_token": sign(&new, "new", &claims), "refresh_token": "UP-RT"}),
        );
        m.userinfo = json!({"sub": "alice", "email": "alice@example.com"});
    }
    // First: the JWKS lacks "new"; the refetch also lacks it → refused.
    let err = idp
        .finish(&callback(&p, Some(&base)), &p)
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::InvalidIdToken { .. }), "{err:?}");
    // The IdP rotates: the refetch on the unknown kid finds it.
    mock.lock().unwrap().jwks = json!({"keys": [old.jwk.clone(), new.jwk.clone()]});
    let user = idp.finish(&callback(&p, Some(&base)), &p).await.unwrap();
    assert_eq!(user.subject, "alice");
    assert_eq!(user.name.as_deref(), Some("Alice"));
    assert_eq!(user.email.as_deref(), Some("alice@example.com")); // from userinfo
    assert_eq!(user.tokens.access_token.expose_secret(), "UP-AT");
    let m = mock.lock().unwrap();
    assert_eq!(
        m.jwks_fetches, 3,
        "fetch, refetch on unknown kid, refetch after rotation"
    );
    let (headers, body) = m.token_requests.last().unwrap();
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let form: std::collections::HashMap<_, _> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["code_verifier"], p.pkce_verifier.expose_secret());
    assert_eq!(form["grant_type"], "authorization_code");
    assert!(!form.contains_key("client_secret"));
}

#[tokio::test]
async fn iss_parameter_rules() {
    let (base, _mock) = start_mock().await;
    let idp = oidc_idp(&base, None);
    let (_, p) = idp.begin().await.unwrap();
    for (rule, iss) in [
        ("wrong_iss", Some("https://evil.example")),
        ("missing_iss_when_promised", None),
    ] {
        let err = idp.finish(&callback(&p, iss), &p).await.unwrap_err();
        assert!(
            matches!(err, IdpError::IssuerMismatch { .. }),
            "{rule}: {err:?}"
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn denied_callback_and_refused_exchange() {
    let (base, mock) = start_mock().await;
    let idp = oidc_idp(&base, None);
    let (_, p) = idp.begin().await.unwrap();
    let denied = CallbackParams {
        error: Some("access_denied".into()),
        error_description: Some("End-User aborted interaction".into()),
        state: Some(p.state.clone()),
        iss: Some(base.clone()),
        ..CallbackParams::default()
    };
    let err = idp.finish(&denied, &p).await.unwrap_err();
    assert!(
        matches!(err, IdpError::Denied { ref error, .. } if error == "access_denied"),
        "{err:?}"
    );

    mock.lock().unwrap().token = (
        400,
        json!({"error": "invalid_grant", "error_description": "code expired"}),
    );
    let err = idp
        .finish(&callback(&p, Some(&base)), &p)
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::Exchange { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    // Without a secret: client auth `none` → client_id in the body.
    let body = mock
        .lock()
        .unwrap()
        .token_requests
        .last()
        .unwrap()
        .1
        .clone();
    assert!(body.contains("client_id=cimdgate"), "{body}");

    mock.lock().unwrap().token = (503, json!({}));
    let err = idp
        .finish(&callback(&p, Some(&base)), &p)
        .await
        .unwrap_err();
    assert!(matches!(err, IdpError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn github_preset_exchange_and_user() {
    let (base, mock) = start_mock().await;
    let cfg = IdpConfig {
        preset: Some(IdpPreset::Github),
        client_id: "gh".into(),
        client_secret: Some("gh-secret".into()),
        token_endpoint: Some(Url::parse(&format!("{base}/token")).unwrap()),
        userinfo_endpoint: Some(Url::parse(&format!("{base}/userinfo")).unwrap()),
        ..IdpConfig::default()
    };
    let idp = Idp::new(&cfg, "http://127.0.0.1:1/upstream/callback".into()).unwrap();
    let (_, p) = idp.begin().await.unwrap();
    {
        let mut m = mock.lock().unwrap();
        m.token = (
            200,
            json!({"access_token": "gho_x", "token_type": "bearer", "scope": "read:user"}),
        );
        m.userinfo =
            json!({"id": 4242, "login": "octo", "name": null, "email": "octo@example.com"});
    }
    let user = idp.finish(&callback(&p, None), &p).await.unwrap();
    assert_eq!(user.subject, "github:4242");
    assert_eq!(user.name.as_deref(), Some("octo"));
    {
        let m = mock.lock().unwrap();
        let (headers, body) = m.token_requests.last().unwrap();
        assert_eq!(headers["accept"], "application/json");
        assert!(
            body.contains("client_secret=gh-secret"),
            "client_secret_post for GitHub"
        );
    }

    // GitHub reports errors with HTTP 200.
    mock.lock().unwrap().token = (200, json!({"error": "bad_verification_code"}));
    let err = idp.finish(&callback(&p, None), &p).await.unwrap_err();
    assert!(err.to_string().contains("bad_verification_code"), "{err}");
}

//! Dynamic client registration (RFC 7591) for clients without a metadata document: every
//! refusal names the problem.

use crate::back_util::{self};
use crate::common;

use serde_json::{Value, json};

use back_util::{exchange, mint_code};
use common::{TestEnv, http_client};

#[tokio::test]
async fn register_errors_name_the_problem() {
    let env = TestEnv::start().await;
    let cases = [
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
    ];
    for (body, code) in cases {
        let resp = http_client()
            .post(env.url("/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], code, "{body}");
        assert!(!v["error_description"].as_str().unwrap().is_empty());
    }
    // A public DCR client gets no secret and can use the code grant without one.
    let resp = http_client()
        .post(env.url("/register"))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:7777/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let reg: Value = resp.json().await.unwrap();
    assert!(reg.get("client_secret").is_none());
    let id = reg["client_id"].as_str().unwrap();
    let m = mint_code(&env, id, "http://127.0.0.1:7777/cb", |_| {}).await;
    assert_eq!(exchange(&env, &m, &[]).await.status, 200);
}

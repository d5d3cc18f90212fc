//! Interop with the official Rust MCP SDK (rmcp, feature `auth`) using **its own** OAuth client
//! — not a harness-obtained token: rmcp discovers cimdgate from the gateway's 401 challenge
//! (RFC 9728 → AS metadata), sees `client_id_metadata_document_supported`, uses the CIMD URL
//! from `AuthorizationRequest::with_client_metadata_url` as its client_id, does PKCE, exchanges
//! the code, and its `AuthClient` then carries (and refreshes) the token while the MCP client
//! calls `echo` through the gateway against a separate upstream MCP server **process**. The
//! user's part (login and consent forms) is played over HTTP by the harness browser.

use crate::{common, gateway_util, interop_util};

use rmcp::ServiceExt;
use rmcp::model::ClientConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use common::{TestEnv, USERNAME, query_map};
use gateway_util::{call_text, initialize_msg, post_mcp};
use interop_util::{UpstreamProcess, publish_native_client};

#[tokio::test]
async fn rmcp_oauth_client_logs_in_with_cimd_and_calls_echo_on_a_separate_upstream_process() {
    let upstream = tokio::task::spawn_blocking(UpstreamProcess::start)
        .await
        .unwrap();
    assert_ne!(upstream.pid(), std::process::id());
    let up_url = upstream.url.clone();
    let env = TestEnv::start_with(|c| {
        c.resources
            .push(gateway_util::resource("/rs", &up_url, &["mcp"]))
    })
    .await;
    let mcp_url = env.url("/rs");
    let client_id = publish_native_client(&env, "rmcp-client.json");
    let redirect = "http://127.0.0.1:47112/callback";

    // What an MCP client sees first: 401 with the RFC 9728 pointer (reactive discovery input).
    let (status, headers, _) = post_mcp(&mcp_url, "not-a-token", None, initialize_msg()).await;
    assert_eq!(status, 401);
    let challenge = headers["www-authenticate"].to_str().unwrap().to_owned();

    let mut oauth = OAuthState::new(mcp_url.as_str(), None).await.unwrap();
    let mut request = AuthorizationRequest::new(redirect)
        .with_client_metadata_url(client_id.clone())
        .with_client_name("rmcp interop (DCR fallback: must not be used)");
    request.challenge = Some(challenge);
    oauth.start_authorization(request).await.unwrap();
    let authorize_url = oauth.get_authorization_url().await.unwrap();
    let q = query_map(&authorize_url);
    assert_eq!(
        q.get("client_id"),
        Some(&client_id),
        "rmcp chose CIMD: {authorize_url}"
    );
    assert!(
        authorize_url.starts_with(&env.url("/authorize?")),
        "{authorize_url}"
    );
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );

    // The user logs in and approves; cimdgate redirects to the loopback callback.
    let location = env
        .browser()
        .login_and_consent(&authorize_url, true, false)
        .await;
    assert!(location.starts_with(redirect), "{location}");
    oauth.handle_callback_url(&location).await.unwrap();
    let manager = oauth.into_authorization_manager().expect("authorized");
    let (cid, creds) = manager.get_credentials().await.unwrap();
    assert_eq!(cid, client_id);
    assert!(creds.is_some());

    // rmcp's own token refresh against cimdgate's /token (CIMD public client, rotation).
    let before = manager.get_access_token().await.unwrap();
    manager.refresh_token().await.unwrap();
    let after = manager.get_access_token().await.unwrap();
    assert_ne!(before, after, "refresh issued a new access token");

    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(reqwest::Client::new(), manager),
        StreamableHttpClientTransportConfig::with_uri(mcp_url.clone()),
    );
    let client = ClientConfig::default().serve(transport).await.unwrap();
    assert_eq!(
        call_text(&client, "echo", json!({"text": "hello from rmcp"})).await,
        "hello from rmcp"
    );
    let who: Value = serde_json::from_str(&call_text(&client, "whoami", json!({})).await).unwrap();
    assert_eq!(
        who,
        json!({"user": USERNAME, "client_id": client_id, "scopes": ["mcp"],
               "token_source": "cimdgate"})
    );
    client.cancel().await.unwrap();

    let seen = env.store().list_client_records().await.unwrap();
    assert!(seen.iter().any(|c| c.client_id == client_id));
    drop(upstream);
}

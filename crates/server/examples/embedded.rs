//! Library example: your own rmcp MCP server with cimdgate's authorization server **and**
//! resource-server layer embedded in the same process — the Rust counterpart of FastMCP's
//! `FastMCP(..., auth=OAuthProxy(...))`.
//!
//! One listener serves:
//! - the authorization server (`/.well-known/oauth-authorization-server`, `/authorize`, login
//!   and consent pages, `/token`, `/jwks.json`, …) for CIMD clients, with a local user;
//! - RFC 9728 metadata at `/.well-known/oauth-protected-resource/mcp`;
//! - YOUR rmcp tool server at `/mcp`, behind the resource layer: no valid token for `/mcp` → 401
//!   with the discovery challenge; a valid one → your handler, with the verified identity in the
//!   request extensions.
//!
//! Run: `cargo run -p cimdgate-server --example embedded` (listens on 127.0.0.1:8090; set
//! `EMBEDDED_PASSWORD` to choose the password of user `dev`). Then point any MCP client that
//! supports CIMD (e.g. `cimdgate login http://127.0.0.1:8090/mcp --client-id <CIMD URL>`) at
//! `http://127.0.0.1:8090/mcp`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use axum::http::request::Parts;
use cimdgate_gateway::Verified;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

const LISTEN: &str = "127.0.0.1:8090";

// ---- 1. Your MCP server: ordinary rmcp code. --------------------------------------------------

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Clone)]
struct MyTools {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl MyTools {
    #[tool(description = "Add two integers.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    /// The resource layer put the verified token's identity into the request extensions.
    #[tool(description = "Greet the signed-in user and name the client they used.")]
    fn hello(&self, Extension(parts): Extension<Parts>) -> String {
        match parts.extensions.get::<Verified>() {
            Some(v) => format!(
                "hello {} (via {})",
                v.subject,
                v.client_id.as_deref().unwrap_or("an unnamed client")
            ),
            None => "hello, stranger".into(), // unreachable behind the layer
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MyTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ---- 2. The authorization server's configuration, built in code. ---------------------------
    // The `[[resources]]` entry tells the AS which audience it may issue tokens for and which
    // scopes exist; its `upstream` is unused here because we mount our own server at `/mcp`.
    let password = std::env::var("EMBEDDED_PASSWORD").unwrap_or_else(|_| "change-me".into());
    let config = cimdgate_server::Config::from_toml(&format!(
        r#"
[server]
listen = "{LISTEN}"
public_url = "http://{LISTEN}"
[store]
url = "embedded:./embedded-example-data"
[identity]
mode = "local"
[[identity.users]]
username = "dev"
password_hash = "{hash}"
[[resources]]
path = "/mcp"
upstream = "builtin:demo"
scopes = ["mcp"]
"#,
        hash = cimdgate_server::identity::local::hash_password(&password)?,
    ))?;
    config.check()?;

    // ---- 3. Build the AS state; it also holds the resource-server side for `/mcp`: a verifier
    // with the AS's own signing keys (in process, no JWKS round trip) and its revocations. -------
    let state = cimdgate_server::App::build(config.clone()).await?;
    // The per-IP / per-host rate limiters keep one entry per key: sweep idle ones now and then.
    let limits = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.services.limits.sweep();
        }
    });
    let resources = state.gateway.resources().to_vec();
    let mcp = resources
        .iter()
        .find(|r| r.path == "/mcp")
        .ok_or("no /mcp resource")?;

    // ---- 4. Your rmcp service behind the resource layer. ---------------------------------------
    let service = StreamableHttpService::new(
        || {
            Ok(MyTools {
                tool_router: MyTools::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(
            cimdgate_gateway::demo::allowed_hosts(&config.server.public_url),
        ),
    );
    // `route_layer` wraps only the routes of this router: the AS endpoints stay public.
    let protected = axum::Router::new()
        .route_service("/mcp", service)
        .route_layer(mcp.layer());
    let app = axum::Router::new()
        // The AS endpoints (browser-facing and machine-facing), with a body limit.
        .merge(cimdgate_server::front::routes(state.front.clone()))
        .merge(cimdgate_server::back::routes(state.back.clone()))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            config.limits.max_body_bytes,
        ))
        // RFC 9728 metadata for the protected resource(s).
        .merge(cimdgate_gateway::layer::metadata_routes(&resources))
        // Your MCP server, protected.
        .merge(protected);

    // ---- 5. Serve. -------------------------------------------------------------------------------
    let listener = tokio::net::TcpListener::bind(LISTEN).await?;
    println!("MCP server with embedded OAuth at http://{LISTEN}/mcp (user dev / {password})");
    // The AS's rate limits and audit log need the peer address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

//! The built-in demo MCP server (`upstream = "builtin:demo"`; docs/architecture.md, *Gateway*) on
//! rmcp's Streamable HTTP server, served in process behind the resource layer.
//!
//! Tools:
//! - `echo` — `{"text": string}` → that text;
//! - `whoami` — the user, client_id, scopes and token source the gateway vouched for, as JSON.
//!   Read from the [`Verified`] request extension set by [`crate::layer`]; when the demo runs as
//!   a separate upstream behind a gateway, from the `X-Forwarded-*` headers instead.
//!
//! rmcp validates the `Host` header against `allowed_hosts` (DNS-rebinding protection), which
//! defaults to loopback names only; [`allowed_hosts`] derives the list from `public_url`.

use std::sync::Arc;

use axum::http::HeaderName;
use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::layer::{
    X_FORWARDED_CLIENT_ID, X_FORWARDED_SCOPES, X_FORWARDED_TOKEN_SOURCE, X_FORWARDED_USER,
};
use crate::verify::Verified;

/// Arguments of `echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to send back.
    pub text: String,
}

/// The demo server (one per MCP session).
#[derive(Debug, Clone)]
pub struct DemoServer {
    tool_router: ToolRouter<Self>,
}

impl Default for DemoServer {
    fn default() -> Self {
        DemoServer {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl DemoServer {
    /// `echo`.
    #[tool(description = "Return the given text unchanged.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    /// `whoami`.
    #[tool(description = "Who the gateway says you are: user, client_id, scopes, token source.")]
    fn whoami(&self, Extension(parts): Extension<Parts>) -> String {
        whoami_json(&parts).to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        // Prompts are declared (there are none) because rmcp answers prompts/list anyway, and a
        // 2026-07-28 server must declare in server/discover every method it serves.
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
    }
}

/// The `whoami` answer for a request.
pub fn whoami_json(parts: &Parts) -> serde_json::Value {
    if let Some(v) = parts.extensions.get::<Verified>() {
        return json!({
            "user": v.subject,
            "client_id": v.client_id,
            "scopes": v.scopes,
            "token_source": v.token_source,
        });
    }
    let h = |n: HeaderName| parts.headers.get(n).and_then(|v| v.to_str().ok());
    json!({
        "user": h(X_FORWARDED_USER),
        "client_id": h(X_FORWARDED_CLIENT_ID),
        "scopes": h(X_FORWARDED_SCOPES).map(|s| s.split_whitespace().collect::<Vec<_>>()),
        "token_source": h(X_FORWARDED_TOKEN_SOURCE),
    })
}

/// `Host` values rmcp should accept: `public_url`'s host and `host:port`, plus the loopback
/// names when the host is loopback (local runs reach it as `localhost` or `127.0.0.1`).
pub fn allowed_hosts(public_url: &Url) -> Vec<String> {
    let mut hosts = Vec::new();
    if let Some(host) = public_url.host_str() {
        hosts.push(host.to_owned());
        if let Some(port) = public_url.port_or_known_default() {
            hosts.push(format!("{host}:{port}"));
        }
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        if loopback {
            hosts.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
        }
    }
    hosts
}

/// The demo server as a tower service (mount it behind the resource layer).
pub fn service(
    public_url: &Url,
    max_body_bytes: usize,
) -> StreamableHttpService<DemoServer, LocalSessionManager> {
    let mut config =
        StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts(public_url));
    config.max_request_body_bytes = max_body_bytes;
    StreamableHttpService::new(
        || Ok(DemoServer::default()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_follow_public_url() {
        let h = allowed_hosts(&Url::parse("https://mcp.example.com/").unwrap());
        assert_eq!(h, vec!["mcp.example.com", "mcp.example.com:443"]);
        let h = allowed_hosts(&Url::parse("http://127.0.0.1:8080").unwrap());
        assert!(h.contains(&"127.0.0.1:8080".to_owned()) && h.contains(&"localhost".to_owned()));
    }
}

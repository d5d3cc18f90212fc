//! The upstream MCP server of the gateway load runs, shared by `bench_gateway` (its `upstream`
//! mode: the product's allocator) and `bench_upstream` (the system allocator, as a third-party
//! rmcp server ships). Included with `#[path]`.

use std::io::Read;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

/// An rmcp Streamable HTTP server with the demo tools in stateless JSON mode on 127.0.0.1:0;
/// prints `UPSTREAM <url>` and serves until Ctrl-C, SIGTERM or stdin closing.
pub async fn upstream() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(["127.0.0.1".to_owned(), format!("127.0.0.1:{}", addr.port())]);
    config.legacy_session_mode = false;
    config.json_response = true;
    let svc = StreamableHttpService::new(
        || Ok(cimdgate_gateway::demo::DemoServer::default()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().route_service("/mcp", svc);
    println!("UPSTREAM http://{addr}/mcp");
    axum::serve(listener, router)
        .with_graceful_shutdown(until_stop(true))
        .await
        .unwrap();
}

/// Ctrl-C, SIGTERM, or (with `watch_stdin`: the upstream child) stdin closing.
pub async fn until_stop(watch_stdin: bool) {
    let stdin = async move {
        if watch_stdin {
            let _ = tokio::task::spawn_blocking(|| {
                let mut buf = [0u8; 64];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            })
            .await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = stdin => {}
    }
}

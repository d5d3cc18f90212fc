//! The gateway load runs' upstream MCP server with the **system allocator**, as a third-party
//! rmcp server ships (`bench/run-gateway.sh` compares against it and against the same server
//! built with cimdgate's allocator). Prints `UPSTREAM <url>`; stops on Ctrl-C, SIGTERM or stdin
//! closing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "bench_common/upstream.rs"]
mod upstream;

#[tokio::main]
async fn main() {
    upstream::upstream().await;
}

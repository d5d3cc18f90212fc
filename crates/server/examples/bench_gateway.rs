//! Load-run fixture for `bench/run-gateway.sh` (issue 4, gateway overhead). Three modes:
//!
//! - `bench_gateway serve OUT_DIR` — starts the **upstream** (this binary in `upstream` mode, a
//!   separate process), then a cimdgate server (durable embedded store, rate limits off) whose
//!   `[[resources]] /mcp` proxies to it. Mints one access token for `/mcp` through the server's
//!   own signing path (`back::tokens::sign_access_token` with its current key — the same JWT a
//!   real login returns; an interactive login would add nothing to what is measured) and writes
//!   `OUT_DIR/env.sh` (`GATEWAY_URL`, `UPSTREAM_URL`, `TOKEN`, `GATEWAY_PID`, `UPSTREAM_PID`).
//!   Prints `READY` and runs until Ctrl-C / SIGTERM.
//! - `bench_gateway upstream` — an rmcp Streamable HTTP server with the demo tools (`echo`,
//!   `whoami`) in **stateless JSON** mode (no `initialize` / `Mcp-Session-Id` needed: every POST
//!   is a self-contained `tools/call`), on 127.0.0.1:0; prints `UPSTREAM <url>`.
//! - `bench_gateway load URL TOKEN RATE SECONDS [CONNS]` — an open-loop, fixed-rate load client
//!   (wrk2 is not packaged in Debian and wrk has no rate limit): sends `tools/call echo` at RATE
//!   req/s for SECONDS over up to CONNS keep-alive connections; each request's latency is
//!   measured from its *scheduled* start (no coordinated omission). Prints one `RESULT` line.
//!
//! Usage: `cargo run --release -p cimdgate-server --example bench_gateway -- serve OUT_DIR`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// The allocator the `cimdgate` binary uses, so the figures are the product's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "bench_common/upstream.rs"]
mod upstream;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cimdgate_server::Config;
use cimdgate_server::time::unix;
use cimdgate_server::tokens::{AccessClaims, sign_access_token};

/// The JSON-RPC body every load request sends.
pub const ECHO_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(PathBuf::from(args.get(1).expect("serve OUT_DIR"))).await,
        Some("upstream") => upstream::upstream().await,
        Some("load") => {
            let n = |i: usize, what: &str| -> u64 {
                args.get(i).and_then(|s| s.parse().ok()).expect(what)
            };
            load(
                args.get(1).expect("load URL"),
                args.get(2).expect("load TOKEN"),
                n(3, "RATE"),
                n(4, "SECONDS"),
                args.get(5).map_or(64, |s| s.parse().expect("CONNS")),
            )
            .await;
        }
        _ => {
            eprintln!(
                "usage: bench_gateway serve OUT_DIR | upstream | load URL TOKEN RATE SECONDS [CONNS]"
            );
            std::process::exit(2);
        }
    }
}

async fn serve(out: PathBuf) {
    std::fs::create_dir_all(&out).unwrap();
    // The upstream MCP server: a separate process — `BENCH_UPSTREAM` (the `bench_upstream`
    // example: system allocator), else this binary in `upstream` mode (jemalloc).
    let mut child = match std::env::var_os("BENCH_UPSTREAM") {
        Some(bin) => Command::new(bin),
        None => {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.arg("upstream");
            c
        }
    };
    let mut child = child
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let upstream_url = loop {
        let line = lines.next().expect("upstream exited").unwrap();
        if let Some(url) = line.strip_prefix("UPSTREAM ") {
            break url.trim().to_owned();
        }
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let config = Config::from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
url = "embedded:{data}"
[limits]
per_ip_per_second = 0
per_client_host_per_second = 0
[admin]
listen = "127.0.0.1:0"
[[resources]]
path = "/mcp"
upstream = "{upstream_url}"
scopes = ["mcp"]
"#,
        data = data.display(),
    ))
    .unwrap();
    let server = cimdgate_server::serve(config, listener).await.unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let now = unix(SystemTime::now());
    let claims = AccessClaims {
        iss: base.clone(),
        sub: "bench-user".into(),
        aud: format!("{base}/mcp"),
        client_id: "https://bench.example/client.json".into(),
        scope: "mcp".into(),
        exp: now + 3600,
        iat: now,
        jti: format!("bench-{now}"),
        fid: "bench-family".into(),
        urf: None,
    };
    let token = sign_access_token(&server.state.tokens.keys, &claims).unwrap();
    std::fs::write(
        out.join("env.sh"),
        format!(
            "export GATEWAY_URL='{base}/mcp'\nexport UPSTREAM_URL='{upstream_url}'\nexport TOKEN='{token}'\nexport GATEWAY_PID={}\nexport UPSTREAM_PID={}\n",
            std::process::id(),
            child.id()
        ),
    )
    .unwrap();
    println!("READY {port}");
    upstream::until_stop(false).await;
    server.shutdown().await;
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}

async fn load(url: &str, token: &str, rate: u64, secs: u64, conns: u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conns as usize)
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap();
    let limit = Arc::new(tokio::sync::Semaphore::new(conns as usize));
    let auth = format!("Bearer {token}");
    let send = |at: Instant| {
        let (client, url, auth, limit) =
            (client.clone(), url.to_owned(), auth.clone(), limit.clone());
        tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            let ok = match client
                .post(&url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .body(ECHO_CALL)
                .send()
                .await
            {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, at.elapsed())
        })
    };
    // Warm the connection pool, unmeasured.
    for _ in 0..conns.min(8) {
        let _ = send(Instant::now()).await;
    }
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let total = rate * secs;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let at = start + interval * i as u32;
        tokio::time::sleep_until(at.into()).await;
        tasks.push(send(at));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    let mut errors = 0u64;
    for t in tasks {
        let (ok, d) = t.await.unwrap();
        if !ok {
            errors += 1;
        }
        lat.push(d);
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "RESULT requests={} errors={} achieved_req_per_s={:.0} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        lat.len(),
        errors,
        lat.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
}

//! Fixtures for the real-client interop tests (`interop_ts.rs`, `interop_rmcp.rs`): a separate
//! upstream MCP server **process**, and a CIMD document for a native (loopback) client.
//!
//! The upstream process is this same test binary re-invoked with a filter that selects only its
//! [`UPSTREAM_CHILD_TEST`] entry point and with [`CHILD_ENV`] set: that entry serves the rmcp demo
//! tool set (`echo`, `whoami`) on `127.0.0.1:0`, prints `UPSTREAM <url>`, and exits when its stdin
//! closes (the parent dropped its [`UpstreamProcess`]) or after [`CHILD_LIFETIME`].
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use crate::common::TestEnv;

/// Set in the child's environment; the entry point does nothing without it.
pub const CHILD_ENV: &str = "CIMDGATE_INTEROP_UPSTREAM_CHILD";
/// The test path of the child entry point in this binary.
pub const UPSTREAM_CHILD_TEST: &str = "interop_util::upstream_child_process_entry";
/// The child's hard upper bound on life, in case its parent vanishes without closing stdin.
pub const CHILD_LIFETIME: Duration = Duration::from_secs(180);
/// The loopback redirect URI registered in the document (any port matches, RFC 8252 §7.3).
pub const LOOPBACK_REDIRECT: &str = "http://127.0.0.1/callback";

/// A running upstream process; dropping it kills it (by its PID) and reaps it.
pub struct UpstreamProcess {
    child: Child,
    /// Its MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
}

impl UpstreamProcess {
    /// Re-invoke the current test binary as the upstream and wait (≤ 30 s) for its URL.
    pub fn start() -> UpstreamProcess {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                UPSTREAM_CHILD_TEST,
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may have printed "test NAME ... " on the same line first.
                if let Some((_, url)) = line.split_once("UPSTREAM ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("upstream process did not report its URL: {e}");
            }
        };
        UpstreamProcess { child, url }
    }

    /// The child's process id (to show it is not this process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for UpstreamProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child entry point that serves the upstream; a no-op unless [`CHILD_ENV`] is set (so as
/// an ordinary test it passes at once).
#[test]
fn upstream_child_process_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = url::Url::parse(&format!("http://{addr}")).unwrap();
        let svc = cimdgate_gateway::demo::service(&base, 1 << 20);
        let router = axum::Router::new().route_service("/mcp", svc);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        println!("UPSTREAM http://{addr}/mcp");
        // Live until the parent closes our stdin (or the hard bound passes).
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        });
        let _ = tokio::time::timeout(CHILD_LIFETIME, stdin_closed).await;
    });
    std::process::exit(0);
}

/// Publish a public native-app CIMD document named `name` on `cimd.test` whose only redirect
/// URI is [`LOOPBACK_REDIRECT`]; returns its client_id (`https://cimd.test:PORT/name`).
pub fn publish_native_client(env: &TestEnv, name: &str) -> String {
    env.publish_client(
        name,
        json!({
            "client_name": format!("Interop {name}"),
            "redirect_uris": [LOOPBACK_REDIRECT],
            "scope": "mcp",
        }),
    )
}

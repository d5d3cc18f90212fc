//! Load-run fixture for `bench/*.sh`: starts, in this process, a real HTTPS host serving two
//! CIMD documents (a public client and an ES256 `private_key_jwt` client) under a throwaway CA,
//! and a cimdgate server with the durable embedded store, rate limits off and one local user
//! (`bench` / `bench-password`). It then prepares inputs for the load generator (which runs in
//! a second process, `wrk`):
//!
//! - `authorize.path` / `authorize_pkjwt.path` — `/authorize` requests for the cached public
//!   and `private_key_jwt` CIMD clients;
//! - `assertions.txt` — freshly signed client assertions (unique `jti` each, 280 s lifetime)
//!   for the `private_key_jwt` client;
//! - `env.sh` — the values the Lua scripts and the code driver need (port, client ids,
//!   verifier, redirect URI, the user).
//!
//! It writes **no authorization codes**: `bench/run-as.sh` mints them through real
//! `/authorize` → login → consent flows (`bench/side_by_side/driver.py`, one login per
//! browser, then consent each time) right before each `/token` run. (Until
//! 2026-12 this fixture wrote code records straight into the store, which skipped the flow
//! that creates them; `bench/side-by-side` replaced that.)
//!
//! Usage: `cargo run --release -p cimdgate-server --example bench_server -- OUT_DIR [ASSERTIONS]`
//!
//! Second instance (`bench_server --join OUT_DIR`; `bench/run-instances.sh` now runs the
//! shipped binary through `bench/fixture.py` instead): starts one more cimdgate with the first
//! one's configuration (`OUT_DIR/config.toml`: same Redis store, same public URL, same CIMD
//! host) on its own loopback port, checks that the cached `/authorize`
//! answers there, prints `READY <port>` and serves until Ctrl-C. Only meaningful with
//! `BENCH_STORE_URL=redis://…` on the first instance: an embedded store (redb) cannot be opened
//! by two processes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cimdgate_test_support::keys;

/// The allocator the `cimdgate` binary uses, so the figures are the product's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;

use cimdgate_server::Config;
use cimdgate_test_support::{HttpsHost, TestCa};
use keys::TestKey;

const VERIFIER: &str = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// The local user the code driver signs in as.
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let first = args
        .next()
        .expect("usage: bench_server OUT_DIR [ASSERTIONS] | bench_server --join OUT_DIR");
    if first == "--join" {
        let out = PathBuf::from(args.next().expect("usage: bench_server --join OUT_DIR"));
        return join(&out).await;
    }
    let out = PathBuf::from(first);
    let n: usize = args
        .next()
        .map_or(20_000, |s| s.parse().expect("ASSERTIONS is a number"));
    std::fs::create_dir_all(&out).unwrap();

    // The CIMD host (documents are filled in once the port is known).
    let docs: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
    let served = docs.clone();
    let router = Router::new().route(
        "/{name}",
        get(
            move |axum::extract::Path(name): axum::extract::Path<String>| {
                let body = served
                    .lock()
                    .unwrap()
                    .get(&name)
                    .cloned()
                    .unwrap_or_default();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "max-age=86400"),
                        ],
                        body,
                    )
                }
            },
        ),
    );
    let ca = TestCa::new();
    let host = HttpsHost::start(&ca, &["cimd.test"], router).await;
    let public_id = host.url("cimd.test", "/public.json");
    let pkjwt_id = host.url("cimd.test", "/pkjwt.json");
    let key = TestKey::es256("bench-es256");
    {
        let mut d = docs.lock().unwrap();
        d.insert(
            "public.json".into(),
            serde_json::json!({"client_id": public_id, "client_name": "Bench Public",
                "redirect_uris": [REDIRECT]})
            .to_string(),
        );
        d.insert(
            "pkjwt.json".into(),
            serde_json::json!({"client_id": pkjwt_id, "client_name": "Bench PKJWT",
                "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt",
                "jwks": keys::jwks_json(&[&key])})
            .to_string(),
        );
    }
    std::fs::write(out.join("ca.pem"), ca.cert_pem()).unwrap();

    // cimdgate on a fixed loopback port chosen by the OS.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    // BENCH_STORE_URL=redis://127.0.0.1:6379/0 benchmarks the Redis backend instead.
    let store_url =
        std::env::var("BENCH_STORE_URL").unwrap_or_else(|_| format!("embedded:{}", data.display()));
    let password_hash = cimdgate_server::identity::local::hash_password(PASSWORD).unwrap();
    let config_toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
url = "{store_url}"
[identity]
mode = "local"
[[identity.users]]
username = "{USER}"
password_hash = "{password_hash}"
[fetch]
dev_allow_loopback = true
extra_ca_file = "{ca}"
resolve = {{ "cimd.test" = "127.0.0.1" }}
[limits]
per_ip_per_second = 0
per_client_host_per_second = 0
[admin]
listen = "127.0.0.1:0"
[[resources]]
path = "/mcp"
upstream = "builtin:demo"
scopes = ["mcp"]
"#,
        ca = out.join("ca.pem").display(),
    );
    std::fs::write(out.join("config.toml"), &config_toml).unwrap();
    let config = Config::from_toml(&config_toml).unwrap();
    let server = cimdgate_server::serve(config, listener).await.unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let resource = format!("{base}/mcp");
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER.as_bytes()));

    // Warm the document cache through the real endpoint.
    let authorize = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&state=s1&code_challenge={}&code_challenge_method=S256&resource={}&scope=mcp",
        enc(&public_id),
        enc(REDIRECT),
        challenge,
        enc(&resource)
    );
    let authorize_pkjwt = authorize.replace(&enc(&public_id), &enc(&pkjwt_id));
    let http = reqwest::Client::new();
    for path in [&authorize, &authorize_pkjwt] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert!(
            r.status().is_success(),
            "warm-up /authorize: {}",
            r.status()
        );
    }
    std::fs::write(out.join("authorize.path"), &authorize).unwrap();
    std::fs::write(out.join("authorize_pkjwt.path"), &authorize_pkjwt).unwrap();

    // Single-use inputs: client assertions (codes come from real flows, see the module doc).
    {
        let token_endpoint = format!("{base}/token");
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(out.join("assertions.txt")).unwrap());
        for _ in 0..n {
            let mut claims = keys::claims(&pkjwt_id, &token_endpoint, SystemTime::now());
            claims["exp"] = serde_json::json!(keys::unix(SystemTime::now()) + 280);
            writeln!(f, "{}", key.sign(&claims)).unwrap();
        }
    }
    std::fs::write(
        out.join("env.sh"),
        format!(
            "export CIMDGATE_PORT={port}\nexport PUBLIC_CLIENT_ID='{}'\nexport PKJWT_CLIENT_ID='{}'\nexport REDIRECT_URI='{}'\nexport CODE_VERIFIER='{VERIFIER}'\nexport RESOURCE='{}'\nexport BENCH_DIR='{}'\nexport BENCH_USER='{USER}'\nexport BENCH_PASSWORD='{PASSWORD}'\n",
            enc(&public_id),
            enc(&pkjwt_id),
            enc(REDIRECT),
            enc(&resource),
            out.display()
        ),
    )
    .unwrap();
    println!("READY {port}");
    let _ = tokio::signal::ctrl_c().await;
    drop(host);
    server.shutdown().await;
}

/// `--join OUT_DIR`: one more instance with the first one's configuration (shared Redis).
async fn join(out: &std::path::Path) {
    let config_toml = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let config = Config::from_toml(&config_toml).unwrap();
    assert!(
        config.store.url.starts_with("redis"),
        "--join needs the first instance on BENCH_STORE_URL=redis://…: an embedded store \
         cannot be shared by two processes"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = cimdgate_server::serve(config, listener).await.unwrap();
    let authorize = std::fs::read_to_string(out.join("authorize.path")).unwrap();
    let r = reqwest::get(format!("http://127.0.0.1:{port}{}", authorize.trim()))
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "warm-up /authorize: {}",
        r.status()
    );
    println!("READY {port}");
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
}

/// Percent-encode a query value (RFC 3986 unreserved characters kept).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

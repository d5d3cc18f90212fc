//! Proxy environment variables are ignored (docs/architecture.md, *Fetching (SSRF-safe)*).
//!
//! Environment variables are process-global, so this lives in its own test binary with a
//! single test.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use cimd::fetch::{FetchConfig, FetchRequest, Fetcher};
use cimdgate_test_support::{HttpsHost, TcpProbe, TestCa};

#[tokio::test]
async fn proxy_environment_variables_are_ignored() {
    let ca = TestCa::new();
    let router = Router::new().route(
        "/doc",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{}") }),
    );
    let host = HttpsHost::start(&ca, &["cimd.test"], router).await;
    let proxy = TcpProbe::start().await;
    let proxy_url = format!("http://{}", proxy.addr());
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        // SAFETY: this binary runs exactly one test and sets the variables before any thread
        // that could read them is created by the code under test.
        unsafe { std::env::set_var(var, &proxy_url) };
    }
    // SAFETY: as above.
    unsafe { std::env::set_var("NO_PROXY", "") };

    // Control: a default reqwest client honours the variables and goes to the probe.
    let control = reqwest::Client::builder()
        .resolve("cimd.test", host.addr())
        .tls_certs_merge([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap()])
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let _ = control.get(host.url("cimd.test", "/doc")).send().await;
    assert!(
        proxy.connections() >= 1,
        "control: the proxy variables must be effective"
    );
    let before = proxy.connections();

    let fetcher = Fetcher::new(FetchConfig {
        connect_timeout: Duration::from_secs(1),
        total_timeout: Duration::from_secs(2),
        dev_allow_loopback: true,
        extra_ca_pem: vec![ca.cert_pem().as_bytes().to_vec()],
        resolve: HashMap::from([("cimd.test".to_string(), IpAddr::V4(Ipv4Addr::LOCALHOST))]),
        ..FetchConfig::default()
    })
    .unwrap();
    let url = host.url("cimd.test", "/doc");
    let resp = fetcher.fetch(&FetchRequest::new(&url, 5120)).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        proxy.connections(),
        before,
        "the fetcher must not use the proxy"
    );
    assert_eq!(host.hits("/doc"), 1, "the fetcher went direct");
}

//! Smoke tests for the fixtures themselves.
use std::net::{IpAddr, Ipv4Addr};

use axum::routing::get;
use cimdgate_test_support::{DnsServer, HttpsHost, TestCa, install_crypto_provider};

#[tokio::test]
async fn https_host_serves_router_with_test_ca_cert() {
    install_crypto_provider();
    let ca = TestCa::new();
    let host = HttpsHost::start(
        &ca,
        &["cimd.test"],
        axum::Router::new().route("/doc", get(|| async { "hi" })),
    )
    .await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .resolve("cimd.test", host.addr())
        .tls_certs_merge([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let body = client
        .get(host.url("cimd.test", "/doc"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hi");
    assert_eq!(host.requests(), 1);
    assert_eq!(host.hits("/doc"), 1);
    assert_eq!(host.hits("/other"), 0);
    assert!(host.connections() >= 1);
}

#[test]
fn test_ca_issues_pem_chain_and_key() {
    let ca = TestCa::new();
    let (chain, key) = ca.issue(&["a.test", "127.0.0.1"]);
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(chain.ends_with(ca.cert_pem()));
    assert!(key.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn dns_server_answers_from_table() {
    let dns = DnsServer::start(vec![("a.test", IpAddr::V4(Ipv4Addr::LOCALHOST))]).await;
    // Minimal hand-made query for a.test A (id 0x1234, RD).
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q, dns.addr()).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[0..2], &[0x12, 0x34]);
    assert_eq!(buf[3] & 0x0f, 0, "NOERROR");
    assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 1, "one answer");
    assert_eq!(&buf[n - 4..n], &[127, 0, 0, 1]);
    assert_eq!(dns.queries(), 1);
}

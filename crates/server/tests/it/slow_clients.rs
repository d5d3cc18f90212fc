//! Slow clients cannot hold connections (slowloris): headers must arrive within
//! `limits.header_read_timeout_secs` of the connection opening or falling idle, and a request
//! body may not pause longer than `limits.body_idle_timeout_secs`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestEnv;

async fn one_second_limits() -> TestEnv {
    TestEnv::start_with(|c| {
        c.limits.header_read_timeout_secs = 1;
        c.limits.body_idle_timeout_secs = 1;
    })
    .await
}

/// Read until the server closes the connection or `within` passes; everything read, and
/// whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&seen).into(), false)
}

/// A client that sends one header line at a time, never finishing, is cut off once the header
/// timeout passes, although it keeps sending.
#[tokio::test]
async fn trickled_headers_are_cut_off() {
    let env = one_second_limits().await;
    let mut stream = TcpStream::connect(env.server().addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if stream
            .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut probe = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a connection trickling headers for 4 s is still open"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "closed only after {took:?} (limit 1 s)"
    );
    // The server itself is fine.
    let status = crate::common::http_client()
        .get(env.url("/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// A keep-alive connection that falls silent after a response is closed too.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let env = one_second_limits().await;
    let mut stream = TcpStream::connect(env.server().addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (seen, closed) = read_until_closed(&mut stream, Duration::from_secs(4)).await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(closed, "an idle connection is still open after 4 s");
}

/// A body that stops half-way fails the request with a 4xx once it pauses past the limit; the
/// handler does not wait forever.
#[tokio::test]
async fn a_stalled_body_fails_the_request() {
    let env = one_second_limits().await;
    let mut stream = TcpStream::connect(env.server().addr).await.unwrap();
    stream
        .write_all(
            b"POST /token HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n\
              grant_type=",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (seen, _) = read_until_closed(&mut stream, Duration::from_secs(4)).await;
    let status: u16 = seen
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no response within 4 s: {seen:?}"));
    assert!(
        (400..500).contains(&status),
        "a stalled body is the client's fault: {seen}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

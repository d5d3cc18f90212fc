//! Review finding L3 (no HTTP timeouts) through the binary: many connections that trickle their
//! headers, bodies that stall, and bodies that trickle without ever pausing long — all cut off,
//! while a normal client keeps getting quick answers.
//!
//! Fails if: a slow connection is still open well after its limit, a normal `/healthz` takes
//! longer than a second meanwhile, or anything answers 5xx / panics.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Gate, Setup, body, status_of};

/// `[limits]` for this test: two seconds for headers, two seconds of body silence, six seconds
/// for a whole request on the authorization server's routes.
const LIMITS: &str = "[limits]\nheader_read_timeout_secs = 2\nbody_idle_timeout_secs = 2\n\
                      request_timeout_secs = 6\n";

/// Slow connections of each kind.
const SLOW: usize = 40;

/// How a slow connection ended.
#[derive(Debug)]
struct Ended {
    /// Seconds from the first byte to the close (None: still open when we gave up).
    after: Option<f64>,
    /// The status of the answer, if any (0: closed without one).
    status: u16,
}

/// Send `head`, then `piece` every `every` for at most `max_pieces`; stop when the server
/// closes the connection or answers. Bounded: `max_pieces` × `every`.
async fn trickle(
    addr: std::net::SocketAddr,
    head: Vec<u8>,
    piece: &'static [u8],
    every: Duration,
    max_pieces: usize,
) -> Ended {
    let started = Instant::now();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Ended {
            after: Some(0.0),
            status: 0,
        };
    };
    if s.write_all(&head).await.is_err() {
        return Ended {
            after: Some(started.elapsed().as_secs_f64()),
            status: 0,
        };
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..max_pieces {
        // Read for `every`: an answer or a close ends the attack.
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Ended {
                    after: Some(started.elapsed().as_secs_f64()),
                    status: status_of(&String::from_utf8_lossy(&seen)),
                };
            }
            Ok(Ok(n)) => {
                // An answer ends the request (the connection then falls under the idle limit).
                seen.extend_from_slice(&buf[..n]);
                return Ended {
                    after: Some(started.elapsed().as_secs_f64()),
                    status: status_of(&String::from_utf8_lossy(&seen)),
                };
            }
            Err(_) => {}
        }
        if s.write_all(piece).await.is_err() {
            return Ended {
                after: Some(started.elapsed().as_secs_f64()),
                status: status_of(&String::from_utf8_lossy(&seen)),
            };
        }
    }
    Ended {
        after: None,
        status: status_of(&String::from_utf8_lossy(&seen)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_bodies_are_cut_off_while_others_are_served() {
    let mut gate = Gate::start(Setup {
        server: "",
        body: body("", LIMITS),
        env: vec![],
    })
    .await;
    let addr = gate.addr;
    let host = format!("Host: {addr}\r\n");

    let mut attacks = Vec::new();
    // Headers, one line every 500 ms (never finished).
    for _ in 0..SLOW {
        let head = format!("GET /healthz HTTP/1.1\r\n{host}").into_bytes();
        attacks.push((
            "headers",
            tokio::spawn(trickle(
                addr,
                head,
                b"X-Slow: a\r\n",
                Duration::from_millis(500),
                40,
            )),
        ));
    }
    // A body that stops: 100 bytes announced, 10 sent, then silence.
    for _ in 0..SLOW {
        let head = format!(
            "POST /token HTTP/1.1\r\n{host}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 100\r\n\r\ngrant_type"
        )
        .into_bytes();
        attacks.push((
            "stalled body",
            tokio::spawn(trickle(addr, head, b"", Duration::from_secs(20), 1)),
        ));
    }
    // A body that trickles one byte every 500 ms (never pausing past the idle limit).
    for _ in 0..SLOW {
        let head = format!(
            "POST /token HTTP/1.1\r\n{host}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 60000\r\n\r\ngrant_type="
        )
        .into_bytes();
        attacks.push((
            "trickled body",
            tokio::spawn(trickle(addr, head, b"a", Duration::from_millis(500), 40)),
        ));
    }

    // Meanwhile a normal client is answered quickly, again and again.
    let served = Arc::new(AtomicUsize::new(0));
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        slowest = slowest.max(gate.healthz_within(Duration::from_secs(1)).await);
        served.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut report = Vec::new();
    for (kind, task) in attacks {
        let ended = task.await.unwrap();
        let limit = match kind {
            // header_read_timeout plus scheduling slack.
            "headers" => 5.0,
            // body_idle_timeout plus slack.
            "stalled body" => 5.0,
            // request_timeout plus slack.
            _ => 10.0,
        };
        let after = ended
            .after
            .unwrap_or_else(|| panic!("a {kind} connection was still open after 20 s"));
        assert!(after < limit, "a {kind} connection lasted {after:.1} s");
        assert!(
            ended.status < 500,
            "a {kind} connection got a {} answer",
            ended.status
        );
        report.push((kind, after, ended.status));
    }
    let worst = |kind: &str| {
        report
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, a, _)| *a)
            .fold(0.0f64, f64::max)
    };
    println!(
        "slow clients: {SLOW} each of trickled headers (closed ≤ {:.1} s), stalled bodies \
         (≤ {:.1} s), trickled bodies (≤ {:.1} s); {} normal requests meanwhile, slowest {:?}",
        worst("headers"),
        worst("stalled body"),
        worst("trickled body"),
        served.load(Ordering::SeqCst),
        slowest
    );
    gate.assert_healthy();
}

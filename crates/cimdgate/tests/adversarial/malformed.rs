//! Garbage at every public endpoint, as raw bytes on the wire: broken and invalid-UTF-8 query
//! strings, repeated and absurd parameters, form / JSON bodies that do not parse, deep JSON,
//! bodies over the limit, invalid UTF-8 bodies, wrong content types, bad chunked framing,
//! forged cookies and bearer tokens. Every answer must be a 4xx (or a 2xx/3xx where the
//! endpoint ignores the junk), never a 5xx, never a dropped connection, never a panic.
//!
//! Client ids that name a host resolve through a local fake DNS server that knows no names, so
//! nothing leaves 127.0.0.1.
//!
//! Fails if: any request gets a 5xx or no answer, the server's stderr shows a panic, or the
//! server stops answering `/healthz`.

use std::sync::Arc;
use std::time::Duration;

use cimdgate_test_support::{DnsServer, TestCa};

use crate::harness::{Gate, Setup, Tally, body, fetch_hooks, raw, write_ca};

/// One request: method, target (raw bytes), extra header lines, body.
struct Req {
    method: &'static str,
    target: Vec<u8>,
    headers: Vec<String>,
    body: Vec<u8>,
    /// Send the body as given (framing included) instead of adding `Content-Length`.
    raw_framing: bool,
}

fn req(method: &'static str, target: impl Into<Vec<u8>>) -> Req {
    Req {
        method,
        target: target.into(),
        headers: Vec::new(),
        body: Vec::new(),
        raw_framing: false,
    }
}

impl Req {
    fn header(mut self, h: impl Into<String>) -> Req {
        self.headers.push(h.into());
        self
    }
    fn body(mut self, content_type: &str, b: impl Into<Vec<u8>>) -> Req {
        self.headers.push(format!("Content-Type: {content_type}"));
        self.body = b.into();
        self
    }
    fn bytes(&self, host: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n").as_bytes(),
        );
        for h in &self.headers {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !self.raw_framing {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Query strings no endpoint should choke on.
fn bad_queries() -> Vec<Vec<u8>> {
    let long = "a".repeat(6000);
    let mut q: Vec<Vec<u8>> = [
        "?".to_owned(),
        "?%".to_owned(),
        "?%ZZ=%G1".to_owned(),
        "?a=%FF%FE%00".to_owned(),
        "?=&=&&==".to_owned(),
        "?client_id=%00&redirect_uri=%0d%0aSet-Cookie:x".to_owned(),
        "?response_type=code&response_type=token".to_owned(),
        "?response_type=code&client_id=https://&redirect_uri=javascript:alert(1)".to_owned(),
        "?response_type=code&client_id=https://nowhere.test/c.json&redirect_uri=http://127.0.0.1/cb&code_challenge=x&code_challenge_method=S256".to_owned(),
        "?response_type=code&client_id=https://127.0.0.1:1/c.json&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=plain".to_owned(),
        "?response_type=code&client_id=dcr_nope&redirect_uri=http://127.0.0.1/cb".to_owned(),
        "?client_id=https://a.test/../../etc/passwd&redirect_uri=file:///etc/passwd".to_owned(),
        format!("?client_id=https://{long}.test/c.json"),
        format!("?state={long}&nonce={long}"),
        "?scope=%F0%9F%92%A9%E2%80%AE&resource=%E2%80%8B".to_owned(),
        "?request=eyJhbGciOiJub25lIn0.e30.&request_uri=urn:x".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    // Raw bytes that are not UTF-8 at all (not percent-encoded).
    q.push(b"?client_id=\xff\xfe\x80&state=\xc3\x28".to_vec());
    q
}

/// Bodies for POST endpoints: (content type, body).
fn bad_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    vec![
        ("application/x-www-form-urlencoded", b"%%%&&==%G0".to_vec()),
        ("application/x-www-form-urlencoded", b"grant_type=authorization_code&code=x&code=y&redirect_uri=%00".to_vec()),
        ("application/x-www-form-urlencoded", b"grant_type=refresh_token&refresh_token=\xff\xfe".to_vec()),
        ("application/x-www-form-urlencoded", b"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=a.b.c".to_vec()),
        ("application/x-www-form-urlencoded", b"grant_type=authorization_code&code=x&client_id=https://nowhere.test/c.json&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.".to_vec()),
        ("application/x-www-form-urlencoded", b"step=login&csrf=x&pending=\xff&username=alice&password=x".to_vec()),
        ("application/x-www-form-urlencoded", b"step=consent&decision=approve&csrf=&pending=AAAA".to_vec()),
        ("application/x-www-form-urlencoded", b"token=x&token_type_hint=refresh_token&token=y".to_vec()),
        ("application/x-www-form-urlencoded", vec![b'a'; 200 * 1024]),
        ("application/json", b"{\"redirect_uris\":".to_vec()),
        ("application/json", b"{\"redirect_uris\":[\"javascript:alert(1)\"],\"client_name\":\"\xe2\x80\xae\"}".to_vec()),
        ("application/json", b"{\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"client_name\":\"\xff\xfe\"}".to_vec()),
        ("application/json", b"{\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"jwks\":{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]},\"token_endpoint_auth_method\":\"private_key_jwt\"}".to_vec()),
        ("application/json", b"{\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"grant_types\":{},\"scope\":7,\"client_uri\":[]}".to_vec()),
        ("application/json", deep.into_bytes()),
        ("application/json", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}".to_vec()),
        ("application/json", b"\x00\x01\x02\x03".to_vec()),
        ("text/plain", b"hello".to_vec()),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--".to_vec()),
        ("application/x-www-form-urlencoded; charset=utf-16", b"\xff\xfeg\x00r\x00".to_vec()),
    ]
}

/// Headers that a forger would send: cookies, tokens, origins.
fn bad_headers() -> Vec<String> {
    vec![
        "Authorization: Bearer".into(),
        "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.".into(),
        "Authorization: Bearer eyJhbGciOiJIUzI1NiIsImtpZCI6IjEifQ.e30.AAAA".into(),
        format!("Authorization: Bearer {}", "A".repeat(7000)),
        "Authorization: Basic !!!notbase64".into(),
        "Authorization: Basic Og==".into(),
        "Cookie: cimdgate_session=garbage; __Host-cimdgate_session=AAAA; cimdgate_browser=%FF"
            .into(),
        format!("Cookie: cimdgate_browser={}", "B".repeat(7000)),
        "Origin: null".into(),
        "Sec-Fetch-Site: cross-site".into(),
        "X-Forwarded-For: not-an-ip, ::ffff:999.1.1.1, [::1]:80".into(),
        "Accept: application/json".into(),
    ]
}

/// Broken framing on POST /token.
fn bad_framing(path: &str) -> Vec<Req> {
    let mut out = Vec::new();
    for (headers, body) in [
        (
            "Transfer-Encoding: chunked",
            b"zz\r\nabc\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding: chunked",
            b"ffffffffffffffffff\r\nabc\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 3",
            b"3\r\nabc\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Content-Length: 3\r\nContent-Length: 7",
            b"abcdefg".to_vec(),
        ),
        ("Content-Length: -1", Vec::new()),
        ("Content-Length: 99999999999999999999", Vec::new()),
        ("Content-Length: 10", b"abc".to_vec()),
    ] {
        let mut r = req("POST", path).header(headers);
        r.headers
            .push("Content-Type: application/x-www-form-urlencoded".into());
        r.body = body;
        r.raw_framing = true;
        out.push(r);
    }
    out
}

fn all_requests() -> Vec<Req> {
    let get_paths = [
        "/authorize",
        "/logout",
        "/upstream/callback",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/jwks.json",
        "/mcp",
        "/healthz",
        "/readyz",
    ];
    let post_paths = [
        "/authorize",
        "/token",
        "/register",
        "/revoke",
        "/logout",
        "/mcp",
    ];
    let mut out = Vec::new();
    for p in get_paths {
        for q in bad_queries() {
            let mut target = p.as_bytes().to_vec();
            target.extend_from_slice(&q);
            out.push(req("GET", target));
        }
    }
    for p in post_paths {
        for (ct, b) in bad_bodies() {
            out.push(req("POST", p).body(ct, b));
        }
        for h in bad_headers() {
            out.push(
                req("POST", p)
                    .header(h)
                    .body("application/x-www-form-urlencoded", b"a=b".to_vec()),
            );
        }
        out.extend(bad_framing(p));
    }
    for p in get_paths {
        for h in bad_headers() {
            out.push(req("GET", p).header(h));
        }
    }
    // Odd methods, odd targets.
    for (m, t) in [
        ("DELETE", "/token"),
        ("PUT", "/authorize"),
        ("OPTIONS", "/mcp"),
        ("PATCH", "/register"),
        ("GET", "/mcp/%00"),
        ("GET", "/%2e%2e/%2e%2e/etc/passwd"),
        ("GET", "//authorize"),
        ("GET", "/authorize/"),
        ("GET", "/.well-known/oauth-protected-resource/%ff%fe"),
        ("GET", "/.well-known/oauth-authorization-server/../../x"),
    ] {
        out.push(req(m, t));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_at_every_endpoint_never_5xx_or_panic() {
    let ca = TestCa::new();
    // Knows no names: every client_id host is NXDOMAIN, answered on 127.0.0.1.
    let dns = DnsServer::start(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_ca(dir.path(), ca.cert_pem());
    let fetch = fetch_hooks(&ca_file, &[], &format!("dns_server = \"{}\"", dns.addr()));
    let mut gate = Gate::start(Setup {
        server: "",
        // A short body pause limit: the truncated bodies are answered within the test.
        body: body(&fetch, "[limits]\nbody_idle_timeout_secs = 2\n"),
        env: vec![],
    })
    .await;
    let host = gate.addr.to_string();
    let requests: Vec<Vec<u8>> = all_requests().iter().map(|r| r.bytes(&host)).collect();
    let total = requests.len();
    let requests = Arc::new(requests);
    let tally = Tally::default();
    let failures: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (requests, tally, failures, next, addr) = (
            requests.clone(),
            tally.clone(),
            failures.clone(),
            next.clone(),
            gate.addr,
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(bytes) = requests.get(i) else { return };
                let (status, text) = raw(addr, bytes, Duration::from_secs(15)).await;
                tally.add(status);
                if status == 0 || status >= 500 {
                    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(160)]);
                    failures.lock().unwrap().push(format!(
                        "{status} for {head:?}: {}",
                        text.chars().take(300).collect::<String>()
                    ));
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    println!(
        "malformed sweep: {total} requests, statuses {:?}",
        tally.counts()
    );
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} bad answers:\n{}",
        failures.len(),
        failures.join("\n")
    );
    gate.healthz_within(Duration::from_secs(1)).await;
    gate.assert_healthy();
}

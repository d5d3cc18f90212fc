//! # cimdgate-test-support — shared test fixtures
//!
//! Fixtures every cimdgate test uses instead of re-inventing them. All of them listen on
//! `127.0.0.1:0` only: tests never send traffic to a non-loopback address.
//!
//! | fixture | what it is |
//! |---|---|
//! | [`TestCa`] | a throw-away certificate authority (rcgen, aws-lc-rs) that issues leaf certs |
//! | [`HttpsHost`] | a real HTTPS server (axum-server + rustls) serving an [`axum::Router`], counting connections and requests |
//! | [`DnsServer`] | a tiny UDP DNS server answering `A`/`AAAA` from a fixed table, counting queries |
//! | [`TcpProbe`] | a plain TCP listener that only counts connection attempts (e.g. a fake proxy) |
//! | [`RedisServer`] | a private `redis-server` on a free loopback port |
//! | [`RedisCluster`] | a real local Redis Cluster: three masters (plus three replicas for failover tests) |
//! | [`RedisSentinel`] | a real local Sentinel setup: master, replica, three Sentinels (quorum 2) |
//! | [`config`] | the TOML of a test installation, and a cheap argon2id password hash |
//! | [`node`] | `npm ci` once per fixture and a deadline-bounded runner for node scripts |
//! | [`keys`] | signing keys (ES256/RS256/EdDSA…) with their public JWKs, and client-assertion claims |
//!
//! Call [`install_crypto_provider`] if a test builds rustls configs through a path that relies on
//! the process-wide default provider; the fixtures here pass the aws-lc-rs provider explicitly.
#![warn(missing_docs)]
#![allow(clippy::expect_used, clippy::unwrap_used)] // test fixtures: failing loudly is the point

pub mod config;
pub mod keys;
pub mod node;
mod redis_cluster;
mod redis_node;
mod redis_sentinel;
mod redis_server;
pub use redis_cluster::{CLUSTER_NODE_TIMEOUT_MS, RedisCluster};
pub use redis_sentinel::{RedisSentinel, SENTINEL_DOWN_AFTER_MS, SENTINEL_SERVICE};
pub use redis_server::RedisServer;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// Installs the aws-lc-rs rustls [`rustls::crypto::CryptoProvider`] as the process default.
///
/// Idempotent: a second call (or a provider installed by someone else) is not an error.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A throw-away certificate authority for tests.
///
/// Give [`TestCa::cert_pem`] to the client under test as an extra trust root
/// (e.g. `FetchConfig::extra_ca_pem`) and let [`HttpsHost`] present certificates from
/// [`TestCa::issue`].
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// Creates a new self-signed CA (ECDSA P-256 via aws-lc-rs).
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "cimdgate test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca self-sign");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate in PEM form (a trust root for clients).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for `dns_names` (IP literals become IP SANs).
    ///
    /// Returns `(certificate chain PEM, PKCS#8 private key PEM)`; the chain is the leaf followed by
    /// the CA certificate.
    pub fn issue(&self, dns_names: &[&str]) -> (String, String) {
        let (params, key) = leaf_params(dns_names);
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        (
            format!("{}{}", cert.pem(), self.cert_pem),
            key.serialize_pem(),
        )
    }

    /// Issues a server certificate and returns `(leaf DER, PKCS#8 key DER)`.
    fn issue_der(&self, dns_names: &[&str]) -> (CertificateDer<'static>, Vec<u8>) {
        let (params, key) = leaf_params(dns_names);
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        (cert.der().clone(), key.serialize_der())
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

fn leaf_params(dns_names: &[&str]) -> (CertificateParams, KeyPair) {
    let names: Vec<String> = dns_names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.distinguished_name.push(
        DnType::CommonName,
        dns_names.first().copied().unwrap_or("leaf"),
    );
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    (params, KeyPair::generate().expect("leaf key"))
}

/// Connection and request counters shared between a server task and the test.
#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    requests: AtomicUsize,
    hits: Mutex<HashMap<String, usize>>,
}

/// An axum-server acceptor that counts accepted TCP connections before the TLS handshake.
#[derive(Clone)]
struct CountingAcceptor(Arc<Counters>);

impl<S> Accept<TcpStream, S> for CountingAcceptor {
    type Stream = TcpStream;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(TcpStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        self.0.connections.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok((stream, service)))
    }
}

async fn count_requests(State(c): State<Arc<Counters>>, req: Request, next: Next) -> Response {
    c.requests.fetch_add(1, Ordering::SeqCst);
    *c.hits
        .lock()
        .expect("hits lock")
        .entry(req.uri().path().to_string())
        .or_default() += 1;
    next.run(req).await
}

/// A real HTTPS server on `127.0.0.1:<random port>` serving an axum [`axum::Router`].
///
/// The certificate is issued by the given [`TestCa`] for `names` plus `127.0.0.1`; HTTP/1.1 and
/// HTTP/2 are offered via ALPN. Every accepted TCP connection and every request is counted, so
/// tests can prove that a rejected fetch never connected ([`HttpsHost::connections`]) or that a
/// redirect target was never requested ([`HttpsHost::hits`]). The server shuts down on drop.
pub struct HttpsHost {
    addr: SocketAddr,
    counters: Arc<Counters>,
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<()>,
}

impl HttpsHost {
    /// Starts the server; returns once it is listening.
    pub async fn start(ca: &TestCa, names: &[&str], router: axum::Router) -> HttpsHost {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        Self::start_on(ca, names, router, listener).await
    }

    /// Like [`HttpsHost::start`], on a listener the test bound itself: a real client's
    /// document is served at its real `client_id` (`https://claude.ai/...`, port 443) by
    /// binding `127.x.y.z:443` with [`bind_loopback_443`] and mapping the name to that address
    /// with the fetcher's `resolve` hook. The certificate also names the listener's IP.
    pub async fn start_on(
        ca: &TestCa,
        names: &[&str],
        router: axum::Router,
        listener: std::net::TcpListener,
    ) -> HttpsHost {
        let ip = listener.local_addr().expect("local addr").ip().to_string();
        let mut all: Vec<&str> = names.to_vec();
        if !all.contains(&"127.0.0.1") {
            all.push("127.0.0.1");
        }
        if !all.contains(&ip.as_str()) {
            all.push(ip.as_str());
        }
        let (leaf, key) = ca.issue_der(&all);
        let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(ca.cert_pem().as_bytes())
            .expect("ca pem");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf, ca_der],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .expect("server cert");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let counters = Arc::new(Counters::default());
        let router = router.layer(axum::middleware::from_fn_with_state(
            counters.clone(),
            count_requests,
        ));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let handle = axum_server::Handle::new();
        let acceptor = RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(config)))
            .acceptor(CountingAcceptor(counters.clone()));
        let server = axum_server::from_tcp(listener)
            .expect("from_tcp")
            .acceptor(acceptor)
            .handle(handle.clone());
        let task = tokio::spawn(async move {
            let _ = server.serve(router.into_make_service()).await;
        });
        handle.listening().await.expect("server listening");
        HttpsHost {
            addr,
            counters,
            handle,
            task,
        }
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The listening address (`127.0.0.1:<port>` unless started with [`HttpsHost::start_on`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://{host}:{port}{path}`; `path` should start with `/`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port())
    }

    /// Number of TCP connections accepted so far (counted before the TLS handshake).
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Number of HTTP requests that reached the router so far.
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// Number of requests for exactly this path (without query).
    pub fn hits(&self, path: &str) -> usize {
        self.counters
            .hits
            .lock()
            .expect("hits lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for HttpsHost {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.task.abort();
    }
}

/// Binds port 443 on a fresh loopback address `127.x.y.z` (the whole `127.0.0.0/8` reaches
/// the loopback interface on Linux), so a test can serve a document at a real client's
/// portless `https://` URL without clashing with other tests or other runs: `x.y.z` is random
/// and an address in use is skipped. Port 443 needs root or `CAP_NET_BIND_SERVICE` (or
/// `sysctl net.ipv4.ip_unprivileged_port_start=443`); the panic message says so.
pub fn bind_loopback_443() -> std::net::TcpListener {
    use std::io::ErrorKind;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    for attempt in 0..64u32 {
        let n = seed
            .wrapping_mul(2_654_435_761)
            .wrapping_add(attempt.wrapping_mul(40_503));
        let [_, b, c, d] = n.to_be_bytes();
        // Keep clear of 127.0.0.x (other fixtures) and of .0/.255.
        let ip = Ipv4Addr::new(127, b.max(1), c, d.clamp(1, 254));
        match std::net::TcpListener::bind((ip, 443)) {
            Ok(l) => return l,
            Err(e) if e.kind() == ErrorKind::AddrInUse => continue,
            Err(e) => panic!(
                "cannot bind {ip}:443 to serve a client document at its real https URL: {e} \
                 (run as root, grant CAP_NET_BIND_SERVICE, or set \
                 net.ipv4.ip_unprivileged_port_start=443)"
            ),
        }
    }
    panic!("no free 127.x.y.z:443 after 64 attempts");
}

/// A tiny authoritative UDP DNS server on `127.0.0.1:<random port>`.
///
/// Answers `A` and `AAAA` queries from a fixed table (several answers per name allowed; names are
/// matched case-insensitively, trailing dot ignored). A known name without a record of the asked
/// type gets an empty `NOERROR` (NODATA) answer; unknown names get `NXDOMAIN`. Every received
/// query is counted ([`DnsServer::queries`]). Shuts down on drop.
pub struct DnsServer {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Starts the server with `records` as `(name, address)` pairs.
    pub async fn start(records: Vec<(&str, IpAddr)>) -> DnsServer {
        let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, ip) in records {
            table.entry(normalise_name(name)).or_default().push(ip);
        }
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind udp");
        let addr = socket.local_addr().expect("udp addr");
        let queries = Arc::new(AtomicUsize::new(0));
        let counter = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                if let Ok(bytes) = answer(&table, &request).to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        DnsServer {
            addr,
            queries,
            task,
        }
    }

    /// The UDP address to configure as the resolver's name server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of DNS queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn answer(table: &HashMap<String, Vec<IpAddr>>, request: &Message) -> Message {
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    let name = normalise_name(&query.name().to_ascii());
    let Some(ips) = table.get(&name) else {
        response.metadata.response_code = ResponseCode::NXDomain;
        return response;
    };
    for ip in ips {
        let rdata = match (query.query_type(), ip) {
            (RecordType::A, IpAddr::V4(v4)) => RData::A(A(*v4)),
            (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        response.add_answer(Record::from_rdata(query.name().clone(), 60, rdata));
    }
    response
}

/// A plain TCP listener on `127.0.0.1:<random port>` that counts and immediately drops every
/// connection. Use it as a fake proxy or a "must never be contacted" target.
pub struct TcpProbe {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TcpProbe {
    /// Starts the listener.
    pub async fn start() -> TcpProbe {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind tcp");
        let addr = listener.local_addr().expect("tcp addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        TcpProbe {
            addr,
            connections,
            task,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

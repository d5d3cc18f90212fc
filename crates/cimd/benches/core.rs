//! Criterion benchmarks for the core library's hot paths (figures in `docs/benchmarks.md`):
//! document parse + validate, the IP policy check, a cached resolver lookup, and
//! `private_key_jwt` assertion verification (ES256, EdDSA, RS256), with cached keys and with
//! the JWK parsed on every call.
//!
//! Run: `cargo bench -p cimd --bench core`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cimdgate_test_support::keys;

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;

use cimd::ClientIdUrl;
use cimd::assertion::{AssertionConfig, AssertionVerifier, ClientKeys, MemoryReplayStore};
use cimd::cache::{CacheConfig, Resolver};
use cimd::document::{Profile, validate_document};
use cimd::fetch::{FetchConfig, Fetcher};
use cimd::ip::IpPolicy;
use cimdgate_test_support::{HttpsHost, TestCa};
use keys::{TestKey, claims, jwk_set};

const TOKEN_ENDPOINT: &str = "https://as.example.com/token";

/// A realistic ~1 KB document: several redirect URIs, URLs, contacts and scopes.
fn typical_document() -> (String, ClientIdUrl) {
    let id = "https://agent.example.com/oauth/client-metadata.json";
    let doc = serde_json::json!({
        "client_id": id,
        "client_name": "Example Agent for Benchmarks",
        "client_uri": "https://agent.example.com/",
        "logo_uri": "https://agent.example.com/static/logo-256.png",
        "tos_uri": "https://agent.example.com/legal/terms",
        "policy_uri": "https://agent.example.com/legal/privacy",
        "redirect_uris": [
            "http://127.0.0.1/callback",
            "http://localhost/callback",
            "http://[::1]/callback",
            "https://agent.example.com/oauth/callback",
            "https://agent.example.com/oauth/callback/secondary",
            "com.example.agent:/oauth/callback"
        ],
        "grant_types": ["authorization_code", "refresh_token",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "mcp mcp:tools mcp:resources mcp:prompts offline_access",
        "contacts": ["security@agent.example.com", "oauth-admin@agent.example.com"],
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.14.3",
        "application_type": "native",
        "x_vendor_extension": {"feature_flags": ["a", "b", "c"], "build": "2026.11.20-1"}
    })
    .to_string();
    (doc, ClientIdUrl::parse(id).unwrap())
}

fn bench_document(c: &mut Criterion) {
    let (doc, id) = typical_document();
    assert!(
        (900..=1300).contains(&doc.len()),
        "document is {} bytes",
        doc.len()
    );
    validate_document(doc.as_bytes(), Some(&id), Profile::Mcp).expect("valid");
    c.bench_function(&format!("document_parse_validate_{}B", doc.len()), |b| {
        b.iter(|| validate_document(black_box(doc.as_bytes()), Some(&id), Profile::Mcp).unwrap())
    });
    c.bench_function("client_id_parse", |b| {
        b.iter(|| ClientIdUrl::parse(black_box(id.as_str())).unwrap())
    });
}

fn bench_ip_policy(c: &mut Criterion) {
    let policy = IpPolicy {
        allow_loopback: false,
    };
    let cases: [(&str, IpAddr); 4] = [
        ("ipv4_public", "93.184.216.34".parse().unwrap()),
        ("ipv4_private", "10.1.2.3".parse().unwrap()),
        ("ipv6_public", "2606:4700:4700::1111".parse().unwrap()),
        ("ipv6_nat64_embedded", "64:ff9b::7f00:1".parse().unwrap()),
    ];
    let mut group = c.benchmark_group("ip_policy_check");
    for (name, ip) in cases {
        group.bench_function(name, |b| b.iter(|| policy.check(black_box(ip))));
    }
    group.finish();
}

fn bench_cached_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let body = Arc::new(std::sync::Mutex::new(String::new()));
    let served = body.clone();
    let router = Router::new().route(
        "/client.json",
        get(move || {
            let text = served.lock().unwrap().clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "max-age=3600"),
                    ],
                    text,
                )
            }
        }),
    );
    let ca = TestCa::new();
    let host = rt.block_on(HttpsHost::start(&ca, &["cimd.test"], router));
    let url = host.url("cimd.test", "/client.json");
    *body.lock().unwrap() = serde_json::json!({
        "client_id": url, "client_name": "Bench", "redirect_uris": ["http://127.0.0.1/cb"]
    })
    .to_string();
    let fetcher = Fetcher::new(FetchConfig {
        dev_allow_loopback: true,
        extra_ca_pem: vec![ca.cert_pem().as_bytes().to_vec()],
        resolve: HashMap::from([("cimd.test".to_owned(), "127.0.0.1".parse().unwrap())]),
        ..FetchConfig::default()
    })
    .unwrap();
    let resolver = Resolver::in_memory(Arc::new(fetcher), CacheConfig::default(), Profile::Mcp);
    let id = ClientIdUrl::parse(&url).unwrap();
    rt.block_on(resolver.resolve(&id)).expect("warm the cache");
    c.bench_function("cached_lookup", |b| {
        b.iter(|| rt.block_on(resolver.resolve(black_box(&id))).unwrap())
    });
    assert_eq!(
        host.hits("/client.json"),
        1,
        "every benchmarked lookup was a cache hit"
    );
}

fn bench_assertions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fetcher = rt.block_on(async { Arc::new(Fetcher::new(FetchConfig::default()).unwrap()) });
    // One client signs many assertions: give the replay store room for every iteration.
    let replay = Arc::new(MemoryReplayStore::with_capacity(50_000_000, 50_000_000));
    let verifier = AssertionVerifier::new(AssertionConfig::new([TOKEN_ENDPOINT]), fetcher, replay);
    let keys = [
        TestKey::es256("es256"),
        TestKey::ed25519("eddsa"),
        TestKey::rsa("rs256", Algorithm::RS256, 0),
    ];
    let mut group = c.benchmark_group("assertion_verify");
    for key in &keys {
        let jwks = jwk_set(&[key]);
        // Cached keys: one client, decoded JWKs reused across calls (the server's steady state).
        let client_id = format!("https://client.example.com/{}.json", key.kid);
        let client = ClientKeys {
            client_id: &client_id,
            jwks: Some(&jwks),
            jwks_uri: None,
            signing_alg: None,
        };
        group.bench_function(format!("{}_cached_keys", key.kid), |b| {
            b.iter_batched(
                || key.sign(&claims(&client_id, TOKEN_ENDPOINT, SystemTime::now())),
                |token| {
                    rt.block_on(verifier.verify_keys_at(&token, &client, SystemTime::now()))
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        // A client_id never seen before on every call: the JWK is parsed and converted too.
        let mut n = 0u64;
        group.bench_function(format!("{}_with_jwk_parse", key.kid), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    let id = format!("https://c{n}.example.com/{}.json", key.kid);
                    let token = key.sign(&claims(&id, TOKEN_ENDPOINT, SystemTime::now()));
                    (id, token)
                },
                |(id, token)| {
                    let client = ClientKeys {
                        client_id: &id,
                        jwks: Some(&jwks),
                        jwks_uri: None,
                        signing_alg: None,
                    };
                    rt.block_on(verifier.verify_keys_at(&token, &client, SystemTime::now()))
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_document,
    bench_ip_policy,
    bench_cached_lookup,
    bench_assertions
);
criterion_main!(benches);

//! Client assertions whose keys come from a `jwks_uri` served by a real HTTPS host on loopback
//! (docs/architecture.md, *Client authentication at /token*: `jwks_uri` cached, refreshed on
//! unknown `kid` at most every 30 s; *Fetching (SSRF-safe)*: the
//! fetch is SSRF-safe, size-capped and must be JSON).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use cimdgate_test_support::keys;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::routing::get;
use cimd::assertion::{
    AssertionConfig, AssertionError, AssertionVerifier, ClientKeys, JWKS_REFRESH_MIN_INTERVAL,
    MAX_JWKS_BYTES, MemoryReplayStore,
};
use cimd::fetch::{FetchConfig, FetchError, Fetcher};
use cimdgate_test_support::{HttpsHost, TestCa};
use jsonwebtoken::Algorithm;
use keys::{TestKey, claims, jwks_json};
use serde_json::{Value, json};

const CID: &str = "https://app.example.com/oauth/client.json";
const TOKEN_EP: &str = "https://as.example.com/token";
const HOST: &str = "keys.test";
const PATH: &str = "/jwks.json";

/// What the JWKS host serves: (content type, body, Cache-Control). Tests swap it to rotate keys.
type Served = Arc<Mutex<(String, Vec<u8>, Option<String>)>>;

struct JwksHost {
    host: HttpsHost,
    served: Served,
    verifier: AssertionVerifier,
    _ca: TestCa,
}

impl JwksHost {
    async fn start(jwks: Value) -> Self {
        let served: Served = Arc::new(Mutex::new((
            "application/json".to_owned(),
            jwks.to_string().into_bytes(),
            None,
        )));
        let router = Router::new()
            .route(
                PATH,
                get(|State(s): State<Served>| async move {
                    let (ct, body, cache) = s.lock().unwrap().clone();
                    let mut headers = axum::http::HeaderMap::new();
                    headers.insert(CONTENT_TYPE, ct.parse().unwrap());
                    if let Some(cache) = cache {
                        headers.insert(CACHE_CONTROL, cache.parse().unwrap());
                    }
                    (headers, body)
                }),
            )
            .with_state(served.clone());
        let ca = TestCa::new();
        let host = HttpsHost::start(&ca, &[HOST], router).await;
        let fetcher = Fetcher::new(FetchConfig {
            dev_allow_loopback: true,
            extra_ca_pem: vec![ca.cert_pem().as_bytes().to_vec()],
            resolve: HashMap::from([(HOST.to_owned(), IpAddr::V4(Ipv4Addr::LOCALHOST))]),
            ..FetchConfig::default()
        })
        .expect("fetcher");
        let verifier = AssertionVerifier::new(
            AssertionConfig::new([TOKEN_EP]),
            Arc::new(fetcher),
            Arc::new(MemoryReplayStore::new()),
        );
        JwksHost {
            host,
            served,
            verifier,
            _ca: ca,
        }
    }

    fn uri(&self) -> String {
        self.host.url(HOST, PATH)
    }

    fn serve(&self, content_type: &str, body: Vec<u8>) {
        let mut served = self.served.lock().unwrap();
        served.0 = content_type.to_owned();
        served.1 = body;
    }

    fn cache_control(&self, value: &str) {
        self.served.lock().unwrap().2 = Some(value.to_owned());
    }

    fn serve_jwks(&self, jwks: Value) {
        self.serve("application/json", jwks.to_string().into_bytes());
    }

    fn fetches(&self) -> usize {
        self.host.hits(PATH)
    }

    async fn verify_at(&self, key: &TestKey, now: SystemTime) -> Result<(), AssertionError> {
        let uri = self.uri();
        let client = ClientKeys {
            client_id: CID,
            jwks: None,
            jwks_uri: Some(&uri),
            signing_alg: None,
        };
        let token = key.sign(&claims(CID, TOKEN_EP, now));
        self.verifier
            .verify_keys_at(&token, &client, now)
            .await
            .map(|_| ())
    }

    async fn verify(&self, key: &TestKey) -> Result<(), AssertionError> {
        self.verify_at(key, SystemTime::now()).await
    }
}

#[tokio::test]
async fn jwks_uri_es256_rs256_eddsa_verify() {
    let es = TestKey::es256("es");
    let rs = TestKey::rsa("rs", Algorithm::RS256, 0);
    let ed = TestKey::ed25519("ed");
    let h = JwksHost::start(jwks_json(&[&es, &rs, &ed])).await;
    for key in [&es, &rs, &ed] {
        h.verify(key)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.kid));
    }
    // Fetched once, then served from the cache.
    assert_eq!(h.fetches(), 1);
    // Replay protection applies to jwks_uri clients too.
    let uri = h.uri();
    let client = ClientKeys {
        client_id: CID,
        jwks: None,
        jwks_uri: Some(&uri),
        signing_alg: None,
    };
    let token = es.sign(&claims(CID, TOKEN_EP, SystemTime::now()));
    assert!(
        h.verifier
            .verify_keys_at(&token, &client, SystemTime::now())
            .await
            .is_ok()
    );
    let err = h
        .verifier
        .verify_keys_at(&token, &client, SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(err, AssertionError::Replayed { .. }), "{err}");
}

#[tokio::test]
async fn rotated_key_triggers_one_refresh() {
    let old = TestKey::es256("2026-01");
    let new = TestKey::ed25519("2026-02");
    let h = JwksHost::start(jwks_json(&[&old])).await;
    let t0 = SystemTime::now();
    h.verify_at(&old, t0).await.unwrap();
    assert_eq!(h.fetches(), 1);

    // The client rotates; 31 s later an assertion with the new kid arrives.
    h.serve_jwks(jwks_json(&[&old, &new]));
    let t1 = t0 + JWKS_REFRESH_MIN_INTERVAL + Duration::from_secs(1);
    h.verify_at(&new, t1).await.unwrap();
    assert_eq!(h.fetches(), 2, "exactly one refresh");
    // Both keys now verify without further fetches.
    h.verify_at(&old, t1).await.unwrap();
    h.verify_at(&new, t1).await.unwrap();
    assert_eq!(h.fetches(), 2);
}

#[tokio::test]
async fn second_unknown_kid_within_30s_does_not_refetch() {
    let key = TestKey::es256("a");
    let h = JwksHost::start(jwks_json(&[&key])).await;
    let t0 = SystemTime::now();
    h.verify_at(&key, t0).await.unwrap();
    assert_eq!(h.fetches(), 1);

    // Unknown kid right after the fetch: no refetch, a clear error.
    let stranger = TestKey::es256("b");
    let err = h
        .verify_at(&stranger, t0 + Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AssertionError::UnknownKidRecentlyRefreshed { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("unknown kid \"b\"") && msg.contains("less than 30s ago"),
        "{msg}"
    );
    assert_eq!(h.fetches(), 1);

    // After the interval one refetch is allowed; the kid is still unknown.
    let t1 = t0 + JWKS_REFRESH_MIN_INTERVAL + Duration::from_secs(1);
    let err = h.verify_at(&stranger, t1).await.unwrap_err();
    assert!(matches!(err, AssertionError::UnknownKid { .. }), "{err}");
    assert_eq!(h.fetches(), 2);
    // And a second unknown kid inside the new interval does not refetch again.
    let err = h
        .verify_at(&TestKey::es256("c"), t1 + Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AssertionError::UnknownKidRecentlyRefreshed { .. }),
        "{err}"
    );
    assert_eq!(h.fetches(), 2);
}

#[tokio::test]
async fn concurrent_unknown_kid_refreshes_coalesce() {
    let old = TestKey::es256("old");
    let new = TestKey::es256("new");
    let h = Arc::new(JwksHost::start(jwks_json(&[&old])).await);
    let t0 = SystemTime::now();
    h.verify_at(&old, t0).await.unwrap();
    h.serve_jwks(jwks_json(&[&old, &new]));
    let t1 = t0 + JWKS_REFRESH_MIN_INTERVAL + Duration::from_secs(1);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (h, new) = (h.clone(), new.clone());
            tokio::spawn(async move { h.verify_at(&new, t1).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        h.fetches(),
        2,
        "one shared refresh for all concurrent misses"
    );
}

#[tokio::test]
async fn expired_cache_entry_is_refetched() {
    let key = TestKey::ed25519("k");
    let h = JwksHost::start(jwks_json(&[&key])).await;
    let t0 = SystemTime::now();
    h.verify_at(&key, t0).await.unwrap();
    h.verify_at(&key, t0 + Duration::from_secs(3599))
        .await
        .unwrap();
    assert_eq!(h.fetches(), 1);
    h.verify_at(&key, t0 + Duration::from_secs(3601))
        .await
        .unwrap();
    assert_eq!(h.fetches(), 2);
}

/// A key set is kept as long as its response's Cache-Control says, within
/// [30 s, 1 h]: `max-age=60` is refetched after a minute, `no-store` after the 30 s floor,
/// `max-age` of days after the hour (review Low finding: `jwks_uri` Cache-Control honoured).
#[tokio::test]
async fn jwks_uri_cache_control_sets_how_long_keys_are_kept() {
    let key = TestKey::ed25519("k");
    // (Cache-Control, still cached at, refetched at), seconds after the first fetch.
    let cases = [
        ("max-age=60", 50, 70),
        ("no-store", 20, 40),
        ("no-cache", 20, 40),
        ("public, max-age=10", 25, 35),
        ("max-age=999999", 3590, 3610),
    ];
    for (cache, kept, refetched) in cases {
        let h = JwksHost::start(jwks_json(&[&key])).await;
        h.cache_control(cache);
        let t0 = SystemTime::now();
        h.verify_at(&key, t0).await.unwrap();
        h.verify_at(&key, t0 + Duration::from_secs(kept))
            .await
            .unwrap();
        assert_eq!(h.fetches(), 1, "{cache}: refetched before {kept} s");
        h.verify_at(&key, t0 + Duration::from_secs(refetched))
            .await
            .unwrap();
        assert_eq!(h.fetches(), 2, "{cache}: not refetched at {refetched} s");
    }
}

#[tokio::test]
async fn jwks_host_serving_html_is_clear_error() {
    let key = TestKey::es256("k");
    let h = JwksHost::start(json!({})).await;
    h.serve(
        "text/html; charset=utf-8",
        b"<html><body>Login</body></html>".to_vec(),
    );
    let t0 = SystemTime::now();
    let err = h.verify_at(&key, t0).await.unwrap_err();
    assert!(
        matches!(
            &err,
            AssertionError::JwksFetch {
                source: FetchError::ContentType { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("jwks_uri") && msg.contains(&h.uri()), "{msg}");
    assert_eq!(h.fetches(), 1);
    // The failure is remembered for the refresh interval: no second request.
    let again = h
        .verify_at(&key, t0 + Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(again.to_string(), msg);
    assert_eq!(h.fetches(), 1);
    // Once fixed and the interval passed, it recovers.
    h.serve_jwks(jwks_json(&[&key]));
    h.verify_at(
        &key,
        t0 + JWKS_REFRESH_MIN_INTERVAL + Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(h.fetches(), 2);
}

#[tokio::test]
async fn jwks_too_large_is_clear_error() {
    let key = TestKey::es256("k");
    let mut big = jwks_json(&[&key]);
    big["padding"] = json!("x".repeat(MAX_JWKS_BYTES));
    let h = JwksHost::start(big).await;
    let err = h.verify(&key).await.unwrap_err();
    assert!(
        matches!(
            &err,
            AssertionError::JwksFetch {
                source: FetchError::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&h.uri()), "{err}");
}

#[tokio::test]
async fn jwks_with_private_key_member_is_rejected() {
    let key = TestKey::ed25519("k");
    let mut jwks = jwks_json(&[&key]);
    jwks["keys"][0]["d"] = json!("AAAA");
    let h = JwksHost::start(jwks).await;
    let err = h.verify(&key).await.unwrap_err();
    assert!(
        matches!(&err, AssertionError::JwksInvalid { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"d\""), "{err}");
}

#[tokio::test]
async fn jwks_not_a_key_set_is_clear_error() {
    let key = TestKey::ed25519("k");
    let h = JwksHost::start(json!({"not": "a jwks"})).await;
    let err = h.verify(&key).await.unwrap_err();
    assert!(
        matches!(&err, AssertionError::JwksInvalid { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("keys"), "{err}");
}

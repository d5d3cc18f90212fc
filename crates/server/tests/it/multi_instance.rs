//! Several cimdgate instances, one Redis (docs/architecture.md, *Storage and scale*): they behave as one server.
//! Each test starts three instances sharing the same configuration; `public_url` is instance
//! A's URL for all of them (one logical server behind a load balancer), and B and C are called
//! directly. The shared-state suite runs on each Redis deployment (macro `on_every_redis!`):
//! its own `redis-server` (killed on drop), the process's shared Redis Cluster, and the
//! process's shared Sentinel setup — each test under a key prefix of its own.

use crate::{back_util, common};

use cimdgate_test_support::keys as test_keys;

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use back_util::mint_code;
use cimdgate_server::app::RunningServer;
use cimdgate_test_support::{RedisCluster, RedisSentinel, RedisServer};
use common::{TestEnv, encode_form, http_client};
use test_keys::{TestKey, claims, jwks_json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Instance A (the harness server) plus B and C on other ports, all on one Redis.
pub(crate) struct Instances {
    pub(crate) env: TestEnv,
    pub(crate) others: Vec<(String, RunningServer)>,
    /// The private `redis-server`, when the deployment is one (shared deployments are statics).
    redis: Option<RedisServer>,
}

/// A key prefix no other test in this process uses (shared deployments).
pub(crate) fn fresh_prefix(what: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{what}-{}:", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Which Redis deployment a test runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deployment {
    /// A private `redis-server`.
    Single,
    /// The process's shared three-master Redis Instances.
    Cluster,
    /// The process's shared Sentinel setup.
    Sentinel,
}

impl Instances {
    async fn start() -> Instances {
        Self::start_on(Deployment::Single).await
    }

    async fn start_on(deployment: Deployment) -> Instances {
        let (redis, url) = match deployment {
            Deployment::Single => {
                let r = RedisServer::start();
                let url = r.url();
                (Some(r), url)
            }
            Deployment::Cluster => (None, RedisCluster::shared().url()),
            Deployment::Sentinel => (None, RedisSentinel::shared().url()),
        };
        Self::start_with_url(&url, &fresh_prefix("multi"), redis).await
    }

    /// Three instances on the Redis at `url`, under `prefix`.
    pub(crate) async fn start_with_url(
        url: &str,
        prefix: &str,
        redis: Option<RedisServer>,
    ) -> Instances {
        let env = TestEnv::start_with(|c| {
            c.store.url = url.to_owned();
            c.store.key_prefix = Some(prefix.to_owned());
        })
        .await;
        let mut others = Vec::new();
        for _ in 0..2 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let server = cimdgate_server::serve(env.config.clone(), listener)
                .await
                .expect("instance starts");
            others.push((base, server));
        }
        Instances { env, others, redis }
    }

    /// Base URLs of A, B, C.
    pub(crate) fn bases(&self) -> Vec<String> {
        let mut v = vec![self.env.base.clone()];
        v.extend(self.others.iter().map(|(b, _)| b.clone()));
        v
    }
}

pub(crate) async fn post(base: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http_client()
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(form))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get_status(url: &str) -> u16 {
    http_client()
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn authorize_on_a_token_on_b_refresh_on_c_and_one_fetch_for_all(on: Deployment) {
    let cl = Instances::start_on(on).await;
    let env = &cl.env;
    let [a, b, c] = <[String; 3]>::try_from(cl.bases()).unwrap();
    let redirect = TestEnv::default_redirect("cimd.test");
    let id = env.publish_client("multi", json!({}));

    // /authorize + login + consent on A.
    let (code, verifier) = env.authorize_code(&id, &redirect).await;
    // /token on B.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", id.as_str()),
    ];
    let (status, body) = post(&b, "/token", &form).await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    // Refresh on C; the access token verifies on every instance (shared signing key).
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", id.as_str()),
    ];
    let (status, body) = post(&c, "/token", &refresh).await;
    assert_eq!(status, 200, "{body}");
    let at = body["access_token"].as_str().unwrap().to_owned();
    for (_, server) in &cl.others {
        server.state.tokens.verify(&at).await.unwrap();
    }
    env.server().state.tokens.verify(&at).await.unwrap();
    // The spent token again, on A: reuse detected across instances.
    let (status, body) = post(&a, "/token", &refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // The same code again, on A: refused (single use across instances) …
    let (status, body) = post(&a, "/token", &form).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    // … and the family it started is dead on every instance.
    let rotated = body_token(&post(&c, "/token", &refresh).await.1);
    assert!(rotated.is_none());

    // The document was fetched once for all three instances: resolve it on B and C.
    let m = mint_code(env, &id, &redirect, |_| {}).await;
    for base in [&b, &c] {
        let url = format!(
            "{base}/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=s&scope=mcp",
            urlencode(&id),
            urlencode(&redirect),
            m.record.code_challenge
        );
        let status = get_status(&url).await;
        assert_eq!(status, 200, "{url}");
    }
    assert_eq!(env.cimd.hits("/multi"), 1, "one fetch for all instances");
}

fn body_token(body: &Value) -> Option<String> {
    body["refresh_token"].as_str().map(str::to_owned)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn private_key_jwt_assertion_used_at_a_is_rejected_at_b(on: Deployment) {
    let cl = Instances::start_on(on).await;
    let env = &cl.env;
    let [a, b, _c] = <[String; 3]>::try_from(cl.bases()).unwrap();
    let key = TestKey::es256("k");
    let id = env.publish_client(
        "pk",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_json(&[&key])}),
    );
    let redirect = TestEnv::default_redirect("cimd.test");
    // aud = the token endpoint as advertised (A's URL: the shared public_url).
    let assertion = key.sign(&claims(&id, &format!("{a}/token"), SystemTime::now()));
    let form = |m: &back_util::Minted| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", m.code.clone()),
            ("code_verifier", m.verifier.clone()),
            ("redirect_uri", m.record.redirect_uri.clone()),
            ("client_assertion_type", JWT_BEARER.to_owned()),
            ("client_assertion", assertion.clone()),
        ]
    };
    let m1 = mint_code(env, &id, &redirect, |_| {}).await;
    let f1 = form(&m1);
    let f1: Vec<(&str, &str)> = f1.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = post(&a, "/token", &f1).await;
    assert_eq!(status, 200, "{body}");

    let m2 = mint_code(env, &id, &redirect, |_| {}).await;
    let f2 = form(&m2);
    let f2: Vec<(&str, &str)> = f2.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = post(&b, "/token", &f2).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("already used"),
        "{body}"
    );
}

async fn hundred_concurrent_redemptions_over_three_instances_succeed_once(on: Deployment) {
    let cl = Instances::start_on(on).await;
    let env = &cl.env;
    let bases = cl.bases();
    let redirect = TestEnv::default_redirect("cimd.test");
    let id = env.publish_client("race", json!({}));
    let m = mint_code(env, &id, &redirect, |_| {}).await;
    let mut set = JoinSet::new();
    for i in 0..100 {
        let base = bases[i % 3].clone();
        let (code, verifier, id, redirect) = (
            m.code.clone(),
            m.verifier.clone(),
            id.clone(),
            redirect.clone(),
        );
        set.spawn(async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier.as_str()),
                ("redirect_uri", redirect.as_str()),
                ("client_id", id.as_str()),
            ];
            post(&base, "/token", &form).await.0
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = set.join_next().await {
        statuses.push(s.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_gives_503s_and_traffic_recovers_without_restart() {
    let mut cl = Instances::start().await;
    let bases = cl.bases();
    let redirect = TestEnv::default_redirect("cimd.test");
    let id = cl.env.publish_client("outage", json!({}));
    let m = mint_code(&cl.env, &id, &redirect, |_| {}).await;
    let form = |m: &back_util::Minted| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", m.code.clone()),
            ("code_verifier", m.verifier.clone()),
            ("redirect_uri", m.record.redirect_uri.clone()),
            ("client_id", m.record.grant.client_id.clone()),
        ]
    };
    let (status, body) = post(
        &bases[1],
        "/token",
        &form(&m)
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    let redis = cl.redis.as_mut().expect("a private redis-server");
    redis.stop();
    // A bounded load run (2 s) against all three instances while Redis is down.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut set = JoinSet::new();
    for t in 0..6 {
        let (base, rt, id) = (bases[t % 3].clone(), rt.clone(), id.clone());
        set.spawn(async move {
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                    ("client_id", id.as_str()),
                ];
                let (status, body) = post(&base, "/token", &form).await;
                seen.push((status, body["error"].as_str().unwrap_or("").to_owned()));
            }
            seen
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.unwrap());
    }
    assert!(!all.is_empty());
    for (status, error) in &all {
        assert_eq!(
            (*status, error.as_str()),
            (503, "temporarily_unavailable"),
            "every store-backed request is a clear 503"
        );
    }
    for base in &bases {
        assert_eq!(get_status(&format!("{base}/healthz")).await, 200, "alive");
        assert_eq!(
            get_status(&format!("{base}/readyz")).await,
            503,
            "not ready"
        );
    }
    // The front channel: an error page with 503, never 500.
    let page = get_status(&format!(
        "{}/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=s",
        bases[0],
        urlencode(&id),
        urlencode(&redirect)
    ))
    .await;
    assert!(page == 200 || page == 503, "front channel status {page}");

    // Redis comes back on the same port (empty: persistence is off). No instance restarts.
    let redis = cl.redis.as_mut().expect("a private redis-server");
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    for base in &bases {
        while get_status(&format!("{base}/readyz")).await != 200 {
            assert!(
                Instant::now() < deadline,
                "{base} not ready again within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // New traffic succeeds on every instance (keys and secrets are held in memory).
    for base in &bases {
        let m = mint_code(&cl.env, &id, &redirect, |_| {}).await;
        let f = form(&m);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = post(base, "/token", &f).await;
        assert_eq!(status, 200, "{base}: {body}");
    }
}

/// One `#[tokio::test]` per Redis deployment for each `async fn name(on: Deployment)`.
macro_rules! on_every_redis {
    ($($name:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Deployment::Single).await;
                }
            )*
        }
        mod on_redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Deployment::Cluster).await;
                }
            )*
        }
        mod on_redis_sentinel {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Deployment::Sentinel).await;
                }
            )*
        }
    };
}

on_every_redis!(
    authorize_on_a_token_on_b_refresh_on_c_and_one_fetch_for_all,
    private_key_jwt_assertion_used_at_a_is_rejected_at_b,
    hundred_concurrent_redemptions_over_three_instances_succeed_once,
);

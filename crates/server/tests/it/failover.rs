//! A Redis master killed (SIGKILL) in the middle of a load of code exchanges with client
//! assertions, on a Redis Cluster with replicas and behind Sentinel (docs/redis.md,
//! *Failover*): while the deployment fails over, requests fail closed — 503
//! `temporarily_unavailable`, never a 500, never a second 200 for one code or one assertion
//! `jti` — and traffic recovers by itself once a replica is promoted, with no instance
//! restarted. Each test starts its own deployment (killed by PID on drop) and prints the
//! outage it measured.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::back_util::{self, mint_code};
use crate::common::TestEnv;
use crate::multi_instance::{Instances, fresh_prefix, post};
use cimdgate_test_support::keys::{TestKey, claims, jwks_json};
use cimdgate_test_support::{RedisCluster, RedisSentinel};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Iterations before the kill.
const BEFORE_KILL: usize = 15;
/// Codes minted up front: two per iteration, enough for the outage and the recovery run.
const MAX_ITERATIONS: usize = 300;
/// Consecutive fully successful iterations that count as "recovered".
const RECOVERED_RUN: usize = 10;
/// Longest accepted outage.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

/// One request's outcome.
struct Outcome {
    status: u16,
    error: String,
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    per_code: HashMap<String, usize>,
    per_jti: HashMap<String, usize>,
    statuses: HashMap<u16, usize>,
}

impl Tally {
    /// Record one outcome of a request that used `code` and the assertion with `jti`.
    fn record(&mut self, code: &str, jti: &str, o: &Outcome) {
        *self.statuses.entry(o.status).or_default() += 1;
        match o.status {
            200 => {
                *self.per_code.entry(code.to_owned()).or_default() += 1;
                *self.per_jti.entry(jti.to_owned()).or_default() += 1;
            }
            503 => assert_eq!(o.error, "temporarily_unavailable", "a 503 says why"),
            400 => assert_eq!(o.error, "invalid_grant", "a spent code"),
            401 => assert_eq!(o.error, "invalid_client", "a replayed assertion"),
            s => panic!(
                "status {s} ({}) during failover: fail closed with 503",
                o.error
            ),
        }
    }
}

async fn exchange(base: &str, m: &back_util::Minted, assertion: &str) -> Outcome {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", m.code.as_str()),
        ("code_verifier", m.verifier.as_str()),
        ("redirect_uri", m.record.redirect_uri.as_str()),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    let (status, body) = post(base, "/token", &form).await;
    Outcome {
        status,
        error: body["error"].as_str().unwrap_or("").to_owned(),
    }
}

/// Run the load on two instances sharing the Redis at `url`, call `kill` (blocking: it kills
/// a master by PID) after [`BEFORE_KILL`] iterations, and go on until [`RECOVERED_RUN`]
/// consecutive iterations succeed after `failed_over` reports the replica promoted. Returns
/// the outage: from the kill to the last failed request.
async fn kill_a_master_mid_load(
    url: &str,
    kill: impl FnOnce() + Send + 'static,
    failed_over: impl Fn() -> bool + Send + Sync + Clone + 'static,
) -> Duration {
    let cl = Instances::start_with_url(url, &fresh_prefix("failover"), None).await;
    let env = &cl.env;
    let bases = cl.bases();
    let (a, b) = (bases[0].clone(), bases[1].clone());
    let key = TestKey::es256("k");
    let id = env.publish_client(
        "fo",
        json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_json(&[&key])}),
    );
    let redirect = TestEnv::default_redirect("cimd.test");
    let aud = format!("{a}/token");
    let mut codes = Vec::with_capacity(2 * MAX_ITERATIONS);
    for _ in 0..2 * MAX_ITERATIONS {
        codes.push(mint_code(env, &id, &redirect, |_| {}).await);
    }
    let mut tally = Tally::default();
    let mut kill = Some(kill);
    let mut killed_at = None;
    let mut last_failure = None;
    let mut run = 0usize;
    let mut promoted = false;
    for i in 0..MAX_ITERATIONS {
        if i == BEFORE_KILL
            && let Some(k) = kill.take()
        {
            tokio::task::spawn_blocking(k).await.unwrap();
            killed_at = Some(Instant::now());
        }
        // Request 1 (A): code c with assertion j. Request 2 (B): the same code, a fresh
        // assertion — only the code can stop it. Request 3 (B): a fresh code, assertion j —
        // only the jti can stop it.
        let (c, d) = (&codes[2 * i], &codes[2 * i + 1]);
        let j = key.sign(&claims(&id, &aud, SystemTime::now()));
        let k = key.sign(&claims(&id, &aud, SystemTime::now()));
        let (o1, o2, o3) = tokio::join!(
            exchange(&a, c, &j),
            exchange(&b, c, &k),
            exchange(&b, d, &j)
        );
        tally.record(&c.code, &format!("j{i}"), &o1);
        tally.record(&c.code, &format!("k{i}"), &o2);
        tally.record(&d.code, &format!("j{i}"), &o3);
        let failed = [&o1, &o2, &o3].iter().any(|o| o.status == 503);
        let succeeded = [&o1, &o2, &o3].iter().any(|o| o.status == 200);
        if let Some(at) = killed_at {
            if failed {
                last_failure = Some(Instant::now());
                run = 0;
                tokio::time::sleep(Duration::from_millis(50)).await;
            } else if succeeded {
                run += 1;
            }
            assert!(
                at.elapsed() < RECOVERY_LIMIT + Duration::from_secs(5),
                "no recovery within {RECOVERY_LIMIT:?} of the kill"
            );
            if run >= RECOVERED_RUN && !promoted {
                promoted = tokio::task::spawn_blocking(failed_over.clone())
                    .await
                    .unwrap();
            }
            if run >= RECOVERED_RUN && promoted {
                break;
            }
        } else {
            assert!(
                succeeded && !failed,
                "healthy before the kill (iteration {i})"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed_at = killed_at.expect("the master was killed");
    assert!(
        promoted && run >= RECOVERED_RUN,
        "recovered within {MAX_ITERATIONS} iterations (run {run}, promoted {promoted}, statuses {:?})",
        tally.statuses
    );
    for (code, n) in &tally.per_code {
        assert!(*n <= 1, "code {code} accepted {n} times");
    }
    for (jti, n) in &tally.per_jti {
        assert!(*n <= 1, "assertion {jti} accepted {n} times");
    }
    let outage = last_failure.map_or(Duration::ZERO, |t| t.duration_since(killed_at));
    assert!(
        tally.statuses.get(&503).copied().unwrap_or(0) > 0,
        "the load ran through the outage: {:?}",
        tally.statuses
    );
    assert!(outage < RECOVERY_LIMIT, "outage {outage:?}");
    // Every instance is ready again and a fresh code exchange succeeds on each.
    for base in &bases {
        let m = mint_code(env, &id, &redirect, |_| {}).await;
        let j = key.sign(&claims(&id, &aud, SystemTime::now()));
        let o = exchange(base, &m, &j).await;
        assert_eq!(o.status, 200, "{base}: {}", o.error);
    }
    eprintln!(
        "failover on {url}: outage {outage:?} after the kill; statuses {:?}",
        tally.statuses
    );
    outage
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_master_killed_mid_load_fails_closed_and_recovers_after_replica_promotion() {
    let cluster = std::sync::Arc::new(RedisCluster::start_with_replicas());
    let (k, f) = (cluster.clone(), cluster.clone());
    kill_a_master_mid_load(
        &cluster.url(),
        move || {
            k.kill_master(0);
        },
        move || f.is_ok() && f.replica_count_promoted() >= 1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_master_killed_mid_load_fails_closed_and_recovers_after_promotion() {
    let sentinel = std::sync::Arc::new(RedisSentinel::start());
    let (k, f) = (sentinel.clone(), sentinel.clone());
    kill_a_master_mid_load(
        &sentinel.url(),
        move || {
            k.kill_master();
        },
        move || f.replica_promoted(),
    )
    .await;
}

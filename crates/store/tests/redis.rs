//! Redis-only properties: every ephemeral key carries a TTL, the key prefix is honoured,
//! an unreachable Redis fails fast with `Unavailable`, and the store recovers by itself when
//! Redis comes back. (The behavioural suite runs against Redis through `both_backends!` in the
//! other test files.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use cimdgate_store::redis::{RedisOptions, RedisStore};
use cimdgate_store::{CodeRedeem, CodeRedeemOutcome, JtiRecord, Store, StoreError};
use cimdgate_test_support::RedisServer;
use common::*;

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Exercise every write path once.
async fn write_everything(s: &RedisStore) {
    s.put_code(&hash("c1"), &code("fam", future()))
        .await
        .unwrap();
    let out = s
        .redeem_code(
            &CodeRedeem {
                code: hash("c1"),
                jti: Some(JtiRecord {
                    client_id: "https://client.example/cimd.json".into(),
                    jti: "j1".into(),
                    expires_at: future(),
                }),
                refresh: Some((hash("rt1"), refresh("fam", future()))),
                family_revoke_until: future() + HOUR,
                grant: None,
            },
            now(),
        )
        .await
        .unwrap();
    assert!(matches!(out, CodeRedeemOutcome::Redeemed(_)));
    s.rotate_refresh(&hash("rt1"), &hash("rt2"), &refresh("fam", future()), now())
        .await
        .unwrap();
    s.revoke_family("fam2", future()).await.unwrap();
    s.put_consent(&consent("alice", "https://c.example/m", future()))
        .await
        .unwrap();
    s.put_idp_tokens("up", b"sealed", future()).await.unwrap();
    s.record_jti("c", "j2", future()).await.unwrap();
    s.put_client(&dcr_client("dcr-1")).await.unwrap();
    s.init_signing_key(&signing_key("k1")).await.unwrap();
    s.init_secret("cookie", b"secret").await.unwrap();
    s.cas_client_record(&seen("https://c.example/m", None, now()), None)
        .await
        .unwrap();
    s.put_grant(&cimdgate_store::GrantEntry {
        grant: grant("fam", None, None),
        expires_at: future(),
    })
    .await
    .unwrap();
    s.cache_put("doc", "https://c.example/m", b"{}", future())
        .await
        .unwrap();
    s.count_hit("ip", "127.0.0.1", Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_ephemeral_key_has_a_ttl_and_the_prefix() {
    let server = RedisServer::start();
    let options = RedisOptions {
        key_prefix: "test-prefix:".into(),
        ..RedisOptions::default()
    };
    let s = RedisStore::open_with(&server.url(), options).await.unwrap();
    write_everything(&s).await;
    let mut c = raw(&server).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.len() >= 15, "{keys:?}");
    let permanent = ["client:", "signing_keys", "secret:", "{inv}:"];
    for k in &keys {
        let rest = k
            .strip_prefix("test-prefix:")
            .unwrap_or_else(|| panic!("{k} lacks the prefix"));
        let ttl: i64 = redis::cmd("PTTL").arg(k).query_async(&mut c).await.unwrap();
        if permanent.iter().any(|p| rest.starts_with(p)) {
            assert_eq!(ttl, -1, "{k} is permanent state");
        } else {
            assert!(ttl > 0, "{k} has no TTL ({ttl})");
        }
    }
    // Per-family state shares one hash tag (one cluster slot).
    let family: Vec<&String> = keys.iter().filter(|k| k.contains("{f:fam}")).collect();
    assert_eq!(family.len(), 3, "code and two refresh tokens: {family:?}");
    assert!(
        keys.iter().any(|k| k.ends_with("{f:fam2}:revoked")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn unreachable_redis_fails_fast_and_recovers_without_a_new_store() {
    let mut server = RedisServer::start();
    let s = RedisStore::open(&server.url()).await.unwrap();
    s.health().await.unwrap();
    s.init_secret("k", b"v").await.unwrap();

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = s.health().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        let err = s.get_code(&hash("x"), now()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if s.health().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A fresh (empty) Redis: writes work again.
    assert_eq!(s.init_secret("k", b"w").await.unwrap(), b"w");
}

#[tokio::test]
async fn open_rejects_non_redis_urls() {
    for bad in ["embedded:/tmp/x", "http://127.0.0.1:6379", "redis//nope"] {
        let err = RedisStore::open(bad).await.unwrap_err();
        assert!(matches!(err, StoreError::Open(_)), "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn password_is_redacted_from_the_url() {
    let s = RedisStore::open("redis://:hunter2@127.0.0.1:1/0")
        .await
        .unwrap();
    assert!(!s.url().contains("hunter2"), "{}", s.url());
    assert!(!format!("{s:?}").contains("hunter2"));
}

/// `KEYS prefix*` on one node.
async fn keys_on(port: u16, prefix: &str) -> Vec<String> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_operation_runs_and_keys_spread_over_the_masters() {
    let cluster = cimdgate_test_support::RedisCluster::shared();
    let options = RedisOptions {
        key_prefix: "spread:".into(),
        ..RedisOptions::default()
    };
    let s = RedisStore::open_with(&cluster.url(), options)
        .await
        .unwrap();
    // Every script and multi-key read ran without CROSSSLOT (the cluster refuses those).
    write_everything(&s).await;
    assert_eq!(s.list_client_records().await.unwrap().len(), 1);
    let mut per_master = Vec::new();
    for port in cluster.ports() {
        per_master.push(keys_on(port, "spread:").await.len());
    }
    assert!(
        per_master.iter().filter(|n| **n > 0).count() >= 2,
        "keys shard over several masters: {per_master:?}"
    );
    assert!(per_master.iter().sum::<usize>() >= 15, "{per_master:?}");
}

#[tokio::test]
async fn cluster_and_sentinel_urls_name_their_problem() {
    for (url, problem) in [
        ("redis://127.0.0.1:1,127.0.0.1:2/0", "redis+cluster://"),
        (
            "redis+cluster://127.0.0.1:1,127.0.0.1:2/1",
            "only database 0",
        ),
        ("redis+sentinel://127.0.0.1:1,127.0.0.1:2", "service name"),
        ("redis+sentinel://:hunter2@127.0.0.1:1/cg/x", "not a number"),
    ] {
        let err = RedisStore::open(url).await.unwrap_err().to_string();
        assert!(err.contains(problem), "{url}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_with_an_unknown_service_is_unavailable_not_a_panic() {
    let sentinel = cimdgate_test_support::RedisSentinel::shared();
    let url = sentinel.url().replace("/cg", "/no-such-master");
    let s = RedisStore::open(&url).await.unwrap();
    let err = s.health().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// A store on `url` with `wait_replicas` and a prefix of its own.
async fn waiting_store(url: &str, wait_replicas: u32, prefix: &str) -> RedisStore {
    let options = RedisOptions {
        key_prefix: prefix.into(),
        wait_replicas,
        wait_timeout: Duration::from_millis(200),
        ..RedisOptions::default()
    };
    RedisStore::open_with(url, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_replicas_confirms_spends_and_fails_closed_when_replicas_are_missing() {
    // Behind Sentinel: one replica.
    let url = cimdgate_test_support::RedisSentinel::shared().url();
    let s = waiting_store(&url, 1, "wait1:").await;
    s.put_code(&hash("c"), &code("fam", future()))
        .await
        .unwrap();
    let redeem = |c: &str, j: &str| CodeRedeem {
        code: hash(c),
        jti: Some(JtiRecord {
            client_id: "https://client.example/cimd.json".into(),
            jti: j.into(),
            expires_at: future(),
        }),
        refresh: Some((hash(&format!("rt-{c}")), refresh("fam", future()))),
        family_revoke_until: future() + HOUR,
        grant: None,
    };
    let out = s.redeem_code(&redeem("c", "j1"), now()).await.unwrap();
    assert!(matches!(out, CodeRedeemOutcome::Redeemed(_)), "{out:?}");
    assert!(s.record_jti("c", "j2", future()).await.unwrap());

    // Two replicas required, one exists: the spend happens but is reported unavailable
    // (503), and the code stays spent — failing closed.
    let s = waiting_store(&url, 2, "wait2:").await;
    s.put_code(&hash("d"), &code("fam", future()))
        .await
        .unwrap();
    let err = s.redeem_code(&redeem("d", "j3"), now()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("1 of 2 replicas")),
        "{err:?}"
    );
    let again = waiting_store(&url, 0, "wait2:").await;
    let out = again.redeem_code(&redeem("d", "j4"), now()).await.unwrap();
    assert!(matches!(out, CodeRedeemOutcome::AlreadyUsed(_)), "{out:?}");

    // A cluster without replicas cannot confirm anything.
    let url = cimdgate_test_support::RedisCluster::shared().url();
    let s = waiting_store(&url, 1, "wait3:").await;
    let err = s.record_jti("c", "j5", future()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("0 of 1 replicas")),
        "{err:?}"
    );
}

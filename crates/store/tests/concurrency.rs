//! Atomic operations stay atomic under concurrency, and group commit really batches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;

use cimdgate_store::embedded::EmbeddedStore;
use cimdgate_store::{CodeRedemption, RefreshRotation, Store};
use common::*;
use tokio::task::JoinSet;

/// Run `n` copies of `f(store, i)` at once and collect their results.
async fn race<T, F, Fut>(store: &Arc<dyn Store>, n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<dyn Store>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(f(Arc::clone(store), i));
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

fn open_shared() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let (dir, s) = open_temp();
    (dir, Arc::new(s))
}

async fn hundred_concurrent_redemptions_of_one_code_redeem_once(s: Arc<dyn Store>) {
    s.put_code(&hash("code"), &code("fam", future()))
        .await
        .unwrap();
    let results = race(&s, 100, |s, _| async move {
        s.take_code(&hash("code"), now()).await.unwrap()
    })
    .await;
    let redeemed = results
        .iter()
        .filter(|r| matches!(r, CodeRedemption::Redeemed(_)))
        .count();
    let used = results
        .iter()
        .filter(|r| matches!(r, CodeRedemption::AlreadyUsed(_)))
        .count();
    assert_eq!((redeemed, used), (1, 99));
}

async fn hundred_concurrent_records_of_one_jti_accept_once(s: Arc<dyn Store>) {
    let results = race(&s, 100, |s, _| async move {
        s.record_jti("https://c/x", "jti-1", future())
            .await
            .unwrap()
    })
    .await;
    assert_eq!(results.iter().filter(|new| **new).count(), 1);
}

async fn concurrent_rotations_of_one_token_rotate_once_and_revoke_the_family(s: Arc<dyn Store>) {
    s.put_refresh(&hash("rt"), &refresh("fam", future()))
        .await
        .unwrap();
    let results = race(&s, 50, |s, i| async move {
        s.rotate_refresh(
            &hash("rt"),
            &hash(&format!("new-{i}")),
            &refresh("fam", future()),
            now(),
        )
        .await
        .unwrap()
    })
    .await;
    let rotated = results
        .iter()
        .filter(|r| matches!(r, RefreshRotation::Rotated(_)))
        .count();
    assert_eq!(rotated, 1, "{results:?}");
    // The second attempt detects reuse; every later one finds the family revoked.
    assert!(
        results
            .iter()
            .any(|r| matches!(r, RefreshRotation::Reused { .. }))
    );
    assert!(s.is_family_revoked("fam", now()).await.unwrap());
}

async fn concurrent_secret_and_key_initialisation_agree_on_one_value(s: Arc<dyn Store>) {
    let secrets = race(&s, 2, |s, i| async move {
        s.init_secret("cookie", format!("candidate-{i}").as_bytes())
            .await
            .unwrap()
    })
    .await;
    assert_eq!(secrets[0], secrets[1]);
    let keys = race(&s, 10, |s, i| async move {
        s.init_signing_key(&signing_key(&format!("k{i}")))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(keys[0].len(), 1);
    assert!(keys.iter().all(|k| *k == keys[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_writes() {
    let (_dir, s) = open_shared();
    let before = s.stats();
    let dyn_s: Arc<dyn Store> = s.clone();
    race(&dyn_s, 200, |s, i| async move {
        s.put_refresh(&hash(&format!("rt-{i}")), &refresh("fam", future()))
            .await
            .unwrap()
    })
    .await;
    let after = s.stats();
    let (ops, commits) = (after.ops - before.ops, after.commits - before.commits);
    assert_eq!(ops, 200);
    assert!(
        commits < ops,
        "{commits} commits for {ops} writes: no batching"
    );
    assert!(after.largest_batch > 1);
    for i in 0..200 {
        assert!(
            s.get_refresh(&hash(&format!("rt-{i}")), now())
                .await
                .unwrap()
                .is_some(),
            "rt-{i}"
        );
    }
}

both_backends!(
    hundred_concurrent_redemptions_of_one_code_redeem_once,
    hundred_concurrent_records_of_one_jti_accept_once,
    concurrent_rotations_of_one_token_rotate_once_and_revoke_the_family,
    concurrent_secret_and_key_initialisation_agree_on_one_value,
);

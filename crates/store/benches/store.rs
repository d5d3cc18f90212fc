//! Embedded-store throughput and latency (group commit at work).
//!
//! - `concurrent/*`: 64 tasks on a 2-worker Tokio runtime issue writes at once, the way
//!   concurrent `/token` requests do; throughput is in elements (operations) per second.
//!   `code_exchange` is one `take_code` + one `put_refresh` per element (token issuance).
//! - `single/*`: one task, one operation at a time — the latency of one durable commit (fsync),
//!   and of a read on the calling task.
//!
//! Run: `cargo bench -p cimdgate-store --bench store`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cimdgate_store::embedded::EmbeddedStore;
use cimdgate_store::{
    ClientKind, CodeRecord, CodeRedemption, DocumentBinding, Grant, RefreshRecord, Scopes, Store,
    TokenHash,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TASKS: u64 = 64;

static NEXT: AtomicU64 = AtomicU64::new(0);

fn fresh_hash() -> TokenHash {
    TokenHash(format!("{:064x}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

fn grant() -> Grant {
    Grant {
        client_id: "https://client.example.com/oauth/client-metadata.json".into(),
        client_kind: ClientKind::Cimd,
        subject: "alice".into(),
        scope: Scopes::parse("mcp read write"),
        resource: "https://as.example.com/mcp".into(),
        family_id: "family-0123456789abcdef".into(),
        document: Some(DocumentBinding {
            digest: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            auth_method: "none".into(),
        }),
        idp_ref: None,
        created_at: None,
    }
}

fn refresh_record() -> RefreshRecord {
    RefreshRecord {
        grant: grant(),
        issued_at: SystemTime::now(),
        expires_at: SystemTime::now() + Duration::from_secs(86_400),
    }
}

fn code_record() -> CodeRecord {
    CodeRecord {
        grant: grant(),
        redirect_uri: "http://127.0.0.1:33418/callback".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        auth_time: SystemTime::now(),
        expires_at: SystemTime::now() + Duration::from_secs(3600),
    }
}

/// Run `iters` operations spread over [`TASKS`] tasks; `op(store, i)` is one operation.
async fn spread<F, Fut>(store: &Arc<EmbeddedStore>, iters: u64, op: F) -> Duration
where
    F: Fn(Arc<EmbeddedStore>, Vec<TokenHash>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut work: Vec<Vec<TokenHash>> = (0..TASKS).map(|_| Vec::new()).collect();
    for i in 0..iters {
        work[(i % TASKS) as usize].push(fresh_hash());
    }
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for hashes in work {
        set.spawn(op(Arc::clone(store), hashes));
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

/// Store `n` fresh codes (64 tasks, so it is quick) and return their hashes.
async fn store_codes(store: &Arc<EmbeddedStore>, n: u64) -> Arc<Vec<TokenHash>> {
    let codes: Arc<Vec<TokenHash>> = Arc::new((0..n).map(|_| fresh_hash()).collect());
    each_task(store, &codes, |s, h| async move {
        s.put_code(&h, &code_record()).await.unwrap();
    })
    .await;
    codes
}

/// Run `op` once per hash, the hashes dealt round-robin to [`TASKS`] concurrent tasks.
async fn each_task<F, Fut>(store: &Arc<EmbeddedStore>, hashes: &Arc<Vec<TokenHash>>, op: F)
where
    F: Fn(Arc<EmbeddedStore>, TokenHash) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut set = tokio::task::JoinSet::new();
    for t in 0..TASKS as usize {
        let (s, hashes, op) = (Arc::clone(store), Arc::clone(hashes), op.clone());
        set.spawn(async move {
            for h in hashes.iter().skip(t).step_by(TASKS as usize) {
                op(Arc::clone(&s), h.clone()).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());

    let mut g = c.benchmark_group("concurrent");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("put_refresh_64_tasks", |b| {
        b.iter_custom(|iters| {
            rt.block_on(spread(&store, iters, |s, hashes| async move {
                let rec = refresh_record();
                for h in hashes {
                    s.put_refresh(&h, &rec).await.unwrap();
                }
            }))
        })
    });
    g.bench_function("take_code_64_tasks", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let codes = store_codes(&store, iters).await; // untimed
                let start = Instant::now();
                each_task(&store, &codes, |s, h| async move {
                    black_box(s.take_code(&h, SystemTime::now()).await.unwrap());
                })
                .await;
                start.elapsed()
            })
        })
    });
    g.bench_function("code_exchange_64_tasks", |b| {
        // Token issuance's store work: redeem the code, store the first refresh token.
        b.iter_custom(|iters| {
            rt.block_on(async {
                let codes = store_codes(&store, iters).await; // untimed
                let start = Instant::now();
                each_task(&store, &codes, |s, h| async move {
                    let r = s.take_code(&h, SystemTime::now()).await.unwrap();
                    assert!(matches!(r, CodeRedemption::Redeemed(_)));
                    s.put_refresh(&fresh_hash(), &refresh_record())
                        .await
                        .unwrap();
                })
                .await;
                start.elapsed()
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("single");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let rec = refresh_record();
    g.bench_function("put_refresh", |b| {
        b.iter(|| rt.block_on(store.put_refresh(&fresh_hash(), &rec)).unwrap())
    });
    let known = fresh_hash();
    rt.block_on(store.put_refresh(&known, &rec)).unwrap();
    g.bench_function("get_refresh", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(store.get_refresh(&known, SystemTime::now()))
                    .unwrap(),
            )
        })
    });
    g.bench_function("get_refresh_no_runtime_hop", |b| {
        // The read itself, without `block_on`'s cross-thread wake-up.
        let local = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        b.iter(|| {
            black_box(
                local
                    .block_on(store.get_refresh(&known, SystemTime::now()))
                    .unwrap(),
            )
        })
    });
    g.finish();

    let s = store.stats();
    eprintln!(
        "group commit: {} ops in {} commits (mean batch {:.1}, largest {})",
        s.ops,
        s.commits,
        s.ops as f64 / s.commits.max(1) as f64,
        s.largest_batch
    );
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);

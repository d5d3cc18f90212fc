//! Group commit: one writer thread owns every write transaction.
//!
//! Callers send a [`Job`] over a channel and await a oneshot reply. The thread blocks for the
//! first queued job, drains whatever else is queued (up to [`MAX_BATCH`]) and applies the jobs
//! one after another inside ONE write transaction, then commits once (redb's default
//! `Durability::Immediate`: the commit returns after fsync). Only then does each job's caller
//! get its result, so an `Ok` always means "on disk". Under load one fsync (≈ 0.3 ms) is shared
//! by every request that arrived meanwhile; with a single caller the latency is one fsync.
//!
//! Atomicity: a job's check-and-write runs inside the transaction, and jobs in a batch are
//! applied sequentially, so a later job sees an earlier job's writes — exactly as if each had
//! its own transaction. Failure: a job that finds a corrupt record fails alone (jobs only
//! write after their reads succeeded); a storage error from redb ([`StoreError::Unavailable`])
//! or a failed commit aborts the transaction and every job in the batch gets the error — none
//! of them reports success.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use redb::{Database, Table, WriteTransaction};
use tokio::sync::oneshot;

use super::codec::{
    CLIENTS, CODES, CONSENTS, FAMILIES, GRANTS, IDP_TOKENS, INVENTORY, JTIS, REFRESH, SECRETS,
    SIGNING_KEYS, SUBJECT_GRANTS, unavailable,
};
use crate::StoreError;

/// Most jobs applied in one transaction. Bounds the latency a single batch adds and the size
/// of a transaction; 1024 × ~1 KB records is ~1 MB of dirty pages.
pub(crate) const MAX_BATCH: usize = 1024;

/// Every table, opened once per batch inside the write transaction.
pub(crate) struct Tables<'txn> {
    pub codes: Table<'txn, &'static str, &'static [u8]>,
    pub refresh: Table<'txn, &'static str, &'static [u8]>,
    pub families: Table<'txn, &'static str, &'static [u8]>,
    pub consents: Table<'txn, &'static str, &'static [u8]>,
    pub clients: Table<'txn, &'static str, &'static [u8]>,
    pub signing_keys: Table<'txn, u64, &'static [u8]>,
    pub secrets: Table<'txn, &'static str, &'static [u8]>,
    pub jtis: Table<'txn, &'static str, &'static [u8]>,
    pub idp_tokens: Table<'txn, &'static str, &'static [u8]>,
    pub inventory: Table<'txn, &'static str, &'static [u8]>,
    pub grants: Table<'txn, &'static str, &'static [u8]>,
    pub subject_grants: Table<'txn, &'static str, &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    /// Open (creating if needed) every table.
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let open = |e| unavailable("opening a table in the write transaction", e);
        Ok(Tables {
            codes: txn.open_table(CODES).map_err(open)?,
            refresh: txn.open_table(REFRESH).map_err(open)?,
            families: txn.open_table(FAMILIES).map_err(open)?,
            consents: txn.open_table(CONSENTS).map_err(open)?,
            clients: txn.open_table(CLIENTS).map_err(open)?,
            signing_keys: txn.open_table(SIGNING_KEYS).map_err(open)?,
            secrets: txn.open_table(SECRETS).map_err(open)?,
            jtis: txn.open_table(JTIS).map_err(open)?,
            idp_tokens: txn.open_table(IDP_TOKENS).map_err(open)?,
            inventory: txn.open_table(INVENTORY).map_err(open)?,
            grants: txn.open_table(GRANTS).map_err(open)?,
            subject_grants: txn.open_table(SUBJECT_GRANTS).map_err(open)?,
        })
    }
}

/// One queued write.
pub(crate) trait Job: Send {
    /// Apply the job's logic inside the batch transaction. `Err` aborts the whole batch.
    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), StoreError>;
    /// Deliver the result once the batch's fate (`commit`) is known.
    fn finish(self: Box<Self>, commit: &Result<(), StoreError>);
}

/// A job built from a closure; its caller awaits `reply`.
pub(crate) struct ClosureJob<F, R> {
    op: Option<F>,
    outcome: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> ClosureJob<F, R> {
    pub(crate) fn new(op: F, reply: oneshot::Sender<Result<R, StoreError>>) -> Self {
        ClosureJob {
            op: Some(op),
            outcome: None,
            reply,
        }
    }
}

impl<F, R> Job for ClosureJob<F, R>
where
    F: FnOnce(&mut Tables<'_>) -> Result<R, StoreError> + Send,
    R: Send,
{
    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), StoreError> {
        let Some(op) = self.op.take() else {
            return Ok(()); // applied already; cannot happen, harmless if it did
        };
        match op(tables) {
            Err(e @ StoreError::Unavailable(_)) => {
                self.outcome = Some(Err(e.clone()));
                Err(e)
            }
            other => {
                self.outcome = Some(other);
                Ok(())
            }
        }
    }

    fn finish(self: Box<Self>, commit: &Result<(), StoreError>) {
        let result = match (commit, self.outcome) {
            // The op's own rejection (e.g. a corrupt record) is the more precise answer.
            (_, Some(Err(e))) => Err(e),
            (Err(e), _) => Err(e.clone()),
            (Ok(()), Some(ok)) => ok,
            (Ok(()), None) => Err(StoreError::Unavailable(
                "write was not applied (batch aborted)".to_owned(),
            )),
        };
        // The caller may have gone away (request cancelled); nothing to do then.
        let _ = self.reply.send(result);
    }
}

/// Counters shared between the writer and [`super::EmbeddedStore::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub ops: AtomicU64,
    pub failed_batches: AtomicU64,
    pub largest_batch: AtomicU64,
    pub swept: AtomicU64,
    /// False once the writer thread has exited (including by panic).
    pub writer_alive: AtomicBool,
}

/// Clears `writer_alive` when the writer thread ends, however it ends.
struct AliveGuard(Arc<Counters>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.writer_alive.store(false, Ordering::SeqCst);
    }
}

/// The writer thread's body: runs until every sender is dropped.
pub(crate) fn run(db: Arc<Database>, rx: Receiver<Box<dyn Job>>, counters: Arc<Counters>) {
    let _alive = AliveGuard(Arc::clone(&counters));
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = apply_batch(&db, &mut batch);
        let n = batch.len() as u64;
        counters.ops.fetch_add(n, Ordering::Relaxed);
        counters.largest_batch.fetch_max(n, Ordering::Relaxed);
        match &result {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, jobs = n, "embedded store: write batch failed");
            }
        }
        for job in batch.drain(..) {
            job.finish(&result);
        }
    }
}

/// Apply every job in one transaction and commit it.
fn apply_batch(db: &Database, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let txn = db
        .begin_write()
        .map_err(|e| unavailable("beginning a write transaction", e))?;
    let applied = (|| {
        let mut tables = Tables::open(&txn)?;
        for job in batch.iter_mut() {
            job.apply(&mut tables)?;
        }
        Ok(())
    })();
    match applied {
        Ok(()) => txn
            .commit()
            .map_err(|e| unavailable("committing a write transaction", e)),
        Err(e) => {
            if let Err(abort) = txn.abort() {
                tracing::warn!(error = %abort, "embedded store: aborting a failed batch failed");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use redb::ReadableDatabase;

    use super::*;
    use crate::embedded::codec::SECRETS;
    use crate::embedded::submit;

    type Reply<R> = oneshot::Receiver<Result<R, StoreError>>;

    fn put_secret(tx: &mpsc::Sender<Box<dyn Job>>, name: &'static str) -> Reply<()> {
        submit(tx, move |t| {
            t.secrets
                .insert(name, b"v".as_slice())
                .map_err(|e| unavailable("test", e))?;
            Ok(())
        })
        .unwrap()
    }

    fn failing(tx: &mpsc::Sender<Box<dyn Job>>, err: StoreError) -> Reply<()> {
        submit(tx, move |_| Err(err)).unwrap()
    }

    fn secret_exists(db: &Database, name: &str) -> bool {
        let txn = db.begin_read().unwrap();
        match txn.open_table(SECRETS) {
            Ok(table) => redb::ReadableTable::get(&table, name).unwrap().is_some(),
            Err(redb::TableError::TableDoesNotExist(_)) => false,
            Err(e) => panic!("{e}"),
        }
    }

    /// Queue `jobs` before the writer starts, so they form one batch; then run it to the end.
    fn run_one_batch(
        queue: impl FnOnce(&mpsc::Sender<Box<dyn Job>>),
    ) -> (Arc<Database>, Arc<Counters>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("t.redb")).unwrap());
        let (tx, rx) = mpsc::channel();
        queue(&tx);
        drop(tx);
        let counters = Arc::new(Counters::default());
        run(Arc::clone(&db), rx, Arc::clone(&counters));
        (db, counters)
    }

    #[test]
    fn a_storage_failure_fails_every_job_in_the_batch_and_writes_nothing() {
        let mut replies = Vec::new();
        let (db, counters) = run_one_batch(|tx| {
            replies.push(put_secret(tx, "before"));
            replies.push(failing(tx, StoreError::Unavailable("disk gone".into())));
            replies.push(put_secret(tx, "after"));
        });
        for r in replies {
            let err = r.blocking_recv().unwrap().unwrap_err();
            assert!(err.to_string().contains("disk gone"), "{err}");
        }
        assert_eq!(counters.failed_batches.load(Ordering::Relaxed), 1);
        assert_eq!(counters.commits.load(Ordering::Relaxed), 0);
        assert!(!secret_exists(&db, "before") && !secret_exists(&db, "after"));
    }

    #[test]
    fn a_rejected_job_fails_alone_and_the_batch_commits() {
        let (mut ok, mut bad) = (Vec::new(), None);
        let (db, counters) = run_one_batch(|tx| {
            ok.push(put_secret(tx, "a"));
            bad = Some(failing(
                tx,
                StoreError::Corrupt {
                    key: "k".into(),
                    reason: "bad json".into(),
                },
            ));
            ok.push(put_secret(tx, "b"));
        });
        for r in ok {
            r.blocking_recv().unwrap().unwrap();
        }
        let err = bad.unwrap().blocking_recv().unwrap().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert_eq!(
            counters.commits.load(Ordering::Relaxed),
            1,
            "one commit for the batch"
        );
        assert_eq!(counters.ops.load(Ordering::Relaxed), 3);
        assert!(secret_exists(&db, "a") && secret_exists(&db, "b"));
    }
}

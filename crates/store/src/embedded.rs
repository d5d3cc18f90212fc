//! # Embedded backend (redb) — the default store (docs/architecture.md, *Storage and scale*)
//!
//! One redb file (`cimdgate.redb`) inside a folder the operator names (`store.url =
//! "embedded:PATH"`). It serves one cimdgate process: redb takes an exclusive lock on the
//! file, and a second process gets a clear [`StoreError::Open`]. Several instances need the
//! Redis backend.
//!
//! ## Design
//! - **Writes** go through one writer thread that batches concurrent writes into one transaction
//!   and commits once with redb's default durability (fsync) — *group commit*, see
//!   `embedded/writer.rs`. A write call returns `Ok` only after the commit holding it has returned,
//!   so a refresh token handed to a client, or a `jti` recorded as used, survives `kill -9`
//!   (issue 5). Atomic operations (code redemption, refresh rotation, `jti` insert, secret and key
//!   initialisation) run their check-and-write inside that transaction.
//! - **Reads** use their own read transactions (MVCC snapshots, which never wait for the
//!   writer) directly on the calling task: a lookup costs a few microseconds (see the
//!   `store` benchmark), less than a `spawn_blocking` hop.
//! - **Expiry**: every expiring row holds `expires_at`; reads treat expired rows as absent and
//!   a background thread deletes them every [`DEFAULT_SWEEP_INTERVAL`] (`embedded/sweep.rs`).
//! - Values are JSON of the crate's record types (`embedded/codec.rs`).
//!
//! Non-goals: sharing one file between processes, replication, encryption at rest (the folder
//! is created `0700`; IdP tokens arrive sealed by the caller).

mod codec;
mod ops;
mod sweep;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageError,
};
use tokio::sync::oneshot;

use crate::{
    ClientRecord, CodeRecord, CodeRedeem, CodeRedeemOutcome, CodeRedemption, ConsentRecord,
    GrantEntry, RefreshRecord, RefreshRotation, RegisteredClient, SigningKeyRecord, SpentRefresh,
    Store, StoreError, TokenHash,
};
use codec::{
    CLIENTS, CODES, CONSENTS, FAMILIES, GRANTS, IDP_TOKENS, INVENTORY, IdpTokensRecord, REFRESH,
    SIGNING_KEYS, SUBJECT_GRANTS, StoredCode, StoredRefresh, StrTable, decode, from_hex,
    is_expired, pair_key, subject_grant_key, unavailable,
};
use writer::{ClosureJob, Counters, Job, Tables};

/// Name of the database file inside the store folder.
pub const DB_FILE_NAME: &str = "cimdgate.redb";

/// URL scheme of the embedded store in `store.url` (`embedded:PATH`).
pub const URL_PREFIX: &str = "embedded:";

/// How often expired rows are deleted (reads ignore them in between).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Default size of redb's page cache (read cache plus write buffer). redb's own default is
/// 1 GiB, which a busy server fills (the cache is never shrunk); the OS page cache keeps
/// recently read pages anyway, so a small cache costs a `pread` on a miss, not a disk read.
pub const DEFAULT_CACHE_SIZE: usize = 16 * 1024 * 1024;

/// Tuning for [`EmbeddedStore::open_with`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Interval between expiry sweeps. Default [`DEFAULT_SWEEP_INTERVAL`].
    pub sweep_interval: Duration,
    /// Bytes of memory for redb's page cache (at most half of it buffers a transaction's
    /// writes). Default [`DEFAULT_CACHE_SIZE`].
    pub cache_size: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

/// Write-path counters, for tests, benchmarks and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Write operations processed (committed or failed). `ops / commits` is the mean batch.
    pub ops: u64,
    /// Batches whose transaction failed (every op in them got the error).
    pub failed_batches: u64,
    /// The most operations committed in one transaction.
    pub largest_batch: u64,
    /// Expired rows deleted by the background sweep.
    pub swept: u64,
}

/// The embedded [`Store`]: one redb file, group-committed writes. See the module docs.
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
    writer: Option<Sender<Box<dyn Job>>>,
    writer_thread: Option<JoinHandle<()>>,
    sweeper_stop: Option<Sender<()>>,
    sweeper_thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Open (creating if needed) the store in folder `dir` with default options.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Open from a `store.url` of the form `embedded:PATH`.
    pub fn open_url(url: &str) -> Result<EmbeddedStore, StoreError> {
        Self::open_url_with(url, EmbeddedOptions::default())
    }

    /// [`Self::open_url`] with `options`.
    pub fn open_url_with(url: &str, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
        match url.strip_prefix(URL_PREFIX) {
            Some(path) if !path.is_empty() => Self::open_with(Path::new(path), options),
            _ => Err(StoreError::Open(format!(
                "store url {url:?} is not an embedded store url; expected {URL_PREFIX}PATH"
            ))),
        }
    }

    /// Open (creating if needed) the store in folder `dir`.
    ///
    /// The folder is created with mode `0700` and the file set to `0600` on Unix. Fails with [`StoreError::Open`] if the
    /// folder cannot be created, the file is locked by another process (or another
    /// `EmbeddedStore` in this one), or the file is unreadable or not a redb database.
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<EmbeddedStore, StoreError> {
        create_private_dir(dir)?;
        let path = dir.join(DB_FILE_NAME);
        let db = Database::builder()
            .set_cache_size(options.cache_size)
            .create(&path)
            .map_err(|e| open_error(&path, e))?;
        restrict_to_owner(&path)?;
        init_tables(&db).map_err(|e| StoreError::Open(format!("{}: {e}", path.display())))?;
        let db = Arc::new(db);
        let counters = Arc::new(Counters::default());
        counters.writer_alive.store(true, Ordering::SeqCst);

        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let writer_thread = std::thread::Builder::new()
            .name("cimdgate-store-writer".to_owned())
            .spawn({
                let (db, counters) = (Arc::clone(&db), Arc::clone(&counters));
                move || writer::run(db, rx, counters)
            })
            .map_err(|e| StoreError::Open(format!("cannot start the store writer thread: {e}")))?;

        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let sweeper_thread = std::thread::Builder::new()
            .name("cimdgate-store-sweep".to_owned())
            .spawn({
                let (db, tx, counters) = (Arc::clone(&db), tx.clone(), Arc::clone(&counters));
                let interval = options.sweep_interval;
                move || sweep::run(db, tx, stop_rx, interval, counters)
            })
            .map_err(|e| StoreError::Open(format!("cannot start the store sweep thread: {e}")))?;

        Ok(EmbeddedStore {
            db,
            path,
            writer: Some(tx),
            writer_thread: Some(writer_thread),
            sweeper_stop: Some(stop_tx),
            sweeper_thread: Some(sweeper_thread),
            counters,
        })
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write-path counters since open.
    pub fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            commits: c.commits.load(Ordering::Relaxed),
            ops: c.ops.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            swept: c.swept.load(Ordering::Relaxed),
        }
    }

    /// Run one expiry sweep now, deleting every row expired at `now`; returns how many were
    /// deleted. The background thread does the same every sweep interval.
    pub async fn sweep_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let writer = self.writer()?.clone();
        let db = Arc::clone(&self.db);
        let n = tokio::task::spawn_blocking(move || sweep::sweep_pass(&db, &writer, now))
            .await
            .map_err(|e| StoreError::Unavailable(format!("sweep task failed: {e}")))??;
        self.counters.swept.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    fn writer(&self) -> Result<&Sender<Box<dyn Job>>, StoreError> {
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the embedded store is closed".to_owned()))
    }

    /// Queue `op` for the next group commit and wait until that commit has returned.
    async fn write<R, F>(&self, op: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Tables<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let reply = submit(self.writer()?, op)?;
        reply.await.map_err(|_| writer_gone())?
    }

    /// Run `f` on a fresh read transaction.
    fn read<R>(
        &self,
        what: &str,
        f: impl FnOnce(&ReadTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_read().map_err(|e| unavailable(what, e))?;
        f(&txn)
    }
}

impl Drop for EmbeddedStore {
    /// Stop the sweeper, let the writer finish what is queued, and close the file (releasing
    /// its lock) before returning, so the folder can be reopened right away.
    fn drop(&mut self) {
        drop(self.sweeper_stop.take());
        if let Some(t) = self.sweeper_thread.take()
            && t.join().is_err()
        {
            tracing::error!("embedded store: the sweep thread panicked");
        }
        drop(self.writer.take());
        if let Some(t) = self.writer_thread.take()
            && t.join().is_err()
        {
            tracing::error!("embedded store: the writer thread panicked");
        }
    }
}

/// Queue a job on the writer; returns the receiver of its result.
fn submit<R, F>(
    writer: &Sender<Box<dyn Job>>,
    op: F,
) -> Result<oneshot::Receiver<Result<R, StoreError>>, StoreError>
where
    F: FnOnce(&mut Tables<'_>) -> Result<R, StoreError> + Send + 'static,
    R: Send + 'static,
{
    let (reply_tx, reply_rx) = oneshot::channel();
    writer
        .send(Box::new(ClosureJob::new(op, reply_tx)))
        .map_err(|_| writer_gone())?;
    Ok(reply_rx)
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the embedded store's writer thread has stopped".to_owned())
}

/// The database holds sealing secrets, signing keys and token hashes: readable by its owner only
/// (`0600`), whatever the umask, also for a file created by an older version.
fn restrict_to_owner(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            StoreError::Open(format!("cannot make {} private: {e}", path.display()))
        })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        StoreError::Open(format!(
            "cannot create the store folder {}: {e}",
            dir.display()
        ))
    })
}

fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let shown = path.display();
    StoreError::Open(match e {
        DatabaseError::DatabaseAlreadyOpen => format!(
            "{shown} is already open in another process (or another store in this one); \
             an embedded store serves one cimdgate instance — stop the other one, or use a \
             Redis store to run several"
        ),
        DatabaseError::Storage(StorageError::Io(io)) => format!("cannot open {shown}: {io}"),
        DatabaseError::UpgradeRequired(v) => {
            format!("{shown} uses redb file format {v}, which this version cannot read")
        }
        other => format!("cannot open {shown} (not a readable cimdgate database?): {other}"),
    })
}

/// Create every table so read transactions never see a missing one.
fn init_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db
        .begin_write()
        .map_err(|e| unavailable("beginning the setup transaction", e))?;
    let mut tables = Tables::open(&txn)?;
    index_grants_by_subject(&mut tables)?;
    drop(tables);
    txn.commit()
        .map_err(|e| unavailable("committing the setup transaction", e))
}

/// Databases written before the per-user grant index: build it once from the client index,
/// so [`Store::list_subject_grants`] sees the grants made before the upgrade.
fn index_grants_by_subject(t: &mut Tables<'_>) -> Result<(), StoreError> {
    let what = "indexing grants by user";
    if !t
        .subject_grants
        .is_empty()
        .map_err(|e| unavailable(what, e))?
        || t.grants.is_empty().map_err(|e| unavailable(what, e))?
    {
        return Ok(());
    }
    let mut rows = Vec::new();
    for row in t.grants.iter().map_err(|e| unavailable(what, e))? {
        let (k, v) = row.map_err(|e| unavailable(what, e))?;
        let entry: GrantEntry = decode("grant", k.value(), v.value())?;
        let g = &entry.grant;
        rows.push((
            subject_grant_key(&g.client_id, &g.subject, &g.family_id),
            v.value().to_vec(),
        ));
    }
    for (key, bytes) in rows {
        t.subject_grants
            .insert(key.as_str(), bytes.as_slice())
            .map_err(|e| unavailable(what, e))?;
    }
    Ok(())
}

/// The live grant rows of `table` whose key starts with `prefix` and that `keep`.
fn scan_grants(
    txn: &ReadTransaction,
    table: StrTable,
    prefix: &str,
    now: SystemTime,
    keep: impl Fn(&GrantEntry) -> bool,
) -> Result<Vec<GrantEntry>, StoreError> {
    let what = "listing grants";
    let table = open_table(txn, table)?;
    let rows = table.range(prefix..).map_err(|e| unavailable(what, e))?;
    let mut out = Vec::new();
    for row in rows {
        let (k, v) = row.map_err(|e| unavailable(what, e))?;
        if !k.value().starts_with(prefix) {
            break;
        }
        let entry: GrantEntry = decode("grant", k.value(), v.value())?;
        if keep(&entry) && !is_expired(entry.expires_at, now) {
            out.push(entry);
        }
    }
    Ok(out)
}

fn open_table(
    txn: &ReadTransaction,
    def: StrTable,
) -> Result<redb::ReadOnlyTable<&'static str, &'static [u8]>, StoreError> {
    txn.open_table(def)
        .map_err(|e| unavailable(&format!("opening table {def}"), e))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn health(&self) -> Result<(), StoreError> {
        if !self.counters.writer_alive.load(Ordering::SeqCst) {
            return Err(writer_gone());
        }
        self.read("health check", |txn| open_table(txn, CLIENTS).map(drop))
    }

    async fn put_code(&self, code: &TokenHash, record: &CodeRecord) -> Result<(), StoreError> {
        let (code, record) = (code.0.clone(), record.clone());
        self.write(move |t| ops::put_code(t, &code, record)).await
    }

    async fn take_code(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<CodeRedemption, StoreError> {
        let code = code.0.clone();
        self.write(move |t| ops::take_code(t, &code, now)).await
    }

    async fn get_code(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<Option<(CodeRecord, bool)>, StoreError> {
        self.read("reading a code", |txn| {
            let stored: Option<StoredCode> =
                ops::get_json(&open_table(txn, CODES)?, "code", code.as_str())?;
            Ok(stored
                .filter(|s| !is_expired(s.record.expires_at, now))
                .map(|s| (s.record, s.redeemed)))
        })
    }

    async fn redeem_code(
        &self,
        req: &CodeRedeem,
        now: SystemTime,
    ) -> Result<CodeRedeemOutcome, StoreError> {
        let req = req.clone();
        self.write(move |t| ops::redeem_code(t, req, now)).await
    }

    async fn put_refresh(
        &self,
        token: &TokenHash,
        record: &RefreshRecord,
    ) -> Result<(), StoreError> {
        let (token, record) = (token.0.clone(), record.clone());
        self.write(move |t| ops::put_refresh(t, &token, record))
            .await
    }

    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_record: &RefreshRecord,
        now: SystemTime,
    ) -> Result<RefreshRotation, StoreError> {
        let (old, new, record) = (old.0.clone(), new.0.clone(), new_record.clone());
        self.write(move |t| ops::rotate_refresh(t, &old, &new, record, now))
            .await
    }

    async fn spend_refresh(
        &self,
        token: &TokenHash,
        revoke_until: SystemTime,
        now: SystemTime,
    ) -> Result<SpentRefresh, StoreError> {
        let token = token.0.clone();
        self.write(move |t| ops::spend_refresh(t, &token, revoke_until, now))
            .await
    }

    /// Only an *active* token is returned: `None` when it is unknown, expired, already
    /// rotated (spent), or its family is revoked.
    async fn get_refresh(
        &self,
        token: &TokenHash,
        now: SystemTime,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        self.read("reading a refresh token", |txn| {
            let stored: Option<StoredRefresh> =
                ops::get_json(&open_table(txn, REFRESH)?, "refresh token", token.as_str())?;
            let Some(stored) = stored else {
                return Ok(None);
            };
            if stored.spent || is_expired(stored.record.expires_at, now) {
                return Ok(None);
            }
            let families = open_table(txn, FAMILIES)?;
            if ops::family_revoked(&families, &stored.record.grant.family_id, now)? {
                return Ok(None);
            }
            Ok(Some(stored.record))
        })
    }

    async fn revoke_family(&self, family_id: &str, until: SystemTime) -> Result<(), StoreError> {
        let family_id = family_id.to_owned();
        self.write(move |t| ops::revoke_family(t, &family_id, until))
            .await
    }

    async fn is_family_revoked(
        &self,
        family_id: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        self.read("reading a family revocation", |txn| {
            ops::family_revoked(&open_table(txn, FAMILIES)?, family_id, now)
        })
    }

    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        self.read("reading a consent decision", |txn| {
            let key = pair_key(subject, client_id);
            let rec: Option<ConsentRecord> =
                ops::get_json(&open_table(txn, CONSENTS)?, "consent", &key)?;
            Ok(rec.filter(|r| !is_expired(r.expires_at, now)))
        })
    }

    async fn put_consent(&self, record: &ConsentRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |t| ops::put_consent(t, record)).await
    }

    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        let client = client.clone();
        self.write(move |t| ops::put_client(t, client)).await
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let now = SystemTime::now();
        self.read("reading a registered client", |txn| {
            let client: Option<RegisteredClient> =
                ops::get_json(&open_table(txn, CLIENTS)?, "registered client", client_id)?;
            Ok(client.filter(|c| c.expires_at.is_none_or(|e| !is_expired(e, now))))
        })
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read("reading signing keys", |txn| {
            let table = txn
                .open_table(SIGNING_KEYS)
                .map_err(|e| unavailable("opening table signing_keys", e))?;
            ops::all_signing_keys(&table)
        })
    }

    async fn init_signing_key(
        &self,
        candidate: &SigningKeyRecord,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let candidate = candidate.clone();
        self.write(move |t| ops::init_signing_key(t, candidate))
            .await
    }

    async fn init_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (name, candidate) = (name.to_owned(), candidate.to_vec());
        self.write(move |t| ops::init_secret(t, &name, candidate))
            .await
    }

    /// "Live" is judged against the wall clock when the call is made.
    async fn record_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        let (client_id, jti, now) = (client_id.to_owned(), jti.to_owned(), SystemTime::now());
        self.write(move |t| ops::record_jti(t, &client_id, &jti, expires_at, now))
            .await
    }

    async fn put_idp_tokens(
        &self,
        id: &str,
        sealed: &[u8],
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let (id, sealed) = (id.to_owned(), sealed.to_vec());
        self.write(move |t| ops::put_idp_tokens(t, &id, &sealed, expires_at))
            .await
    }

    async fn get_idp_tokens(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read("reading IdP tokens", |txn| {
            let rec: Option<IdpTokensRecord> =
                ops::get_json(&open_table(txn, IDP_TOKENS)?, "IdP tokens", id)?;
            let Some(rec) = rec.filter(|r| !is_expired(r.expires_at, now)) else {
                return Ok(None);
            };
            from_hex(&rec.sealed_hex)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt {
                    key: format!("IdP tokens {id}"),
                    reason: "sealed blob is not hex".to_owned(),
                })
        })
    }

    async fn get_client_record(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.read("reading a client record", |txn| {
            ops::get_json(&open_table(txn, INVENTORY)?, "client record", client_id)
        })
    }

    async fn cas_client_record(
        &self,
        record: &ClientRecord,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let record = record.clone();
        self.write(move |t| ops::cas_client_record(t, record, expected))
            .await
    }

    async fn list_client_records(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.read("listing the client inventory", |txn| {
            let table = open_table(txn, INVENTORY)?;
            let rows = table
                .iter()
                .map_err(|e| unavailable("listing the client inventory", e))?;
            let mut out = Vec::new();
            for row in rows {
                let (k, v) = row.map_err(|e| unavailable("listing the client inventory", e))?;
                out.push(decode("client record", k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    async fn count_client_records(&self) -> Result<u64, StoreError> {
        self.read("counting the client inventory", |txn| {
            open_table(txn, INVENTORY)?
                .len()
                .map_err(|e| unavailable("counting the client inventory", e))
        })
    }

    async fn put_grant(&self, entry: &GrantEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |t| ops::put_grant(t, entry)).await
    }

    async fn list_grants(
        &self,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantEntry>, StoreError> {
        let prefix = pair_key(client_id, "");
        self.read("listing grants", |txn| {
            scan_grants(txn, GRANTS, &prefix, now, |_| true)
        })
    }

    async fn list_subject_grants(
        &self,
        client_id: &str,
        subject: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantEntry>, StoreError> {
        let prefix = subject_grant_key(client_id, subject, "");
        self.read("listing a user's grants", |txn| {
            // The prefix cannot tell `alice` from `alice\0x`: compare the subject itself.
            scan_grants(txn, SUBJECT_GRANTS, &prefix, now, |e| {
                e.grant.subject == subject
            })
        })
    }

    async fn remove_grants(
        &self,
        client_id: &str,
        family_ids: &[String],
    ) -> Result<(), StoreError> {
        let (client_id, family_ids) = (client_id.to_owned(), family_ids.to_vec());
        self.write(move |t| ops::remove_grants(t, &client_id, &family_ids))
            .await
    }
}

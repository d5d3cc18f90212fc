//! The inventory itself ([`Governance`]): recording what is seen, coalescing activity, and
//! the compare-and-set loop every change of a record goes through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cimd::cache::ResolvedClient;
use cimdgate_store::{
    AdminDecision, ClientKind, ClientRecord, ClientStatus, DocumentChange, FetchSummary,
    GrantEntry, RegisteredClient, Store, StoreError,
};

use super::snapshot;
use crate::audit;

/// How long an administrator's decision is reused from memory: the bound on how late another
/// instance sees a block, a denial or an approval (the gateway's own bound is its revocation
/// cache, 5 s).
pub const DECISION_TTL: Duration = Duration::from_secs(2);
/// How often coalesced `last_seen`, token counts and fetch outcomes are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// Most clients whose touches are held between two flushes; beyond it new clients' touches
/// wait for the next request after the flush (the inventory is never a memory sink).
const MAX_PENDING_TOUCHES: usize = 50_000;
/// Byte budget of each of the four in-memory caches below (decisions, recorded digests,
/// consenting users, recorded failures): bounded in bytes, so long client_ids or subjects
/// cannot make them a memory sink. Entries are weighed by the strings they hold plus
/// [`ENTRY_OVERHEAD`], and never lighter than `CACHE_BYTES / CACHE_MAX_ENTRIES`, so none
/// holds more than [`CACHE_MAX_ENTRIES`] entries either.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// The most entries each of those caches holds.
const CACHE_MAX_ENTRIES: u64 = 100_000;
/// moka's per-entry bookkeeping plus the key's and value's fixed parts, roughly.
const ENTRY_OVERHEAD: u64 = 96;

/// The weight of a cache entry holding `bytes` bytes of strings.
fn weight(bytes: usize) -> u32 {
    let bytes = u64::try_from(bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(ENTRY_OVERHEAD)
        .max(CACHE_BYTES.div_ceil(CACHE_MAX_ENTRIES));
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Compare-and-set attempts before an inventory update gives up (and is logged).
const CAS_ATTEMPTS: usize = 8;

/// Activity held in memory until the next flush.
#[derive(Debug, Clone, Copy)]
struct Touch {
    last_seen: SystemTime,
    tokens: u64,
    fetched_at: Option<SystemTime>,
}

/// The inventory and the administrators' decisions, shared by every channel.
pub struct Governance {
    pub(super) store: Arc<dyn Store>,
    reapprove_on_change: bool,
    /// `[cimd] inventory_max_clients`: no record is created beyond it (review finding M8).
    max_clients: u64,
    /// Records in the store, as last counted plus those created here since (`u64::MAX`: not
    /// counted yet).
    count: AtomicU64,
    /// When "inventory full" was last logged (Unix s), so a flood logs once a minute.
    full_logged: AtomicU64,
    /// Decisions read recently (`None`: no record).
    decisions: moka::future::Cache<String, Option<AdminDecision>>,
    /// The digest recorded per client, so an unchanged document is not compared again.
    recorded: moka::sync::Cache<String, Arc<str>>,
    /// `(client_id, subject)` pairs already listed as consenting users.
    users: moka::sync::Cache<(String, String), ()>,
    /// Clients whose failed fetch was recorded in the last [`FLUSH_INTERVAL`] (a failing
    /// document is negatively cached and may be asked for on every request).
    failures: moka::sync::Cache<String, ()>,
    touches: Mutex<HashMap<String, Touch>>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("reapprove_on_change", &self.reapprove_on_change)
            .finish_non_exhaustive()
    }
}

impl Governance {
    /// Governance over `store`; `reapprove_on_change` and `max_clients` are `[cimd]
    /// reapprove_on_change` and `inventory_max_clients`.
    pub fn new(store: Arc<dyn Store>, reapprove_on_change: bool, max_clients: u64) -> Self {
        Governance {
            store,
            reapprove_on_change,
            max_clients,
            count: AtomicU64::new(u64::MAX),
            full_logged: AtomicU64::new(0),
            decisions: moka::future::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|k: &String, v: &Option<AdminDecision>| {
                    let text = v.as_ref().map_or(0, |d| {
                        d.reason.as_ref().map_or(0, String::len)
                            + d.scope_ceiling.as_ref().map_or(0, String::len)
                    });
                    weight(k.len() + text)
                })
                .time_to_live(DECISION_TTL)
                .build(),
            recorded: moka::sync::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|k: &String, v: &Arc<str>| weight(k.len() + v.len()))
                .time_to_live(Duration::from_secs(3600))
                .build(),
            users: moka::sync::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|k: &(String, String), _: &()| weight(k.0.len() + k.1.len()))
                .time_to_live(Duration::from_secs(3600))
                .build(),
            failures: moka::sync::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|k: &String, _: &()| weight(k.len()))
                .time_to_live(FLUSH_INTERVAL)
                .build(),
            touches: Mutex::new(HashMap::new()),
        }
    }

    /// The store (the admin API lists and reads records through it).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The administrator's decision about `client_id` (cached for [`DECISION_TTL`]).
    pub async fn decision(&self, client_id: &str) -> Result<Option<AdminDecision>, StoreError> {
        let store = self.store.clone();
        let id = client_id.to_owned();
        self.decisions
            .try_get_with(client_id.to_owned(), async move {
                store
                    .get_client_record(&id)
                    .await
                    .map(|r| r.map(|r| r.admin))
            })
            .await
            .map_err(|e: Arc<StoreError>| (*e).clone())
    }

    /// Record a resolved CIMD client: create its record on first sight, record a changed
    /// document, or coalesce the sighting. Returns the decision after the update.
    pub async fn observe_cimd(
        &self,
        client_id: &str,
        host: &str,
        resolved: &ResolvedClient,
        requires_approval: bool,
    ) -> Result<Option<AdminDecision>, StoreError> {
        let now = SystemTime::now();
        if self
            .recorded
            .get(client_id)
            .is_some_and(|d| *d == *resolved.digest)
        {
            self.touch(client_id, now, 0, Some(resolved.fetched_at));
            return self.decision(client_id).await;
        }
        let room = self.has_room().await;
        let snapshot = snapshot::of_document(resolved);
        let fetch = FetchSummary {
            at: resolved.fetched_at,
            ok: true,
            reason: None,
        };
        let rec = self
            .update(client_id, |cur| {
                let mut rec = match cur {
                    Some(r) => r,
                    None if !room => return None,
                    None => {
                        let mut r = ClientRecord::new(client_id, ClientKind::Cimd, host, now);
                        r.snapshot = snapshot.clone();
                        r.admin.status = initial_status(requires_approval);
                        r.last_fetch = Some(fetch.clone());
                        return Some((r, Observed::First));
                    }
                };
                if rec.snapshot.digest == snapshot.digest {
                    return None;
                }
                let changes = snapshot::diff(&rec.snapshot, &snapshot);
                let first_snapshot = rec.snapshot.digest.is_none();
                rec.snapshot = snapshot.clone();
                rec.last_seen = rec.last_seen.max(now);
                rec.last_fetch = Some(fetch.clone());
                if first_snapshot || changes.is_empty() {
                    return Some((rec, Observed::Refreshed));
                }
                let material = snapshot::is_material(&changes);
                let fields: Vec<String> = changes.iter().map(|c| c.field.clone()).collect();
                rec.push_change(DocumentChange { at: now, changes });
                let reapprove = material
                    && self.reapprove_on_change
                    && requires_approval
                    && rec.admin.status == ClientStatus::Active;
                if reapprove {
                    rec.admin = AdminDecision {
                        status: ClientStatus::Pending,
                        reason: Some(format!("document changed: {}", fields.join(", "))),
                        scope_ceiling: rec.admin.scope_ceiling.clone(),
                        changed_at: Some(now),
                        by_admin: false,
                    };
                }
                Some((
                    rec,
                    Observed::Changed {
                        fields,
                        material,
                        reapprove,
                    },
                ))
            })
            .await?;
        self.recorded
            .insert(client_id.to_owned(), Arc::from(resolved.digest.as_str()));
        self.decisions
            .insert(client_id.to_owned(), rec.as_ref().map(|r| r.admin.clone()))
            .await;
        Ok(rec.map(|r| r.admin))
    }

    /// Record a dynamically registered client (at registration, and when seen without a
    /// record, e.g. registered before the inventory existed). Returns its decision.
    pub async fn observe_dcr(
        &self,
        client: &RegisteredClient,
        requires_approval: bool,
    ) -> Result<Option<AdminDecision>, StoreError> {
        let id = &client.client_id;
        let now = SystemTime::now();
        if self.recorded.contains_key(id) {
            self.touch(id, now, 0, None);
            return self.decision(id).await;
        }
        let host = client
            .redirect_uris
            .first()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let room = self.has_room().await;
        let rec = self
            .update(id, |cur| match cur {
                Some(_) => None,
                None if !room => None,
                None => {
                    let mut r = ClientRecord::new(id, ClientKind::Dcr, &host, now);
                    r.snapshot = snapshot::of_registration(client);
                    r.admin.status = initial_status(requires_approval);
                    Some((r, Observed::First))
                }
            })
            .await?;
        self.recorded.insert(id.clone(), Arc::from(""));
        Ok(rec.map(|r| r.admin))
    }

    /// A failed fetch of a known client's document (unknown clients get no record: a failing
    /// URL must not grow the inventory). At most one store access per client per
    /// [`FLUSH_INTERVAL`]: a failing document is answered from the negative cache, possibly on
    /// every request.
    pub async fn fetch_failed(&self, client_id: &str, reason: &str) {
        if self.failures.contains_key(client_id) {
            return;
        }
        self.failures.insert(client_id.to_owned(), ());
        let now = SystemTime::now();
        let reason = reason.chars().take(200).collect::<String>();
        let result = self
            .update(client_id, |cur| {
                let mut rec = cur?;
                rec.last_fetch = Some(FetchSummary {
                    at: now,
                    ok: false,
                    reason: Some(reason.clone()),
                });
                Some((rec, Observed::Refreshed))
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(client_id, error = %e, "cannot record a failed fetch in the inventory");
        }
    }

    /// A user approved (or was auto-approved for) the client: list them (once per hour at most
    /// per pair from this instance).
    pub async fn user_consented(&self, client_id: &str, subject: &str) {
        let key = (client_id.to_owned(), subject.to_owned());
        if self.users.contains_key(&key) {
            return;
        }
        let result = self
            .update(client_id, |cur| {
                let mut rec = cur?;
                rec.add_user(subject).then_some((rec, Observed::Refreshed))
            })
            .await;
        match result {
            Ok(_) => self.users.insert(key, ()),
            Err(e) => tracing::warn!(client_id, error = %e, "cannot record a consenting user"),
        }
    }

    /// Index a new grant under its client so it can be listed and revoked. A failure is
    /// returned: a grant missing from the index could not be revoked by client.
    pub async fn grant_started(&self, entry: &GrantEntry) -> Result<(), StoreError> {
        self.store.put_grant(entry).await
    }

    /// An access token was issued to the client (counted in memory, written by the flush).
    pub fn token_issued(&self, client_id: &str) {
        self.touch(client_id, SystemTime::now(), 1, None);
    }

    fn touch(&self, client_id: &str, now: SystemTime, tokens: u64, fetched_at: Option<SystemTime>) {
        let Ok(mut map) = self.touches.lock() else {
            return;
        };
        if let Some(t) = map.get_mut(client_id) {
            t.last_seen = t.last_seen.max(now);
            t.tokens += tokens;
            t.fetched_at = t.fetched_at.max(fetched_at);
        } else if map.len() < MAX_PENDING_TOUCHES {
            map.insert(
                client_id.to_owned(),
                Touch {
                    last_seen: now,
                    tokens,
                    fetched_at,
                },
            );
        }
    }

    /// Whether a new record may be created: fewer than `max_clients` in the store. Logs (once a
    /// minute) when the inventory is full.
    async fn has_room(&self) -> bool {
        if self.count.load(Ordering::Relaxed) == u64::MAX {
            self.recount().await;
        }
        let count = self.count.load(Ordering::Relaxed);
        if count != u64::MAX && count >= self.max_clients {
            let now = crate::time::now_secs();
            let last = self.full_logged.load(Ordering::Relaxed);
            if now >= last + 60
                && self
                    .full_logged
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    max = self.max_clients,
                    "the client inventory is full \
                    ([cimd] inventory_max_clients): new clients are not recorded, and in \
                    approval mode they cannot be approved until it has room"
                );
                audit!(event = "inventory_full", max = self.max_clients);
            }
            return false;
        }
        true
    }

    /// Count the records in the store (at start and at every flush: other instances create
    /// records too).
    async fn recount(&self) {
        match self.store.count_client_records().await {
            Ok(n) => self.count.store(n, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "cannot count the client inventory"),
        }
    }

    /// Write the coalesced activity (every [`FLUSH_INTERVAL`], and at shutdown).
    pub async fn flush(&self) {
        self.recount().await;
        let batch: Vec<(String, Touch)> = match self.touches.lock() {
            Ok(mut map) => map.drain().collect(),
            Err(_) => return,
        };
        for (id, t) in batch {
            let result = self
                .update(&id, |cur| {
                    let mut rec = cur?;
                    rec.last_seen = rec.last_seen.max(t.last_seen);
                    rec.tokens_issued += t.tokens;
                    if let Some(at) = t.fetched_at
                        && rec.last_fetch.as_ref().is_none_or(|f| f.at < at)
                    {
                        rec.last_fetch = Some(FetchSummary {
                            at,
                            ok: true,
                            reason: None,
                        });
                    }
                    Some((rec, Observed::Refreshed))
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(client_id = %id, error = %e, "cannot write inventory activity");
            }
        }
    }

    /// Forget what this instance remembers about `client_id` (after an administrator's
    /// action here; other instances catch up within [`DECISION_TTL`]).
    pub(super) async fn forget(&self, client_id: &str) {
        self.decisions.invalidate(client_id).await;
    }

    /// Read-modify-write one record by compare-and-set, retrying on a concurrent write.
    /// `change` returns the record to write (and what happened, for the audit), or `None` to
    /// write nothing. Returns the record as stored afterwards (`None`: no record).
    pub(super) async fn update<F>(
        &self,
        client_id: &str,
        change: F,
    ) -> Result<Option<ClientRecord>, StoreError>
    where
        F: Fn(Option<ClientRecord>) -> Option<(ClientRecord, Observed)>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let cur = self.store.get_client_record(client_id).await?;
            let expected = cur.as_ref().map(|r| r.version);
            let Some((mut rec, observed)) = change(cur.clone()) else {
                return Ok(cur);
            };
            if self.store.cas_client_record(&rec, expected).await? {
                if expected.is_none() {
                    // Not counted yet (u64::MAX) stays so: the next check counts.
                    let _ = self
                        .count
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                            (n != u64::MAX).then_some(n + 1)
                        });
                }
                rec.version = expected.map_or(1, |v| v + 1);
                observed.audit(&rec);
                return Ok(Some(rec));
            }
        }
        Err(StoreError::Unavailable(format!(
            "inventory record of {client_id} kept changing under {CAS_ATTEMPTS} attempts"
        )))
    }
}

/// The status of a client seen for the first time.
fn initial_status(requires_approval: bool) -> ClientStatus {
    if requires_approval {
        ClientStatus::Pending
    } else {
        ClientStatus::Active
    }
}

/// What an inventory update was, for the audit trail.
pub(super) enum Observed {
    /// The record was created.
    First,
    /// Activity or a first snapshot: nothing to audit.
    Refreshed,
    /// The document changed.
    Changed {
        fields: Vec<String>,
        material: bool,
        reapprove: bool,
    },
}

impl Observed {
    fn audit(&self, rec: &ClientRecord) {
        match self {
            Observed::First => {
                audit!(
                    event = "client_first_seen",
                    client_id = %rec.client_id,
                    kind = ?rec.kind,
                    client_name = rec.snapshot.client_name.as_deref().unwrap_or(""),
                    status = rec.admin.status.as_str()
                );
            }
            Observed::Refreshed => {}
            Observed::Changed {
                fields,
                material,
                reapprove,
            } => {
                audit!(
                    event = "client_document_changed",
                    client_id = %rec.client_id,
                    fields = %fields.join(","),
                    material = *material,
                    returned_to_pending = *reapprove
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn governance() -> (tempfile::TempDir, Governance) {
        let dir = tempfile::tempdir().unwrap();
        let store = cimdgate_store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        (dir, Governance::new(Arc::new(store), false, 1_000_000))
    }

    #[test]
    fn the_caches_hold_bytes_not_just_entries() {
        let (_dir, g) = governance();
        // 10,000 clients with 2 KiB client_ids: 20 MiB of keys offered to a 4 MiB cache.
        let long = "x".repeat(2048);
        for i in 0..10_000 {
            g.recorded
                .insert(format!("https://{i}.example/{long}"), Arc::from("d"));
            g.failures.insert(format!("https://{i}.example/{long}"), ());
            g.users
                .insert((format!("https://c.example/{i}"), long.clone()), ());
        }
        for cache_bytes in [
            {
                g.recorded.run_pending_tasks();
                g.recorded.entry_count() * 2048
            },
            {
                g.failures.run_pending_tasks();
                g.failures.entry_count() * 2048
            },
            {
                g.users.run_pending_tasks();
                g.users.entry_count() * 2048
            },
        ] {
            assert!(
                cache_bytes <= CACHE_BYTES,
                "{cache_bytes} bytes of keys held"
            );
        }
    }

    #[test]
    fn small_entries_are_bounded_in_count() {
        let (_dir, g) = governance();
        for i in 0..(CACHE_MAX_ENTRIES + 20_000) {
            g.failures.insert(i.to_string(), ());
        }
        g.failures.run_pending_tasks();
        assert!(g.failures.entry_count() <= CACHE_MAX_ENTRIES);
        assert!(weight(0) >= u32::try_from(CACHE_BYTES / CACHE_MAX_ENTRIES).unwrap());
    }
}

//! # Redis backend — state shared by several instances (docs/architecture.md, *Storage and scale*)
//!
//! `store.url = "redis://HOST:PORT/DB"` (or `rediss://` for TLS, verified with the system
//! roots; `redis://:PASSWORD@HOST…` / `redis://USER:PASSWORD@HOST…` for AUTH);
//! `redis+cluster://H1:P1,H2:P2,…` for a Redis Cluster and
//! `redis+sentinel://S1:P1,S2:P2,…/SERVICE[/DB]` for the master behind Sentinel (both with a
//! `rediss+…` TLS form; see `topology.rs` for the grammar and `conn.rs` for how each
//! deployment is connected and followed across failovers). Any number of
//! instances with the same config and the same Redis behave as one server: codes, refresh
//! families, revocations, consent, DCR clients, signing keys, secrets, `jti` replay records,
//! IdP tokens, the inventory — and, through [`RedisStore::cache_get`] and friends, the
//! CIMD document and negative caches and the rate-limit counters.
//!
//! ## Key layout (every key starts with the configured prefix, default `cg:`)
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `code:<hash>` | family id (pointer) | code expiry |
//! | `{f:<family>}:code:<hash>` | hash `rec` (JSON `CodeRecord`), `exp`, `used` | code expiry |
//! | `rt:<hash>` | family id (pointer) | token expiry |
//! | `{f:<family>}:rt:<hash>` | hash `rec` (JSON `RefreshRecord`), `exp`, `spent` | token expiry |
//! | `{f:<family>}:revoked` | revoked-until (Unix s) | revocation end |
//! | `jti:<sha256(client_id NUL jti)>` | expiry (Unix s) | `exp` + skew |
//! | `consent:<sha256(subject NUL client_id)>` | JSON `ConsentRecord` | decision expiry |
//! | `up:<sha256(id)>` | JSON sealed blob + expiry | token expiry |
//! | `client:<sha256(client_id)>` | JSON `RegisteredClient` | none (registration) |
//! | `signing_keys` | list of JSON `SigningKeyRecord` | none |
//! | `secret:<name>` | raw bytes | none |
//! | `{inv}:rec` / `{inv}:ver` | hashes by client_id: JSON `ClientRecord`, its version | none (inventory) |
//! | `grants:<sha256(client_id)>` | hash by family id: JSON `GrantEntry` | the latest grant's end |
//! | `{seen}:first` | hash by client_id (inventory of earlier versions, read only) | none |
//! | `<ns>:<sha256(id)>` | shared caches ([`RedisStore::cache_put`]) | entry's keep-until |
//! | `rl:<ns>:<window>:<sha256(id)>` | fixed-window counter | window length |
//!
//! **Redis Cluster.** Every script and every multi-key command only touches keys under one
//! hash tag (the cluster would refuse it with `CROSSSLOT`; the contract tests run on a real
//! cluster); reads of two unrelated keys are two commands (`list_client_records`). A code exchange and
//! a refresh rotation must change a code or token *and* its family's revocation (and store the
//! next token) atomically, so all mutable per-family state lives under `{f:<family>}`. Clients
//! present only a code or token, never its family, so an immutable untagged *pointer*
//! (`code:<hash>`, `rt:<hash>` → family id) is read first; reading a value that never changes
//! and then running the atomic script on the family's slot is not read-then-write. Pointers are
//! written before the record they point to is usable (a dangling pointer reads as "unknown").
//! A refresh token always lives under the tag of the family it was derived from (the code's or
//! the rotated token's), whatever `family_id` its record carries; the server keeps them equal
//! (its reuse-probe placeholder with an empty family is never stored for a spent token).
//! The `jti` of a code exchange lives in its own slot: it is recorded by its own atomic script
//! *before* the code script runs. That keeps the trait's order (a replayed `jti` changes nothing;
//! a fresh `jti` is burned even when the code turns out bad); the only difference from one
//! transaction is a crash between the two steps, which burns the `jti` and leaves the code
//! unused — the client retries with a new assertion. Hashing client-controlled parts of keys
//! (`sha256`) bounds key length and keeps braces out of them. A prefix that itself contains a
//! `{…}` tag puts every key in one slot (allowed, but it forgoes sharding).
//!
//! **Expiry.** Records keep `exp` (Unix seconds) and every read or script judges liveness
//! against the caller's `now`, exactly like the embedded store; Redis TTLs (`PXAT` at the
//! expiry, at least one second ahead) only reclaim memory.
//!
//! **Failures.** Connection and response timeouts are short ([`RedisOptions`]); every call is
//! bounded by [`RedisOptions::op_timeout`] and fails with [`StoreError::Unavailable`], which
//! the server turns into 503. `ConnectionManager` reconnects on its own when Redis comes back;
//! the cluster connection refreshes its slot map after a failover (`MOVED`, dropped nodes);
//! the Sentinel connection asks the Sentinels for the master again when its master stops
//! answering or answers `READONLY`. Nothing is retried after a request may have run, so a
//! failover costs 503s, never a second spend.

mod codec;
mod conn;
mod ops;
mod scripts;
mod topology;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{StoreError, TokenHash};
use conn::{Conn, Timeouts};

/// URL schemes of the Redis backend in `store.url`: one server, a Redis Cluster, a master
/// behind Sentinel (each with its TLS form). See the module docs for the full forms.
pub const URL_SCHEMES: [&str; 6] = [
    "redis://",
    "rediss://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
    "rediss+sentinel://",
];

/// Default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "cg:";

/// Whether `url` names a Redis store (any of [`URL_SCHEMES`]).
pub fn is_redis_url(url: &str) -> bool {
    topology::is_redis_scheme(url)
}

/// Connection settings for [`RedisStore::open_with`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prefix of every key (default [`DEFAULT_KEY_PREFIX`]); lets several deployments share a
    /// Redis.
    pub key_prefix: String,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Per-command response timeout.
    pub response_timeout: Duration,
    /// Upper bound on one store call (including reconnect attempts).
    pub op_timeout: Duration,
    /// Replicas that must acknowledge every single-use write (a code spent, a refresh token
    /// rotated or spent, a `jti` recorded, a family revoked) before the store reports it done
    /// (`WAIT`); 0, the default, does not wait. See docs/redis.md, *Durability*.
    pub wait_replicas: u32,
    /// How long `WAIT` may take; fewer acknowledgements by then fail the call with
    /// [`StoreError::Unavailable`] (the write stays done: failing closed). Keep it below
    /// [`RedisOptions::response_timeout`].
    pub wait_timeout: Duration,
}

/// Default [`RedisOptions::wait_timeout`].
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_millis(500);

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            op_timeout: Duration::from_secs(2),
            wait_replicas: 0,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        }
    }
}

/// The Redis [`crate::Store`]. Cheap to share; one multiplexed, self-reconnecting connection
/// (to one server, to every node of a cluster, or to the master Sentinel names).
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    op_timeout: Duration,
    wait_replicas: u32,
    wait_timeout: Duration,
    display_url: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.display_url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A `store.url` fit for logs, banners and errors: a Redis URL with any password replaced by
/// `***`; any other store URL (`embedded:PATH`) unchanged, as it holds no secret.
pub fn redacted_url(url: &str) -> String {
    if is_redis_url(url) {
        redact(url)
    } else {
        url.to_owned()
    }
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    if !topology::SINGLE_SCHEMES.iter().any(|s| url.starts_with(s)) {
        return topology::redact(url);
    }
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable redis url)".to_owned(),
    }
}

impl RedisStore {
    /// Connect with default options. See [`RedisStore::open_with`].
    pub async fn open(url: &str) -> Result<RedisStore, StoreError> {
        Self::open_with(url, RedisOptions::default()).await
    }

    /// Parse `url` and build the connection. Does not wait for Redis: an unreachable server
    /// makes calls fail with [`StoreError::Unavailable`] until it answers (startup then fails
    /// on the first key read, with that message). Fails with [`StoreError::Open`] on a bad URL.
    pub async fn open_with(url: &str, options: RedisOptions) -> Result<RedisStore, StoreError> {
        let display_url = redact(url);
        if !is_redis_url(url) {
            return Err(StoreError::Open(format!(
                "store url {display_url:?} is not a Redis url; expected redis://HOST:PORT/DB, \
                 rediss://…, redis+cluster://H1:P1,H2:P2,… or redis+sentinel://S1:P1,S2:P2,…/SERVICE"
            )));
        }
        let topology = topology::parse(url)?;
        let timeouts = Timeouts {
            connect: options.connect_timeout,
            response: options.response_timeout,
        };
        let conn = Conn::open(topology, &timeouts).map_err(|e| {
            StoreError::Open(format!(
                "cannot set up the Redis connection {display_url}: {e}"
            ))
        })?;
        Ok(RedisStore {
            conn,
            prefix: options.key_prefix,
            op_timeout: options.op_timeout,
            wait_replicas: options.wait_replicas,
            wait_timeout: options.wait_timeout,
            display_url,
        })
    }

    /// The URL (password redacted).
    pub fn url(&self) -> &str {
        &self.display_url
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix + parts…`.
    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push_str(p);
        }
        k
    }

    /// Key of one user's grants to a client: `prefix grants:<client hash>:<subject hash>`.
    fn subject_grants_key(&self, client_hash: &str, subject: &str) -> String {
        self.key(&["grants:", client_hash, ":", TokenHash::of(subject).as_str()])
    }

    /// The live entries of one grant hash (`grants:<client>` or a per-user one) that `keep`.
    async fn read_grants(
        &self,
        key: String,
        now: SystemTime,
        keep: impl Fn(&crate::GrantEntry) -> bool,
    ) -> Result<Vec<crate::GrantEntry>, StoreError> {
        let mut c = self.conn();
        let all: std::collections::HashMap<String, String> = self
            .run("grants read", async move {
                ::redis::cmd("HGETALL").arg(&key).query_async(&mut c).await
            })
            .await?;
        let mut out = Vec::with_capacity(all.len());
        for json in all.values() {
            let entry: crate::GrantEntry = codec::decode("grant", json)?;
            if keep(&entry) && !codec::is_expired(entry.expires_at, now) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Key of per-family state: `prefix{f:<family>}:<kind><hash>`.
    fn family_key(&self, family: &str, kind: &str, hash: &str) -> String {
        self.key(&["{f:", family, "}:", kind, hash])
    }

    /// Run one Redis interaction with the op timeout; map errors to `Unavailable`.
    async fn run<T, F>(&self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.op_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("redis {what}: {e}"))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {:?} from {}",
                self.op_timeout, self.display_url
            ))),
        }
    }

    /// With [`RedisOptions::wait_replicas`], wait until that many replicas hold every write
    /// sent so far on this connection (`WAIT`; on a cluster every master is asked and the
    /// smallest count counts).
    async fn confirm_replicated(&self) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let (n, ms) = (
            self.wait_replicas,
            u64::try_from(self.wait_timeout.as_millis()).unwrap_or(u64::MAX),
        );
        let mut c = self.conn();
        let acked: i64 = self
            .run("replication wait", async move {
                ::redis::cmd("WAIT")
                    .arg(n)
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if acked < i64::from(n) {
            return Err(StoreError::Unavailable(format!(
                "redis: {acked} of {n} replicas acknowledged the write within {ms} ms"
            )));
        }
        Ok(())
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    // --- shared caches and counters for the server (CIMD cache, rate limits) ---------------

    /// Read a cached blob stored by [`RedisStore::cache_put`] under namespace `ns`.
    pub async fn cache_get(&self, ns: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(&[ns, ":", TokenHash::of(id).as_str()]);
        let mut c = self.conn();
        self.run("cache read", async move {
            ::redis::cmd("GET").arg(&key).query_async(&mut c).await
        })
        .await
    }

    /// Store a blob under namespace `ns` until `until` (dropped by Redis then).
    pub async fn cache_put(
        &self,
        ns: &str,
        id: &str,
        value: &[u8],
        until: SystemTime,
    ) -> Result<(), StoreError> {
        let key = self.key(&[ns, ":", TokenHash::of(id).as_str()]);
        let at = unix_ms(until);
        let mut c = self.conn();
        if at <= unix_ms(SystemTime::now()) {
            return self
                .run("cache delete", async move {
                    ::redis::cmd("DEL").arg(&key).query_async(&mut c).await
                })
                .await;
        }
        self.run("cache write", async move {
            ::redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("PXAT")
                .arg(at)
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Delete a cached blob.
    pub async fn cache_remove(&self, ns: &str, id: &str) -> Result<(), StoreError> {
        let key = self.key(&[ns, ":", TokenHash::of(id).as_str()]);
        let mut c = self.conn();
        self.run("cache delete", async move {
            ::redis::cmd("DEL").arg(&key).query_async(&mut c).await
        })
        .await
    }

    /// Count one hit for `id` in namespace `ns` in the current fixed window of length
    /// `window`, shared by every instance; returns the hits in this window so far (this one
    /// included). `INCR` + `PEXPIRE` in one script, so a counter never outlives its window.
    pub async fn count_hit(&self, ns: &str, id: &str, window: Duration) -> Result<u64, StoreError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let index = unix_ms(SystemTime::now()) / window_ms;
        let key = self.key(&[
            "rl:",
            ns,
            ":",
            &index.to_string(),
            ":",
            TokenHash::of(id).as_str(),
        ]);
        let mut c = self.conn();
        self.run("rate-limit counter", async move {
            scripts::COUNT_HIT
                .key(&key)
                .arg(window_ms)
                .invoke_async(&mut c)
                .await
        })
        .await
    }
}

/// Whole Unix seconds (0 before 1970) — the resolution records keep.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Unix milliseconds (0 before 1970).
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The `PXAT` for a record expiring at `expires_at`: its expiry in milliseconds, but at least
/// one second from now (Redis must not drop a record before reads judge it expired, and a
/// timestamp in the past would be rejected or drop the key at once).
pub(crate) fn pxat(expires_at: SystemTime) -> u64 {
    let floor = unix_ms(SystemTime::now()).saturating_add(1000);
    unix_secs(expires_at).saturating_mul(1000).max(floor)
}

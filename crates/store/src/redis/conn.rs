//! One connection type for the three deployments ([`super::topology`]), so every store
//! operation has one code path: a self-reconnecting [`ConnectionManager`] to one server, the
//! redis crate's cluster connection (slot map, `MOVED`/`ASK`, reconnects and slot refresh after
//! a failover), or [`SentinelConn`], which asks the Sentinels for the master and asks again
//! when the master it holds stops answering or turns out to be a replica.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use ::redis::cluster::{ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, TlsMode, Value,
};

use super::topology::{SentinelTarget, Topology};

/// Timeouts shared by every deployment.
pub(super) struct Timeouts {
    pub(super) connect: Duration,
    pub(super) response: Duration,
}

/// The connection of a [`super::RedisStore`]; cheap to clone (every variant is a handle).
#[derive(Clone)]
pub(super) enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
    /// The master behind Sentinel.
    Sentinel(SentinelConn),
}

impl Conn {
    /// Build the connection without waiting for Redis (every variant connects on first use).
    pub(super) fn open(topology: Topology, t: &Timeouts) -> RedisResult<Conn> {
        match topology {
            Topology::Single(url) => {
                let client = ::redis::Client::open(url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(t.connect))
                    .set_response_timeout(Some(t.response))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Topology::Cluster(seeds) => {
                // Retries cover a MOVED/ASK hop and a slot refresh; the store's op timeout
                // bounds the whole call anyway.
                let client = ClusterClientBuilder::new(seeds)
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(300)
                    .build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(t.connect)
                    .set_response_timeout(t.response);
                Ok(Conn::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
            Topology::Sentinel(target) => Ok(Conn::Sentinel(SentinelConn::new(target, t)?)),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.db,
        }
    }
}

/// The master of a Sentinel-monitored service. Holds one multiplexed connection to the master
/// the Sentinels last named; drops it when it fails at the connection level or answers
/// `READONLY` (a demoted master), and asks the Sentinels again on the next call. A command
/// refused with `READONLY` was not executed, so it is retried once on the new master; a
/// command whose connection broke is not retried (it may have run) — the caller gets the
/// error, which the server answers with 503.
#[derive(Clone)]
pub(super) struct SentinelConn {
    inner: Arc<SentinelInner>,
    db: i64,
}

struct SentinelInner {
    /// Serialises lookups: one caller asks the Sentinels, the others wait for its answer.
    client: tokio::sync::Mutex<SentinelClient>,
    /// The current master connection and its generation.
    current: std::sync::Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    config: AsyncConnectionConfig,
}

/// Whether `e` means the connection no longer reaches a writable master.
fn lost_master(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.is_timeout()
        || is_readonly(e)
}

fn is_readonly(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

impl SentinelConn {
    fn new(target: SentinelTarget, t: &Timeouts) -> RedisResult<SentinelConn> {
        let mut b = SentinelClientBuilder::new(
            target.sentinels,
            target.service,
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(target.db);
        if let Some(u) = &target.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &target.password {
            b = b.set_client_to_redis_password(p);
        }
        if target.tls {
            b = b
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        }
        let client = b.build()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(t.connect))
            .set_response_timeout(Some(t.response));
        Ok(SentinelConn {
            inner: Arc::new(SentinelInner {
                client: tokio::sync::Mutex::new(client),
                current: std::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
                config,
            }),
            db: target.db,
        })
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The current master connection, asking the Sentinels when there is none.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let mut client = self.inner.client.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let conn = client
            .get_async_connection_with_config(&self.inner.config)
            .await?;
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self
            .inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((generation, conn.clone()));
        tracing::debug!(generation, "redis sentinel: connected to the master");
        Ok((generation, conn))
    }

    /// Forget connection `generation` (a newer one, set meanwhile, stays).
    fn forget(&self, generation: u64) {
        let mut cur = self
            .inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cur.as_ref().is_some_and(|(g, _)| *g == generation) {
            *cur = None;
            tracing::warn!(
                generation,
                "redis sentinel: lost the master; asking the Sentinels again"
            );
        }
    }

    /// Run `f` on the master: on a lost master forget the connection; after `READONLY` (not
    /// executed) try once more on the master the Sentinels name now.
    async fn with_master<T, F, Fut>(&self, f: F) -> RedisResult<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        for attempt in 0..2 {
            let (generation, conn) = self.connection().await?;
            match f(conn).await {
                Err(e) if lost_master(&e) => {
                    self.forget(generation);
                    if attempt == 0 && is_readonly(&e) {
                        continue;
                    }
                    return Err(e);
                }
                other => return other,
            }
        }
        Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "the master named by the Sentinels is read-only",
        )))
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.with_master(|mut c| async move { c.req_packed_command(cmd).await })
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.with_master(|mut c| async move { c.req_packed_commands(cmd, offset, count).await })
                .await
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

//! The core library's storage traits on cimdgate's store:
//!
//! - [`StoreReplay`]: the client-assertion `jti` replay records (RFC 7523 §3 item 7) in the
//!   store, so an assertion is single-use across every replica;
//! - [`RedisDocumentStore`]: the CIMD document cache and negative cache in Redis, so N instances
//!   fetch a document once (docs/architecture.md, *Caching*).
//!
//!
//! Entries are JSON ([`StoredDocument`], [`StoredNegative`]) under `<prefix>doc:<sha256(id)>`
//! and `<prefix>neg:<sha256(id)>`, expiring at the entry's `keep_until` / `until`. The
//! validated form is not shared: each instance's resolver ([`cimd::cache::Resolver::shared`])
//! keeps a process-local L1 of the entries it read with their validated form, answers fresh
//! hits from it for at most `local_ttl` (10 s) without a Redis read, and validates a body read
//! from Redis only when it differs from the one it already validated (see docs/benchmarks.md
//! "Storage backends" for the cost with and without it). Redis failures are
//! reported to the resolver, which treats them as a miss (it never turns a cache outage into a
//! client error).

use std::sync::Arc;

use std::time::SystemTime;

use async_trait::async_trait;
use cimd::assertion::{ReplayStore, ReplayStoreError};
use cimd::cache::{DocumentStore, NegativeEntry, StoreError, StoredDocument, StoredNegative};
use cimdgate_store::Store;
use cimdgate_store::redis::RedisStore;

/// The [`ReplayStore`] of the assertion verifier: `jti` values recorded in the shared store.
pub struct StoreReplay(pub Arc<dyn Store>);

#[async_trait]
impl ReplayStore for StoreReplay {
    async fn record_once(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, ReplayStoreError> {
        self.0
            .record_jti(client_id, jti, expires_at)
            .await
            .map_err(|e| ReplayStoreError::Backend(e.to_string()))
    }
}

const DOC_NS: &str = "doc";
const NEG_NS: &str = "neg";

/// [`DocumentStore`] on the Redis backend.
pub struct RedisDocumentStore {
    redis: Arc<RedisStore>,
}

impl RedisDocumentStore {
    /// Share `redis`'s connection and key prefix.
    pub fn new(redis: Arc<RedisStore>) -> Self {
        RedisDocumentStore { redis }
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        message: format!("redis {what}: {e}"),
    }
}

#[async_trait]
impl DocumentStore for RedisDocumentStore {
    async fn get(&self, client_id: &str) -> Result<Option<Arc<StoredDocument>>, StoreError> {
        let Some(bytes) = self
            .redis
            .cache_get(DOC_NS, client_id)
            .await
            .map_err(|e| err("document read", e))?
        else {
            return Ok(None);
        };
        let doc: StoredDocument =
            serde_json::from_slice(&bytes).map_err(|e| err("document decode", e))?;
        Ok(Some(Arc::new(doc)))
    }

    async fn put(&self, client_id: &str, doc: Arc<StoredDocument>) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&*doc).map_err(|e| err("document encode", e))?;
        self.redis
            .cache_put(DOC_NS, client_id, &bytes, doc.keep_until)
            .await
            .map_err(|e| err("document write", e))
    }

    async fn remove(&self, client_id: &str) -> Result<(), StoreError> {
        self.redis
            .cache_remove(DOC_NS, client_id)
            .await
            .map_err(|e| err("document delete", e))
    }

    async fn get_negative(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<NegativeEntry>>, StoreError> {
        let Some(bytes) = self
            .redis
            .cache_get(NEG_NS, client_id)
            .await
            .map_err(|e| err("negative entry read", e))?
        else {
            return Ok(None);
        };
        let stored: StoredNegative =
            serde_json::from_slice(&bytes).map_err(|e| err("negative entry decode", e))?;
        Ok(Some(Arc::new(NegativeEntry::from_stored(stored))))
    }

    async fn put_negative(
        &self,
        client_id: &str,
        entry: Arc<NegativeEntry>,
    ) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(&entry.to_stored()).map_err(|e| err("negative entry encode", e))?;
        self.redis
            .cache_put(NEG_NS, client_id, &bytes, entry.until)
            .await
            .map_err(|e| err("negative entry write", e))
    }
}

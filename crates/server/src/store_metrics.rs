//! [`MeteredStore`]: the [`Store`] decorator that times every operation and counts failures
//! ([`crate::telemetry::STORE_DURATION`], [`crate::telemetry::STORE_ERRORS`]; label `op` = the
//! method's name). Domain layer; it changes no result.

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use cimdgate_store::*;

use crate::telemetry;

/// Wraps a store; every call is timed under its method's name.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    /// Decorate `inner`.
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(MeteredStore { inner })
    }
}

async fn timed<T>(
    op: &'static str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let out = fut.await;
    telemetry::store_op(op, started.elapsed().as_secs_f64(), out.is_err());
    out
}

#[async_trait]
impl Store for MeteredStore {
    async fn health(&self) -> Result<(), StoreError> {
        timed("health", self.inner.health()).await
    }
    async fn put_code(&self, code: &TokenHash, record: &CodeRecord) -> Result<(), StoreError> {
        timed("put_code", self.inner.put_code(code, record)).await
    }
    async fn take_code(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<CodeRedemption, StoreError> {
        timed("take_code", self.inner.take_code(code, now)).await
    }
    async fn get_code(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<Option<(CodeRecord, bool)>, StoreError> {
        timed("get_code", self.inner.get_code(code, now)).await
    }
    async fn redeem_code(
        &self,
        req: &CodeRedeem,
        now: SystemTime,
    ) -> Result<CodeRedeemOutcome, StoreError> {
        timed("redeem_code", self.inner.redeem_code(req, now)).await
    }
    async fn put_refresh(
        &self,
        token: &TokenHash,
        record: &RefreshRecord,
    ) -> Result<(), StoreError> {
        timed("put_refresh", self.inner.put_refresh(token, record)).await
    }
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_record: &RefreshRecord,
        now: SystemTime,
    ) -> Result<RefreshRotation, StoreError> {
        timed(
            "rotate_refresh",
            self.inner.rotate_refresh(old, new, new_record, now),
        )
        .await
    }
    async fn spend_refresh(
        &self,
        token: &TokenHash,
        revoke_until: SystemTime,
        now: SystemTime,
    ) -> Result<SpentRefresh, StoreError> {
        timed(
            "spend_refresh",
            self.inner.spend_refresh(token, revoke_until, now),
        )
        .await
    }
    async fn get_refresh(
        &self,
        token: &TokenHash,
        now: SystemTime,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        timed("get_refresh", self.inner.get_refresh(token, now)).await
    }
    async fn revoke_family(&self, family_id: &str, until: SystemTime) -> Result<(), StoreError> {
        timed("revoke_family", self.inner.revoke_family(family_id, until)).await
    }
    async fn is_family_revoked(
        &self,
        family_id: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        timed(
            "is_family_revoked",
            self.inner.is_family_revoked(family_id, now),
        )
        .await
    }
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        timed(
            "get_consent",
            self.inner.get_consent(subject, client_id, now),
        )
        .await
    }
    async fn put_consent(&self, record: &ConsentRecord) -> Result<(), StoreError> {
        timed("put_consent", self.inner.put_consent(record)).await
    }
    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        timed("put_client", self.inner.put_client(client)).await
    }
    async fn get_client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        timed("get_client", self.inner.get_client(client_id)).await
    }
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        timed("signing_keys", self.inner.signing_keys()).await
    }
    async fn init_signing_key(
        &self,
        candidate: &SigningKeyRecord,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        timed("init_signing_key", self.inner.init_signing_key(candidate)).await
    }
    async fn init_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        timed("init_secret", self.inner.init_secret(name, candidate)).await
    }
    async fn record_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        timed(
            "record_jti",
            self.inner.record_jti(client_id, jti, expires_at),
        )
        .await
    }
    async fn put_idp_tokens(
        &self,
        id: &str,
        sealed: &[u8],
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        timed(
            "put_idp_tokens",
            self.inner.put_idp_tokens(id, sealed, expires_at),
        )
        .await
    }
    async fn get_idp_tokens(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        timed("get_idp_tokens", self.inner.get_idp_tokens(id, now)).await
    }
    async fn get_client_record(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        timed("get_client_record", self.inner.get_client_record(client_id)).await
    }
    async fn cas_client_record(
        &self,
        record: &ClientRecord,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        timed(
            "cas_client_record",
            self.inner.cas_client_record(record, expected),
        )
        .await
    }
    async fn list_client_records(&self) -> Result<Vec<ClientRecord>, StoreError> {
        timed("list_client_records", self.inner.list_client_records()).await
    }
    async fn count_client_records(&self) -> Result<u64, StoreError> {
        timed("count_client_records", self.inner.count_client_records()).await
    }
    async fn client_status(&self, client_id: &str) -> Result<Option<ClientStatus>, StoreError> {
        timed("client_status", self.inner.client_status(client_id)).await
    }
    async fn put_grant(&self, entry: &GrantEntry) -> Result<(), StoreError> {
        timed("put_grant", self.inner.put_grant(entry)).await
    }
    async fn list_grants(
        &self,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantEntry>, StoreError> {
        timed("list_grants", self.inner.list_grants(client_id, now)).await
    }
    async fn list_subject_grants(
        &self,
        client_id: &str,
        subject: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantEntry>, StoreError> {
        timed(
            "list_subject_grants",
            self.inner.list_subject_grants(client_id, subject, now),
        )
        .await
    }
    async fn remove_grants(
        &self,
        client_id: &str,
        family_ids: &[String],
    ) -> Result<(), StoreError> {
        timed(
            "remove_grants",
            self.inner.remove_grants(client_id, family_ids),
        )
        .await
    }
}

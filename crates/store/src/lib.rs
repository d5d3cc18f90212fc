//! # cimdgate-store — durable authorization-server state behind one trait
//!
//! The authorization server and the gateway keep every piece of state that must survive a restart
//! or be shared by replicas behind [`Store`]: authorization codes, refresh-token families,
//! revocations, consent decisions, DCR clients, signing keys, server secrets, client-assertion
//! `jti` replay records, encrypted IdP tokens and the client inventory with each client's
//! grants. One
//! storage trait, two backends (docs/architecture.md, *Storage and scale*): the embedded backend
//! ([`embedded::EmbeddedStore`], redb) and the Redis backend ([`redis::RedisStore`]) for several
//! instances.
//!
//! Rules every backend must keep:
//! - **Atomic single-use operations** ([`Store::take_code`], [`Store::redeem_code`],
//!   [`Store::rotate_refresh`], [`Store::record_jti`], [`Store::init_secret`],
//!   [`Store::init_signing_key`]) use the
//!   backend's atomic primitive (one write transaction; `SET NX`/Lua in Redis), never
//!   read-then-write across two transactions.
//! - **Durability**: when a write call returns `Ok`, the data is on disk (or acknowledged by
//!   Redis). A refresh token handed to a client, or a `jti` recorded as used, survives `kill -9`.
//! - **Expiry**: every record carries `expires_at`; reads treat expired records as absent and
//!   a background sweep deletes them.
//! - Token values are never stored: keys are SHA-256 hashes computed by the caller
//!   ([`TokenHash`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod embedded;
mod inventory;
pub mod redis;
mod types;

pub use inventory::*;
pub use types::*;

use std::time::SystemTime;

use async_trait::async_trait;

/// Why a store operation failed. Callers map every variant to a 5xx/503 response: a store
/// failure is never the client's fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or the disk operation failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be decoded (corruption or an incompatible version).
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt {
        /// Which record.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// Opening or configuring the store failed (bad path, locked database, bad URL).
    #[error("cannot open the store: {0}")]
    Open(String),
}

/// Result of redeeming an authorization code ([`Store::take_code`]).
#[derive(Debug, Clone, PartialEq)]
pub enum CodeRedemption {
    /// First use: the code is now consumed; the caller may issue tokens.
    Redeemed(CodeRecord),
    /// The code was already redeemed. RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: the caller must
    /// refuse and revoke what the first redemption issued (`record.family_id`).
    AlreadyUsed(CodeRecord),
    /// Unknown or expired code.
    NotFound,
}

/// A client-assertion `jti` to record as used (RFC 7523 §3 `jti`; single-use across instances), as
/// part of [`CodeRedeem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JtiRecord {
    /// The client the assertion authenticated (exact string).
    pub client_id: String,
    /// The assertion's `jti`.
    pub jti: String,
    /// Until when the `jti` is remembered (the assertion's `exp` plus the allowed clock skew).
    pub expires_at: SystemTime,
}

/// Everything one `/token` code exchange writes, applied atomically by [`Store::redeem_code`].
#[derive(Debug, Clone, PartialEq)]
pub struct CodeRedeem {
    /// The code to redeem.
    pub code: TokenHash,
    /// The client assertion's `jti` when the client authenticated with `private_key_jwt` and
    /// the caller deferred recording it to this transaction. Checked first: a live record
    /// refuses the whole redemption ([`CodeRedeemOutcome::JtiReplayed`]).
    pub jti: Option<JtiRecord>,
    /// The first refresh token of the family the code starts, stored when the code is
    /// redeemed (and only then).
    pub refresh: Option<(TokenHash, RefreshRecord)>,
    /// When the code was already used, its family is revoked until this time: the longest
    /// lifetime of anything the first redemption issued (normally `now` + refresh-token TTL).
    pub family_revoke_until: SystemTime,
    /// The grant's index entry ([`Store::put_grant`]), written when the code is redeemed (and
    /// only then): in the redemption's transaction in the embedded store, right after the
    /// redemption script in Redis. A grant that issued tokens is thus always in the index an
    /// administrator's revocation walks.
    pub grant: Option<GrantEntry>,
}

/// Result of [`Store::redeem_code`].
#[derive(Debug, Clone, PartialEq)]
pub enum CodeRedeemOutcome {
    /// First use: the code is now consumed, the `jti` (if any) recorded and the refresh token
    /// (if any) stored. Holds the code's record.
    Redeemed(CodeRecord),
    /// The `jti` was already recorded and is still live: nothing was changed (the code is not
    /// consumed).
    JtiReplayed,
    /// The code was already redeemed: the `jti` (if any) is now recorded and the code's family
    /// (`record.family_id`) revoked until [`CodeRedeem::family_revoke_until`], in the same
    /// transaction. The caller refuses (OAuth 2.1 §4.1.3) and audits.
    AlreadyUsed(CodeRecord),
    /// Unknown or expired code; the `jti` (if any) is now recorded.
    NotFound,
}

/// Result of rotating a refresh token ([`Store::rotate_refresh`]).
#[derive(Debug, Clone, PartialEq)]
// Returned once per refresh request and matched immediately; boxing would only add an
// allocation and churn the API.
#[allow(clippy::large_enum_variant)]
pub enum RefreshRotation {
    /// The old token was active; it is now spent and the new one is stored. Holds the old record.
    Rotated(RefreshRecord),
    /// The old token had already been rotated: reuse. The store has revoked the whole family
    /// in the same transaction; the caller refuses and audits.
    Reused {
        /// The family that was revoked.
        family_id: String,
    },
    /// The token's family was revoked earlier (code reuse, revocation, earlier reuse).
    FamilyRevoked,
    /// Unknown or expired token.
    NotFound,
}

/// Result of [`Store::spend_refresh`]: what a refresh token that is not active was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpentRefresh {
    /// It had already been rotated: reuse. The store has revoked the whole family in the same
    /// transaction; the caller refuses and audits.
    Reused {
        /// The family that was revoked.
        family_id: String,
    },
    /// Its family was revoked earlier (code reuse, revocation, earlier reuse).
    FamilyRevoked,
    /// Unknown or expired.
    Unknown,
    /// It is active after all (nothing was changed): the caller rotates it.
    Active,
}

/// The storage trait. Implementations: [`embedded::EmbeddedStore`] (redb) and
/// [`redis::RedisStore`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness check for `/readyz`.
    async fn health(&self) -> Result<(), StoreError>;

    // --- authorization codes (OAuth 2.1 §4.1.3: single-use; ≤ 60 s) ------------------------
    /// Store a new code under its hash.
    async fn put_code(&self, code: &TokenHash, record: &CodeRecord) -> Result<(), StoreError>;
    /// Atomically redeem a code: the first call gets [`CodeRedemption::Redeemed`], every later
    /// call (until the record expires) [`CodeRedemption::AlreadyUsed`].
    async fn take_code(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<CodeRedemption, StoreError>;
    /// Read a code without redeeming it: its record and whether it was already redeemed, or
    /// `None` when it is unknown or expired at `now`. Read-only; the caller checks the request
    /// against the record and then redeems it with [`Store::redeem_code`].
    async fn get_code(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<Option<(CodeRecord, bool)>, StoreError>;
    /// Redeem a code and apply everything a code exchange writes in ONE atomic write (one
    /// transaction; one commit round in the embedded store):
    ///
    /// 1. if `req.jti` is given and already recorded (live at `now`) →
    ///    [`CodeRedeemOutcome::JtiReplayed`], and nothing changes;
    /// 2. otherwise the `jti` is recorded — it is used up even if the code turns out bad;
    /// 3. the code: unknown or expired → [`CodeRedeemOutcome::NotFound`]; already redeemed →
    ///    its family is revoked until `req.family_revoke_until` and
    ///    [`CodeRedeemOutcome::AlreadyUsed`]; unused → marked redeemed, `req.refresh` stored,
    ///    `req.grant` indexed, [`CodeRedeemOutcome::Redeemed`].
    ///
    /// Concurrent calls for one code: exactly one gets `Redeemed`.
    async fn redeem_code(
        &self,
        req: &CodeRedeem,
        now: SystemTime,
    ) -> Result<CodeRedeemOutcome, StoreError>;

    // --- refresh-token families ------------------------------------------------------------
    /// Store a new refresh token (first of its family, issued at the code exchange).
    async fn put_refresh(
        &self,
        token: &TokenHash,
        record: &RefreshRecord,
    ) -> Result<(), StoreError>;
    /// Atomically spend `old` and store `new` in the same family (one transaction). Reuse of a
    /// spent token revokes the family in the same transaction.
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_record: &RefreshRecord,
        now: SystemTime,
    ) -> Result<RefreshRotation, StoreError>;
    /// For a refresh token that [`Store::get_refresh`] did not find active: if it was already
    /// rotated (spent), this is reuse — revoke its family until `revoke_until` (or the
    /// token's own expiry, if later) in the same transaction and say
    /// [`SpentRefresh::Reused`] (OAuth 2.1 §4.3.1); otherwise say what it is. Atomic.
    async fn spend_refresh(
        &self,
        token: &TokenHash,
        revoke_until: SystemTime,
        now: SystemTime,
    ) -> Result<SpentRefresh, StoreError>;
    /// Look up a refresh token without spending it (for `/revoke` and introspection).
    /// Only an *active* token is returned: `None` when it is unknown, expired, already rotated
    /// (spent), or its family is revoked.
    async fn get_refresh(
        &self,
        token: &TokenHash,
        now: SystemTime,
    ) -> Result<Option<RefreshRecord>, StoreError>;
    /// Revoke a whole token family (refresh tokens and the access tokens issued in it) until
    /// `until` (the longest lifetime of anything issued in the family).
    async fn revoke_family(&self, family_id: &str, until: SystemTime) -> Result<(), StoreError>;
    /// Whether a family has been revoked.
    async fn is_family_revoked(&self, family_id: &str, now: SystemTime)
    -> Result<bool, StoreError>;

    // --- consent ("remember this decision", per user + client) -------------------------------
    /// The remembered decision for `(subject, client_id)`, if any and not expired.
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Option<ConsentRecord>, StoreError>;
    /// Remember a decision.
    async fn put_consent(&self, record: &ConsentRecord) -> Result<(), StoreError>;

    // --- DCR clients (RFC 7591; kept for clients without CIMD) -------------------------------
    /// Store a registered client.
    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError>;
    /// Look up a registered client by its id.
    async fn get_client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError>;

    // --- keys and secrets (must match across instances) --------------------------------------
    /// All signing keys, oldest first (current key last; older ones kept for verification
    /// during rotation overlap).
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Insert `candidate` if the store holds no signing key yet; return the keys afterwards.
    /// Two instances starting together end up with the same single key.
    async fn init_signing_key(
        &self,
        candidate: &SigningKeyRecord,
    ) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Get the named secret, storing `candidate` first if it is absent (atomic insert-if-absent).
    async fn init_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    // --- client-assertion replay (RFC 7523 §3: single-use across all replicas) ---------------
    /// Record `(client_id, jti)` until `expires_at`. `Ok(true)` if it was new, `Ok(false)` if
    /// it was already recorded and not expired. Atomic.
    async fn record_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError>;

    // --- IdP tokens (stored encrypted by the caller; never sent to MCP clients) ------
    /// Store an opaque (already encrypted) IdP token blob.
    async fn put_idp_tokens(
        &self,
        id: &str,
        sealed: &[u8],
        expires_at: SystemTime,
    ) -> Result<(), StoreError>;
    /// Fetch an IdP token blob.
    async fn get_idp_tokens(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    // --- the client inventory (docs/architecture.md, *Governance*) ---------------------------
    /// The inventory record of a client, if it was ever seen.
    async fn get_client_record(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Compare-and-set: store `record` if the stored record's version is `expected` (`None`:
    /// there is no record yet). The stored copy gets version `expected + 1` (1 for a new
    /// record), whatever `record.version` says. `Ok(false)`: someone else wrote first; the
    /// caller reads again and retries. Atomic across instances.
    async fn cas_client_record(
        &self,
        record: &ClientRecord,
        expected: Option<u64>,
    ) -> Result<bool, StoreError>;
    /// Every client in the inventory, sorted by client_id.
    async fn list_client_records(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// How many clients the inventory holds (cheap: no record is read).
    async fn count_client_records(&self) -> Result<u64, StoreError>;
    /// The administrator's status of a client (`None`: never seen). The gateway asks this for
    /// every token it accepts (cached).
    async fn client_status(&self, client_id: &str) -> Result<Option<ClientStatus>, StoreError> {
        Ok(self
            .get_client_record(client_id)
            .await?
            .map(|r| r.admin.status))
    }
    /// Index a new grant (refresh-token family) under its client, for listing and revocation.
    async fn put_grant(&self, entry: &GrantEntry) -> Result<(), StoreError>;
    /// The grants of a client that have not ended at `now` (revoked families included: the
    /// caller checks [`Store::is_family_revoked`]).
    async fn list_grants(
        &self,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantEntry>, StoreError>;
    /// The grants of one user to a client that have not ended at `now` (revoked families
    /// included, as in [`Store::list_grants`]). Indexed: the cost follows this user's grants,
    /// not the client's — a consent for a client with a million users reads one user's rows.
    async fn list_subject_grants(
        &self,
        client_id: &str,
        subject: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantEntry>, StoreError>;
    /// Drop grants from a client's index (after revoking them, or once ended).
    async fn remove_grants(&self, client_id: &str, family_ids: &[String])
    -> Result<(), StoreError>;
}

//! [`Store`] for [`RedisStore`]: every operation with the embedded store's semantics (see
//! `embedded/ops.rs`), atomic ones as one Lua script each (`scripts.rs`).

use std::time::SystemTime;

use async_trait::async_trait;

use super::codec::{
    IdpTokensValue, corrupt_status, decode, encode, from_hex, is_expired, pair_hash, parse_secs,
};
use super::{RedisStore, pxat, scripts, unix_ms, unix_secs};
use crate::{
    ClientRecord, CodeRecord, CodeRedeem, CodeRedeemOutcome, CodeRedemption, ConsentRecord,
    GrantEntry, RefreshRecord, RefreshRotation, RegisteredClient, SigningKeyRecord, SpentRefresh,
    Store, StoreError, TokenHash, hex,
};

impl RedisStore {
    /// Follow a pointer (`code:<h>` / `rt:<h>`) to its family id.
    async fn family_of(&self, kind: &str, hash: &str) -> Result<Option<String>, StoreError> {
        let key = self.key(&[kind, hash]);
        let mut c = self.conn();
        self.run("pointer read", async move {
            ::redis::cmd("GET").arg(&key).query_async(&mut c).await
        })
        .await
    }

    async fn set_pointer(
        &self,
        kind: &str,
        hash: &str,
        family: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let key = self.key(&[kind, hash]);
        let mut c = self.conn();
        self.run("pointer write", async move {
            ::redis::cmd("SET")
                .arg(&key)
                .arg(family)
                .arg("PXAT")
                .arg(pxat(expires_at))
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Store a hash record (`rec`, `exp`, flag=0) with its TTL, in one MULTI.
    async fn put_hash_record(
        &self,
        key: String,
        rec: String,
        flag: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let mut c = self.conn();
        self.run("record write", async move {
            ::redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("HSET")
                .arg(&key)
                .arg("rec")
                .arg(rec)
                .arg("exp")
                .arg(unix_secs(expires_at))
                .arg(flag)
                .arg("0")
                .ignore()
                .cmd("PEXPIREAT")
                .arg(&key)
                .arg(pxat(expires_at))
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// `rec`, `exp`, flag of a hash record.
    async fn get_hash_record(
        &self,
        key: String,
        flag: &'static str,
    ) -> Result<(Option<String>, Option<String>, Option<String>), StoreError> {
        let mut c = self.conn();
        self.run("record read", async move {
            ::redis::cmd("HMGET")
                .arg(&key)
                .arg("rec")
                .arg("exp")
                .arg(flag)
                .query_async(&mut c)
                .await
        })
        .await
    }

    async fn jti_script(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let key = self.key(&["jti:", &pair_hash(client_id, jti)]);
        let mut c = self.conn();
        let n: i64 = self
            .run("jti record", async move {
                scripts::RECORD_JTI
                    .key(&key)
                    .arg(unix_secs(now))
                    .arg(unix_secs(expires_at))
                    .arg(pxat(expires_at))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n == 1)
    }

    async fn get_string(&self, key: String, what: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn();
        self.run(what, async move {
            ::redis::cmd("GET").arg(&key).query_async(&mut c).await
        })
        .await
    }

    async fn set_string(
        &self,
        key: String,
        value: String,
        expires_at: Option<SystemTime>,
        what: &str,
    ) -> Result<(), StoreError> {
        let mut c = self.conn();
        self.run(what, async move {
            let mut cmd = ::redis::cmd("SET");
            cmd.arg(&key).arg(value);
            if let Some(t) = expires_at {
                cmd.arg("PXAT").arg(pxat(t));
            }
            cmd.query_async(&mut c).await
        })
        .await
    }

    async fn hash_all(
        &self,
        key: String,
        what: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let mut c = self.conn();
        self.run(what, async move {
            ::redis::cmd("HGETALL").arg(&key).query_async(&mut c).await
        })
        .await
    }

    fn revocation_key(&self, family: &str) -> String {
        self.family_key(family, "revoked", "")
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn health(&self) -> Result<(), StoreError> {
        let mut c = self.conn();
        let pong: String = self
            .run("health check", async move {
                ::redis::cmd("PING").query_async(&mut c).await
            })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "redis health check: unexpected reply {pong:?}"
            )))
        }
    }

    async fn put_code(&self, code: &TokenHash, record: &CodeRecord) -> Result<(), StoreError> {
        let family = record.grant.family_id.as_str();
        let key = self.family_key(family, "code:", code.as_str());
        self.put_hash_record(key, encode("code", record)?, "used", record.expires_at)
            .await?;
        self.set_pointer("code:", code.as_str(), family, record.expires_at)
            .await
    }

    async fn take_code(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<CodeRedemption, StoreError> {
        let Some(family) = self.family_of("code:", code.as_str()).await? else {
            return Ok(CodeRedemption::NotFound);
        };
        let key = self.family_key(&family, "code:", code.as_str());
        let mut c = self.conn();
        let (status, rec): (i64, Option<String>) = self
            .run("code redemption", async move {
                scripts::TAKE_CODE
                    .key(&key)
                    .arg(unix_secs(now))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        self.confirm_replicated().await?;
        let record = |rec: Option<String>| -> Result<CodeRecord, StoreError> {
            decode("code", rec.as_deref().unwrap_or_default())
        };
        match status {
            0 => Ok(CodeRedemption::NotFound),
            1 => Ok(CodeRedemption::Redeemed(record(rec)?)),
            2 => Ok(CodeRedemption::AlreadyUsed(record(rec)?)),
            s => Err(corrupt_status("code", s)),
        }
    }

    async fn get_code(
        &self,
        code: &TokenHash,
        now: SystemTime,
    ) -> Result<Option<(CodeRecord, bool)>, StoreError> {
        let Some(family) = self.family_of("code:", code.as_str()).await? else {
            return Ok(None);
        };
        let key = self.family_key(&family, "code:", code.as_str());
        let (rec, exp, used) = self.get_hash_record(key, "used").await?;
        let (Some(rec), Some(exp)) = (rec, exp) else {
            return Ok(None);
        };
        if is_expired(parse_secs("code", &exp)?, now) {
            return Ok(None);
        }
        Ok(Some((decode("code", &rec)?, used.as_deref() == Some("1"))))
    }

    async fn redeem_code(
        &self,
        req: &CodeRedeem,
        now: SystemTime,
    ) -> Result<CodeRedeemOutcome, StoreError> {
        // 1–2: the jti, in its own slot, first (see the module docs for the ordering argument).
        if let Some(j) = &req.jti
            && !self
                .jti_script(&j.client_id, &j.jti, j.expires_at, now)
                .await?
        {
            return Ok(CodeRedeemOutcome::JtiReplayed);
        }
        // 3: the code, its family revocation and the first refresh token in one script.
        let code = req.code.as_str();
        let Some(family) = self.family_of("code:", code).await? else {
            // The jti was recorded: it must be as durable as a spend.
            self.confirm_replicated().await?;
            return Ok(CodeRedeemOutcome::NotFound);
        };
        let mut keys = vec![
            self.family_key(&family, "code:", code),
            self.revocation_key(&family),
        ];
        let (mut rt_rec, mut rt_exp, mut rt_pxat) = (String::new(), 0u64, 0u64);
        if let Some((token, record)) = &req.refresh {
            // Stored under the code's family tag (one slot with the code); reads judge
            // revocation by the record's own `family_id`, like the embedded store.
            self.set_pointer("rt:", token.as_str(), &family, record.expires_at)
                .await?;
            keys.push(self.family_key(&family, "rt:", token.as_str()));
            rt_rec = encode("refresh token", record)?;
            rt_exp = unix_secs(record.expires_at);
            rt_pxat = pxat(record.expires_at);
        }
        let until = req.family_revoke_until;
        let mut c = self.conn();
        let (status, rec): (i64, Option<String>) = self
            .run("code redemption", async move {
                let mut inv = scripts::REDEEM_CODE.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                inv.arg(unix_secs(now))
                    .arg(unix_secs(until))
                    .arg(pxat(until))
                    .arg(rt_rec)
                    .arg(rt_exp)
                    .arg(rt_pxat);
                inv.invoke_async(&mut c).await
            })
            .await?;
        self.confirm_replicated().await?;
        let record = |rec: Option<String>| -> Result<CodeRecord, StoreError> {
            decode("code", rec.as_deref().unwrap_or_default())
        };
        match status {
            0 => Ok(CodeRedeemOutcome::NotFound),
            1 => {
                // The index lives in other slots than the code: written after the script. The
                // code is spent either way; a failure here is reported, not a failed exchange.
                if let Some(entry) = &req.grant
                    && let Err(e) = self.put_grant(entry).await
                {
                    tracing::error!(client_id = %entry.grant.client_id,
                        family_id = %entry.grant.family_id, error = %e,
                        "cannot index a new grant: revoking this client's grants will miss it");
                }
                Ok(CodeRedeemOutcome::Redeemed(record(rec)?))
            }
            2 => Ok(CodeRedeemOutcome::AlreadyUsed(record(rec)?)),
            s => Err(corrupt_status("code", s)),
        }
    }

    async fn put_refresh(
        &self,
        token: &TokenHash,
        record: &RefreshRecord,
    ) -> Result<(), StoreError> {
        let family = record.grant.family_id.as_str();
        let key = self.family_key(family, "rt:", token.as_str());
        self.put_hash_record(
            key,
            encode("refresh token", record)?,
            "spent",
            record.expires_at,
        )
        .await?;
        self.set_pointer("rt:", token.as_str(), family, record.expires_at)
            .await
    }

    /// The new token is kept under the old token's family tag (one slot for the script);
    /// reads judge revocation by the record's own `family_id`, like the embedded store.
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_record: &RefreshRecord,
        now: SystemTime,
    ) -> Result<RefreshRotation, StoreError> {
        let Some(family) = self.family_of("rt:", old.as_str()).await? else {
            return Ok(RefreshRotation::NotFound);
        };
        self.set_pointer("rt:", new.as_str(), &family, new_record.expires_at)
            .await?;
        let keys = [
            self.family_key(&family, "rt:", old.as_str()),
            self.family_key(&family, "rt:", new.as_str()),
            self.revocation_key(&family),
        ];
        let rec = encode("refresh token", new_record)?;
        let exp = new_record.expires_at;
        let floor = unix_ms(SystemTime::now()).saturating_add(1000);
        let mut c = self.conn();
        let (status, old_rec): (i64, Option<String>) = self
            .run("refresh rotation", async move {
                scripts::ROTATE_REFRESH
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(unix_secs(now))
                    .arg(rec)
                    .arg(unix_secs(exp))
                    .arg(pxat(exp))
                    .arg(floor)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        self.confirm_replicated().await?;
        match status {
            0 => Ok(RefreshRotation::NotFound),
            1 => Ok(RefreshRotation::Rotated(decode(
                "refresh token",
                old_rec.as_deref().unwrap_or_default(),
            )?)),
            2 => Ok(RefreshRotation::Reused { family_id: family }),
            3 => Ok(RefreshRotation::FamilyRevoked),
            s => Err(corrupt_status("refresh token", s)),
        }
    }

    async fn spend_refresh(
        &self,
        token: &TokenHash,
        revoke_until: SystemTime,
        now: SystemTime,
    ) -> Result<SpentRefresh, StoreError> {
        let Some(family) = self.family_of("rt:", token.as_str()).await? else {
            return Ok(SpentRefresh::Unknown);
        };
        let keys = [
            self.family_key(&family, "rt:", token.as_str()),
            self.revocation_key(&family),
        ];
        let floor = unix_ms(SystemTime::now()).saturating_add(1000);
        let mut c = self.conn();
        let status: i64 = self
            .run("refresh reuse check", async move {
                scripts::SPEND_REFRESH
                    .key(&keys[0])
                    .key(&keys[1])
                    .arg(unix_secs(now))
                    .arg(unix_secs(revoke_until))
                    .arg(floor)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        self.confirm_replicated().await?;
        match status {
            0 => Ok(SpentRefresh::Unknown),
            1 => Ok(SpentRefresh::Active),
            2 => Ok(SpentRefresh::Reused { family_id: family }),
            3 => Ok(SpentRefresh::FamilyRevoked),
            s => Err(corrupt_status("refresh token", s)),
        }
    }

    async fn get_refresh(
        &self,
        token: &TokenHash,
        now: SystemTime,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let Some(family) = self.family_of("rt:", token.as_str()).await? else {
            return Ok(None);
        };
        let key = self.family_key(&family, "rt:", token.as_str());
        let (rec, exp, spent) = self.get_hash_record(key, "spent").await?;
        let (Some(rec), Some(exp)) = (rec, exp) else {
            return Ok(None);
        };
        if spent.as_deref() == Some("1") || is_expired(parse_secs("refresh token", &exp)?, now) {
            return Ok(None);
        }
        let record: RefreshRecord = decode("refresh token", &rec)?;
        if self.is_family_revoked(&record.grant.family_id, now).await? {
            return Ok(None);
        }
        Ok(Some(record))
    }

    async fn revoke_family(&self, family_id: &str, until: SystemTime) -> Result<(), StoreError> {
        let key = self.revocation_key(family_id);
        let mut c = self.conn();
        self.run("family revocation", async move {
            scripts::REVOKE_FAMILY
                .key(&key)
                .arg(unix_secs(until))
                .arg(pxat(until))
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await?;
        self.confirm_replicated().await
    }

    async fn is_family_revoked(
        &self,
        family_id: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let v = self
            .get_string(self.revocation_key(family_id), "family revocation read")
            .await?;
        match v {
            Some(s) => Ok(!is_expired(parse_secs("family revocation", &s)?, now)),
            None => Ok(false),
        }
    }

    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        let key = self.key(&["consent:", &pair_hash(subject, client_id)]);
        let Some(s) = self.get_string(key, "consent read").await? else {
            return Ok(None);
        };
        let rec: ConsentRecord = decode("consent", &s)?;
        Ok((!is_expired(rec.expires_at, now)).then_some(rec))
    }

    async fn put_consent(&self, record: &ConsentRecord) -> Result<(), StoreError> {
        let key = self.key(&["consent:", &pair_hash(&record.subject, &record.client_id)]);
        let value = encode("consent", record)?;
        self.set_string(key, value, Some(record.expires_at), "consent write")
            .await
    }

    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError> {
        let key = self.key(&["client:", TokenHash::of(&client.client_id).as_str()]);
        let value = encode("registered client", client)?;
        // A plain SET (no expiry) also clears the TTL of an unused registration once it is used.
        self.set_string(key, value, client.expires_at, "client write")
            .await
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        let key = self.key(&["client:", TokenHash::of(client_id).as_str()]);
        match self.get_string(key, "client read").await? {
            Some(s) => {
                let client: RegisteredClient = decode("registered client", &s)?;
                let now = SystemTime::now();
                Ok(Some(client).filter(|c| c.expires_at.is_none_or(|e| !is_expired(e, now))))
            }
            None => Ok(None),
        }
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let key = self.key(&["signing_keys"]);
        let mut c = self.conn();
        let rows: Vec<String> = self
            .run("signing keys read", async move {
                ::redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        rows.iter().map(|r| decode("signing key", r)).collect()
    }

    async fn init_signing_key(
        &self,
        candidate: &SigningKeyRecord,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let key = self.key(&["signing_keys"]);
        let value = encode("signing key", candidate)?;
        let mut c = self.conn();
        let rows: Vec<String> = self
            .run("signing key init", async move {
                scripts::INIT_SIGNING_KEY
                    .key(&key)
                    .arg(value)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        rows.iter().map(|r| decode("signing key", r)).collect()
    }

    async fn init_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let key = self.key(&["secret:", name]);
        let mut c = self.conn();
        self.run("secret init", async move {
            scripts::INIT_SECRET
                .key(&key)
                .arg(candidate)
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// "Live" is judged against the wall clock when the call is made.
    async fn record_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        let recorded = self
            .jti_script(client_id, jti, expires_at, SystemTime::now())
            .await?;
        self.confirm_replicated().await?;
        Ok(recorded)
    }

    async fn put_idp_tokens(
        &self,
        id: &str,
        sealed: &[u8],
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let key = self.key(&["up:", TokenHash::of(id).as_str()]);
        let value = encode(
            "IdP tokens",
            &IdpTokensValue {
                sealed_hex: hex(sealed),
                expires_at,
            },
        )?;
        self.set_string(key, value, Some(expires_at), "IdP tokens write")
            .await
    }

    async fn get_idp_tokens(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(&["up:", TokenHash::of(id).as_str()]);
        let Some(s) = self.get_string(key, "IdP tokens read").await? else {
            return Ok(None);
        };
        let v: IdpTokensValue = decode("IdP tokens", &s)?;
        if is_expired(v.expires_at, now) {
            return Ok(None);
        }
        from_hex(&v.sealed_hex)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                key: "IdP tokens".to_owned(),
                reason: "sealed blob is not hex".to_owned(),
            })
    }

    async fn get_client_record(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let key = self.key(&["{inv}:rec"]);
        let id = client_id.to_owned();
        let mut c = self.conn();
        let json: Option<String> = self
            .run("inventory read", async move {
                ::redis::cmd("HGET")
                    .arg(&key)
                    .arg(&id)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        json.map(|j| decode("client record", &j)).transpose()
    }

    async fn cas_client_record(
        &self,
        record: &ClientRecord,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        let (rec_key, ver_key) = (self.key(&["{inv}:rec"]), self.key(&["{inv}:ver"]));
        let version = expected.map_or(1, |v| v + 1);
        let mut stored = record.clone();
        stored.version = version;
        let json = encode("client record", &stored)?;
        let expected = expected.map(|v| v.to_string()).unwrap_or_default();
        let id = record.client_id.clone();
        let mut c = self.conn();
        let n: i64 = self
            .run("inventory write", async move {
                scripts::CAS_CLIENT_RECORD
                    .key(&rec_key)
                    .key(&ver_key)
                    .arg(id)
                    .arg(expected)
                    .arg(version)
                    .arg(json)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(n == 1)
    }

    async fn list_client_records(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let (rec_key, legacy_key) = (self.key(&["{inv}:rec"]), self.key(&["{seen}:first"]));
        // Two reads, not one pipeline: the keys live in different cluster slots (`{inv}`,
        // `{seen}`), and the legacy hash is read-only, so nothing is lost between them.
        let records = self.hash_all(rec_key, "inventory read").await?;
        let legacy = self.hash_all(legacy_key, "inventory read").await?;
        let mut out = Vec::with_capacity(records.len());
        for json in records.values() {
            out.push(decode::<ClientRecord>("client record", json)?);
        }
        // Clients seen by a version that kept only first/last sight: their first-sight JSON
        // reads as a record with defaults until the client is seen again.
        for (id, json) in &legacy {
            if !records.contains_key(id) {
                out.push(decode::<ClientRecord>("client record", json)?);
            }
        }
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(out)
    }

    async fn count_client_records(&self) -> Result<u64, StoreError> {
        let key = self.key(&["{inv}:rec"]);
        let mut c = self.conn();
        self.run("inventory count", async move {
            ::redis::cmd("HLEN").arg(&key).query_async(&mut c).await
        })
        .await
    }

    async fn put_grant(&self, entry: &GrantEntry) -> Result<(), StoreError> {
        let g = &entry.grant;
        let client = TokenHash::of(&g.client_id);
        let by_client = self.key(&["grants:", client.as_str()]);
        let by_subject = self.subject_grants_key(client.as_str(), &g.subject);
        let json = encode("grant", entry)?;
        let fid = g.family_id.clone();
        let until = unix_ms(entry.expires_at);
        // Two hashes, possibly in two cluster slots: two script calls, the per-user index
        // first. A failure between them leaves a per-user row whose client row is missing;
        // the caller gets the error, and the row only widens a later consent's *listing*
        // of that user's own grants, which are then checked for revocation one by one.
        for key in [by_subject, by_client] {
            let (fid, json) = (fid.clone(), json.clone());
            let mut c = self.conn();
            self.run("grant write", async move {
                scripts::PUT_GRANT
                    .key(&key)
                    .arg(fid)
                    .arg(json)
                    .arg(until)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await?;
        }
        Ok(())
    }

    async fn list_grants(
        &self,
        client_id: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantEntry>, StoreError> {
        let key = self.key(&["grants:", TokenHash::of(client_id).as_str()]);
        self.read_grants(key, now, |_| true).await
    }

    async fn list_subject_grants(
        &self,
        client_id: &str,
        subject: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantEntry>, StoreError> {
        let key = self.subject_grants_key(TokenHash::of(client_id).as_str(), subject);
        self.read_grants(key, now, |e| e.grant.subject == subject)
            .await
    }

    async fn remove_grants(
        &self,
        client_id: &str,
        family_ids: &[String],
    ) -> Result<(), StoreError> {
        if family_ids.is_empty() {
            return Ok(());
        }
        let client = TokenHash::of(client_id);
        let key = self.key(&["grants:", client.as_str()]);
        // The per-user rows first: their keys come from the stored entries.
        let (k, fids) = (key.clone(), family_ids.to_vec());
        let mut c = self.conn();
        let stored: Vec<Option<String>> = self
            .run("grants read", async move {
                ::redis::cmd("HMGET")
                    .arg(&k)
                    .arg(fids)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut by_subject: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for json in stored.iter().flatten() {
            let entry: GrantEntry = decode("grant", json)?;
            by_subject
                .entry(self.subject_grants_key(client.as_str(), &entry.grant.subject))
                .or_default()
                .push(entry.grant.family_id);
        }
        for (subject_key, fids) in by_subject.into_iter().chain([(key, family_ids.to_vec())]) {
            let mut c = self.conn();
            self.run("grants write", async move {
                ::redis::cmd("HDEL")
                    .arg(&subject_key)
                    .arg(fids)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await?;
        }
        Ok(())
    }
}

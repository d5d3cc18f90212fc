//! The logic of every write, run by the writer thread inside a batch transaction
//! ([`super::writer`]). Each function reads what it needs first and writes last, so a corrupt
//! record makes it fail before it has changed anything.

use std::time::SystemTime;

use redb::{ReadableTable, ReadableTableMetadata, Table};

use super::codec::{
    FamilyRevocation, IdpTokensRecord, StoredCode, StoredJti, StoredRefresh, decode, encode,
    is_expired, later, pair_key, subject_grant_key, to_hex, unavailable,
};
use super::writer::Tables;
use crate::{
    ClientRecord, CodeRecord, CodeRedeem, CodeRedeemOutcome, CodeRedemption, ConsentRecord,
    GrantEntry, RefreshRecord, RefreshRotation, RegisteredClient, SigningKeyRecord, SpentRefresh,
    StoreError,
};

type StrTable<'txn> = Table<'txn, &'static str, &'static [u8]>;

/// Read and decode a JSON value from any string-keyed table.
pub(crate) fn get_json<T, Tb>(table: &Tb, what: &str, key: &str) -> Result<Option<T>, StoreError>
where
    T: serde::de::DeserializeOwned,
    Tb: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key) {
        Ok(Some(guard)) => decode(what, key, guard.value()).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(unavailable(&format!("reading {what}"), e)),
    }
}

fn put_json<T: serde::Serialize>(
    table: &mut StrTable<'_>,
    what: &str,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = encode(what, key, value)?;
    table
        .insert(key, bytes.as_slice())
        .map(|_| ())
        .map_err(|e| unavailable(&format!("writing {what}"), e))
}

/// Whether `family_id` is revoked at `now` (any readable families table).
pub(crate) fn family_revoked<Tb>(
    families: &Tb,
    family_id: &str,
    now: SystemTime,
) -> Result<bool, StoreError>
where
    Tb: ReadableTable<&'static str, &'static [u8]>,
{
    let rev: Option<FamilyRevocation> = get_json(families, "family revocation", family_id)?;
    Ok(rev.is_some_and(|r| !is_expired(r.expires_at, now)))
}

pub(crate) fn put_code(
    t: &mut Tables<'_>,
    code: &str,
    record: CodeRecord,
) -> Result<(), StoreError> {
    put_json(
        &mut t.codes,
        "code",
        code,
        &StoredCode {
            record,
            redeemed: false,
        },
    )
}

pub(crate) fn take_code(
    t: &mut Tables<'_>,
    code: &str,
    now: SystemTime,
) -> Result<CodeRedemption, StoreError> {
    let stored: Option<StoredCode> = get_json(&t.codes, "code", code)?;
    let Some(mut stored) = stored.filter(|s| !is_expired(s.record.expires_at, now)) else {
        return Ok(CodeRedemption::NotFound);
    };
    if stored.redeemed {
        return Ok(CodeRedemption::AlreadyUsed(stored.record));
    }
    stored.redeemed = true;
    put_json(&mut t.codes, "code", code, &stored)?;
    Ok(CodeRedemption::Redeemed(stored.record))
}

/// [`crate::Store::redeem_code`]: every read first (jti, code, family revocation), then every
/// value encoded, then the writes — so a corrupt record fails the op before it changed anything
/// (a failing op does not abort the batch, see `writer.rs`).
pub(crate) fn redeem_code(
    t: &mut Tables<'_>,
    req: CodeRedeem,
    now: SystemTime,
) -> Result<CodeRedeemOutcome, StoreError> {
    // Reads.
    let jti = match &req.jti {
        Some(j) => {
            let key = pair_key(&j.client_id, &j.jti);
            let existing: Option<StoredJti> = get_json(&t.jtis, "jti", &key)?;
            if existing.is_some_and(|r| !is_expired(r.expires_at, now)) {
                return Ok(CodeRedeemOutcome::JtiReplayed);
            }
            let bytes = encode(
                "jti",
                &key,
                &StoredJti {
                    expires_at: j.expires_at,
                },
            )?;
            Some((key, bytes))
        }
        None => None,
    };
    let code = req.code.as_str();
    let grant_entry = req.grant;
    let stored: Option<StoredCode> = get_json(&t.codes, "code", code)?;
    let stored = stored.filter(|s| !is_expired(s.record.expires_at, now));
    // What the code needs written, encoded before anything is written.
    enum Plan {
        NotFound,
        Reused(CodeRecord, Vec<u8>),
        Redeem(CodeRecord, Vec<u8>, Option<(String, Vec<u8>)>),
    }
    let plan = match stored {
        None => Plan::NotFound,
        Some(stored) if stored.redeemed => {
            let family = stored.record.grant.family_id.as_str();
            let until = revocation_until(&t.families, family, req.family_revoke_until)?;
            let bytes = encode(
                "family revocation",
                family,
                &FamilyRevocation { expires_at: until },
            )?;
            Plan::Reused(stored.record, bytes)
        }
        Some(mut stored) => {
            stored.redeemed = true;
            let code_bytes = encode("code", code, &stored)?;
            let refresh = match req.refresh {
                Some((token, record)) => {
                    let bytes = encode(
                        "refresh token",
                        token.as_str(),
                        &StoredRefresh {
                            record,
                            spent: false,
                        },
                    )?;
                    Some((token.0, bytes))
                }
                None => None,
            };
            Plan::Redeem(stored.record, code_bytes, refresh)
        }
    };
    // Writes.
    let write = |e| unavailable("writing a code redemption", e);
    if let Some((key, bytes)) = jti {
        t.jtis
            .insert(key.as_str(), bytes.as_slice())
            .map_err(write)?;
    }
    match plan {
        Plan::NotFound => Ok(CodeRedeemOutcome::NotFound),
        Plan::Reused(record, bytes) => {
            t.families
                .insert(record.grant.family_id.as_str(), bytes.as_slice())
                .map_err(write)?;
            Ok(CodeRedeemOutcome::AlreadyUsed(record))
        }
        Plan::Redeem(record, code_bytes, refresh) => {
            t.codes.insert(code, code_bytes.as_slice()).map_err(write)?;
            if let Some((token, bytes)) = refresh {
                t.refresh
                    .insert(token.as_str(), bytes.as_slice())
                    .map_err(write)?;
            }
            if let Some(entry) = grant_entry {
                put_grant(t, entry)?;
            }
            Ok(CodeRedeemOutcome::Redeemed(record))
        }
    }
}

pub(crate) fn put_refresh(
    t: &mut Tables<'_>,
    token: &str,
    record: RefreshRecord,
) -> Result<(), StoreError> {
    put_json(
        &mut t.refresh,
        "refresh token",
        token,
        &StoredRefresh {
            record,
            spent: false,
        },
    )
}

pub(crate) fn rotate_refresh(
    t: &mut Tables<'_>,
    old: &str,
    new: &str,
    new_record: RefreshRecord,
    now: SystemTime,
) -> Result<RefreshRotation, StoreError> {
    let stored: Option<StoredRefresh> = get_json(&t.refresh, "refresh token", old)?;
    let Some(mut stored) = stored.filter(|s| !is_expired(s.record.expires_at, now)) else {
        return Ok(RefreshRotation::NotFound);
    };
    let family_id = stored.record.grant.family_id.clone();
    if family_revoked(&t.families, &family_id, now)? {
        return Ok(RefreshRotation::FamilyRevoked);
    }
    if stored.spent {
        // Any member of the family was issued no later than now, so none outlives a token
        // issued now (`new_record`) or the spent one: revoke until the later of the two.
        let until = later(stored.record.expires_at, new_record.expires_at);
        revoke_family(t, &family_id, until)?;
        return Ok(RefreshRotation::Reused { family_id });
    }
    stored.spent = true;
    put_json(&mut t.refresh, "refresh token", old, &stored)?;
    put_json(
        &mut t.refresh,
        "refresh token",
        new,
        &StoredRefresh {
            record: new_record,
            spent: false,
        },
    )?;
    Ok(RefreshRotation::Rotated(stored.record))
}

pub(crate) fn spend_refresh(
    t: &mut Tables<'_>,
    old: &str,
    revoke_until: SystemTime,
    now: SystemTime,
) -> Result<SpentRefresh, StoreError> {
    let stored: Option<StoredRefresh> = get_json(&t.refresh, "refresh token", old)?;
    let Some(stored) = stored.filter(|s| !is_expired(s.record.expires_at, now)) else {
        return Ok(SpentRefresh::Unknown);
    };
    let family_id = stored.record.grant.family_id;
    if family_revoked(&t.families, &family_id, now)? {
        return Ok(SpentRefresh::FamilyRevoked);
    }
    if !stored.spent {
        return Ok(SpentRefresh::Active);
    }
    revoke_family(t, &family_id, later(stored.record.expires_at, revoke_until))?;
    Ok(SpentRefresh::Reused { family_id })
}

pub(crate) fn revoke_family(
    t: &mut Tables<'_>,
    family_id: &str,
    until: SystemTime,
) -> Result<(), StoreError> {
    let expires_at = revocation_until(&t.families, family_id, until)?;
    put_json(
        &mut t.families,
        "family revocation",
        family_id,
        &FamilyRevocation { expires_at },
    )
}

/// When a revocation of `family_id` until `until` should end, given any earlier one: never
/// shortened.
fn revocation_until<Tb>(
    families: &Tb,
    family_id: &str,
    until: SystemTime,
) -> Result<SystemTime, StoreError>
where
    Tb: ReadableTable<&'static str, &'static [u8]>,
{
    let existing: Option<FamilyRevocation> = get_json(families, "family revocation", family_id)?;
    Ok(existing.map_or(until, |e| later(e.expires_at, until)))
}

pub(crate) fn put_consent(t: &mut Tables<'_>, record: ConsentRecord) -> Result<(), StoreError> {
    let key = pair_key(&record.subject, &record.client_id);
    put_json(&mut t.consents, "consent", &key, &record)
}

pub(crate) fn put_client(t: &mut Tables<'_>, client: RegisteredClient) -> Result<(), StoreError> {
    let key = client.client_id.clone();
    put_json(&mut t.clients, "registered client", &key, &client)
}

/// All signing keys in insertion order (any readable signing-key table).
pub(crate) fn all_signing_keys<Tb>(table: &Tb) -> Result<Vec<SigningKeyRecord>, StoreError>
where
    Tb: ReadableTable<u64, &'static [u8]>,
{
    let iter = table
        .iter()
        .map_err(|e| unavailable("reading signing keys", e))?;
    let mut keys = Vec::new();
    for row in iter {
        let (seq, value) = row.map_err(|e| unavailable("reading signing keys", e))?;
        keys.push(decode(
            "signing key",
            &seq.value().to_string(),
            value.value(),
        )?);
    }
    Ok(keys)
}

pub(crate) fn init_signing_key(
    t: &mut Tables<'_>,
    candidate: SigningKeyRecord,
) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let empty = t
        .signing_keys
        .is_empty()
        .map_err(|e| unavailable("reading signing keys", e))?;
    if empty {
        let bytes = encode("signing key", &candidate.kid, &candidate)?;
        t.signing_keys
            .insert(0, bytes.as_slice())
            .map_err(|e| unavailable("writing signing key", e))?;
    }
    all_signing_keys(&t.signing_keys)
}

pub(crate) fn init_secret(
    t: &mut Tables<'_>,
    name: &str,
    candidate: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let existing = t
        .secrets
        .get(name)
        .map_err(|e| unavailable("reading secret", e))?
        .map(|g| g.value().to_vec());
    if let Some(value) = existing {
        return Ok(value);
    }
    t.secrets
        .insert(name, candidate.as_slice())
        .map_err(|e| unavailable("writing secret", e))?;
    Ok(candidate)
}

pub(crate) fn record_jti(
    t: &mut Tables<'_>,
    client_id: &str,
    jti: &str,
    expires_at: SystemTime,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let key = pair_key(client_id, jti);
    let existing: Option<StoredJti> = get_json(&t.jtis, "jti", &key)?;
    if existing.is_some_and(|r| !is_expired(r.expires_at, now)) {
        return Ok(false);
    }
    put_json(&mut t.jtis, "jti", &key, &StoredJti { expires_at })?;
    Ok(true)
}

pub(crate) fn put_idp_tokens(
    t: &mut Tables<'_>,
    id: &str,
    sealed: &[u8],
    expires_at: SystemTime,
) -> Result<(), StoreError> {
    let record = IdpTokensRecord {
        sealed_hex: to_hex(sealed),
        expires_at,
    };
    put_json(&mut t.idp_tokens, "IdP tokens", id, &record)
}

/// [`crate::Store::cas_client_record`]: write when the stored version is `expected`.
pub(crate) fn cas_client_record(
    t: &mut Tables<'_>,
    mut record: ClientRecord,
    expected: Option<u64>,
) -> Result<bool, StoreError> {
    let key = record.client_id.clone();
    let current: Option<ClientRecord> = get_json(&t.inventory, "client record", &key)?;
    if current.map(|c| c.version) != expected {
        return Ok(false);
    }
    record.version = expected.map_or(1, |v| v + 1);
    put_json(&mut t.inventory, "client record", &key, &record)?;
    Ok(true)
}

/// Index a grant under its client and under its client and user, in one transaction.
pub(crate) fn put_grant(t: &mut Tables<'_>, entry: GrantEntry) -> Result<(), StoreError> {
    let g = &entry.grant;
    let key = pair_key(&g.client_id, &g.family_id);
    put_json(&mut t.grants, "grant", &key, &entry)?;
    let by_subject = subject_grant_key(&g.client_id, &g.subject, &g.family_id);
    put_json(&mut t.subject_grants, "grant", &by_subject, &entry)
}

/// Drop grants from both indexes (the per-user row is found through the stored entry).
pub(crate) fn remove_grants(
    t: &mut Tables<'_>,
    client_id: &str,
    family_ids: &[String],
) -> Result<(), StoreError> {
    for fid in family_ids {
        let key = pair_key(client_id, fid);
        let removed = t
            .grants
            .remove(key.as_str())
            .map_err(|e| unavailable("removing a grant", e))?;
        let Some(row) = removed else { continue };
        let entry: GrantEntry = decode("grant", &key, row.value())?;
        let by_subject = subject_grant_key(client_id, &entry.grant.subject, fid);
        t.subject_grants
            .remove(by_subject.as_str())
            .map_err(|e| unavailable("removing a grant", e))?;
    }
    Ok(())
}

/// The expiring table at `index` of [`super::codec::EXPIRING`].
pub(crate) fn expiring_mut<'a, 'txn>(
    t: &'a mut Tables<'txn>,
    index: usize,
) -> Option<&'a mut StrTable<'txn>> {
    match index {
        0 => Some(&mut t.codes),
        1 => Some(&mut t.refresh),
        2 => Some(&mut t.families),
        3 => Some(&mut t.consents),
        4 => Some(&mut t.jtis),
        5 => Some(&mut t.idp_tokens),
        6 => Some(&mut t.grants),
        7 => Some(&mut t.clients),
        8 => Some(&mut t.subject_grants),
        _ => None,
    }
}

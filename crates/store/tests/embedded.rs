//! The embedded store keeps every rule of the `Store` trait's docs: single-use codes, refresh
//! rotation with reuse detection, revocation, expiry, insert-if-absent secrets and keys, replay
//! records, persistence across reopen, and a clear error when the file is in use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use cimdgate_store::embedded::{DB_FILE_NAME, EmbeddedStore};
use cimdgate_store::{
    ClientStatus, CodeRedemption, GrantEntry, RefreshRotation, SpentRefresh, Store, StoreError,
};
use common::*;

async fn code_is_redeemed_once_then_already_used(s: Arc<dyn Store>) {
    let rec = code("fam-1", future());
    s.put_code(&hash("c1"), &rec).await.unwrap();
    assert_eq!(
        s.take_code(&hash("c1"), now()).await.unwrap(),
        CodeRedemption::Redeemed(rec.clone())
    );
    for _ in 0..2 {
        assert_eq!(
            s.take_code(&hash("c1"), now()).await.unwrap(),
            CodeRedemption::AlreadyUsed(rec.clone())
        );
    }
}

async fn code_unknown_or_expired_is_not_found(s: Arc<dyn Store>) {
    s.put_code(&hash("old"), &code("f", past())).await.unwrap();
    s.put_code(
        &hash("used-then-expired"),
        &code("f", now() + Duration::from_secs(100)),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.take_code(&hash("used-then-expired"), now())
            .await
            .unwrap(),
        CodeRedemption::Redeemed(_)
    ));
    let cases = [
        ("unknown", now()),
        ("old", now()),
        // A redeemed code is forgotten once expired.
        ("used-then-expired", now() + Duration::from_secs(200)),
    ];
    for (c, at) in cases {
        assert_eq!(
            s.take_code(&hash(c), at).await.unwrap(),
            CodeRedemption::NotFound,
            "{c}"
        );
    }
}

async fn refresh_rotation_spends_the_old_token_and_stores_the_new(s: Arc<dyn Store>) {
    let (a, b, c) = (hash("rt-a"), hash("rt-b"), hash("rt-c"));
    let rec_a = refresh("fam", future());
    s.put_refresh(&a, &rec_a).await.unwrap();
    assert_eq!(s.get_refresh(&a, now()).await.unwrap(), Some(rec_a.clone()));

    let rec_b = refresh("fam", future() + HOUR);
    assert_eq!(
        s.rotate_refresh(&a, &b, &rec_b, now()).await.unwrap(),
        RefreshRotation::Rotated(rec_a)
    );
    assert_eq!(
        s.get_refresh(&a, now()).await.unwrap(),
        None,
        "a spent token is not active"
    );
    assert_eq!(s.get_refresh(&b, now()).await.unwrap(), Some(rec_b.clone()));
    assert!(matches!(
        s.rotate_refresh(&b, &c, &refresh("fam", future()), now()).await.unwrap(),
        RefreshRotation::Rotated(r) if r == rec_b
    ));
    assert!(!s.is_family_revoked("fam", now()).await.unwrap());
}

async fn refresh_reuse_revokes_the_whole_family(s: Arc<dyn Store>) {
    let (a, b, c) = (hash("a"), hash("b"), hash("c"));
    s.put_refresh(&a, &refresh("fam", future())).await.unwrap();
    s.put_refresh(&hash("other"), &refresh("other-fam", future()))
        .await
        .unwrap();
    s.rotate_refresh(&a, &b, &refresh("fam", future()), now())
        .await
        .unwrap();

    // Replaying the spent token `a` (an attacker or a confused client).
    let r = s
        .rotate_refresh(&a, &c, &refresh("fam", future()), now())
        .await
        .unwrap();
    assert_eq!(
        r,
        RefreshRotation::Reused {
            family_id: "fam".into()
        }
    );
    assert!(s.is_family_revoked("fam", now()).await.unwrap());
    assert_eq!(
        s.get_refresh(&c, now()).await.unwrap(),
        None,
        "reuse stores no new token"
    );
    // The legitimate holder's current token `b` is dead too.
    assert_eq!(s.get_refresh(&b, now()).await.unwrap(), None);
    let r = s
        .rotate_refresh(&b, &c, &refresh("fam", future()), now())
        .await
        .unwrap();
    assert_eq!(r, RefreshRotation::FamilyRevoked);
    // Another family is untouched.
    assert!(
        s.get_refresh(&hash("other"), now())
            .await
            .unwrap()
            .is_some()
    );
    assert!(!s.is_family_revoked("other-fam", now()).await.unwrap());
}

async fn reuse_revocation_outlives_the_newest_family_member(s: Arc<dyn Store>) {
    // `a` lives 1 h; the token issued from it lives 3 h.
    s.put_refresh(&hash("a"), &refresh("fam", future()))
        .await
        .unwrap();
    let long = now() + 3 * HOUR;
    s.rotate_refresh(&hash("a"), &hash("b"), &refresh("fam", long), now())
        .await
        .unwrap();
    let r = s
        .rotate_refresh(&hash("a"), &hash("c"), &refresh("fam", long), now())
        .await
        .unwrap();
    assert!(matches!(r, RefreshRotation::Reused { .. }));
    let just_before_b_expires = long - Duration::from_secs(1);
    assert!(
        s.is_family_revoked("fam", just_before_b_expires)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_refresh(&hash("b"), just_before_b_expires)
            .await
            .unwrap(),
        None
    );
}

async fn refresh_unknown_or_expired_is_not_found(s: Arc<dyn Store>) {
    s.put_refresh(&hash("expired"), &refresh("fam", past()))
        .await
        .unwrap();
    for t in ["unknown", "expired"] {
        let r = s
            .rotate_refresh(&hash(t), &hash("new"), &refresh("fam", future()), now())
            .await;
        assert_eq!(r.unwrap(), RefreshRotation::NotFound, "{t}");
        assert_eq!(s.get_refresh(&hash(t), now()).await.unwrap(), None, "{t}");
    }
    assert_eq!(s.get_refresh(&hash("new"), now()).await.unwrap(), None);
}

async fn revoke_family_until_a_time_and_keep_the_longest(s: Arc<dyn Store>) {
    assert!(!s.is_family_revoked("f", now()).await.unwrap());
    s.put_refresh(&hash("t"), &refresh("f", future()))
        .await
        .unwrap();
    let until = future();
    s.revoke_family("f", until).await.unwrap();
    // A shorter revocation later does not shorten the first.
    s.revoke_family("f", now() + Duration::from_secs(10))
        .await
        .unwrap();
    let cases = [
        (now(), true),
        (until - Duration::from_secs(1), true),
        (until, false),
    ];
    for (at, revoked) in cases {
        assert_eq!(
            s.is_family_revoked("f", at).await.unwrap(),
            revoked,
            "{at:?}"
        );
    }
    assert_eq!(s.get_refresh(&hash("t"), now()).await.unwrap(), None);
    let r = s
        .rotate_refresh(&hash("t"), &hash("u"), &refresh("f", future()), now())
        .await;
    assert_eq!(r.unwrap(), RefreshRotation::FamilyRevoked);
}

async fn consent_is_per_subject_and_client_and_expires(s: Arc<dyn Store>) {
    let rec = consent("alice", "https://c.example/a", future());
    s.put_consent(&rec).await.unwrap();
    s.put_consent(&consent("bob", "https://c.example/b", past()))
        .await
        .unwrap();
    let cases = [
        ("alice", "https://c.example/a", Some(rec.clone())),
        ("alice", "https://c.example/b", None),
        ("bob", "https://c.example/a", None),
        ("bob", "https://c.example/b", None), // expired
    ];
    for (sub, cid, want) in cases {
        assert_eq!(
            s.get_consent(sub, cid, now()).await.unwrap(),
            want,
            "{sub} {cid}"
        );
    }
    // A new decision replaces the old one.
    let denied = cimdgate_store::ConsentRecord {
        approved: false,
        ..rec
    };
    s.put_consent(&denied).await.unwrap();
    assert_eq!(
        s.get_consent("alice", "https://c.example/a", now())
            .await
            .unwrap(),
        Some(denied)
    );
}

async fn registered_clients_round_trip(s: Arc<dyn Store>) {
    assert_eq!(s.get_client("dcr-1").await.unwrap(), None);
    s.put_client(&dcr_client("dcr-1")).await.unwrap();
    assert_eq!(
        s.get_client("dcr-1").await.unwrap(),
        Some(dcr_client("dcr-1"))
    );
}

async fn first_signing_key_wins_and_is_listed(s: Arc<dyn Store>) {
    assert!(s.signing_keys().await.unwrap().is_empty());
    assert_eq!(
        s.init_signing_key(&signing_key("k1")).await.unwrap(),
        vec![signing_key("k1")]
    );
    assert_eq!(
        s.init_signing_key(&signing_key("k2")).await.unwrap(),
        vec![signing_key("k1")]
    );
    assert_eq!(s.signing_keys().await.unwrap(), vec![signing_key("k1")]);
}

async fn init_secret_returns_the_first_value_stored(s: Arc<dyn Store>) {
    assert_eq!(s.init_secret("cookie", b"first").await.unwrap(), b"first");
    assert_eq!(s.init_secret("cookie", b"second").await.unwrap(), b"first");
    assert_eq!(
        s.init_secret("csrf", &[0, 255, 7]).await.unwrap(),
        vec![0, 255, 7]
    );
}

async fn jti_is_recorded_once_per_client_until_it_expires(s: Arc<dyn Store>) {
    let cases = [
        ("https://a/c", "j1", future(), true),
        ("https://a/c", "j1", future(), false), // replay
        ("https://b/c", "j1", future(), true),  // another client's jti
        ("https://a/c", "old", past(), true),
        ("https://a/c", "old", future(), true), // the expired record no longer counts
        ("https://a/c", "old", future(), false),
    ];
    for (i, (client, jti, exp, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            s.record_jti(client, jti, exp).await.unwrap(),
            want,
            "case {i}"
        );
    }
}

async fn idp_tokens_round_trip_and_expire(s: Arc<dyn Store>) {
    let blob: Vec<u8> = (0..=255).collect();
    s.put_idp_tokens("u1", &blob, future()).await.unwrap();
    s.put_idp_tokens("u2", b"x", past()).await.unwrap();
    assert_eq!(s.get_idp_tokens("u1", now()).await.unwrap(), Some(blob));
    assert_eq!(s.get_idp_tokens("u1", future()).await.unwrap(), None);
    assert_eq!(s.get_idp_tokens("u2", now()).await.unwrap(), None);
    assert_eq!(s.get_idp_tokens("none", now()).await.unwrap(), None);
}

async fn client_records_are_written_by_compare_and_set(s: Arc<dyn Store>) {
    let (t0, t1) = (past(), now());
    assert!(
        s.cas_client_record(&seen("https://a/c", Some("A"), t0), None)
            .await
            .unwrap()
    );
    assert!(
        !s.cas_client_record(&seen("https://a/c", Some("lost race"), t0), None)
            .await
            .unwrap(),
        "a second first write loses"
    );
    let mut rec = s.get_client_record("https://a/c").await.unwrap().unwrap();
    assert_eq!(rec.version, 1);
    rec.last_seen = t1;
    rec.admin.status = ClientStatus::Blocked;
    assert!(s.cas_client_record(&rec, Some(1)).await.unwrap());
    assert!(
        !s.cas_client_record(&rec, Some(1)).await.unwrap(),
        "a write from a stale read loses"
    );
    assert!(
        s.cas_client_record(&seen("https://b/c", None, t1), None)
            .await
            .unwrap()
    );
    let all = s.list_client_records().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(s.count_client_records().await.unwrap(), 2);
    assert_eq!(all[0].client_id, "https://a/c");
    assert_eq!(all[0].snapshot.client_name.as_deref(), Some("A"));
    assert_eq!((all[0].first_seen, all[0].last_seen), (t0, t1));
    assert_eq!(all[0].version, 2);
    assert_eq!(
        s.client_status("https://a/c").await.unwrap(),
        Some(ClientStatus::Blocked)
    );
    assert_eq!(s.client_status("https://none/c").await.unwrap(), None);
}

async fn an_unused_registration_reads_as_absent_once_it_expires(s: Arc<dyn Store>) {
    let mut unused = dcr_client("unused");
    unused.expires_at = Some(past());
    s.put_client(&unused).await.unwrap();
    assert_eq!(s.get_client("unused").await.unwrap(), None);
    let mut fresh = dcr_client("fresh");
    fresh.expires_at = Some(future());
    s.put_client(&fresh).await.unwrap();
    assert!(s.get_client("fresh").await.unwrap().is_some());
    fresh.expires_at = None;
    s.put_client(&fresh).await.unwrap();
    assert_eq!(s.get_client("fresh").await.unwrap(), Some(fresh));
}

async fn grants_are_listed_per_client_until_they_end_or_are_removed(s: Arc<dyn Store>) {
    let entry = |client: &str, family: &str, expires_at| {
        let mut grant = grant(family, None, None);
        grant.client_id = client.into();
        GrantEntry { grant, expires_at }
    };
    s.put_grant(&entry("https://a/c", "f1", future()))
        .await
        .unwrap();
    s.put_grant(&entry("https://a/c", "f2", future()))
        .await
        .unwrap();
    s.put_grant(&entry("https://a/c", "ended", past()))
        .await
        .unwrap();
    s.put_grant(&entry("https://a/c2", "other", future()))
        .await
        .unwrap();
    let mut fids: Vec<String> = s
        .list_grants("https://a/c", now())
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.grant.family_id)
        .collect();
    fids.sort();
    assert_eq!(
        fids,
        ["f1", "f2"],
        "ended grants and other clients' are not listed"
    );
    s.remove_grants("https://a/c", &["f1".to_owned()])
        .await
        .unwrap();
    let left = s.list_grants("https://a/c", now()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].grant.family_id, "f2");
    assert_eq!(s.list_grants("https://a/c2", now()).await.unwrap().len(), 1);
}

async fn grants_are_listed_per_user_without_the_other_users(s: Arc<dyn Store>) {
    let entry = |client: &str, subject: &str, family: &str, expires_at| {
        let mut grant = grant(family, None, None);
        grant.client_id = client.into();
        grant.subject = subject.into();
        GrantEntry { grant, expires_at }
    };
    for e in [
        entry("https://a/c", "alice", "a1", future()),
        entry("https://a/c", "alice", "a2", future()),
        entry("https://a/c", "alice", "a-ended", past()),
        entry("https://a/c", "bob", "b1", future()),
        // A subject that starts with alice's and the separator: not alice's grant.
        entry("https://a/c", "alice\0x", "trap", future()),
        entry("https://a/c2", "alice", "other-client", future()),
    ] {
        s.put_grant(&e).await.unwrap();
    }
    let fids = |v: Vec<GrantEntry>| {
        let mut f: Vec<String> = v.into_iter().map(|g| g.grant.family_id).collect();
        f.sort();
        f
    };
    let alice = s.list_subject_grants("https://a/c", "alice", now()).await;
    assert_eq!(fids(alice.unwrap()), ["a1", "a2"]);
    let bob = s.list_subject_grants("https://a/c", "bob", now()).await;
    assert_eq!(fids(bob.unwrap()), ["b1"]);
    assert!(
        s.list_subject_grants("https://a/c", "carol", now())
            .await
            .unwrap()
            .is_empty()
    );
    // Removing through the client index removes the per-user row too.
    s.remove_grants("https://a/c", &["a1".to_owned(), "b1".to_owned()])
        .await
        .unwrap();
    let alice = s.list_subject_grants("https://a/c", "alice", now()).await;
    assert_eq!(fids(alice.unwrap()), ["a2"]);
    let bob = s.list_subject_grants("https://a/c", "bob", now()).await;
    assert!(bob.unwrap().is_empty());
    let other = s.list_subject_grants("https://a/c2", "alice", now()).await;
    assert_eq!(fids(other.unwrap()), ["other-client"]);
}

#[tokio::test]
async fn a_database_from_before_the_per_user_grant_index_is_indexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let mut old = GrantEntry {
        grant: grant("before-upgrade", None, None),
        expires_at: future(),
    };
    old.grant.subject = "alice".into();
    s.put_grant(&old).await.unwrap();
    drop(s);
    // The file as an older version left it: the client index only.
    let db = redb::Database::create(dir.path().join(DB_FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    let def: redb::TableDefinition<&str, &[u8]> =
        redb::TableDefinition::new("client_subject_grants");
    assert!(txn.delete_table(def).unwrap(), "the index table existed");
    txn.commit().unwrap();
    drop(db);

    let s = EmbeddedStore::open(dir.path()).unwrap();
    let listed = s
        .list_subject_grants(&old.grant.client_id, "alice", now())
        .await
        .unwrap();
    assert_eq!(listed, [old.clone()]);
    // Not indexed twice, nor rebuilt over a live index, on the next open.
    drop(s);
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let listed = s
        .list_subject_grants(&old.grant.client_id, "alice", now())
        .await;
    assert_eq!(listed.unwrap().len(), 1);
}

#[tokio::test]
async fn sweep_deletes_only_expired_rows() {
    let (_dir, s) = open_temp();
    s.put_code(&hash("c-old"), &code("f", past()))
        .await
        .unwrap();
    s.put_refresh(&hash("r-old"), &refresh("f", past()))
        .await
        .unwrap();
    s.record_jti("c", "j-old", past()).await.unwrap();
    s.put_idp_tokens("u-old", b"x", past()).await.unwrap();
    s.revoke_family("f-old", past()).await.unwrap();
    s.put_consent(&consent("a", "c", past())).await.unwrap();
    s.put_refresh(&hash("r-live"), &refresh("f", future()))
        .await
        .unwrap();
    s.record_jti("c", "j-live", future()).await.unwrap();

    assert_eq!(s.sweep_expired(now()).await.unwrap(), 6);
    assert_eq!(s.sweep_expired(now()).await.unwrap(), 0);
    assert!(
        s.get_refresh(&hash("r-live"), now())
            .await
            .unwrap()
            .is_some()
    );
    assert!(!s.record_jti("c", "j-live", future()).await.unwrap());
    // Everything expires eventually.
    assert_eq!(s.sweep_expired(future() + HOUR).await.unwrap(), 2);
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.put_refresh(&hash("rt"), &refresh("fam", future()))
            .await
            .unwrap();
        s.put_code(&hash("code"), &code("fam", future()))
            .await
            .unwrap();
        s.take_code(&hash("code"), now()).await.unwrap();
        s.record_jti("c", "j", future()).await.unwrap();
        s.put_consent(&consent("alice", "c", future()))
            .await
            .unwrap();
        s.put_client(&dcr_client("d")).await.unwrap();
        s.init_signing_key(&signing_key("k1")).await.unwrap();
        s.init_secret("cookie", b"v1").await.unwrap();
        s.revoke_family("revoked", future()).await.unwrap();
        s.put_idp_tokens("u", b"sealed", future()).await.unwrap();
        s.cas_client_record(&seen("https://a/c", None, now()), None)
            .await
            .unwrap();
    }
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert!(s.get_refresh(&hash("rt"), now()).await.unwrap().is_some());
    assert!(matches!(
        s.take_code(&hash("code"), now()).await.unwrap(),
        CodeRedemption::AlreadyUsed(_)
    ));
    assert!(!s.record_jti("c", "j", future()).await.unwrap());
    assert!(s.get_consent("alice", "c", now()).await.unwrap().is_some());
    assert!(s.get_client("d").await.unwrap().is_some());
    assert_eq!(s.signing_keys().await.unwrap(), vec![signing_key("k1")]);
    assert_eq!(s.init_secret("cookie", b"v2").await.unwrap(), b"v1");
    assert!(s.is_family_revoked("revoked", now()).await.unwrap());
    assert_eq!(
        s.get_idp_tokens("u", now()).await.unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
    assert_eq!(s.list_client_records().await.unwrap().len(), 1);
}

#[tokio::test]
async fn second_open_of_an_open_folder_is_a_clear_error() {
    let (dir, s) = open_temp();
    let err = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("already open") && msg.contains(DB_FILE_NAME),
        "{msg}"
    );
    drop(s);
    EmbeddedStore::open(dir.path()).expect("reopens once the first store is dropped");
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE_NAME), vec![0x42; 8192]).unwrap();
    let err = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open(_)), "{err:?}");
    assert!(err.to_string().contains(DB_FILE_NAME), "{err}");
}

#[test]
fn open_url_accepts_only_embedded_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let url = format!("embedded:{}", path.display());
    let s = EmbeddedStore::open_url(&url).unwrap();
    assert_eq!(s.path(), path.join(DB_FILE_NAME));
    for bad in ["redis://127.0.0.1/0", "embedded:", "/plain/path"] {
        let err = EmbeddedStore::open_url(bad).unwrap_err();
        assert!(err.to_string().contains("embedded:PATH"), "{bad}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn store_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("nested/store");
    let s = EmbeddedStore::open(&folder).unwrap();
    let mode = std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let file = folder.join(DB_FILE_NAME);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the database file holds secrets");
    // A file left readable (an older version, a permissive umask) is made private on open.
    drop(s);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _s = EmbeddedStore::open(&folder).unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

async fn health_is_ok_when_open(s: Arc<dyn Store>) {
    s.health().await.unwrap();
}

/// `spend_refresh`, one case per rule: what a token the active read did not return is.
async fn spending_a_refresh_token_tells_reuse_from_revoked_and_unknown(s: Arc<dyn Store>) {
    let until = future() + HOUR;
    // Unknown, and expired: nothing to revoke.
    assert_eq!(
        s.spend_refresh(&hash("never"), until, now()).await.unwrap(),
        SpentRefresh::Unknown
    );
    s.put_refresh(&hash("old"), &refresh("expired-fam", past()))
        .await
        .unwrap();
    assert_eq!(
        s.spend_refresh(&hash("old"), until, now()).await.unwrap(),
        SpentRefresh::Unknown
    );
    assert!(!s.is_family_revoked("expired-fam", now()).await.unwrap());

    // Active: reported, nothing changes — it still rotates afterwards.
    let (a, b) = (hash("a"), hash("b"));
    s.put_refresh(&a, &refresh("fam", future())).await.unwrap();
    assert_eq!(
        s.spend_refresh(&a, until, now()).await.unwrap(),
        SpentRefresh::Active
    );
    assert!(!s.is_family_revoked("fam", now()).await.unwrap());
    assert!(matches!(
        s.rotate_refresh(&a, &b, &refresh("fam", future()), now())
            .await
            .unwrap(),
        RefreshRotation::Rotated(_)
    ));

    // Spent (rotated): reuse revokes the family, so the token it was rotated to dies too.
    assert_eq!(
        s.spend_refresh(&a, until, now()).await.unwrap(),
        SpentRefresh::Reused {
            family_id: "fam".into()
        }
    );
    assert!(s.is_family_revoked("fam", now()).await.unwrap());
    assert_eq!(s.get_refresh(&b, now()).await.unwrap(), None);
    // ... until `revoke_until` at least (the token's own expiry is earlier here).
    assert!(
        s.is_family_revoked("fam", future() + 60 * Duration::from_secs(50))
            .await
            .unwrap()
    );

    // A family revoked earlier: said so, for the spent and for the live member alike.
    assert_eq!(
        s.spend_refresh(&a, until, now()).await.unwrap(),
        SpentRefresh::FamilyRevoked
    );
    assert_eq!(
        s.spend_refresh(&b, until, now()).await.unwrap(),
        SpentRefresh::FamilyRevoked
    );
}

/// `spend_refresh` on reuse revokes the family until the later of `revoke_until` and the spent
/// token's own expiry: here the token outlives `revoke_until`.
async fn spent_refresh_revocation_lasts_at_least_until_the_token_expires(s: Arc<dyn Store>) {
    let long = future() + 2 * HOUR;
    s.put_refresh(&hash("a"), &refresh("fam", long))
        .await
        .unwrap();
    s.rotate_refresh(&hash("a"), &hash("b"), &refresh("fam", future()), now())
        .await
        .unwrap();
    let until = future();
    assert_eq!(
        s.spend_refresh(&hash("a"), until, now()).await.unwrap(),
        SpentRefresh::Reused {
            family_id: "fam".into()
        }
    );
    let after_until_before_expiry = long - Duration::from_secs(1);
    assert!(after_until_before_expiry > until);
    assert!(
        s.is_family_revoked("fam", after_until_before_expiry)
            .await
            .unwrap()
    );
}

both_backends!(
    code_is_redeemed_once_then_already_used,
    spending_a_refresh_token_tells_reuse_from_revoked_and_unknown,
    spent_refresh_revocation_lasts_at_least_until_the_token_expires,
    code_unknown_or_expired_is_not_found,
    refresh_rotation_spends_the_old_token_and_stores_the_new,
    refresh_reuse_revokes_the_whole_family,
    reuse_revocation_outlives_the_newest_family_member,
    refresh_unknown_or_expired_is_not_found,
    revoke_family_until_a_time_and_keep_the_longest,
    consent_is_per_subject_and_client_and_expires,
    registered_clients_round_trip,
    first_signing_key_wins_and_is_listed,
    init_secret_returns_the_first_value_stored,
    jti_is_recorded_once_per_client_until_it_expires,
    idp_tokens_round_trip_and_expire,
    client_records_are_written_by_compare_and_set,
    grants_are_listed_per_client_until_they_end_or_are_removed,
    grants_are_listed_per_user_without_the_other_users,
    an_unused_registration_reads_as_absent_once_it_expires,
    health_is_ok_when_open,
);

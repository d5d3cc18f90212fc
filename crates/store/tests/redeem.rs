//! `Store::get_code` and `Store::redeem_code`: a whole code exchange (jti, code, first refresh
//! token, reuse revocation) in one atomic write, with every outcome and under concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cimdgate_store::{
    CodeRedeem, CodeRedeemOutcome, CodeRedemption, GrantEntry, JtiRecord, RefreshRotation, Store,
};
use common::*;
use tokio::task::JoinSet;

const CLIENT: &str = "https://client.example/cimd.json";

fn jti(id: &str) -> JtiRecord {
    JtiRecord {
        client_id: CLIENT.into(),
        jti: id.into(),
        expires_at: future(),
    }
}

fn redeem(code: &str, jti_id: Option<&str>, rt: Option<&str>) -> CodeRedeem {
    CodeRedeem {
        code: hash(code),
        jti: jti_id.map(jti),
        refresh: rt.map(|t| (hash(t), refresh("fam", future()))),
        family_revoke_until: future() + HOUR,
        grant: None,
    }
}

/// Whether `id` is recorded (and live): recording it again is refused.
async fn jti_recorded(s: &dyn Store, id: &str) -> bool {
    !s.record_jti(CLIENT, id, future()).await.unwrap()
}

async fn get_code_reads_without_redeeming(s: Arc<dyn Store>) {
    let rec = code("fam", future());
    s.put_code(&hash("c"), &rec).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            s.get_code(&hash("c"), now()).await.unwrap(),
            Some((rec.clone(), false))
        );
    }
    assert_eq!(
        s.take_code(&hash("c"), now()).await.unwrap(),
        CodeRedemption::Redeemed(rec.clone())
    );
    assert_eq!(
        s.get_code(&hash("c"), now()).await.unwrap(),
        Some((rec, true))
    );
    assert_eq!(s.get_code(&hash("unknown"), now()).await.unwrap(), None);
    s.put_code(&hash("old"), &code("fam", past()))
        .await
        .unwrap();
    assert_eq!(s.get_code(&hash("old"), now()).await.unwrap(), None);
}

async fn redeemed_marks_the_code_records_the_jti_and_stores_the_refresh_token(s: Arc<dyn Store>) {
    let rec = code("fam", future());
    s.put_code(&hash("c"), &rec).await.unwrap();
    assert_eq!(
        s.redeem_code(&redeem("c", Some("j1"), Some("rt")), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::Redeemed(rec.clone())
    );
    assert_eq!(
        s.get_code(&hash("c"), now()).await.unwrap(),
        Some((rec, true))
    );
    assert_eq!(
        s.get_refresh(&hash("rt"), now()).await.unwrap(),
        Some(refresh("fam", future()))
    );
    assert!(jti_recorded(&*s, "j1").await);
    assert!(!s.is_family_revoked("fam", now()).await.unwrap());
}

async fn redeemed_without_jti_or_refresh_token(s: Arc<dyn Store>) {
    let rec = code("fam", future());
    s.put_code(&hash("c"), &rec).await.unwrap();
    assert_eq!(
        s.redeem_code(&redeem("c", None, None), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::Redeemed(rec)
    );
    assert_eq!(
        s.take_code(&hash("c"), now()).await.unwrap(),
        CodeRedemption::AlreadyUsed(code("fam", future()))
    );
}

async fn replayed_jti_changes_nothing_and_leaves_the_code_unused(s: Arc<dyn Store>) {
    let rec = code("fam", future());
    s.put_code(&hash("c"), &rec).await.unwrap();
    assert!(s.record_jti(CLIENT, "j1", future()).await.unwrap());
    assert_eq!(
        s.redeem_code(&redeem("c", Some("j1"), Some("rt")), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::JtiReplayed
    );
    assert_eq!(
        s.get_code(&hash("c"), now()).await.unwrap(),
        Some((rec.clone(), false)),
        "the code is not consumed"
    );
    assert_eq!(s.get_refresh(&hash("rt"), now()).await.unwrap(), None);

    // A replayed jti at an already used code does not revoke its family either.
    assert_eq!(
        s.redeem_code(&redeem("c", Some("j2"), None), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::Redeemed(rec)
    );
    assert_eq!(
        s.redeem_code(&redeem("c", Some("j2"), None), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::JtiReplayed
    );
    assert!(!s.is_family_revoked("fam", now()).await.unwrap());

    // Another client's identical jti is a different record.
    s.put_code(&hash("c2"), &code("fam2", future()))
        .await
        .unwrap();
    let mut other = redeem("c2", Some("j1"), None);
    other.jti = Some(JtiRecord {
        client_id: "https://other.example/cimd.json".into(),
        ..jti("j1")
    });
    assert!(matches!(
        s.redeem_code(&other, now()).await.unwrap(),
        CodeRedeemOutcome::Redeemed(_)
    ));
}

async fn an_expired_jti_record_does_not_block(s: Arc<dyn Store>) {
    s.put_code(&hash("c"), &code("fam", future()))
        .await
        .unwrap();
    assert!(s.record_jti(CLIENT, "j1", past()).await.unwrap());
    assert!(matches!(
        s.redeem_code(&redeem("c", Some("j1"), None), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::Redeemed(_)
    ));
}

async fn already_used_revokes_the_family_and_burns_the_jti(s: Arc<dyn Store>) {
    let rec = code("fam", future());
    s.put_code(&hash("c"), &rec).await.unwrap();
    assert!(matches!(
        s.redeem_code(&redeem("c", Some("j1"), Some("rt")), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::Redeemed(_)
    ));
    let until = future() + HOUR;
    assert_eq!(
        s.redeem_code(&redeem("c", Some("j2"), Some("rt2")), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::AlreadyUsed(rec)
    );
    assert!(jti_recorded(&*s, "j2").await, "the jti is used up");
    assert_eq!(
        s.get_refresh(&hash("rt2"), now()).await.unwrap(),
        None,
        "no refresh token stored for a reused code"
    );
    // The family (and the refresh token the first redemption stored) is revoked until `until`.
    assert!(s.is_family_revoked("fam", now()).await.unwrap());
    assert!(
        s.is_family_revoked("fam", until - Duration::from_secs(1))
            .await
            .unwrap()
    );
    assert!(!s.is_family_revoked("fam", until).await.unwrap());
    assert_eq!(s.get_refresh(&hash("rt"), now()).await.unwrap(), None);
}

async fn reuse_never_shortens_an_earlier_revocation(s: Arc<dyn Store>) {
    s.put_code(&hash("c"), &code("fam", future()))
        .await
        .unwrap();
    let long = future() + HOUR * 10;
    s.revoke_family("fam", long).await.unwrap();
    s.take_code(&hash("c"), now()).await.unwrap();
    assert!(matches!(
        s.redeem_code(&redeem("c", None, None), now())
            .await
            .unwrap(),
        CodeRedeemOutcome::AlreadyUsed(_)
    ));
    assert!(
        s.is_family_revoked("fam", long - Duration::from_secs(1))
            .await
            .unwrap()
    );
}

async fn unknown_or_expired_code_is_not_found_and_burns_the_jti(s: Arc<dyn Store>) {
    s.put_code(&hash("old"), &code("fam", past()))
        .await
        .unwrap();
    for (c, j) in [("unknown", "j1"), ("old", "j2")] {
        assert_eq!(
            s.redeem_code(&redeem(c, Some(j), Some("rt")), now())
                .await
                .unwrap(),
            CodeRedeemOutcome::NotFound,
            "{c}"
        );
        assert!(jti_recorded(&*s, j).await, "{c}: jti used up");
    }
    assert_eq!(s.get_refresh(&hash("rt"), now()).await.unwrap(), None);
    // Judged at `now`: a code live now but expired at a later `now` is not found then.
    s.put_code(&hash("soon"), &code("fam", now() + Duration::from_secs(5)))
        .await
        .unwrap();
    let later: SystemTime = now() + Duration::from_secs(5);
    assert_eq!(
        s.redeem_code(&redeem("soon", None, None), later)
            .await
            .unwrap(),
        CodeRedeemOutcome::NotFound
    );
}

async fn hundred_concurrent_redeem_code_of_one_code_redeem_once(s: Arc<dyn Store>) {
    let s = Arc::new(s);
    s.put_code(&hash("code"), &code("fam", future()))
        .await
        .unwrap();
    let mut set = JoinSet::new();
    for i in 0..100 {
        let s = Arc::clone(&s);
        set.spawn(async move {
            let req = redeem("code", Some(&format!("j{i}")), Some(&format!("rt{i}")));
            (i, s.redeem_code(&req, now()).await.unwrap())
        });
    }
    let mut winners = Vec::new();
    let mut used = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            (i, CodeRedeemOutcome::Redeemed(_)) => winners.push(i),
            (_, CodeRedeemOutcome::AlreadyUsed(_)) => used += 1,
            (i, other) => panic!("request {i}: {other:?}"),
        }
    }
    assert_eq!((winners.len(), used), (1, 99));
    // Only the winner's refresh token was stored (FamilyRevoked: present, in the family every
    // loser revoked); the losers' were not (NotFound).
    for i in 0..100 {
        let r = s
            .rotate_refresh(
                &hash(&format!("rt{i}")),
                &hash(&format!("probe{i}")),
                &refresh("fam", future()),
                now(),
            )
            .await
            .unwrap();
        let want = if winners.contains(&i) {
            RefreshRotation::FamilyRevoked
        } else {
            RefreshRotation::NotFound
        };
        assert_eq!(r, want, "request {i}");
    }
}

async fn hundred_concurrent_redeem_code_with_one_jti_accept_once(s: Arc<dyn Store>) {
    let s = Arc::new(s);
    for i in 0..100 {
        s.put_code(&hash(&format!("c{i}")), &code(&format!("f{i}"), future()))
            .await
            .unwrap();
    }
    let mut set = JoinSet::new();
    for i in 0..100 {
        let s = Arc::clone(&s);
        set.spawn(async move {
            s.redeem_code(&redeem(&format!("c{i}"), Some("same"), None), now())
                .await
                .unwrap()
        });
    }
    let (mut redeemed, mut replayed) = (0, 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            CodeRedeemOutcome::Redeemed(_) => redeemed += 1,
            CodeRedeemOutcome::JtiReplayed => replayed += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((redeemed, replayed), (1, 99));
}

async fn the_grant_is_indexed_by_a_successful_redemption_only(s: Arc<dyn Store>) {
    let with_grant = |c: &str, family: &str, jti_id: Option<&str>| {
        let mut req = redeem(c, jti_id, None);
        req.grant = Some(GrantEntry {
            grant: grant(family, None, None),
            expires_at: future(),
        });
        req
    };
    let families = |s: Arc<dyn Store>| async move {
        let mut f: Vec<String> = s
            .list_grants(CLIENT, now())
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.grant.family_id)
            .collect();
        f.sort();
        f
    };
    s.put_code(&hash("c"), &code("fam", future()))
        .await
        .unwrap();
    // Unknown code, replayed jti: nothing indexed.
    let out = s
        .redeem_code(&with_grant("nope", "fam-x", None), now())
        .await;
    assert_eq!(out.unwrap(), CodeRedeemOutcome::NotFound);
    assert!(s.record_jti(CLIENT, "used", future()).await.unwrap());
    let out = s
        .redeem_code(&with_grant("c", "fam-y", Some("used")), now())
        .await;
    assert_eq!(out.unwrap(), CodeRedeemOutcome::JtiReplayed);
    assert!(families(s.clone()).await.is_empty());
    // The redemption indexes its grant, under the client and under the user.
    let out = s.redeem_code(&with_grant("c", "fam", None), now()).await;
    assert!(matches!(out.unwrap(), CodeRedeemOutcome::Redeemed(_)));
    assert_eq!(families(s.clone()).await, ["fam"]);
    let mine = s.list_subject_grants(CLIENT, "alice", now()).await.unwrap();
    assert_eq!(mine.len(), 1);
    // A reuse indexes nothing more.
    let out = s.redeem_code(&with_grant("c", "fam-z", None), now()).await;
    assert!(matches!(out.unwrap(), CodeRedeemOutcome::AlreadyUsed(_)));
    assert_eq!(families(s).await, ["fam"]);
}

both_backends!(
    get_code_reads_without_redeeming,
    the_grant_is_indexed_by_a_successful_redemption_only,
    redeemed_marks_the_code_records_the_jti_and_stores_the_refresh_token,
    redeemed_without_jti_or_refresh_token,
    replayed_jti_changes_nothing_and_leaves_the_code_unused,
    an_expired_jti_record_does_not_block,
    already_used_revokes_the_family_and_burns_the_jti,
    reuse_never_shortens_an_earlier_revocation,
    unknown_or_expired_code_is_not_found_and_burns_the_jti,
    hundred_concurrent_redeem_code_of_one_code_redeem_once,
    hundred_concurrent_redeem_code_with_one_jti_accept_once,
);

//! The administrator's actions on a client: block, unblock, approve (with a scope ceiling),
//! deny, and revoke its grants (all, or one user's). Each is audited with the event names of
//! docs/architecture.md, *Audit and logging*.
//!
//! Effects, on every instance sharing the store:
//! - a block or denial refuses `/authorize` (error page, no redirect), `/token` and refresh
//!   (`invalid_client`) within [`super::DECISION_TTL`], and the gateway refuses the client's
//!   access tokens within its revocation cache time (5 s);
//! - a revocation revokes each grant's token family: refresh → `invalid_grant`, access tokens
//!   → 401 at the gateway within the same 5 s.

use std::time::SystemTime;

use cimdgate_store::{AdminDecision, ClientRecord, ClientStatus, Scopes, StoreError};

use super::inventory::{Governance, Observed};
use crate::audit;

/// Why an action could not be done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActionError {
    /// No such client in the inventory.
    #[error("no client {0:?} in the inventory")]
    NotFound(String),
    /// The request is malformed (a scope ceiling that is empty, a reason too long).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("store failure: {0}")]
    Store(#[from] StoreError),
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevokeOutcome {
    /// Grants (token families) revoked.
    pub grants_revoked: usize,
}

/// Longest administrator's reason kept.
pub const MAX_REASON_CHARS: usize = 500;

impl Governance {
    /// Block a client.
    pub async fn block(
        &self,
        client_id: &str,
        reason: Option<&str>,
        actor_ip: &str,
    ) -> Result<ClientRecord, ActionError> {
        let change = Change::status(ClientStatus::Blocked, reason);
        self.decide(client_id, change, "client_blocked", actor_ip)
            .await
    }

    /// Lift a block: the client is active again (an administrator's decision, so in approval
    /// mode it counts as approved).
    pub async fn unblock(
        &self,
        client_id: &str,
        actor_ip: &str,
    ) -> Result<ClientRecord, ActionError> {
        let change = Change::status(ClientStatus::Active, None);
        self.decide(client_id, change, "client_unblocked", actor_ip)
            .await
    }

    /// Approve a client, optionally with a scope ceiling (space-separated scopes it may be
    /// granted at most).
    pub async fn approve(
        &self,
        client_id: &str,
        scopes: Option<&str>,
        actor_ip: &str,
    ) -> Result<ClientRecord, ActionError> {
        let ceiling = match scopes {
            Some(s) => {
                let parsed = Scopes::parse(s);
                if parsed.is_empty() {
                    return Err(ActionError::Invalid(
                        "scopes is empty: name at least one scope, or leave it out for no ceiling"
                            .into(),
                    ));
                }
                Some(parsed.to_string())
            }
            None => None,
        };
        let change = Change {
            ceiling: Some(ceiling),
            ..Change::status(ClientStatus::Active, None)
        };
        self.decide(client_id, change, "client_approved", actor_ip)
            .await
    }

    /// Deny a client (approval mode).
    pub async fn deny(
        &self,
        client_id: &str,
        reason: Option<&str>,
        actor_ip: &str,
    ) -> Result<ClientRecord, ActionError> {
        let change = Change::status(ClientStatus::Denied, reason);
        self.decide(client_id, change, "client_denied", actor_ip)
            .await
    }

    /// End every grant of `client_id` (or only `subject`'s): each grant's token family is
    /// revoked until the grant would have ended, then dropped from the index, and the users'
    /// remembered consent for the client is forgotten.
    pub async fn revoke(
        &self,
        client_id: &str,
        subject: Option<&str>,
        actor_ip: &str,
    ) -> Result<RevokeOutcome, ActionError> {
        if self.store.get_client_record(client_id).await?.is_none() {
            return Err(ActionError::NotFound(client_id.to_owned()));
        }
        let now = SystemTime::now();
        let grants = self.store.list_grants(client_id, now).await?;
        let mut revoked = Vec::new();
        for g in grants
            .iter()
            .filter(|g| subject.is_none_or(|s| g.grant.subject == s))
        {
            self.store
                .revoke_family(&g.grant.family_id, g.expires_at)
                .await?;
            crate::telemetry::token_revoked();
            revoked.push(g.grant.family_id.clone());
        }
        self.store.remove_grants(client_id, &revoked).await?;
        // The users of the revoked grants are asked again: a remembered consent would let the
        // client get a new grant without them noticing.
        let mut subjects: Vec<&str> = grants
            .iter()
            .filter(|g| revoked.contains(&g.grant.family_id))
            .map(|g| g.grant.subject.as_str())
            .collect();
        subjects.sort_unstable();
        subjects.dedup();
        for sub in subjects {
            if let Some(mut consent) = self.store.get_consent(sub, client_id, now).await? {
                consent.expires_at = now;
                self.store.put_consent(&consent).await?;
            }
        }
        audit!(
            event = "grants_revoked",
            client_id,
            ip = actor_ip,
            by = "admin",
            subject = subject.unwrap_or(""),
            count = revoked.len()
        );
        Ok(RevokeOutcome {
            grants_revoked: revoked.len(),
        })
    }

    /// Set the administrator's decision and audit it as `event`.
    async fn decide(
        &self,
        client_id: &str,
        change: Change<'_>,
        event: &'static str,
        actor_ip: &str,
    ) -> Result<ClientRecord, ActionError> {
        if change
            .reason
            .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
        {
            return Err(ActionError::Invalid(format!(
                "reason is longer than {MAX_REASON_CHARS} characters"
            )));
        }
        let now = SystemTime::now();
        let rec = self
            .update(client_id, |cur| {
                let mut rec = cur?;
                rec.admin = AdminDecision {
                    status: change.status,
                    reason: change.reason.map(str::to_owned),
                    scope_ceiling: match &change.ceiling {
                        Some(c) => c.clone(),
                        None => rec.admin.scope_ceiling.clone(),
                    },
                    changed_at: Some(now),
                    by_admin: true,
                };
                Some((rec, Observed::Refreshed))
            })
            .await?;
        self.forget(client_id).await;
        let rec = rec.ok_or_else(|| ActionError::NotFound(client_id.to_owned()))?;
        audit!(
            event,
            client_id,
            ip = actor_ip,
            by = "admin",
            reason = change.reason.unwrap_or(""),
            scopes = rec.admin.scope_ceiling.as_deref().unwrap_or("")
        );
        Ok(rec)
    }
}

/// What an administrator's decision sets.
struct Change<'a> {
    status: ClientStatus,
    reason: Option<&'a str>,
    /// `Some(x)` replaces the scope ceiling with `x`; `None` keeps it.
    ceiling: Option<Option<String>>,
}

impl<'a> Change<'a> {
    fn status(status: ClientStatus, reason: Option<&'a str>) -> Self {
        Change {
            status,
            reason,
            ceiling: None,
        }
    }
}

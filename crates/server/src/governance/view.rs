//! The inventory as the admin API, the CLI and the console show it: stable field names
//! (documented in docs/architecture.md, *Governance*), times in RFC 3339 (UTC), the trust
//! policy's current verdict computed at read time.

use std::time::SystemTime;

use cimd::ClientIdUrl;
use cimd::policy::{DenyReason, TrustDecision, TrustPolicy};
use cimdgate_store::{ClientKind, ClientRecord, GrantEntry};
use serde::Serialize;

/// A time as RFC 3339 in UTC, to the second (`2026-12-04T06:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let t = ::time::OffsetDateTime::from(t).replace_nanosecond(0);
    match t {
        Ok(t) => t
            .format(&::time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The trust policy's verdict on a client now: `trusted`, `untrusted`, `blocked_by_domain`,
/// `denied_by_id` or `not_allowlisted` (DCR clients: `registered`).
pub fn verdict(policy: &TrustPolicy, rec: &ClientRecord) -> &'static str {
    if rec.kind == ClientKind::Dcr {
        return "registered";
    }
    let Ok(id) = ClientIdUrl::parse(&rec.client_id) else {
        return "invalid";
    };
    match policy.evaluate(&id) {
        TrustDecision::Allowed { trusted: true, .. } => "trusted",
        TrustDecision::Allowed { trusted: false, .. } => "untrusted",
        TrustDecision::Denied(DenyReason::BlockedDomain { .. }) => "blocked_by_domain",
        TrustDecision::Denied(DenyReason::DeniedClientId) => "denied_by_id",
        TrustDecision::Denied(DenyReason::NotAllowlisted { .. }) => "not_allowlisted",
        TrustDecision::Denied(_) => "blocked",
    }
}

/// One row of `clients list`.
#[derive(Debug, Serialize)]
pub struct ClientSummary {
    /// The exact client_id.
    pub client_id: String,
    /// `cimd` or `dcr`.
    pub kind: &'static str,
    /// The host owning the client_id.
    pub host: String,
    /// Self-declared name (untrusted text).
    pub client_name: Option<String>,
    /// `active`, `pending`, `blocked`, `denied`.
    pub status: &'static str,
    /// The trust policy's verdict now.
    pub verdict: &'static str,
    /// First seen.
    pub first_seen: String,
    /// Last seen (coalesced: may lag by up to 10 s).
    pub last_seen: String,
    /// Distinct users who consented.
    pub user_count: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Document changes recorded.
    pub changes: usize,
}

/// One grant in `clients show`.
#[derive(Debug, Serialize)]
pub struct GrantView {
    /// The token family.
    pub family_id: String,
    /// The user.
    pub subject: String,
    /// Granted scopes.
    pub scope: String,
    /// The resource (audience).
    pub resource: String,
    /// When the user approved it (absent for grants from before this was recorded).
    pub created_at: Option<String>,
    /// When it ends at the latest.
    pub expires_at: String,
}

/// `clients show`: everything the inventory knows.
#[derive(Debug, Serialize)]
pub struct ClientDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: ClientSummary,
    /// `client_uri`.
    pub client_uri: Option<String>,
    /// `logo_uri`.
    pub logo_uri: Option<String>,
    /// `contacts`.
    pub contacts: Vec<String>,
    /// `redirect_uris`.
    pub redirect_uris: Vec<String>,
    /// `token_endpoint_auth_method`.
    pub token_endpoint_auth_method: Option<String>,
    /// `jwks_uri`.
    pub jwks_uri: Option<String>,
    /// Inline keys (`kid sha256:…`).
    pub keys: Vec<String>,
    /// `scope` the document declares.
    pub scope: Option<String>,
    /// SHA-256 of the validated document.
    pub document_digest: Option<String>,
    /// The administrator's reason for the status.
    pub status_reason: Option<String>,
    /// Approval scope ceiling.
    pub scope_ceiling: Option<String>,
    /// When the status last changed.
    pub status_changed_at: Option<String>,
    /// Last fetch of the document.
    pub last_fetch: Option<FetchView>,
    /// Document changes, oldest first.
    pub history: Vec<ChangeView>,
    /// Consenting users (first 500).
    pub users: Vec<String>,
    /// Live grants.
    pub grants: Vec<GrantView>,
}

/// The last fetch.
#[derive(Debug, Serialize)]
pub struct FetchView {
    /// When.
    pub at: String,
    /// Whether a valid document was obtained.
    pub ok: bool,
    /// Why not.
    pub reason: Option<String>,
}

/// One document change.
#[derive(Debug, Serialize)]
pub struct ChangeView {
    /// When.
    pub at: String,
    /// `{field, old, new}` (values as JSON text).
    pub changes: Vec<cimdgate_store::FieldChange>,
}

impl ClientSummary {
    /// The summary of `rec` under `policy`.
    pub fn of(rec: &ClientRecord, policy: &TrustPolicy) -> Self {
        ClientSummary {
            client_id: rec.client_id.clone(),
            kind: match rec.kind {
                ClientKind::Cimd => "cimd",
                ClientKind::Dcr => "dcr",
            },
            host: rec.host.clone(),
            client_name: rec.snapshot.client_name.clone(),
            status: rec.admin.status.as_str(),
            verdict: verdict(policy, rec),
            first_seen: rfc3339(rec.first_seen),
            last_seen: rfc3339(rec.last_seen),
            user_count: rec.user_count,
            tokens_issued: rec.tokens_issued,
            changes: rec.history.len(),
        }
    }
}

impl ClientDetail {
    /// The detail of `rec` with its live `grants`.
    pub fn of(rec: &ClientRecord, policy: &TrustPolicy, grants: &[GrantEntry]) -> Self {
        let s = &rec.snapshot;
        ClientDetail {
            summary: ClientSummary::of(rec, policy),
            client_uri: s.client_uri.clone(),
            logo_uri: s.logo_uri.clone(),
            contacts: s.contacts.clone(),
            redirect_uris: s.redirect_uris.clone(),
            token_endpoint_auth_method: s.token_endpoint_auth_method.clone(),
            jwks_uri: s.jwks_uri.clone(),
            keys: s.keys.clone(),
            scope: s.scope.clone(),
            document_digest: s.digest.clone(),
            status_reason: rec.admin.reason.clone(),
            scope_ceiling: rec.admin.scope_ceiling.clone(),
            status_changed_at: rec.admin.changed_at.map(rfc3339),
            last_fetch: rec.last_fetch.as_ref().map(|f| FetchView {
                at: rfc3339(f.at),
                ok: f.ok,
                reason: f.reason.clone(),
            }),
            history: rec
                .history
                .iter()
                .map(|h| ChangeView {
                    at: rfc3339(h.at),
                    changes: h.changes.clone(),
                })
                .collect(),
            users: rec.users.clone(),
            grants: grants
                .iter()
                .map(|g| GrantView {
                    family_id: g.grant.family_id.clone(),
                    subject: g.grant.subject.clone(),
                    scope: g.grant.scope.to_string(),
                    resource: g.grant.resource.clone(),
                    created_at: g.grant.created_at.map(rfc3339),
                    expires_at: rfc3339(g.expires_at),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_are_rfc3339_utc_to_the_second() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_364_000_123);
        assert_eq!(rfc3339(t), "2026-12-04T06:00:00Z");
    }
}

//! The client inventory (docs/architecture.md, *Governance*): one [`ClientRecord`] per client_id
//! this installation has seen (CIMD and DCR), with the administrator's decision about it
//! ([`ClientStatus`]), the document as last fetched, the history of its changes, the users who
//! consented and the live grants ([`GrantEntry`]).
//!
//! Records are updated by compare-and-set on [`ClientRecord::version`]
//! ([`crate::Store::cas_client_record`]) so that several instances sharing one Redis never lose
//! each other's updates; the read-modify-write logic lives in the server, the store only
//! guarantees the atomic compare.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::{ClientKind, Grant, unix_secs, unix_secs_opt};

/// At most this many document changes are kept per client (oldest dropped first).
pub const MAX_HISTORY: usize = 50;
/// At most this many distinct consenting users are listed per client (the count keeps going).
pub const MAX_LISTED_USERS: usize = 500;

/// The administrator's decision about a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    /// May be used (trusted, approved, or admitted by an `open` policy).
    #[default]
    Active,
    /// Approval mode: waiting for an administrator.
    Pending,
    /// Blocked by an administrator: no authorization, no tokens, issued tokens refused.
    Blocked,
    /// Approval refused by an administrator (approval mode).
    Denied,
}

impl ClientStatus {
    /// Every status, in display order.
    pub const ALL: [ClientStatus; 4] = [
        ClientStatus::Active,
        ClientStatus::Pending,
        ClientStatus::Blocked,
        ClientStatus::Denied,
    ];

    /// The stable lower-case name (`active`, `pending`, `blocked`, `denied`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Active => "active",
            ClientStatus::Pending => "pending",
            ClientStatus::Blocked => "blocked",
            ClientStatus::Denied => "denied",
        }
    }

    /// Parse a stable name.
    pub fn parse(s: &str) -> Option<ClientStatus> {
        ClientStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the client may obtain authorizations and tokens.
    pub fn admits(self) -> bool {
        self == ClientStatus::Active
    }
}

/// What the client's document (or DCR registration) says, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientSnapshot {
    /// `client_name`.
    #[serde(default)]
    pub client_name: Option<String>,
    /// `client_uri`.
    #[serde(default)]
    pub client_uri: Option<String>,
    /// `logo_uri`.
    #[serde(default)]
    pub logo_uri: Option<String>,
    /// `contacts`.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// `redirect_uris`, as registered.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `token_endpoint_auth_method` in effect.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// `jwks_uri`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Key ids (or thumbprints) of an inline `jwks`, sorted.
    #[serde(default)]
    pub keys: Vec<String>,
    /// `scope`.
    #[serde(default)]
    pub scope: Option<String>,
    /// SHA-256 (hex) of the validated document; `None` for DCR clients.
    #[serde(default)]
    pub digest: Option<String>,
}

/// One field that changed between two documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The document member (`redirect_uris`, `token_endpoint_auth_method`, `jwks_uri`, `jwks`,
    /// `scope`, `client_name`, …).
    pub field: String,
    /// Its value before (JSON text; `null` when absent).
    pub old: String,
    /// Its value after.
    pub new: String,
}

/// A change of the client's document, as seen when it was refetched (draft §8.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentChange {
    /// When the changed document was first seen.
    #[serde(with = "unix_secs")]
    pub at: SystemTime,
    /// What changed.
    pub changes: Vec<FieldChange>,
}

/// The outcome of the last fetch of the client's document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchSummary {
    /// When.
    #[serde(with = "unix_secs")]
    pub at: SystemTime,
    /// Whether a valid document was obtained.
    pub ok: bool,
    /// Why not (a short, generic reason; never response bodies or internal addresses).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The administrator's decision and its context.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AdminDecision {
    /// The status.
    #[serde(default)]
    pub status: ClientStatus,
    /// Why (as given by the administrator, or the automatic reason such as "document changed").
    #[serde(default)]
    pub reason: Option<String>,
    /// Approval mode: scopes the client may be granted at most (space-separated); `None`: no
    /// ceiling beyond the server's own.
    #[serde(default)]
    pub scope_ceiling: Option<String>,
    /// When the status last changed.
    #[serde(default, with = "unix_secs_opt")]
    pub changed_at: Option<SystemTime>,
    /// Whether an administrator decided (as opposed to the default for the trust policy).
    #[serde(default)]
    pub by_admin: bool,
}

/// One client in the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The exact client_id.
    pub client_id: String,
    /// CIMD or DCR.
    #[serde(default = "cimd_kind")]
    pub kind: ClientKind,
    /// The host that owns the client_id (the URL's host; for DCR clients the host of the first
    /// redirect URI, as a hint only).
    #[serde(default)]
    pub host: String,
    /// The document (registration) as last seen.
    #[serde(flatten)]
    pub snapshot: ClientSnapshot,
    /// The administrator's decision.
    #[serde(default)]
    pub admin: AdminDecision,
    /// First seen.
    #[serde(with = "unix_secs")]
    pub first_seen: SystemTime,
    /// Last seen (coalesced: may lag by the server's flush interval).
    #[serde(with = "unix_secs")]
    pub last_seen: SystemTime,
    /// The last fetch of its document.
    #[serde(default)]
    pub last_fetch: Option<FetchSummary>,
    /// Document changes, oldest first, at most [`MAX_HISTORY`].
    #[serde(default)]
    pub history: Vec<DocumentChange>,
    /// Distinct users who consented (at most [`MAX_LISTED_USERS`] listed).
    #[serde(default)]
    pub users: Vec<String>,
    /// How many distinct users consented (also those not listed).
    #[serde(default)]
    pub user_count: u64,
    /// Access tokens issued to it (code exchanges and refreshes).
    #[serde(default)]
    pub tokens_issued: u64,
    /// Version for compare-and-set; incremented by every write.
    #[serde(default)]
    pub version: u64,
}

fn cimd_kind() -> ClientKind {
    ClientKind::Cimd
}

impl ClientRecord {
    /// A record for a client seen for the first time at `now`.
    pub fn new(client_id: &str, kind: ClientKind, host: &str, now: SystemTime) -> Self {
        ClientRecord {
            client_id: client_id.to_owned(),
            kind,
            host: host.to_owned(),
            snapshot: ClientSnapshot::default(),
            admin: AdminDecision::default(),
            first_seen: now,
            last_seen: now,
            last_fetch: None,
            history: Vec::new(),
            users: Vec::new(),
            user_count: 0,
            tokens_issued: 0,
            version: 0,
        }
    }

    /// Add a user who consented (no-op when already listed).
    pub fn add_user(&mut self, subject: &str) -> bool {
        if self.users.iter().any(|u| u == subject) {
            return false;
        }
        self.user_count += 1;
        if self.users.len() < MAX_LISTED_USERS {
            self.users.push(subject.to_owned());
        }
        true
    }

    /// Append a document change, keeping at most [`MAX_HISTORY`].
    pub fn push_change(&mut self, change: DocumentChange) {
        self.history.push(change);
        if self.history.len() > MAX_HISTORY {
            let extra = self.history.len() - MAX_HISTORY;
            self.history.drain(..extra);
        }
    }
}

/// One live grant (refresh-token family) of a client, indexed by client for listing and
/// revocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantEntry {
    /// The grant as approved.
    pub grant: Grant,
    /// When the grant ends at the latest (its absolute lifetime).
    #[serde(with = "unix_secs")]
    pub expires_at: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_the_previous_inventory_layout_reads_as_an_active_cimd_client() {
        let old = r#"{"client_id":"https://a.example/c","client_name":"A","first_seen":10,"last_seen":20}"#;
        let rec: ClientRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.kind, ClientKind::Cimd);
        assert_eq!(rec.admin.status, ClientStatus::Active);
        assert_eq!(rec.snapshot.client_name.as_deref(), Some("A"));
        assert_eq!(rec.version, 0);
    }

    #[test]
    fn history_keeps_the_newest_changes() {
        let mut rec = ClientRecord::new("x", ClientKind::Dcr, "h", SystemTime::UNIX_EPOCH);
        for i in 0..(MAX_HISTORY + 5) {
            rec.push_change(DocumentChange {
                at: SystemTime::UNIX_EPOCH,
                changes: vec![FieldChange {
                    field: i.to_string(),
                    old: String::new(),
                    new: String::new(),
                }],
            });
        }
        assert_eq!(rec.history.len(), MAX_HISTORY);
        assert_eq!(rec.history[0].changes[0].field, "5");
    }

    #[test]
    fn users_are_counted_once_and_listed_up_to_the_cap() {
        let mut rec = ClientRecord::new("x", ClientKind::Dcr, "h", SystemTime::UNIX_EPOCH);
        assert!(rec.add_user("alice"));
        assert!(!rec.add_user("alice"));
        for i in 0..MAX_LISTED_USERS + 3 {
            rec.add_user(&format!("u{i}"));
        }
        assert_eq!(rec.users.len(), MAX_LISTED_USERS);
        assert_eq!(rec.user_count as usize, MAX_LISTED_USERS + 4);
    }

    #[test]
    fn status_names_round_trip() {
        for st in ClientStatus::ALL {
            assert_eq!(ClientStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(ClientStatus::parse("Active"), None);
    }
}

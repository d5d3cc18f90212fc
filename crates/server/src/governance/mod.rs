//! Governance of URL-identified clients (docs/architecture.md, *Governance*): the inventory of
//! every client seen, the administrator's decisions about them (approve, deny, block) and what
//! those decisions mean for a request ([`Admission`]). Domain layer: the admin API, the CLI
//! and the console call [`Governance`]; the endpoints ask it whether a client is admitted.
//!
//! - [`Governance::observe_cimd`] / [`Governance::observe_dcr`] — called for every resolved
//!   client: the first sight creates the record (`pending` in approval mode); a document whose
//!   digest differs from the recorded one adds a history entry (draft §8.4) and audits
//!   `client_document_changed`. Unchanged documents cost no store access: `last_seen`, tokens
//!   issued and the last fetch are coalesced in memory and written every
//!   [`FLUSH_INTERVAL`] ([`Governance::flush`]).
//! - [`Governance::decision`] — the administrator's decision, read through a cache of
//!   [`DECISION_TTL`]: a block reaches every instance sharing the store within that time.
//! - [`admission`] — decision × trust policy → admitted, pending, blocked or denied.
//! - `actions` — block, unblock, approve, deny, revoke.

mod actions;
mod inventory;
pub mod snapshot;
pub mod view;

pub use actions::{ActionError, RevokeOutcome};
pub use inventory::{DECISION_TTL, FLUSH_INTERVAL, Governance};

use cimdgate_store::{AdminDecision, ClientStatus};

/// What a client may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Proceed.
    Admitted,
    /// Approval mode: an administrator has not approved it yet.
    Pending,
    /// Blocked by an administrator.
    Blocked {
        /// The administrator's reason, if given.
        reason: Option<String>,
    },
    /// Refused by an administrator (approval mode).
    Denied {
        /// The administrator's reason, if given.
        reason: Option<String>,
    },
}

/// The admission of a client with `decision` (`None`: not in the inventory yet) when the trust
/// policy `requires_approval` for it. A block or denial always wins; in approval mode an
/// untrusted client needs an administrator's approval (an `active` status that was not set by
/// an administrator — e.g. recorded before approval mode was switched on — does not count).
pub fn admission(decision: Option<&AdminDecision>, requires_approval: bool) -> Admission {
    match decision {
        Some(d) if d.status == ClientStatus::Blocked => Admission::Blocked {
            reason: d.reason.clone(),
        },
        Some(d) if d.status == ClientStatus::Denied => Admission::Denied {
            reason: d.reason.clone(),
        },
        Some(d) if requires_approval && !(d.status == ClientStatus::Active && d.by_admin) => {
            Admission::Pending
        }
        None if requires_approval => Admission::Pending,
        _ => Admission::Admitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(status: ClientStatus, by_admin: bool) -> AdminDecision {
        AdminDecision {
            status,
            by_admin,
            ..AdminDecision::default()
        }
    }

    #[test]
    fn admission_by_decision_and_policy() {
        use ClientStatus::*;
        let cases: [(Option<AdminDecision>, bool, &str); 12] = [
            (None, false, "admitted"),
            (None, true, "pending"),
            (Some(decided(Active, false)), false, "admitted"),
            (Some(decided(Active, false)), true, "pending"),
            (Some(decided(Active, true)), true, "admitted"),
            (Some(decided(Pending, false)), true, "pending"),
            (Some(decided(Pending, false)), false, "admitted"),
            (Some(decided(Blocked, true)), false, "blocked"),
            (Some(decided(Blocked, true)), true, "blocked"),
            (Some(decided(Denied, true)), true, "denied"),
            (Some(decided(Denied, true)), false, "denied"),
            (Some(decided(Blocked, false)), false, "blocked"),
        ];
        for (decision, requires_approval, want) in cases {
            let got = match admission(decision.as_ref(), requires_approval) {
                Admission::Admitted => "admitted",
                Admission::Pending => "pending",
                Admission::Blocked { .. } => "blocked",
                Admission::Denied { .. } => "denied",
            };
            assert_eq!(got, want, "{decision:?} approval={requires_approval}");
        }
    }
}

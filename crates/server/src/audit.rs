//! Audit events (docs/architecture.md, *Audit and logging*): one `tracing` event per security-relevant fact, target `audit`, with
//! structured fields. Never pass tokens, codes, assertions, secrets or whole documents here.

/// Emit an audit event: `audit!(event = "token_issued", client_id = %id, ...)`.
#[macro_export]
macro_rules! audit {
    ($($field:tt)*) => {
        ::tracing::info!(target: "audit", $($field)*)
    };
}

pub mod sink;

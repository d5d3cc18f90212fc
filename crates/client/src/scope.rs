//! Which scope to ask for (MCP 2026-07-28 "Authorization"):
//!
//! - the base scope: the caller's, else the 401 challenge's `scope`, else every scope the
//!   Protected Resource Metadata lists ("Scope Selection Strategy", SEP-835 —
//!   [`Discovery::default_scope`]);
//! - on step-up after a 403 `insufficient_scope`, the **union** of the scope previously
//!   requested or granted and the challenge's ([`step_up_scope`], SEP-2350: "Scope
//!   accumulation across operations is a client-side responsibility");
//! - `offline_access` only when the authorization server's metadata lists it in
//!   `scopes_supported`, and never otherwise ([`with_offline_access`], SEP-2207; the
//!   conformance scenario `auth/offline-access-not-supported` fails a client that sends it).
//!
//! Scope values are space-separated case-sensitive tokens (RFC 6749 §3.3); order is kept,
//! repeats dropped.

use crate::discovery::{AuthorizationServerMetadata, Discovery};

/// The OpenID Connect scope that asks for a refresh token (OIDC Core §11).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The distinct tokens of the scope strings, in first-seen order.
fn tokens<'a>(scopes: impl IntoIterator<Item = Option<&'a str>>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for t in scopes
        .into_iter()
        .flatten()
        .flat_map(str::split_ascii_whitespace)
    {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

fn join(tokens: Vec<&str>) -> Option<String> {
    (!tokens.is_empty()).then(|| tokens.join(" "))
}

/// SEP-2350 step-up: the union of the `previous` scope (requested or granted before) and the
/// `challenge`'s, previous tokens first. `None` when both are empty.
pub fn step_up_scope(previous: Option<&str>, challenge: Option<&str>) -> Option<String> {
    join(tokens([previous, challenge]))
}

/// SEP-2207: `scope` without any `offline_access`, then with it appended when the
/// authorization server lists it in `scopes_supported`. An absent scope stays absent (asking
/// for `offline_access` alone would replace the server's default scope).
pub fn with_offline_access(
    scope: Option<&str>,
    metadata: &AuthorizationServerMetadata,
) -> Option<String> {
    let mut t = tokens([scope]);
    t.retain(|s| *s != OFFLINE_ACCESS);
    if !t.is_empty()
        && metadata
            .scopes_supported
            .iter()
            .any(|s| s == OFFLINE_ACCESS)
    {
        t.push(OFFLINE_ACCESS);
    }
    join(t)
}

/// The scope of a login: `explicit` (the caller's `--scope`, e.g. a 403 challenge's) else the
/// discovery default; united with `previous` (the stored login's scope for the same resource,
/// SEP-2350); then the `offline_access` rule.
pub fn login_scope(
    discovery: &Discovery,
    explicit: Option<&str>,
    previous: Option<&str>,
) -> Option<String> {
    let base = explicit
        .map(str::to_owned)
        .or_else(|| discovery.default_scope());
    let united = step_up_scope(previous, base.as_deref());
    with_offline_access(united.as_deref(), &discovery.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::BearerChallenge;
    use crate::discovery::ProtectedResourceMetadata;
    use url::Url;

    fn metadata(scopes: &[&str]) -> AuthorizationServerMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "http://i", "authorization_endpoint": "http://i/a",
            "token_endpoint": "http://i/t", "scopes_supported": scopes,
        }))
        .unwrap()
    }

    #[test]
    fn step_up_requests_the_union_of_previous_and_challenge_table() {
        let cases: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (
                Some("mcp:basic"),
                Some("mcp:write"),
                Some("mcp:basic mcp:write"),
            ),
            (Some("a b"), Some("b c"), Some("a b c")),
            (Some("a  b"), Some("  a\tb "), Some("a b")),
            (None, Some("mcp:write"), Some("mcp:write")),
            (Some("mcp:basic"), None, Some("mcp:basic")),
            (None, None, None),
            (Some(""), Some(" "), None),
            // Case-sensitive (RFC 6749 §3.3): two different scopes.
            (Some("Read"), Some("read"), Some("Read read")),
        ];
        for (prev, challenge, want) in cases {
            assert_eq!(
                step_up_scope(*prev, *challenge).as_deref(),
                *want,
                "{prev:?} + {challenge:?}"
            );
        }
    }

    #[test]
    fn offline_access_only_when_the_as_lists_it_table() {
        let listed = metadata(&["mcp:basic", "offline_access"]);
        let unlisted = metadata(&["mcp:basic", "mcp:read"]);
        let none = metadata(&[]);
        let cases: &[(&AuthorizationServerMetadata, Option<&str>, Option<&str>)] = &[
            (&listed, Some("mcp:basic"), Some("mcp:basic offline_access")),
            (
                &listed,
                Some("offline_access mcp:basic"),
                Some("mcp:basic offline_access"),
            ),
            (&listed, None, None),
            (&unlisted, Some("mcp:basic"), Some("mcp:basic")),
            // Never sent when not listed, even if asked for or previously granted.
            (
                &unlisted,
                Some("mcp:basic offline_access"),
                Some("mcp:basic"),
            ),
            (&none, Some("offline_access"), None),
            (&unlisted, Some("Offline_Access"), Some("Offline_Access")),
        ];
        for (m, scope, want) in cases {
            assert_eq!(
                with_offline_access(*scope, m).as_deref(),
                *want,
                "{scope:?} with {:?}",
                m.scopes_supported
            );
        }
    }

    fn discovery(challenge: Option<&str>, prm: &[&str], as_scopes: &[&str]) -> Discovery {
        let u = Url::parse("http://h/mcp").unwrap();
        Discovery {
            mcp_url: u.clone(),
            challenge: challenge.map(|s| BearerChallenge {
                scope: Some(s.into()),
                ..Default::default()
            }),
            prm_url: u.clone(),
            prm: ProtectedResourceMetadata {
                resource: u.to_string(),
                authorization_servers: vec!["http://i".into()],
                scopes_supported: prm.iter().map(|s| s.to_string()).collect(),
            },
            as_metadata_url: u,
            metadata: metadata(as_scopes),
        }
    }

    #[test]
    fn login_scope_unites_the_stored_scope_with_the_challenge() {
        // SEP-2350 (conformance auth/scope-step-up): the second request has both.
        let d = discovery(Some("mcp:basic"), &["mcp:basic", "mcp:write"], &[]);
        assert_eq!(
            login_scope(&d, Some("mcp:write"), Some("mcp:basic")).as_deref(),
            Some("mcp:basic mcp:write")
        );
        // First login: the challenge's scope is authoritative.
        assert_eq!(login_scope(&d, None, None).as_deref(), Some("mcp:basic"));
        // Stored login, no new challenge scope: previous plus the default.
        assert_eq!(
            login_scope(&d, None, Some("mcp:write")).as_deref(),
            Some("mcp:write mcp:basic")
        );
        // offline_access follows the AS metadata, not the PRM.
        let d = discovery(None, &["mcp:basic"], &["mcp:basic", "offline_access"]);
        assert_eq!(
            login_scope(&d, None, None).as_deref(),
            Some("mcp:basic offline_access")
        );
        let d = discovery(None, &["mcp:basic"], &["mcp:basic", "mcp:read"]);
        assert_eq!(
            login_scope(&d, None, Some("mcp:basic offline_access")).as_deref(),
            Some("mcp:basic")
        );
    }
}

//! Which scopes a grant gets (RFC 6749 §3.3) and how a refresh may narrow them (§6).
//!
//! - [`grant`] at `/authorize`: requested scopes must be offered by the resource **and**, when
//!   the client's registration (CIMD document or DCR record) declares `scope`, be among those —
//!   the document's `scope` never widens the resource's (FastMCP let it bypass the allow-list).
//!   Without a `scope` parameter the grant is the resource's scopes narrowed to the declared
//!   ones;
//! - [`within_ceiling`] at `/authorize`, after [`grant`]: in approval mode an administrator may
//!   approve a client with a scope ceiling; an explicit request beyond it is refused, a default
//!   grant is narrowed to it;
//! - [`narrow`] at refresh: a requested `scope` must be within the grant's; the access token
//!   gets it, the refresh token keeps the grant's.
//!
//! `offline_access` (MCP 2026-07-28, "Refresh Tokens"; OIDC Core §11) is the authorization
//! server's own scope, not a resource's: it is accepted in any request whatever the resource
//! offers or the client declares, kept in the grant (so its refresh tokens keep working), and
//! at refresh a client that appends it to `scope` is not refused for it (real clients send
//! `" offline_access"` on every request).

use cimdgate_store::Scopes;

use crate::config::OFFLINE_ACCESS;
use crate::error::OAuthError;

/// `s` without `offline_access`, and whether it had it.
fn split_offline(s: Scopes) -> (Scopes, bool) {
    let offline = s.contains(OFFLINE_ACCESS);
    if !offline {
        return (s, false);
    }
    (
        Scopes::from_tokens(s.iter().filter(|t| *t != OFFLINE_ACCESS)),
        true,
    )
}

/// `s` plus `offline_access` when `offline`.
fn with_offline(s: Scopes, offline: bool) -> Scopes {
    if !offline {
        return s;
    }
    Scopes::from_tokens(s.iter().chain([OFFLINE_ACCESS]))
}

/// The scopes granted for an authorization request.
pub fn grant(
    requested: Option<&str>,
    offered: &Scopes,
    declared: Option<&Scopes>,
) -> Result<Scopes, OAuthError> {
    let (wanted, offline) = split_offline(Scopes::parse(requested.unwrap_or("")));
    grant_resource_scopes(wanted, offered, declared).map(|s| with_offline(s, offline))
}

fn grant_resource_scopes(
    wanted: Scopes,
    offered: &Scopes,
    declared: Option<&Scopes>,
) -> Result<Scopes, OAuthError> {
    if wanted.is_empty() {
        let granted = match declared {
            Some(d) => offered.intersection(d),
            None => offered.clone(),
        };
        if granted.is_empty() && !offered.is_empty() {
            return Err(OAuthError::invalid_scope(format!(
                "the client declares scopes {:?}, none of which this resource offers ({offered})",
                declared.map(ToString::to_string).unwrap_or_default(),
            )));
        }
        return Ok(granted);
    }
    if let Some(s) = wanted.first_missing_from(offered) {
        return Err(OAuthError::invalid_scope(format!(
            "scope {s:?} is not offered by this resource (offered: {offered})"
        )));
    }
    if let Some(d) = declared
        && let Some(s) = wanted.first_missing_from(d)
    {
        return Err(OAuthError::invalid_scope(format!(
            "scope {s:?} is not declared in the client's registration (declared: {d})"
        )));
    }
    Ok(wanted)
}

/// Apply an administrator's scope ceiling to the scopes [`grant`] chose. `explicit`: the
/// request named its scopes (then any scope beyond the ceiling refuses it, rather than being
/// silently dropped); otherwise the default grant is narrowed to the ceiling.
pub fn within_ceiling(
    granted: Scopes,
    explicit: bool,
    ceiling: Option<&Scopes>,
) -> Result<Scopes, OAuthError> {
    let Some(ceiling) = ceiling else {
        return Ok(granted);
    };
    let (granted, offline) = split_offline(granted);
    if explicit && let Some(s) = granted.first_missing_from(ceiling) {
        return Err(OAuthError::invalid_scope(format!(
            "scope {s:?} is beyond what an administrator approved for this client (approved: \
             {ceiling})"
        )));
    }
    let narrowed = granted.intersection(ceiling);
    if narrowed.is_empty() && !granted.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "none of the scopes {granted} is approved for this client (approved: {ceiling})"
        )));
    }
    Ok(with_offline(narrowed, offline))
}

/// Scope accumulation on step-up (MCP 2026-07-28, SEP-2350): a re-authorization of the same
/// user, client and resource keeps what the user already granted — `prior`, the scopes of
/// the user's live grants — as far as the client may still hold them (`may_keep`). A client
/// that asks only for the scope a 403 named thus does not lose the ones it had.
pub fn accumulate<'a>(
    requested: &Scopes,
    prior: impl IntoIterator<Item = &'a Scopes>,
    may_keep: &Scopes,
) -> Scopes {
    let kept: Vec<&str> = prior
        .into_iter()
        .flat_map(|s| s.iter())
        .filter(|s| may_keep.contains(s))
        .collect();
    Scopes::from_tokens(requested.iter().chain(kept))
}

/// The scopes of a refreshed access token.
pub fn narrow(granted: &Scopes, requested: Option<&str>) -> Result<Scopes, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.clone());
    };
    let mut wanted = Scopes::parse(requested);
    if !granted.contains(OFFLINE_ACCESS) {
        let (rest, offline) = split_offline(wanted);
        if offline && rest.is_empty() {
            // Only offline_access: no narrowing asked for.
            return Ok(granted.clone());
        }
        wanted = rest;
    }
    match wanted.first_missing_from(granted) {
        Some(s) => Err(OAuthError::invalid_scope(format!(
            "scope {s:?} was not granted; a refresh may only narrow the scope (granted: {:?})",
            granted.to_string()
        ))),
        None => Ok(wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    type ScopeCase<'a> = (Option<&'a str>, Option<&'a str>, Result<&'a str, ErrorCode>);

    #[test]
    fn scope_must_be_within_resource_and_document_scope() {
        let offered = Scopes::parse("read write");
        let cases: [ScopeCase; 15] = [
            (Some("read"), None, Ok("read")),
            // offline_access: the AS's own scope, beyond what the resource offers or the
            // document declares; real clients send it with a leading space.
            (
                Some(" offline_access"),
                None,
                Ok("read write offline_access"),
            ),
            (Some("read offline_access"), None, Ok("read offline_access")),
            (
                Some("offline_access  read"),
                Some("read"),
                Ok("read offline_access"),
            ),
            (Some("OFFLINE_ACCESS"), None, Err(ErrorCode::InvalidScope)),
            (
                Some("admin offline_access"),
                None,
                Err(ErrorCode::InvalidScope),
            ),
            (Some("read write read"), None, Ok("read write")),
            (Some("  read\twrite "), None, Ok("read write")),
            (None, None, Ok("read write")),
            (Some(""), None, Ok("read write")),
            (None, Some("read"), Ok("read")),
            (Some("admin"), None, Err(ErrorCode::InvalidScope)),
            // FastMCP bug: the document's scope must not bypass the resource's allow-list.
            (
                Some("admin"),
                Some("admin read"),
                Err(ErrorCode::InvalidScope),
            ),
            (Some("write"), Some("read"), Err(ErrorCode::InvalidScope)),
            (None, Some("admin"), Err(ErrorCode::InvalidScope)),
        ];
        for (req, doc, want) in cases {
            let declared = doc.map(Scopes::parse);
            let got = grant(req, &offered, declared.as_ref())
                .map(|s| s.to_string())
                .map_err(|e| e.code);
            assert_eq!(got, want.map(str::to_owned), "{req:?} {doc:?}");
        }
    }

    #[test]
    fn an_administrators_ceiling_refuses_explicit_scopes_beyond_it_and_narrows_defaults() {
        type Case<'a> = (&'a str, bool, Option<&'a str>, Result<&'a str, ErrorCode>);
        let cases: [Case; 8] = [
            ("read write", true, None, Ok("read write")),
            (
                "read offline_access",
                true,
                Some("read"),
                Ok("read offline_access"),
            ),
            (
                "read write offline_access",
                false,
                Some("read"),
                Ok("read offline_access"),
            ),
            ("read", true, Some("read"), Ok("read")),
            (
                "read write",
                true,
                Some("read"),
                Err(ErrorCode::InvalidScope),
            ),
            ("read write", false, Some("read"), Ok("read")),
            ("write", false, Some("read"), Err(ErrorCode::InvalidScope)),
            ("", false, Some("read"), Ok("")),
        ];
        for (granted, explicit, ceiling, want) in cases {
            let ceiling = ceiling.map(Scopes::parse);
            let got = within_ceiling(Scopes::parse(granted), explicit, ceiling.as_ref())
                .map(|s| s.to_string())
                .map_err(|e| e.code);
            assert_eq!(
                got,
                want.map(str::to_owned),
                "{granted:?} {explicit} {ceiling:?}"
            );
        }
    }

    #[test]
    fn a_re_authorization_keeps_earlier_scopes_the_client_may_still_hold() {
        let may_keep = Scopes::parse("mcp mcp:admin mcp:read");
        let prior = [Scopes::parse("mcp"), Scopes::parse("mcp:read retired")];
        let cases: [(&str, &str); 4] = [
            ("mcp:admin", "mcp:admin mcp mcp:read"),
            ("mcp", "mcp mcp:read"),
            // What the client may no longer hold (dropped from the resource, beyond a new
            // ceiling) is not carried over.
            (
                "mcp:admin offline_access",
                "mcp:admin offline_access mcp mcp:read",
            ),
            ("", "mcp mcp:read"),
        ];
        for (requested, want) in cases {
            let got = accumulate(&Scopes::parse(requested), prior.iter(), &may_keep);
            assert_eq!(got.to_string(), want, "{requested:?}");
        }
        assert_eq!(
            accumulate(&Scopes::parse("mcp"), [].iter(), &may_keep).to_string(),
            "mcp"
        );
    }

    #[test]
    fn refresh_scope_may_only_narrow() {
        let cases = [
            (None, Ok("mcp read")),
            (Some("mcp"), Ok("mcp")),
            (Some("read mcp mcp"), Ok("read mcp")),
            (Some("mcp admin"), Err(ErrorCode::InvalidScope)),
            (Some("admin"), Err(ErrorCode::InvalidScope)),
            // A client that appends offline_access to every request is not refused for it.
            (Some("mcp offline_access"), Ok("mcp")),
            (Some(" offline_access"), Ok("mcp read")),
        ];
        for (requested, want) in cases {
            let got = narrow(&Scopes::parse("mcp read"), requested)
                .map(|s| s.to_string())
                .map_err(|e| e.code);
            assert_eq!(got, want.map(str::to_owned), "{requested:?}");
        }
        // A grant with offline_access keeps it when asked.
        let offline = Scopes::parse("mcp offline_access");
        assert_eq!(
            narrow(&offline, Some("offline_access mcp"))
                .unwrap()
                .to_string(),
            "offline_access mcp"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Scope tokens from a small alphabet (so requests often overlap the grant), including
        /// case variants and a non-ASCII lookalike, never equal to each other by accident.
        fn token() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "read",
                "write",
                "Read",
                "admin",
                "offline_access",
                "r\u{0435}ad",
                "mcp:tools",
            ])
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// A refresh may narrow, never widen: the result holds only granted scopes, it is
            /// exactly what was asked for, and any token outside the grant refuses the request
            /// — except `offline_access` outside the grant, which is ignored (asking only for
            /// it narrows nothing).
            #[test]
            fn a_refresh_never_widens_the_grant(
                granted in prop::collection::vec(token(), 0..5),
                asked in prop::collection::vec(token(), 0..6),
                separators in prop::collection::vec(
                    prop::sample::select(vec![" ", "  ", "\t", "\n", " \t "]), 6),
            ) {
                let granted = Scopes::from_tokens(&granted);
                let ignored = |t: &&str| *t == OFFLINE_ACCESS && !granted.contains(OFFLINE_ACCESS);
                let only_offline = !asked.is_empty() && asked.iter().all(&ignored);
                let asked_all = asked.clone();
                let asked: Vec<&str> = asked.into_iter().filter(|t| !ignored(t)).collect();
                let mut request = String::new();
                for (t, sep) in asked_all.iter().zip(&separators) {
                    request.push_str(sep);
                    request.push_str(t);
                }
                match narrow(&granted, Some(&request)) {
                    Ok(got) if only_offline => prop_assert_eq!(got, granted.clone()),
                    Ok(got) => {
                        prop_assert!(asked.iter().all(|t| granted.contains(t)), "{request:?} within {granted:?} → {got:?}");
                        prop_assert!(got.iter().all(|t| granted.contains(t)), "{got:?} widens {granted:?}");
                        prop_assert!(got.iter().all(|t| asked.contains(&t)), "{got:?} holds scopes not asked for in {request:?}");
                        prop_assert!(asked.iter().all(|t| got.contains(t)), "{got:?} lost scopes asked for in {request:?}");
                    }
                    Err(e) => {
                        prop_assert_eq!(e.code, ErrorCode::InvalidScope);
                        prop_assert!(asked.iter().any(|t| !granted.contains(t)), "{request:?} within {granted:?} was refused");
                    }
                }
                prop_assert_eq!(narrow(&granted, None).ok(), Some(granted.clone()));
            }
        }
    }
}

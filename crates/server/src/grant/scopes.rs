//! Which scopes a grant gets (RFC 6749 §3.3) and how a refresh may narrow them (§6).
//!
//! - [`grant`] at `/authorize`: requested scopes must be offered by the resource **and**, when
//!   the client's registration (CIMD document or DCR record) declares `scope`, be among those —
//!   the document's `scope` never widens the resource's (FastMCP let it bypass the allow-list).
//!   Without a `scope` parameter the grant is the resource's scopes narrowed to the declared
//!   ones;
//! - [`narrow`] at refresh: a requested `scope` must be within the grant's; the access token
//!   gets it, the refresh token keeps the grant's.

use cimdgate_store::Scopes;

use crate::error::OAuthError;

/// The scopes granted for an authorization request.
pub fn grant(
    requested: Option<&str>,
    offered: &Scopes,
    declared: Option<&Scopes>,
) -> Result<Scopes, OAuthError> {
    let wanted = Scopes::parse(requested.unwrap_or(""));
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

/// The scopes of a refreshed access token.
pub fn narrow(granted: &Scopes, requested: Option<&str>) -> Result<Scopes, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.clone());
    };
    let wanted = Scopes::parse(requested);
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
        let cases: [ScopeCase; 10] = [
            (Some("read"), None, Ok("read")),
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
    fn refresh_scope_may_only_narrow() {
        let cases = [
            (None, Ok("mcp read")),
            (Some("mcp"), Ok("mcp")),
            (Some("read mcp mcp"), Ok("read mcp")),
            (Some("mcp admin"), Err(ErrorCode::InvalidScope)),
            (Some("admin"), Err(ErrorCode::InvalidScope)),
        ];
        for (requested, want) in cases {
            let got = narrow(&Scopes::parse("mcp read"), requested)
                .map(|s| s.to_string())
                .map_err(|e| e.code);
            assert_eq!(got, want.map(str::to_owned), "{requested:?}");
        }
    }
}

//! RFC 8707 resource indicators: every grant is for exactly one protected resource, the
//! audience of its access tokens.
//!
//! - [`select`] at `/authorize` (§2): `resource` must name a configured resource; absent means
//!   the only one (refused as ambiguous when there are several);
//! - [`check_bound`] at `/token` and refresh (§2.2): a `resource` sent there may only repeat
//!   the grant's (a grant here has one resource, so "narrowing" is equality).

use crate::error::OAuthError;
use crate::services::Resource;

/// The resource an authorization request is for.
pub fn select<'a>(
    resources: &'a [Resource],
    requested: Option<&str>,
) -> Result<&'a Resource, OAuthError> {
    let known = || {
        resources
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match requested.filter(|r| !r.is_empty()) {
        Some(req) => resources
            .iter()
            .find(|r| r.id == req || r.id.trim_end_matches('/') == req.trim_end_matches('/'))
            .ok_or_else(|| {
                OAuthError::invalid_target(format!(
                    "unknown resource {req:?}; this server issues tokens for: {}",
                    known()
                ))
            }),
        None => match resources {
            [only] => Ok(only),
            [] => Err(OAuthError::invalid_target(
                "this server has no protected resources configured",
            )),
            _ => Err(OAuthError::invalid_target(format!(
                "resource is required: this server fronts several ({})",
                known()
            ))),
        },
    }
}

/// A `resource` sent to the token endpoint must equal the grant's.
pub fn check_bound(bound: &str, sent: Option<&str>) -> Result<(), OAuthError> {
    match sent {
        Some(s) if s != bound => Err(OAuthError::invalid_target(format!(
            "resource {s:?} differs from the resource this grant is for ({bound:?})"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use cimdgate_store::Scopes;

    fn resource(id: &str) -> Resource {
        Resource {
            id: id.into(),
            path: "/mcp".into(),
            scopes: Scopes::parse("mcp"),
            upstream: "builtin:demo".into(),
            forwards_idp_token: false,
        }
    }

    /// (configured resources, requested, selected id or the refusal)
    type Case<'a> = (&'a [Resource], Option<&'a str>, Result<&'a str, ErrorCode>);

    #[test]
    fn authorize_selects_a_configured_resource() {
        let one = [resource("http://127.0.0.1:8080/mcp")];
        let two = [resource("http://a/mcp"), resource("http://a/other")];
        let cases: [Case; 6] = [
            (&one, None, Ok("http://127.0.0.1:8080/mcp")),
            (
                &one,
                Some("http://127.0.0.1:8080/mcp/"),
                Ok("http://127.0.0.1:8080/mcp"),
            ),
            (
                &one,
                Some("http://127.0.0.1:8080/x"),
                Err(ErrorCode::InvalidTarget),
            ),
            (&two, None, Err(ErrorCode::InvalidTarget)),
            (&two, Some("http://a/other"), Ok("http://a/other")),
            (&[], None, Err(ErrorCode::InvalidTarget)),
        ];
        for (resources, requested, want) in cases {
            let got = select(resources, requested)
                .map(|r| r.id.as_str())
                .map_err(|e| e.code);
            assert_eq!(got, want, "{requested:?}");
        }
    }

    #[test]
    fn token_requests_may_only_repeat_the_bound_resource() {
        let bound = "http://127.0.0.1:8080/mcp";
        assert!(check_bound(bound, None).is_ok());
        assert!(check_bound(bound, Some(bound)).is_ok());
        for other in ["http://127.0.0.1:8080/mcp/", "http://127.0.0.1:8080/other"] {
            assert_eq!(
                check_bound(bound, Some(other)).unwrap_err().code,
                ErrorCode::InvalidTarget
            );
        }
    }
}

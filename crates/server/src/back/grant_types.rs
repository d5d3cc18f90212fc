//! Which `grant_type` values `/token` accepts and the metadata advertises (RFC 8414 §2
//! `grant_types_supported`): the code and refresh grants always, the two machine grants
//! (docs/architecture.md, *Machine grants*) only when configured.

/// RFC 7523 §2.1 `grant_type` of the ID-JAG grant (also the document's `grant_types` value).
pub const JWT_BEARER: &str = cimd::document::JWT_BEARER_GRANT_TYPE;

/// RFC 6749 §4.4 `grant_type` (also the document's `grant_types` value).
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// Which of the optional grants this server offers (its configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptionalGrants {
    /// At least one `[[enterprise_idps]]` entry.
    pub jwt_bearer: bool,
    /// `[client_credentials] enabled`.
    pub client_credentials: bool,
}

/// The `grant_type` values this server accepts, in the order advertised.
pub fn supported_names(offered: OptionalGrants) -> Vec<&'static str> {
    let mut names = vec!["authorization_code", "refresh_token"];
    if offered.jwt_bearer {
        names.push(JWT_BEARER);
    }
    if offered.client_credentials {
        names.push(CLIENT_CREDENTIALS);
    }
    names
}

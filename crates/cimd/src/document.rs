//! The client metadata document (draft-ietf-oauth-client-id-metadata-document-02 §4, §4.1,
//! RFC 7591 §2, MCP authorization 2025-11-25 "Client ID Metadata Documents").
//!
//! [`validate_document`] turns the raw bytes of a fetched (or local) document into a
//! [`ClientDocument`]. It parses into a [`serde_json::Value`] and walks the known fields by hand
//! so that **every** problem is reported, each naming its field and a stable rule id. Unknown
//! fields are ignored (draft §4: additional properties MAY appear).
//!
//! # Rules
//!
//! | rule id | severity | what | source |
//! |---|---|---|---|
//! | `document-too-large` | error | more than [`MAX_DOCUMENT_BYTES`] bytes | draft §8.7 |
//! | `invalid-utf8` | error | body is not UTF-8 | RFC 8259 §8.1 |
//! | `invalid-json` | error | body is not JSON | RFC 8259 |
//! | `not-an-object` | error | top level is not an object | draft §4 |
//! | `wrong-type` | error | a known field has the wrong JSON type | RFC 7591 §2 |
//! | `required-field` | error (`client_name`: warning in [`Profile::Lenient`]) | `client_id`, `redirect_uris`, `client_name` | draft §4, MCP |
//! | `invalid-client-id` | error | `client_id` breaks a URL rule | draft §3 |
//! | `client-id-mismatch` | error | `client_id` ≠ the URL fetched, exactly | draft §4 |
//! | `client-id-query` | warning | `client_id` has a query | draft §3 (SHOULD NOT) |
//! | `empty-redirect-uris` | error | `redirect_uris` is `[]` | draft §4.2 |
//! | `invalid-redirect-uri` | error | an entry fails [`RedirectUri::parse`] | draft §4.2, RFC 8252 §7.1 |
//! | `forbidden-auth-method` | error | a shared-secret or unknown auth method | draft §4.1 |
//! | `auth-methods-conflict` | warning | singular and plural auth method fields disagree | product rule (oauth-wg #87) |
//! | `client-secret-forbidden` | error | `client_secret` / `client_secret_expires_at` | draft §4.1 |
//! | `private-key-material` | error | `d`,`p`,`q`,`dp`,`dq`,`qi`,`k`,`oth` in `jwks` | draft -02 §4.1 |
//! | `symmetric-key` | error | a `kty: oct` key in `jwks` | draft -02 §4.1 |
//! | `invalid-jwks` | error | `jwks` is not a JWK Set | RFC 7517 §5 |
//! | `jwks-conflict` | error | both `jwks` and `jwks_uri` | RFC 7591 §2 |
//! | `missing-keys` | error | `private_key_jwt` without `jwks`/`jwks_uri` | draft §8.2 |
//! | `unsupported-signing-alg` | error | `token_endpoint_auth_signing_alg` not asymmetric | RFC 7523 §3 |
//! | `uri-not-https` | error | a URI field is not an https URL | product rule |
//! | `unsafe-fetch-url` | error | `jwks_uri`/`logo_uri` breaks URL hygiene | draft §8.6 |
//! | `unsupported-value` | warning | a `grant_types`/`response_types` value is dropped | product rule (oauth-wg #71) |
//! | `authorization-code-required` | error | `grant_types`/`response_types` leave no code flow | OAuth 2.1 §4.1 |
//! | `unsafe-display-text` | error | `client_name` over 100 characters, or with control, bidi-override or invisible characters | product rule (consent-page spoofing) |
//! | `uri-userinfo` | error | `client_uri`/`tos_uri`/`policy_uri` with userinfo (`…@` before the host) | product rule (the link reads as another site) |
//! | `application-type` | error | `application_type` not `web`/`native`, or a redirect URI its type forbids (`web`: https only) | MCP 2026-07-28 (SEP-837), OIDC Registration §2, RFC 8252 §7 |

mod validate;

pub use validate::{MAX_CLIENT_NAME_CHARS, is_hidden_or_control};

use std::fmt;

use serde::Serialize;

use crate::client_id::ClientIdUrl;
use crate::redirect::RedirectUri;

/// Maximum document size in bytes, counted while reading (draft -02 §8.7: "5 KB").
pub const MAX_DOCUMENT_BYTES: usize = 5120;

/// RFC 7523 §2.1 JWT bearer authorization grant (used by the ID-JAG grant of MCP's enterprise-
/// managed authorization extension; Claude's published document lists it).
pub const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Grant types this server knows; other values are filtered with a warning
/// (docs/architecture.md, *The document*). `client_credentials` and the JWT bearer grant are
/// kept so the server can tell whether a client registered them (MCP SEP-1046, SEP-990); they
/// are usable only where the server's configuration enables them.
pub const SUPPORTED_GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    JWT_BEARER_GRANT_TYPE,
];
/// Response types this server supports (authorization code flow only).
pub const SUPPORTED_RESPONSE_TYPES: &[&str] = &["code"];
/// Signing algorithms accepted in `token_endpoint_auth_signing_alg` (asymmetric only; the ones
/// `jsonwebtoken` verifies — docs/architecture.md, *Client authentication at /token*).
pub const ALLOWED_SIGNING_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Which rule set applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// MCP 2025-11-25: `client_name` required.
    #[default]
    Mcp,
    /// Draft only: missing `client_name` is a warning.
    Lenient,
}

/// How the client authenticates at the token endpoint (draft §4.1 allows only these two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Public client (`none`); PKCE required.
    None,
    /// RFC 7523 assertion signed with a key from the document.
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 7591 name (`none` / `private_key_jwt`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity of a [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The document is rejected.
    Error,
    /// Accepted, but worth fixing.
    Warning,
}

/// One finding about a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// JSON field path, e.g. `redirect_uris[1]` or `jwks.keys[0].d`.
    pub field: String,
    /// Stable rule identifier, e.g. `forbidden-auth-method` (see the module table).
    /// Deserialised back to the known rule id (`unknown-rule` for one this version lacks), so a
    /// report kept in a shared negative cache reads the same.
    pub rule: &'static str,
    /// Human explanation.
    pub message: String,
}

impl Problem {
    /// An error.
    pub fn error(field: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            field: field.into(),
            rule,
            message: message.into(),
        }
    }
    /// A warning.
    pub fn warning(
        field: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            field: field.into(),
            rule,
            message: message.into(),
        }
    }
    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl<'de> serde::Deserialize<'de> for Problem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        validate::StoredProblem::deserialize(d).map(Problem::from)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.field, self.message, self.rule)
    }
}

/// Every problem found in a document (errors and warnings). Returned as the error of
/// [`validate_document`] when at least one problem is an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct ValidationReport {
    /// All findings, in document order.
    pub problems: Vec<Problem>,
}

impl ValidationReport {
    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }
    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }
    /// True when there is no error.
    pub fn is_valid(&self) -> bool {
        self.errors().next().is_none()
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors().count();
        write!(
            f,
            "invalid client metadata document ({n} error{})",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            let tag = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            write!(f, "\n  {tag}: {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationReport {}

/// A validated document: what the rest of cimdgate trusts.
#[derive(Debug, Clone, Serialize)]
pub struct ClientDocument {
    /// The client's identifier (equals the URL it was fetched from, exactly).
    pub client_id: ClientIdUrl,
    /// Registered redirect URIs (non-empty).
    pub redirect_uris: Vec<RedirectUri>,
    /// Display name (required in [`Profile::Mcp`]); attacker-controlled text.
    pub client_name: Option<String>,
    /// Auth method at the token endpoint (missing ⇒ `none`).
    pub token_endpoint_auth_method: AuthMethod,
    /// Declared assertion signing algorithm, one of [`ALLOWED_SIGNING_ALGS`].
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// Filtered to [`SUPPORTED_GRANT_TYPES`]; default `[authorization_code]`.
    pub grant_types: Vec<String>,
    /// Filtered to [`SUPPORTED_RESPONSE_TYPES`]; default `[code]`.
    pub response_types: Vec<String>,
    /// Space-separated scopes the client asks for.
    pub scope: Option<String>,
    /// Home page (https).
    #[serde(serialize_with = "ser_opt_url")]
    pub client_uri: Option<url::Url>,
    /// Logo (https, fetchable hygiene).
    #[serde(serialize_with = "ser_opt_url")]
    pub logo_uri: Option<url::Url>,
    /// Terms of service (https).
    #[serde(serialize_with = "ser_opt_url")]
    pub tos_uri: Option<url::Url>,
    /// Privacy policy (https).
    #[serde(serialize_with = "ser_opt_url")]
    pub policy_uri: Option<url::Url>,
    /// Inline public keys (RSA/EC/OKP only; no private members).
    pub jwks: Option<jsonwebtoken::jwk::JwkSet>,
    /// Where to fetch the public keys (https, fetchable hygiene).
    #[serde(serialize_with = "ser_opt_url")]
    pub jwks_uri: Option<url::Url>,
    /// Contact addresses.
    pub contacts: Vec<String>,
    /// RFC 7591 software id.
    pub software_id: Option<String>,
    /// RFC 7591 software version.
    pub software_version: Option<String>,
    /// `application_type` when declared (SEP-837; [`crate::redirect::ApplicationType`]).
    pub application_type: Option<crate::redirect::ApplicationType>,
}

/// Serialise an optional URL as its string (the `url` crate's serde feature is not enabled).
fn ser_opt_url<S: serde::Serializer>(u: &Option<url::Url>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_some(u.as_str()),
        None => s.serialize_none(),
    }
}

impl ClientDocument {
    /// Whether the document registers `grant_type` (exact string; after filtering to
    /// [`SUPPORTED_GRANT_TYPES`]).
    pub fn registers_grant_type(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// Whether the refresh-token grant may be used. Product rule (docs/architecture.md, *The
    /// document*): every authorization-code client may refresh (FastMCP's refusal is a known
    /// bug), so this is true whenever `authorization_code` is registered.
    pub fn allows_refresh(&self) -> bool {
        self.grant_types.iter().any(|g| g == "authorization_code")
    }
}

/// A document that passed validation, with the warnings found on the way.
#[derive(Debug, Clone, Serialize)]
pub struct ValidatedDocument {
    /// The document.
    pub document: ClientDocument,
    /// Non-fatal findings (e.g. dropped `grant_types` values).
    pub warnings: Vec<Problem>,
}

/// Validate a document's bytes.
///
/// `expected_client_id` is the URL the document was fetched from; when given, the document's
/// `client_id` must equal it exactly (draft §4). Reports **every** problem (errors and warnings)
/// in the [`ValidationReport`]; never stops at the first. A body over [`MAX_DOCUMENT_BYTES`] is an
/// error too (bytes may come from a file).
pub fn validate_document(
    bytes: &[u8],
    expected_client_id: Option<&ClientIdUrl>,
    profile: Profile,
) -> Result<ValidatedDocument, ValidationReport> {
    validate::run(bytes, expected_client_id, profile)
}

#[cfg(test)]
mod tests;

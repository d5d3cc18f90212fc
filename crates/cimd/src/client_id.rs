//! The client identifier URL (draft-ietf-oauth-client-id-metadata-document-02 §3).
//!
//! A CIMD `client_id` is an `https` URL that points at the client's metadata document. The draft
//! (§3) requires: scheme `https`, a path component, no `.`/`..` path segments, no fragment, no
//! userinfo; a query SHOULD NOT be used; a port MAY be used. Client identifiers are compared by
//! **simple string comparison** (RFC 3986 §6.2.1), so `https://a.com/x` and `https://a.com:443/x`
//! are different clients.
//!
//! URL parsers normalise (dot segments, default ports, case, IPv4 forms), so every rule here is
//! applied to the **raw** string; [`url::Url`] is only a secondary sanity check that must agree
//! with our reading of the host and port.
//!
//! Decisions beyond the draft (product rules; docs/architecture.md, *Client ID URL*):
//! - the scheme must be written exactly `https` (lower case): `HTTPS://a.com/x` is rejected
//!   because a client_id is an exact string and upper case only invites duplicates;
//! - a path of `/` (NOT RECOMMENDED by -02) is rejected, as is an empty path;
//! - percent-encoded dot segments (`%2e`, `.%2E`, `..%2f`) count as dot segments;
//! - backslashes, whitespace, control and non-ASCII characters are rejected (IDNs must be
//!   written in punycode);
//! - hosts that URL parsers read differently (e.g. `0x7f.1` → `127.0.0.1`) are rejected;
//! - the length is capped at [`MAX_CLIENT_ID_LENGTH`].

use std::fmt;

/// Maximum accepted length of a client_id URL, in bytes (a product limit, docs/architecture.md,
/// *Client ID URL*; the draft recommends short URLs, §3).
pub const MAX_CLIENT_ID_LENGTH: usize = 2048;

/// The only scheme a client_id may use, written exactly (draft §3).
const HTTPS_PREFIX: &str = "https://";

/// A client_id URL that satisfies every rule of draft §3. Only [`ClientIdUrl::parse`] builds one.
/// Equality and hashing use the exact raw string (draft -02: simple string comparison).
#[derive(Clone)]
pub struct ClientIdUrl {
    raw: String,
    host: String,
    port: Option<u16>,
    has_query: bool,
}

impl PartialEq for ClientIdUrl {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for ClientIdUrl {}
impl std::hash::Hash for ClientIdUrl {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

/// Why a string is not a valid client_id URL. One variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    /// The string is empty.
    #[error("client_id is empty")]
    Empty,
    /// Longer than [`MAX_CLIENT_ID_LENGTH`].
    #[error("client_id is {length} bytes long; the limit is {MAX_CLIENT_ID_LENGTH} bytes")]
    TooLong {
        /// Actual length in bytes.
        length: usize,
    },
    /// Whitespace or an ASCII control character.
    #[error("client_id contains whitespace or a control character at byte {position}")]
    ControlOrWhitespace {
        /// Byte offset.
        position: usize,
    },
    /// A backslash (some parsers read it as `/`).
    #[error("client_id contains a backslash at byte {position}; use `/`")]
    Backslash {
        /// Byte offset.
        position: usize,
    },
    /// A character that is not allowed in a URI (RFC 3986 §2) or is not ASCII.
    #[error(
        "client_id contains {character:?} at byte {position}, which is not allowed in a URL \
         (percent-encode it; write international host names in punycode)"
    )]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Byte offset.
        position: usize,
    },
    /// A `%` not followed by two hex digits.
    #[error("client_id has a malformed percent-encoding at byte {position}")]
    InvalidPercentEncoding {
        /// Byte offset of the `%`.
        position: usize,
    },
    /// The scheme is not `https`.
    #[error("client_id must be an https URL (draft §3); found scheme `{scheme}`")]
    NotHttps {
        /// The scheme found (empty when none).
        scheme: String,
    },
    /// `HTTPS://…` and other case variants.
    #[error(
        "client_id scheme must be written `https` in lower case; client_ids are compared as exact strings"
    )]
    SchemeNotLowercase,
    /// A `#` anywhere (draft §3: no fragment).
    #[error("client_id must not contain a fragment (`#`) (draft §3)")]
    Fragment,
    /// `user@host` / `user:pw@host` (draft §3: no userinfo).
    #[error("client_id must not contain userinfo (`…@` before the host) (draft §3)")]
    Userinfo,
    /// `https:///x` or `https://:443/x`.
    #[error("client_id has no host")]
    MissingHost,
    /// The host is syntactically invalid.
    #[error("client_id host `{host}` is invalid: {reason}")]
    InvalidHost {
        /// The host as written.
        host: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A host name of one label (`https://intranet/…`): never a public domain.
    #[error(
        "client_id host `{host}` is a single-label name; a client's domain has at least one dot \
         (e.g. `app.example.com`)"
    )]
    SingleLabelHost {
        /// The host.
        host: String,
    },
    /// A port that is empty, not a number, 0, or above 65535.
    #[error("client_id port `{port}` is invalid; it must be a number from 1 to 65535")]
    InvalidPort {
        /// The port as written.
        port: String,
    },
    /// No path at all: `https://a.com`.
    #[error("client_id must have a path, e.g. https://example.com/client.json (draft §3)")]
    MissingPath,
    /// Path `/` only.
    #[error(
        "client_id path must not be just `/`; use a document path such as /client.json (draft -02 §3)"
    )]
    RootPath,
    /// A `.` or `..` path segment, raw or percent-encoded (draft §3).
    #[error(
        "client_id must not contain `.` or `..` path segments, raw or percent-encoded; found `{segment}` (draft §3)"
    )]
    DotSegment {
        /// The segment as written.
        segment: String,
    },
    /// URL parsers read the host differently (e.g. non-canonical IPv4 `0x7f.1`).
    #[error("client_id host `{host}` is read as `{parsed}` by URL parsers; write it canonically")]
    AmbiguousHost {
        /// The host as written.
        host: String,
        /// What a WHATWG parser makes of it.
        parsed: String,
    },
    /// The secondary [`url::Url`] parse failed.
    #[error("client_id is not a valid URL: {reason}")]
    Unparseable {
        /// The parser's message.
        reason: String,
    },
}

impl ClientIdUrl {
    /// Parse and validate the raw string against draft §3 and the product rules
    /// (docs/architecture.md, *Client ID URL*).
    pub fn parse(raw: &str) -> Result<Self, ClientIdError> {
        let parsed = raw::parse_https_url(raw, true)?;
        // A single-label name (`https://intranet/…`) is looked up through the resolver's search
        // domains: it can only name a host of the local network, never a client's public
        // domain (product rule; the draft's §8.6 SSRF concerns).
        let is_ip = parsed.host.parse::<std::net::IpAddr>().is_ok();
        if !is_ip && !parsed.host.trim_end_matches('.').contains('.') {
            return Err(ClientIdError::SingleLabelHost { host: parsed.host });
        }
        Ok(Self {
            raw: raw.to_owned(),
            host: parsed.host,
            port: parsed.port,
            has_query: parsed.has_query,
        })
    }
    /// The exact string, as received.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    /// The host, lower-cased; IPv6 literals without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The explicit port, if the URL has one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// Whether the URL has a query (`?`), which draft §3 discourages: callers should warn.
    pub fn has_query(&self) -> bool {
        self.has_query
    }
}

/// Cheap check: does this look like a CIMD URL client_id (starts with `https://`, any case)?
/// Locally issued (DCR) ids never start with `https://` (draft §7.1), so this separates the two
/// kinds before full validation; it does not validate.
pub fn is_url_client_id(s: &str) -> bool {
    s.as_bytes()
        .get(..HTTPS_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(HTTPS_PREFIX.as_bytes()))
}

impl fmt::Display for ClientIdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
impl fmt::Debug for ClientIdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientIdUrl({:?})", self.raw)
    }
}
impl AsRef<str> for ClientIdUrl {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}
impl std::str::FromStr for ClientIdUrl {
    type Err = ClientIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl serde::Serialize for ClientIdUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}
impl<'de> serde::Deserialize<'de> for ClientIdUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod raw;

#[cfg(test)]
mod tests;

//! Redirect URIs: syntax (RFC 8252 §7.1, RFC 9700 §4.1), matching (draft -02 §4.2, RFC 9700
//! §4.1.3, RFC 8252 §7.3) and the operator's allow-list (docs/architecture.md, *Redirect URI
//! matching*).
//!
//! - [`RedirectUri::parse`] accepts absolute URIs only; rejects `javascript:`, `data:`, `file:`,
//!   `vbscript:` (any case), fragments, userinfo, `.`/`..` segments (raw or `%2e`), and `http:`
//!   unless the host is exactly `127.0.0.1`, `[::1]` or `localhost` (any case). Private-use
//!   schemes (`com.example.app:/cb`, RFC 8252 §7.1) are allowed; `https` needs a host.
//! - [`redirect_uri_matches`] is simple string comparison, plus the RFC 8252 §7.3 loopback
//!   exception: for an `http` registered URI on one of the three loopback hosts, the requested
//!   port may differ (a port-less registered URI matches any port). Scheme, host, path and
//!   query must still be byte-identical — `localhost` never matches `127.0.0.1`, and there is no
//!   exception for `https`.
//! - [`RedirectAllowList`] patterns may use `*` only as the whole port (`:*`) or as a leading
//!   `*.` host label (any subdomain depth, not the apex). Paths and queries are exact; scheme
//!   and host compare case-insensitively; a port-less `http` loopback pattern matches any port
//!   (as above). An empty list denies everything.
//! - [`select_redirect_uri`] combines both: the requested URI must pass the document **and** the
//!   allow-list; without one, the document must register exactly one URI.

use std::fmt;

use crate::client_id::raw::{self, AuthorityError, CharProblem};

/// Maximum accepted redirect URI length in bytes (same cap as client_id, a product limit).
pub const MAX_REDIRECT_URI_LENGTH: usize = 2048;

/// Schemes that are never acceptable redirect targets (draft §8.6 "known schemes"; FastMCP).
pub const UNSAFE_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript"];

/// The only hosts for which `http` and the RFC 8252 §7.3 port exception apply
/// (docs/architecture.md, *Redirect URI matching*).
pub const LOOPBACK_HOSTS: &[&str] = &["127.0.0.1", "[::1]", "localhost"];

/// A redirect URI that passed the syntax rules. Equality is the exact string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RedirectUri {
    raw: String,
    #[serde(skip)]
    parts: Parts,
}

/// Read back through [`RedirectUri::parse`]: a value that no longer passes the rules is refused.
impl<'de> serde::Deserialize<'de> for RedirectUri {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <String as serde::Deserialize>::deserialize(d)?;
        RedirectUri::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Components of a parsed URI, as byte ranges would be awkward: owned copies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Parts {
    /// Scheme as written.
    scheme: String,
    /// Host as written (IPv6 with brackets), when there is an authority.
    host_raw: Option<String>,
    /// Lower-cased host, IPv6 without brackets.
    host: Option<String>,
    /// Port text as written.
    port_raw: Option<String>,
    /// Path as written.
    path: String,
    /// Query as written (without `?`).
    query: Option<String>,
}

/// Why a redirect URI (or allow-list pattern) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    /// Empty string.
    #[error("redirect URI is empty")]
    Empty,
    /// Over [`MAX_REDIRECT_URI_LENGTH`].
    #[error("redirect URI is {length} bytes long; the limit is {MAX_REDIRECT_URI_LENGTH}")]
    TooLong {
        /// Length in bytes.
        length: usize,
    },
    /// Whitespace, control, backslash, non-ASCII or other non-URI characters, or bad `%XX`.
    #[error("redirect URI `{uri}` contains an invalid character or escape at byte {position}")]
    InvalidCharacter {
        /// The URI.
        uri: String,
        /// Byte offset.
        position: usize,
    },
    /// Not an absolute URI.
    #[error("redirect URI `{uri}` must be an absolute URI with a scheme (e.g. https://…)")]
    MissingScheme {
        /// The URI.
        uri: String,
    },
    /// `javascript:` and friends.
    #[error("redirect URI `{uri}` uses the unsafe scheme `{scheme}`")]
    UnsafeScheme {
        /// The URI.
        uri: String,
        /// The scheme.
        scheme: String,
    },
    /// `http:` to a non-loopback host.
    #[error(
        "redirect URI `{uri}` uses http with a non-loopback host; http is only allowed for \
         127.0.0.1, [::1] and localhost (use https)"
    )]
    HttpNotLoopback {
        /// The URI.
        uri: String,
    },
    /// Nothing after the scheme (`myapp:`).
    #[error("redirect URI `{uri}` has nothing after the scheme")]
    Incomplete {
        /// The URI.
        uri: String,
    },
    /// `https:` (or `http:`) without a host.
    #[error("redirect URI `{uri}` has no host")]
    MissingHost {
        /// The URI.
        uri: String,
    },
    /// A fragment (RFC 6749 §3.1.2).
    #[error("redirect URI `{uri}` must not contain a fragment (`#`)")]
    Fragment {
        /// The URI.
        uri: String,
    },
    /// userinfo in the authority.
    #[error("redirect URI `{uri}` must not contain userinfo (`…@` before the host)")]
    Userinfo {
        /// The URI.
        uri: String,
    },
    /// Host syntax.
    #[error("redirect URI `{uri}` has an invalid host: {reason}")]
    InvalidHost {
        /// The URI.
        uri: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Port syntax.
    #[error("redirect URI `{uri}` has an invalid port `{port}`")]
    InvalidPort {
        /// The URI.
        uri: String,
        /// The port text.
        port: String,
    },
    /// `.`/`..` segment, raw or percent-encoded.
    #[error("redirect URI `{uri}` contains the dot segment `{segment}` (raw or percent-encoded)")]
    DotSegment {
        /// The URI.
        uri: String,
        /// The segment.
        segment: String,
    },
    /// Allow-list pattern with `*` somewhere other than the port or a leading `*.` label.
    #[error(
        "allow-list pattern `{pattern}`: `*` is only allowed as the port (`:*`) or as a leading \
         `*.` host label"
    )]
    BadWildcard {
        /// The pattern.
        pattern: String,
    },
}

impl RedirectUri {
    /// Parse and validate a redirect URI (docs/architecture.md, *The document*).
    pub fn parse(raw: &str) -> Result<Self, RedirectUriError> {
        let parts = parse_parts(raw, false)?;
        Ok(Self {
            raw: raw.to_owned(),
            parts,
        })
    }
    /// The exact string.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    /// The scheme as written.
    pub fn scheme(&self) -> &str {
        &self.parts.scheme
    }
    /// The lower-cased host (IPv6 without brackets); `None` for private-use schemes without
    /// an authority (`com.example.app:/cb`).
    pub fn host(&self) -> Option<&str> {
        self.parts.host.as_deref()
    }
    /// `http` with host `127.0.0.1`, `[::1]` or `localhost`: the RFC 8252 §7.3 port exception
    /// applies.
    pub fn is_loopback(&self) -> bool {
        self.parts.scheme.eq_ignore_ascii_case("http") && is_loopback_host(&self.parts)
    }
}

/// `application_type` (OpenID Connect Dynamic Registration §2; MCP 2026-07-28, "Client
/// Registration", SEP-837), which decides the redirect URIs a client may use:
///
/// - `web` (browser-based applications on a remote host): `https` only — no loopback, no
///   private-use scheme;
/// - `native` (desktop, mobile, CLI, apps on `localhost`): loopback `http`, a private-use
///   scheme, or `https` (RFC 8252 §7.2 claimed https redirects; VS Code's published document
///   is native and lists `https://vscode.dev/redirect`).
///
/// A client that declares none is held to the general rules only (*product rule*: OIDC's
/// default of `web` would refuse Claude Code's and Zed's loopback-only documents, which declare
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationType {
    /// `web`.
    Web,
    /// `native`.
    Native,
}

impl ApplicationType {
    /// The declared value; `Err` names the accepted ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "web" => Ok(ApplicationType::Web),
            "native" => Ok(ApplicationType::Native),
            other => Err(format!(
                "application_type {other:?} is not one of \"web\" or \"native\""
            )),
        }
    }

    /// Whether a client of this type may use `uri`; `Err` says why not.
    pub fn check_redirect_uri(self, uri: &RedirectUri) -> Result<(), String> {
        match self {
            ApplicationType::Native => Ok(()),
            ApplicationType::Web if uri.scheme().eq_ignore_ascii_case("https") => Ok(()),
            ApplicationType::Web => Err(format!(
                "{:?} is not an https URI, and a web application (application_type \"web\")                  may only use https redirect URIs; loopback and app-scheme URIs belong to \
                 application_type \"native\"",
                uri.as_str()
            )),
        }
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl AsRef<str> for RedirectUri {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

fn is_loopback_host(p: &Parts) -> bool {
    p.host_raw
        .as_deref()
        .is_some_and(|h| LOOPBACK_HOSTS.iter().any(|l| l.eq_ignore_ascii_case(h)))
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Split and check a URI; `pattern` allows the allow-list wildcards.
fn parse_parts(raw: &str, pattern: bool) -> Result<Parts, RedirectUriError> {
    let uri = || raw.to_owned();
    if raw.is_empty() {
        return Err(RedirectUriError::Empty);
    }
    if raw.len() > MAX_REDIRECT_URI_LENGTH {
        return Err(RedirectUriError::TooLong { length: raw.len() });
    }
    if let Err(p) = raw::check_chars(raw) {
        let position = match p {
            CharProblem::ControlOrWhitespace(i)
            | CharProblem::Backslash(i)
            | CharProblem::Invalid(_, i)
            | CharProblem::BadPercent(i) => i,
        };
        return Err(RedirectUriError::InvalidCharacter {
            uri: uri(),
            position,
        });
    }
    let Some((scheme, rest)) = raw.split_once(':').filter(|(s, _)| is_scheme(s)) else {
        return Err(RedirectUriError::MissingScheme { uri: uri() });
    };
    let lower = scheme.to_ascii_lowercase();
    if UNSAFE_SCHEMES.contains(&lower.as_str()) {
        return Err(RedirectUriError::UnsafeScheme {
            uri: uri(),
            scheme: scheme.to_owned(),
        });
    }
    if raw.contains('#') {
        return Err(RedirectUriError::Fragment { uri: uri() });
    }
    let (authority, path_and_query) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?']).unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let auth = match authority {
        Some(a) => Some(raw::parse_authority(a, pattern).map_err(|e| match e {
            AuthorityError::Userinfo => RedirectUriError::Userinfo { uri: uri() },
            AuthorityError::MissingHost => RedirectUriError::MissingHost { uri: uri() },
            AuthorityError::InvalidHost(reason) => {
                RedirectUriError::InvalidHost { uri: uri(), reason }
            }
            AuthorityError::InvalidPort(port) => RedirectUriError::InvalidPort { uri: uri(), port },
        })?),
        None => None,
    };
    if (lower == "http" || lower == "https") && auth.is_none() {
        return Err(RedirectUriError::MissingHost { uri: uri() });
    }
    if auth.is_none() && path_and_query.is_empty() {
        return Err(RedirectUriError::Incomplete { uri: uri() });
    }
    if let Some(segment) = raw::find_dot_segment(path) {
        return Err(RedirectUriError::DotSegment {
            uri: uri(),
            segment: segment.to_owned(),
        });
    }
    let parts = Parts {
        scheme: scheme.to_owned(),
        host_raw: auth.as_ref().map(|a| a.host_raw.to_owned()),
        host: auth.as_ref().map(|a| a.host.clone()),
        port_raw: auth.as_ref().and_then(|a| a.port_raw.map(str::to_owned)),
        path: path.to_owned(),
        query: query.map(str::to_owned),
    };
    if lower == "http" && !is_loopback_host(&parts) {
        // Patterns obey the same rule: `http://*.example.com` can never be valid.
        return Err(RedirectUriError::HttpNotLoopback { uri: uri() });
    }
    Ok(parts)
}

/// Does `requested` match the `registered` URI? Exact string comparison, or the RFC 8252 §7.3
/// loopback exception (only the port may differ; see the module docs).
pub fn redirect_uri_matches(registered: &RedirectUri, requested: &str) -> bool {
    if registered.raw == requested {
        return true;
    }
    if !registered.is_loopback() {
        return false;
    }
    let Ok(req) = RedirectUri::parse(requested) else {
        return false;
    };
    let (a, b) = (&registered.parts, &req.parts);
    req.is_loopback()
        && a.scheme == b.scheme
        && a.host_raw == b.host_raw
        && a.path == b.path
        && a.query == b.query
}

/// One allow-list pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    /// Lower-cased host; for a wildcard, the suffix after `*.`.
    host: Option<String>,
    wildcard_host: bool,
    port: PortPattern,
    path: String,
    query: Option<String>,
    loopback: bool,
}

/// The port part of an allow-list pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// No port written: the scheme's default (or any, for an http loopback pattern).
    Default,
    /// `:*`.
    Any,
    /// `:8080`.
    Fixed(u16),
}

/// The operator's redirect URI allow-list (docs/architecture.md, *Redirect URI matching*). Empty ⇒
/// denies everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RedirectAllowList {
    patterns: Vec<Pattern>,
}

impl RedirectAllowList {
    /// Parse patterns; each must be a valid redirect URI except for the allowed wildcards.
    pub fn parse(patterns: &[String]) -> Result<Self, RedirectUriError> {
        let patterns = patterns
            .iter()
            .map(|p| parse_pattern(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { patterns })
    }

    /// Whether `requested` is allowed. Invalid URIs (userinfo, dot segments, …) never are.
    pub fn matches(&self, requested: &str) -> bool {
        let Ok(req) = RedirectUri::parse(requested) else {
            return false;
        };
        self.patterns.iter().any(|p| pattern_matches(p, &req))
    }
}

fn parse_pattern(pattern: &str) -> Result<Pattern, RedirectUriError> {
    let bad = || RedirectUriError::BadWildcard {
        pattern: pattern.to_owned(),
    };
    if pattern.contains('*') {
        let (scheme, after) = pattern.split_once("://").ok_or_else(bad)?;
        let auth_end = after.find(['/', '?']).unwrap_or(after.len());
        let (auth, tail) = after.split_at(auth_end);
        let rest = auth.strip_prefix("*.").unwrap_or(auth);
        let rest = rest.strip_suffix(":*").unwrap_or(rest);
        if scheme.contains('*') || rest.contains('*') || tail.contains('*') {
            return Err(bad());
        }
    }
    let parts = parse_parts(pattern, true)?;
    let wildcard_host = parts
        .host_raw
        .as_deref()
        .is_some_and(|h| h.starts_with("*."));
    let port = match parts.port_raw.as_deref() {
        None => PortPattern::Default,
        Some("*") => PortPattern::Any,
        Some(p) => PortPattern::Fixed(p.parse::<u16>().map_err(|_| bad())?),
    };
    let loopback = parts.scheme.eq_ignore_ascii_case("http") && is_loopback_host(&parts);
    let host = parts.host.map(|h| {
        if wildcard_host {
            h.trim_start_matches("*.").to_owned()
        } else {
            h
        }
    });
    Ok(Pattern {
        scheme: parts.scheme.to_ascii_lowercase(),
        host,
        wildcard_host,
        port,
        path: parts.path,
        query: parts.query,
        loopback,
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

fn pattern_matches(p: &Pattern, req: &RedirectUri) -> bool {
    let r = &req.parts;
    let scheme = r.scheme.to_ascii_lowercase();
    if scheme != p.scheme || r.path != p.path || r.query != p.query {
        return false;
    }
    let host_ok = match (&p.host, &r.host) {
        (None, None) => true,
        (Some(ph), Some(rh)) if p.wildcard_host => rh
            .strip_suffix(ph.as_str())
            .and_then(|prefix| prefix.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty()),
        (Some(ph), Some(rh)) => ph == rh,
        _ => false,
    };
    if !host_ok {
        return false;
    }
    let req_port = match r.port_raw.as_deref() {
        Some(p) => p.parse::<u16>().ok(),
        None => default_port(&scheme),
    };
    match p.port {
        PortPattern::Any => true,
        PortPattern::Default if p.loopback => true,
        PortPattern::Default => req_port == default_port(&scheme),
        PortPattern::Fixed(n) => req_port == Some(n),
    }
}

/// Why no redirect URI could be selected. Never redirect on any of these (RFC 6749 §4.1.2.1): show
/// an error page or JSON instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectMismatch {
    /// The requested `redirect_uri` is not a valid redirect URI.
    #[error("redirect_uri is invalid: {0}")]
    InvalidSyntax(RedirectUriError),
    /// Not in the client's metadata document.
    #[error("redirect_uri `{uri}` is not registered in the client's metadata document")]
    NotRegistered {
        /// The requested URI.
        uri: String,
    },
    /// In the document, but not in the operator's allow-list.
    #[error("redirect_uri `{uri}` is not in this server's redirect URI allow-list")]
    NotInAllowList {
        /// The URI.
        uri: String,
    },
    /// No `redirect_uri` parameter and the document does not register exactly one.
    #[error(
        "redirect_uri is required because the client's metadata document registers {registered} redirect URIs"
    )]
    Required {
        /// How many are registered.
        registered: usize,
    },
}

/// Choose the redirect URI for an authorization request (docs/architecture.md, *Redirect URI
/// matching*).
///
/// With `requested`, it must match a registered URI ([`redirect_uri_matches`]) **and** the
/// allow-list (if any); the requested string is returned as sent. Without it, the document
/// must register exactly one URI, which must also pass the allow-list.
pub fn select_redirect_uri(
    registered: &[RedirectUri],
    allow_list: Option<&RedirectAllowList>,
    requested: Option<&str>,
) -> Result<RedirectUri, RedirectMismatch> {
    let chosen = match requested {
        Some(req) => {
            let parsed = RedirectUri::parse(req).map_err(RedirectMismatch::InvalidSyntax)?;
            if !registered.iter().any(|r| redirect_uri_matches(r, req)) {
                return Err(RedirectMismatch::NotRegistered {
                    uri: req.to_owned(),
                });
            }
            parsed
        }
        None => match registered {
            [only] => only.clone(),
            _ => {
                return Err(RedirectMismatch::Required {
                    registered: registered.len(),
                });
            }
        },
    };
    if let Some(list) = allow_list
        && !list.matches(chosen.as_str())
    {
        return Err(RedirectMismatch::NotInAllowList { uri: chosen.raw });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests;

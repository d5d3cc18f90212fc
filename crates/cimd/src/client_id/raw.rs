//! Raw-string URI helpers shared by [`crate::client_id`], [`crate::redirect`] and
//! [`crate::document`]: character checks, dot-segment detection and authority parsing, all on
//! the string as written (RFC 3986 §2, §3.2, §3.3), never on a normalised form.
use std::net::Ipv6Addr;

use super::{ClientIdError, HTTPS_PREFIX, MAX_CLIENT_ID_LENGTH};

/// A character-level problem found by [`check_chars`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CharProblem {
    ControlOrWhitespace(usize),
    Backslash(usize),
    Invalid(char, usize),
    BadPercent(usize),
}

/// Characters allowed anywhere in a URI reference (RFC 3986 §2: unreserved, reserved, `%`).
fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// First character that cannot appear in a URI, or a malformed `%XX`.
pub(crate) fn check_chars(s: &str) -> Result<(), CharProblem> {
    let bytes = s.as_bytes();
    for (i, ch) in s.char_indices() {
        if ch.is_whitespace() || ch.is_control() {
            return Err(CharProblem::ControlOrWhitespace(i));
        }
        if ch == '\\' {
            return Err(CharProblem::Backslash(i));
        }
        if !ch.is_ascii() || !is_uri_char(ch as u8) {
            return Err(CharProblem::Invalid(ch, i));
        }
        if ch == '%' {
            let ok = bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(CharProblem::BadPercent(i));
            }
        }
    }
    Ok(())
}

/// Percent-decode (input already passed [`check_chars`]); invalid escapes are kept verbatim.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(h)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The first path segment that is `.` or `..` once percent-decoded; a decoded `/` or `\`
/// inside a segment splits it further (`..%2f` counts).
pub(crate) fn find_dot_segment(path: &str) -> Option<&str> {
    path.split('/').find(|seg| {
        let decoded = percent_decode(seg);
        decoded.split(|&c| c == b'/' || c == b'\\').any(|piece| {
            // `..;x` is `..` with a path parameter to Tomcat, Jetty and Spring, which resolve it
            // as a dot segment (review finding L9).
            let name = piece.split(|&c| c == b';').next().unwrap_or(piece);
            name == b"." || name == b".."
        })
    })
}

/// A parsed authority (`host[:port]`, no userinfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority<'a> {
    /// Host as written (brackets included for IPv6).
    pub host_raw: &'a str,
    /// Lower-cased host, IPv6 without brackets.
    pub host: String,
    /// Port text after `:` (may be `*` when wildcards are allowed).
    pub port_raw: Option<&'a str>,
    /// Numeric port, when present and numeric.
    pub port: Option<u16>,
}

/// Authority-level problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthorityError {
    Userinfo,
    MissingHost,
    InvalidHost(&'static str),
    InvalidPort(String),
}

/// Parse `host[:port]`. With `wildcards`, the port may be `*` and the host may start with
/// `*.` (operator allow-list patterns).
pub(crate) fn parse_authority(a: &str, wildcards: bool) -> Result<Authority<'_>, AuthorityError> {
    if a.contains('@') {
        return Err(AuthorityError::Userinfo);
    }
    let (host_raw, port_raw) = if let Some(rest) = a.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or(AuthorityError::InvalidHost("unterminated IPv6 literal"))?;
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(AuthorityError::InvalidHost(
                "unexpected text after IPv6 literal",
            ))?),
        };
        (&a[..end + 2], port)
    } else {
        match a.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    let port = match port_raw {
        None => None,
        Some("*") if wildcards => None,
        Some(p) => {
            // Digits only, no leading zero (`:0443` is read as 443 by parsers but is a
            // different string), at most 5 digits.
            let valid = !p.is_empty()
                && p.len() <= 5
                && !p.starts_with('0')
                && p.bytes().all(|c| c.is_ascii_digit());
            match p.parse::<u16>() {
                Ok(n) if valid && n != 0 => Some(n),
                _ => return Err(AuthorityError::InvalidPort(p.to_owned())),
            }
        }
    };
    if host_raw.is_empty() {
        return Err(AuthorityError::MissingHost);
    }
    let host = if let Some(inner) = host_raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(AuthorityError::InvalidHost(
                "not a valid IPv6 literal (zone ids and IPvFuture are not accepted)",
            ));
        }
        inner.to_ascii_lowercase()
    } else {
        let name = if wildcards {
            host_raw.strip_prefix("*.").unwrap_or(host_raw)
        } else {
            host_raw
        };
        check_reg_name(name)?;
        host_raw.to_ascii_lowercase()
    };
    Ok(Authority {
        host_raw,
        host,
        port_raw,
        port,
    })
}

/// A DNS-style host: labels of letters, digits, `-`, `_`; one optional trailing dot.
fn check_reg_name(name: &str) -> Result<(), AuthorityError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(AuthorityError::MissingHost);
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(AuthorityError::InvalidHost("empty label (`..`)"));
        }
        if label.len() > 63 {
            return Err(AuthorityError::InvalidHost(
                "label longer than 63 characters",
            ));
        }
        if !label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(AuthorityError::InvalidHost(
                "only letters, digits, `-` and `_` are allowed in host names",
            ));
        }
    }
    Ok(())
}

/// Result of [`parse_https_url`].
#[derive(Debug, Clone)]
pub(crate) struct HttpsUrl {
    pub host: String,
    pub port: Option<u16>,
    pub has_query: bool,
    pub url: url::Url,
}

/// Apply the client_id URL rules (draft §3) to a raw string. `require_path` is the
/// client_id-only rule (non-empty path other than `/`); other fetchable URLs in a document
/// (`jwks_uri`, `logo_uri`) use the same hygiene without it.
pub(crate) fn parse_https_url(raw: &str, require_path: bool) -> Result<HttpsUrl, ClientIdError> {
    if raw.is_empty() {
        return Err(ClientIdError::Empty);
    }
    if raw.len() > MAX_CLIENT_ID_LENGTH {
        return Err(ClientIdError::TooLong { length: raw.len() });
    }
    check_chars(raw).map_err(|p| match p {
        CharProblem::ControlOrWhitespace(position) => {
            ClientIdError::ControlOrWhitespace { position }
        }
        CharProblem::Backslash(position) => ClientIdError::Backslash { position },
        CharProblem::Invalid(character, position) => ClientIdError::InvalidCharacter {
            character,
            position,
        },
        CharProblem::BadPercent(position) => ClientIdError::InvalidPercentEncoding { position },
    })?;
    if raw.contains('#') {
        return Err(ClientIdError::Fragment);
    }
    let rest = match raw.strip_prefix(HTTPS_PREFIX) {
        Some(rest) => rest,
        None if super::is_url_client_id(raw) => return Err(ClientIdError::SchemeNotLowercase),
        None => {
            let scheme = raw.split_once(':').map_or("", |(s, _)| s);
            return Err(ClientIdError::NotHttps {
                scheme: scheme.to_owned(),
            });
        }
    };
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(auth_end);
    let auth = parse_authority(authority, false).map_err(|e| match e {
        AuthorityError::Userinfo => ClientIdError::Userinfo,
        AuthorityError::MissingHost => ClientIdError::MissingHost,
        AuthorityError::InvalidHost(reason) => ClientIdError::InvalidHost {
            host: authority.to_owned(),
            reason,
        },
        AuthorityError::InvalidPort(port) => ClientIdError::InvalidPort { port },
    })?;
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if require_path {
        if path.is_empty() {
            return Err(ClientIdError::MissingPath);
        }
        if path == "/" {
            return Err(ClientIdError::RootPath);
        }
    }
    if let Some(seg) = find_dot_segment(path) {
        return Err(ClientIdError::DotSegment {
            segment: seg.to_owned(),
        });
    }
    // Secondary check: a WHATWG parser must agree with our reading.
    let url = url::Url::parse(raw).map_err(|e| ClientIdError::Unparseable {
        reason: e.to_string(),
    })?;
    let parsed_host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => return Err(ClientIdError::MissingHost),
    };
    let ours_v6 = auth.host.parse::<Ipv6Addr>().ok().map(|ip| ip.to_string());
    if parsed_host != auth.host && Some(&parsed_host) != ours_v6.as_ref() {
        return Err(ClientIdError::AmbiguousHost {
            host: auth.host_raw.to_owned(),
            parsed: parsed_host,
        });
    }
    if url.scheme() != "https" || url.port_or_known_default() != Some(auth.port.unwrap_or(443)) {
        return Err(ClientIdError::Unparseable {
            reason: "scheme or port read differently by a URL parser".to_owned(),
        });
    }
    Ok(HttpsUrl {
        host: auth.host,
        port: auth.port,
        has_query: query.is_some(),
        url,
    })
}

//! Parsing `WWW-Authenticate` (RFC 9110 §11.6.1) for the `Bearer` challenge (RFC 6750 §3) and
//! its `resource_metadata` parameter (RFC 9728 §5.1).
//!
//! One header may carry several challenges (`Basic realm="x", Bearer scope="mcp"`); a challenge
//! is a scheme followed by comma-separated `name=value` parameters, values being tokens or
//! quoted strings with `\` escapes. Scheme and parameter names compare case-insensitively.

/// The parameters of a `Bearer` challenge this client uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// RFC 9728 §5.1: URL of the Protected Resource Metadata.
    pub resource_metadata: Option<String>,
    /// RFC 6750 §3: scopes the resource needs.
    pub scope: Option<String>,
    /// RFC 6750 §3.1: `invalid_token`, `insufficient_scope`, …
    pub error: Option<String>,
    /// RFC 6750 §3: human-readable detail.
    pub error_description: Option<String>,
}

/// One parsed challenge: scheme and parameters in order (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth scheme, as sent.
    pub scheme: String,
    /// `(name, value)` pairs; names lower-cased, quoted values unescaped.
    pub params: Vec<(String, String)>,
}

/// Find the `Bearer` challenge in one or more `WWW-Authenticate` header values.
pub fn parse_bearer<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<BearerChallenge> {
    let c = headers
        .into_iter()
        .flat_map(parse_challenges)
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    let get = |name: &str| {
        c.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    Some(BearerChallenge {
        resource_metadata: get("resource_metadata"),
        scope: get("scope"),
        error: get("error"),
        error_description: get("error_description"),
    })
}

/// Split a `WWW-Authenticate` value into its challenges. Tolerant: malformed pieces are
/// skipped, never an error (the caller decides what a missing parameter means).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return out;
        }
        let end = rest
            .find(|c: char| c == ',' || c == '=' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        if let Some(value_part) = after.strip_prefix('=')
            && !value_part.starts_with('=')
        {
            // `name=value`: a parameter of the current challenge.
            let value_part = value_part.trim_start_matches(|c: char| c.is_ascii_whitespace());
            let (value, next) = read_value(value_part);
            if let Some(current) = out.last_mut() {
                current.params.push((token.to_ascii_lowercase(), value));
            }
            rest = next;
        } else if out.last().is_some_and(|c| c.params.is_empty()) && after.starts_with('=') {
            // token68 (`Basic abc==`): skip it.
            let skip = after.find(',').unwrap_or(after.len());
            rest = &after[skip..];
        } else {
            out.push(Challenge {
                scheme: token.to_owned(),
                params: Vec::new(),
            });
            rest = after;
        }
    }
}

/// Read a token or a quoted string; returns the value and what follows it.
fn read_value(s: &str) -> (String, &str) {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[i + 1..]),
                _ => value.push(c),
            }
        }
        (value, "")
    } else {
        let end = s
            .find(|c: char| c == ',' || c.is_ascii_whitespace())
            .unwrap_or(s.len());
        (s[..end].to_owned(), &s[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_parameters_table() {
        let rm = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp";
        let cases: &[(&str, Option<BearerChallenge>)] = &[
            (
                r#"Bearer resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp""#,
                Some(BearerChallenge {
                    resource_metadata: Some(rm.into()),
                    ..Default::default()
                }),
            ),
            (
                r#"Bearer resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp", scope="mcp files:read""#,
                Some(BearerChallenge {
                    resource_metadata: Some(rm.into()),
                    scope: Some("mcp files:read".into()),
                    ..Default::default()
                }),
            ),
            (
                r#"bearer error="invalid_token", error_description="the token \"expired\"", RESOURCE_METADATA="x""#,
                Some(BearerChallenge {
                    resource_metadata: Some("x".into()),
                    error: Some("invalid_token".into()),
                    error_description: Some("the token \"expired\"".into()),
                    ..Default::default()
                }),
            ),
            (
                r#"Basic realm="a, b", Bearer scope=mcp"#,
                Some(BearerChallenge {
                    scope: Some("mcp".into()),
                    ..Default::default()
                }),
            ),
            (
                r#"Negotiate abc==, Bearer error=insufficient_scope ,scope="mcp""#,
                Some(BearerChallenge {
                    scope: Some("mcp".into()),
                    error: Some("insufficient_scope".into()),
                    ..Default::default()
                }),
            ),
            ("Bearer", Some(BearerChallenge::default())),
            (r#"Basic realm="x""#, None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(&parse_bearer([*header]), want, "header: {header}");
        }
    }

    #[test]
    fn bearer_found_in_a_later_header_value() {
        let got = parse_bearer([r#"Basic realm="x""#, r#"Bearer resource_metadata="u""#]);
        assert_eq!(got.and_then(|c| c.resource_metadata).as_deref(), Some("u"));
    }

    #[test]
    fn unterminated_quote_keeps_what_was_read() {
        let got = parse_challenges(r#"Bearer scope="mcp"#);
        assert_eq!(got[0].params, vec![("scope".to_owned(), "mcp".to_owned())]);
    }
}

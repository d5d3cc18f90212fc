//! The standard request headers of MCP 2026-07-28 (Streamable HTTP, "Standard request
//! headers", SEP-2243): every modern POST mirrors its body in `MCP-Protocol-Version`
//! (= `_meta["io.modelcontextprotocol/protocolVersion"]`), `Mcp-Method` (= `method`) and, for
//! the methods that name a target, `Mcp-Name` (= `params.name` for `tools/call` and
//! `prompts/get`, `params.uri` for `resources/read`). A server that processes the body rejects
//! a mismatch with 400 and `HeaderMismatch` (-32020), so these must be derived from the body,
//! never typed twice.
//!
//! A value that cannot travel as a bare header value — non-ASCII, a control character, a
//! leading or trailing space or tab, or one that already looks like the sentinel — is sent as
//! `=?base64?{Base64(UTF-8)}?=` (standard alphabet, padded; markers lower-case).

use base64::Engine;
use serde_json::Value;

/// `MCP-Protocol-Version`.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// `Mcp-Method`.
pub const METHOD_HEADER: &str = "mcp-method";
/// `Mcp-Name`.
pub const NAME_HEADER: &str = "mcp-name";
/// Start of the base64 sentinel.
pub const BASE64_PREFIX: &str = "=?base64?";
/// End of the base64 sentinel.
pub const BASE64_SUFFIX: &str = "?=";

/// Which `params` field `Mcp-Name` mirrors for `method`, if the method has one.
pub fn name_source(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Whether `value` must be sent base64-wrapped: a control character or anything outside
/// printable ASCII, a leading or trailing space or tab, or a value that would itself be read
/// as the sentinel.
pub fn needs_base64(value: &str) -> bool {
    let edge_ws = |c: Option<char>| matches!(c, Some(' ' | '\t'));
    edge_ws(value.chars().next())
        || edge_ws(value.chars().next_back())
        || value.chars().any(|c| !(' '..='~').contains(&c))
        || (value.starts_with(BASE64_PREFIX) && value.ends_with(BASE64_SUFFIX))
}

/// `value` as a header value: unchanged when safe, else `=?base64?…?=`.
pub fn encode_value(value: &str) -> String {
    if needs_base64(value) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        format!("{BASE64_PREFIX}{b64}{BASE64_SUFFIX}")
    } else {
        value.to_owned()
    }
}

/// The standard headers for a modern request: `(name, value)` pairs, in order
/// `MCP-Protocol-Version`, `Mcp-Method`, then `Mcp-Name` when the method names a target
/// (and the body carries that field as a string).
pub fn standard_headers(
    version: &str,
    method: &str,
    params: &Value,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (PROTOCOL_VERSION_HEADER, version.to_owned()),
        (METHOD_HEADER, encode_value(method)),
    ];
    if let Some(name) = name_source(method).and_then(|f| params[f].as_str()) {
        headers.push((NAME_HEADER, encode_value(name)));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_values_are_base64_wrapped_only_when_unsafe_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("get_weather", None),
            ("file:///projects/myapp/config.json", None),
            ("two words", None),
            ("", None),
            ("~!@#$%^&*()", None),
            // Non-ASCII.
            ("café", Some("=?base64?Y2Fmw6k=?=")),
            ("日本語", Some("=?base64?5pel5pys6Kqe?=")),
            // Leading / trailing whitespace.
            (" name", Some("=?base64?IG5hbWU=?=")),
            ("name ", Some("=?base64?bmFtZSA=?=")),
            ("\tname", Some("=?base64?CW5hbWU=?=")),
            ("name\t", Some("=?base64?bmFtZQk=?=")),
            // Control characters, including a header-injection attempt and DEL.
            ("a\r\nX-Evil: 1", Some("=?base64?YQ0KWC1FdmlsOiAx?=")),
            ("a\u{0}b", Some("=?base64?YQBi?=")),
            ("a\u{7f}", Some("=?base64?YX8=?=")),
            // Looks like the sentinel: wrapped so the server does not decode it.
            (
                "=?base64?SGVsbG8=?=",
                Some("=?base64?PT9iYXNlNjQ/U0dWc2JHOD0/PQ==?="),
            ),
            // Only one marker: a literal value.
            ("=?base64?abc", None),
            ("abc?=", None),
            // Markers are lower-case; upper-case ones are plain text.
            ("=?BASE64?SGVsbG8=?=", None),
        ];
        for (value, wrapped) in cases {
            let want = wrapped.map_or_else(|| value.to_string(), str::to_owned);
            assert_eq!(encode_value(value), want, "value {value:?}");
            assert_eq!(needs_base64(value), wrapped.is_some(), "value {value:?}");
        }
    }

    #[test]
    fn wrapped_values_decode_back_to_the_body_value() {
        for value in ["café", " x ", "a\r\nb", "=?base64?x?="] {
            let h = encode_value(value);
            let inner = h
                .strip_prefix(BASE64_PREFIX)
                .and_then(|s| s.strip_suffix(BASE64_SUFFIX))
                .unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(inner)
                .unwrap();
            assert_eq!(String::from_utf8(bytes).unwrap(), value);
        }
    }

    /// `(method, params, expected headers after MCP-Protocol-Version)`.
    type HeaderCase = (&'static str, Value, &'static [(&'static str, &'static str)]);

    #[test]
    fn standard_headers_mirror_the_body_table() {
        let v = "2026-07-28";
        let cases: &[HeaderCase] = &[
            (
                "tools/call",
                json!({"name": "echo", "arguments": {}}),
                &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
            ),
            (
                "prompts/get",
                json!({"name": "greet"}),
                &[("mcp-method", "prompts/get"), ("mcp-name", "greet")],
            ),
            (
                "resources/read",
                json!({"uri": "file:///a b.txt", "name": "ignored"}),
                &[
                    ("mcp-method", "resources/read"),
                    ("mcp-name", "file:///a b.txt"),
                ],
            ),
            (
                "tools/call",
                json!({"name": "météo"}),
                &[
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "=?base64?bcOpdMOpbw==?="),
                ],
            ),
            (
                "tools/list",
                json!({"name": "x"}),
                &[("mcp-method", "tools/list")],
            ),
            (
                "server/discover",
                json!({}),
                &[("mcp-method", "server/discover")],
            ),
            // No name in the body: no header (the server reports the body error itself).
            ("tools/call", json!({}), &[("mcp-method", "tools/call")]),
        ];
        for (method, params, want) in cases {
            let got = standard_headers(v, method, params);
            let mut expected = vec![("mcp-protocol-version", v.to_owned())];
            expected.extend(want.iter().map(|(n, v)| (*n, v.to_string())));
            assert_eq!(got, expected, "{method} {params}");
        }
    }
}

//! Which MCP operation a request carries, whether its mirrored headers tell the truth, and which
//! scopes the operation needs (docs/architecture.md, *Gateway*, "Per-operation scopes").
//!
//! MCP 2026-07-28 (Streamable HTTP, "Standard request headers", SEP-2243) mirrors the JSON-RPC
//! `method` into `Mcp-Method` and, for `tools/call` and `prompts/get` the `params.name`, for
//! `resources/read` the `params.uri`, into `Mcp-Name`; values that are not header-safe travel as
//! `=?base64?…?=`. Rules here:
//!
//! - **The body decides.** Per-operation scopes are looked up from the parsed JSON-RPC body,
//!   never from the headers alone (the spec: intermediaries "SHOULD reject the request rather
//!   than trusting unvalidated header values").
//! - **Headers must agree with the body** ([`check_mirrored_headers`]): a `Mcp-Method` or
//!   `Mcp-Name` (decoded) that differs from the body, one sent with a batch, an undecodable
//!   value, or — on a 2026-07-28 request (`MCP-Protocol-Version`) — a missing required one, or
//!   an `MCP-Protocol-Version` that differs from the body's `_meta` version, is refused with
//!   400 and JSON-RPC error `-32020` (`HeaderMismatch`).
//! - **Fail closed** ([`OperationRules::required`]): a body that cannot be read as JSON-RPC is
//!   refused when the resource has rules; a duplicated `method`, `params`, `name` or `uri` member
//!   is refused (parsers differ on which copy wins: the gateway and the MCP server must not see
//!   two different calls); a call whose name is missing or not a string needs the scopes of
//!   every rule for its method; a batch (2025-03-26 clients) needs the scopes of all its calls.

use std::collections::BTreeSet;

use axum::http::HeaderMap;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

/// `Mcp-Method`.
pub const MCP_METHOD: &str = "mcp-method";
/// `Mcp-Name`.
pub const MCP_NAME: &str = "mcp-name";
/// `MCP-Protocol-Version`.
pub const MCP_PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// The first revision whose requests mirror their body into headers.
pub const FIRST_HEADER_MIRRORING_REVISION: &str = "2026-07-28";
/// JSON-RPC error code `HeaderMismatch` (MCP 2026-07-28).
pub const HEADER_MISMATCH: i64 = -32020;
/// JSON-RPC error code `Parse error` (JSON-RPC 2.0 §5.1).
pub const PARSE_ERROR: i64 = -32700;

/// One `[[resources.operation_scopes]]` rule: calls of `method` (and, if given, whose name
/// matches `name`) need all of `scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRule {
    /// JSON-RPC method, exact (`tools/call`).
    pub method: String,
    /// Name pattern (`delete_*`); `None` matches every call of the method.
    pub name: Option<NamePattern>,
    /// Scopes the call needs on top of the resource's.
    pub scopes: Vec<String>,
}

/// A name pattern: literal text with `*` matching any run of characters (including none).
/// Matching is exact otherwise: case-sensitive, no other wildcard (MCP tool names are
/// case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    /// A pattern; empty is refused (it would match only the empty name, surely a mistake).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err(
                "a name pattern must not be empty (omit `name` to match every call)".into(),
            );
        }
        Ok(NamePattern(s.to_owned()))
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = self.0.split('*');
        // `split` yields at least one part.
        let first = parts.next().unwrap_or("");
        let Some(mut rest) = name.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty(); // no `*` at all: exact
        };
        for p in middle {
            match rest.find(p) {
                Some(i) => rest = &rest[i + p.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One JSON-RPC message as far as the gateway needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Operation {
    /// `method` (absent for responses).
    pub method: Option<String>,
    /// The member [`name_member`] names (`params.name` of `tools/call`, `params.uri` of
    /// `resources/read`, …):
    /// `Some(None)` when the method has a name but the body's is missing or not a string.
    pub name: Option<Option<String>>,
    /// The `id`, for the error answer.
    pub id: Option<Value>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`.
    pub protocol_version: Option<String>,
}

/// Which member of `params` names a call of `method`: MCP 2026-07-28, "Standard request
/// headers" (`tools/call`, `prompts/get`, `resources/read`), plus what the SDKs mirror for the
/// legacy subscription methods and the tasks extension (rmcp, TypeScript SDK 2.x).
pub fn name_member(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

// Derived structs (not `Value`): serde refuses a duplicated member of a struct, so a body
// with two `method`s never reaches the rules (see the module doc).
#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    method: Option<Value>,
    #[serde(default)]
    params: Option<RawParams>,
    #[serde(default)]
    id: Option<Value>,
}

#[derive(Deserialize, Default)]
struct RawParams {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    uri: Option<Value>,
    #[serde(default, rename = "taskId")]
    task_id: Option<Value>,
    #[serde(default, rename = "_meta")]
    meta: Option<RawMeta>,
}

#[derive(Deserialize, Default)]
struct RawMeta {
    #[serde(default, rename = "io.modelcontextprotocol/protocolVersion")]
    protocol_version: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawBody {
    One(RawMessage),
    Batch(Vec<RawMessage>),
}

/// A request body as JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Messages {
    /// Its operations: none for an empty body, one for a message, any number for a batch.
    pub operations: Vec<Operation>,
    /// Whether the body was a batch (a JSON array), even of one.
    pub batch: bool,
}

/// The operations of a request body. `Err` names why the body is not JSON-RPC.
pub fn parse_body(body: &[u8]) -> Result<Messages, String> {
    // `untagged` hides serde's message; parse as a value of either shape first for a clear one.
    let raw: RawBody = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(Messages::default()),
        Some(b'[') => serde_json::from_slice::<Vec<RawMessage>>(body).map(RawBody::Batch),
        Some(_) => serde_json::from_slice::<RawMessage>(body).map(RawBody::One),
    }
    .map_err(|e| format!("the body is not a JSON-RPC message: {e}"))?;
    let (messages, batch) = match raw {
        RawBody::One(m) => (vec![m], false),
        RawBody::Batch(ms) => (ms, true),
    };
    Ok(Messages {
        operations: messages.into_iter().map(operation).collect(),
        batch,
    })
}

fn operation(m: RawMessage) -> Operation {
    let method = match m.method {
        Some(Value::String(s)) => Some(s),
        // A non-string method is no method any server will run, but fail closed on it anyway:
        // treat it as an unknown method (rules for exact methods never match it).
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let params = m.params.unwrap_or_default();
    let name = method.as_deref().and_then(name_member).map(|member| {
        let v = match member {
            "uri" => params.uri.as_ref(),
            "taskId" => params.task_id.as_ref(),
            _ => params.name.as_ref(),
        };
        v.and_then(Value::as_str).map(str::to_owned)
    });
    let protocol_version = params
        .meta
        .and_then(|meta| meta.protocol_version)
        .and_then(|v| v.as_str().map(str::to_owned));
    Operation {
        method,
        name,
        id: m.id,
        protocol_version,
    }
}

/// The mirrored headers of a request, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MirroredHeaders {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<String>,
    /// `Mcp-Method`.
    pub method: Option<String>,
    /// `Mcp-Name`, base64 sentinel decoded.
    pub name: Option<String>,
}

impl MirroredHeaders {
    /// Read them; `Err` names a header that is repeated, not text, or badly encoded.
    pub fn read(headers: &HeaderMap) -> Result<Self, String> {
        Ok(MirroredHeaders {
            protocol_version: one_header(headers, MCP_PROTOCOL_VERSION)?,
            method: one_header(headers, MCP_METHOD)?,
            name: one_header(headers, MCP_NAME)?
                .map(|v| decode_header_value(&v))
                .transpose()?,
        })
    }

    /// Whether any of `Mcp-Method` / `Mcp-Name` is present, or the version is one that
    /// mirrors: then the body must be checked against them.
    pub fn need_checking(&self) -> bool {
        self.method.is_some() || self.name.is_some() || self.is_mirroring_revision()
    }

    /// Whether `MCP-Protocol-Version` names 2026-07-28 or later (dates compare as text).
    pub fn is_mirroring_revision(&self) -> bool {
        self.protocol_version.as_deref().is_some_and(|v| {
            v.len() == 10
                && v.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                && v >= FIRST_HEADER_MIRRORING_REVISION
        })
    }
}

fn one_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    let mut all = headers.get_all(name).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(format!("the {name} header is repeated"));
    }
    first
        .to_str()
        .map(|s| Some(s.to_owned()))
        .map_err(|_| format!("the {name} header is not visible ASCII"))
}

/// Decode `=?base64?…?=` (MCP 2026-07-28, "Value encoding"); other values are taken as they are.
pub fn decode_header_value(v: &str) -> Result<String, String> {
    let Some(inner) = v
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Ok(v.to_owned());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .map_err(|e| format!("the Mcp-Name header's base64 value does not decode: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "the Mcp-Name header's base64 value is not UTF-8".into())
}

/// Whether a 2026-07-28 request of `method` must carry `Mcp-Name` (the spec's table: only
/// these three; for the others [`name_member`] lists, a header sent must still agree).
pub fn name_required(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
}

/// A header–body disagreement: the answer is 400 with JSON-RPC error `HeaderMismatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What disagrees.
    pub message: String,
    /// The request's `id`, if it had one.
    pub id: Option<Value>,
}

/// Check the mirrored headers against the body's operations (see the module doc).
pub fn check_mirrored_headers(
    headers: &MirroredHeaders,
    messages: &Messages,
) -> Result<(), Mismatch> {
    let mismatch = |message: String, id: Option<&Value>| Mismatch {
        message: format!("Header mismatch: {message}"),
        id: id.cloned(),
    };
    let op = match messages.operations.as_slice() {
        [op] if !messages.batch => op,
        [] if !messages.batch => {
            if headers.method.is_some() || headers.name.is_some() {
                return Err(mismatch(
                    "Mcp-Method / Mcp-Name sent without a JSON-RPC message".into(),
                    None,
                ));
            }
            return Ok(());
        }
        _ => {
            if headers.method.is_some() || headers.name.is_some() {
                return Err(mismatch(
                    "Mcp-Method / Mcp-Name cannot describe a batch".into(),
                    None,
                ));
            }
            return Ok(());
        }
    };
    let id = op.id.as_ref();
    match (&headers.method, &op.method) {
        (Some(h), Some(b)) if h != b => {
            return Err(mismatch(
                format!("Mcp-Method header value {h:?} does not match body value {b:?}"),
                id,
            ));
        }
        (Some(h), None) => {
            return Err(mismatch(
                format!("Mcp-Method header value {h:?} on a message without a method"),
                id,
            ));
        }
        (None, Some(b)) if headers.is_mirroring_revision() => {
            return Err(mismatch(
                format!("the Mcp-Method header is required (the body's method is {b:?})"),
                id,
            ));
        }
        _ => {}
    }
    match (&headers.name, &op.name) {
        (Some(h), Some(Some(b))) if h != b => Err(mismatch(
            format!("Mcp-Name header value {h:?} does not match body value {b:?}"),
            id,
        )),
        (Some(h), Some(None) | None) => Err(mismatch(
            format!("Mcp-Name header value {h:?} but the body names no tool, prompt or resource"),
            id,
        )),
        (None, Some(_))
            if headers.is_mirroring_revision()
                && op.method.as_deref().is_some_and(name_required) =>
        {
            Err(mismatch(
                "the Mcp-Name header is required for this method".into(),
                id,
            ))
        }
        _ => match (&headers.protocol_version, &op.protocol_version) {
            (Some(h), Some(b)) if h != b => Err(mismatch(
                format!("MCP-Protocol-Version header value {h:?} does not match body value {b:?}"),
                id,
            )),
            _ => Ok(()),
        },
    }
}

/// The `[[resources.operation_scopes]]` rules of one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationRules(Vec<OperationRule>);

impl OperationRules {
    /// The rules, in configuration order.
    pub fn new(rules: Vec<OperationRule>) -> Self {
        OperationRules(rules)
    }

    /// No rules: requests need no body inspection for scopes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes `operations` need together: every matching rule's (see the module doc for
    /// calls without a readable name).
    pub fn required(&self, messages: &Messages) -> BTreeSet<String> {
        let mut needed = BTreeSet::new();
        for op in &messages.operations {
            let Some(method) = op.method.as_deref() else {
                continue;
            };
            for rule in self.0.iter().filter(|r| r.method == method) {
                let applies = match (&rule.name, &op.name) {
                    (None, _) => true,
                    (Some(p), Some(Some(name))) => p.matches(name),
                    // No readable name: it may be any, so every rule of the method applies.
                    (Some(_), Some(None) | None) => true,
                };
                if applies {
                    needed.extend(rule.scopes.iter().cloned());
                }
            }
        }
        needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn pattern(s: &str) -> NamePattern {
        NamePattern::parse(s).unwrap()
    }

    #[test]
    fn name_patterns_match_only_what_they_say() {
        let cases: &[(&str, &str, bool)] = &[
            ("delete_*", "delete_note", true),
            ("delete_*", "delete_", true),
            ("delete_*", "Delete_note", false),
            ("delete_*", "undelete_note", false),
            ("delete_*", "delete", false),
            ("*_admin", "reset_admin", true),
            ("*_admin", "reset_admins", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("ab*ba", "aba", false),
            ("echo", "echo", true),
            ("echo", "echo2", false),
            ("*", "", true),
            ("*", "anything", true),
        ];
        for (p, name, want) in cases {
            assert_eq!(pattern(p).matches(name), *want, "{p:?} vs {name:?}");
        }
        assert!(NamePattern::parse("").is_err());
    }

    fn rules() -> OperationRules {
        OperationRules::new(vec![
            OperationRule {
                method: "tools/call".into(),
                name: Some(pattern("delete_*")),
                scopes: vec!["mcp:admin".into()],
            },
            OperationRule {
                method: "resources/read".into(),
                name: Some(pattern("secret://*")),
                scopes: vec!["mcp:secrets".into()],
            },
            OperationRule {
                method: "prompts/get".into(),
                name: None,
                scopes: vec!["mcp:prompts".into()],
            },
        ])
    }

    fn needed(body: &str) -> Result<Vec<String>, String> {
        Ok(rules()
            .required(&parse_body(body.as_bytes())?)
            .into_iter()
            .collect())
    }

    #[test]
    fn the_body_decides_which_scopes_a_call_needs() {
        type Case<'a> = (&'a str, Result<&'a [&'a str], ()>);
        let cases: &[Case] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
                Ok(&[]),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all"}}"#,
                Ok(&["mcp:admin"]),
            ),
            // Escapes are decoded as the MCP server will decode them.
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete\u005fall"}}"#,
                Ok(&["mcp:admin"]),
            ),
            // No readable name: every rule of the method applies.
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
                Ok(&["mcp:admin"]),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
                Ok(&["mcp:admin"]),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
                Ok(&["mcp:admin"]),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"secret://k"}}"#,
                Ok(&["mcp:secrets"]),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a","name":"secret://k"}}"#,
                Ok(&[]),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"x"}}"#,
                Ok(&["mcp:prompts"]),
            ),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, Ok(&[])),
            (r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, Ok(&[])),
            ("", Ok(&[])),
            // A batch needs what all its calls need.
            (
                r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_x"}}]"#,
                Ok(&["mcp:admin"]),
            ),
            // Duplicated members: parsers disagree on which wins, so the body is refused.
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"delete_x"}}"#,
                Err(()),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete_x"}}"#,
                Err(()),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"params":{"name":"delete_x"}}"#,
                Err(()),
            ),
            ("not json", Err(())),
            ("\u{feff}{\"method\":\"tools/call\"}", Err(())),
            ("42", Err(())),
        ];
        for (body, want) in cases {
            let got = needed(body);
            match want {
                Ok(scopes) => assert_eq!(
                    got.as_deref().map_err(|_| ()),
                    Ok(scopes
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .as_slice()),
                    "{body}"
                ),
                Err(()) => assert!(got.is_err(), "{body} must be refused, got {got:?}"),
            }
        }
    }

    fn mirrored(pairs: &[(&str, &str)]) -> Result<MirroredHeaders, String> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        MirroredHeaders::read(&h)
    }

    #[test]
    fn mirrored_headers_must_agree_with_the_body() {
        let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_all","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let legacy_call =
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_all"}}"#;
        let list = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;
        let read =
            r#"{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"file:///é"}}"#;
        let modern = ("MCP-Protocol-Version", "2026-07-28");
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            (
                call,
                &[
                    modern,
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "delete_all"),
                ],
                true,
            ),
            // The attack the rule exists for: a harmless header over a harmful body.
            (
                call,
                &[modern, ("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
                false,
            ),
            (
                call,
                &[
                    modern,
                    ("Mcp-Method", "tools/list"),
                    ("Mcp-Name", "delete_all"),
                ],
                false,
            ),
            (call, &[modern, ("Mcp-Method", "tools/call")], false),
            (call, &[modern, ("Mcp-Name", "delete_all")], false),
            (
                call,
                &[
                    ("MCP-Protocol-Version", "2026-08-01"),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "delete_all"),
                ],
                false,
            ),
            // Header values are case-sensitive.
            (
                call,
                &[
                    modern,
                    ("Mcp-Method", "Tools/Call"),
                    ("Mcp-Name", "delete_all"),
                ],
                false,
            ),
            (
                call,
                &[
                    modern,
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "=?base64?ZGVsZXRlX2FsbA==?="),
                ],
                true,
            ),
            (
                call,
                &[
                    modern,
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "=?base64?ZWNobw==?="),
                ],
                false,
            ),
            // A 2025 request needs no mirrored headers, but any it sends must agree.
            (legacy_call, &[("MCP-Protocol-Version", "2025-11-25")], true),
            (
                legacy_call,
                &[("MCP-Protocol-Version", "2025-11-25"), ("Mcp-Name", "echo")],
                false,
            ),
            (legacy_call, &[], true),
            // The version in the header and in the body's `_meta` must agree.
            (call, &[("MCP-Protocol-Version", "2025-11-25")], false),
            (list, &[modern, ("Mcp-Method", "tools/list")], true),
            (list, &[modern], false),
            (
                list,
                &[("Mcp-Method", "tools/list"), ("Mcp-Name", "x")],
                false,
            ),
            (
                read,
                &[
                    modern,
                    ("Mcp-Method", "resources/read"),
                    ("Mcp-Name", "=?base64?ZmlsZTovLy/DqQ==?="),
                ],
                true,
            ),
            (
                read,
                &[
                    modern,
                    ("Mcp-Method", "resources/read"),
                    ("Mcp-Name", "file:///e"),
                ],
                false,
            ),
            (
                r#"[{"method":"tools/list"}]"#,
                &[("Mcp-Method", "tools/list")],
                false,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
                &[("Mcp-Method", "tools/list")],
                false,
            ),
        ];
        for (body, pairs, ok) in cases {
            let headers = mirrored(pairs).unwrap();
            let ops = parse_body(body.as_bytes()).unwrap();
            let got = check_mirrored_headers(&headers, &ops);
            assert_eq!(got.is_ok(), *ok, "{body} with {pairs:?}: {got:?}");
            if let Err(m) = got {
                assert!(m.message.starts_with("Header mismatch: "), "{}", m.message);
            }
        }
    }

    #[test]
    fn unreadable_mirrored_headers_are_refused() {
        assert!(mirrored(&[("Mcp-Name", "=?base64?***?=")]).is_err());
        assert!(mirrored(&[("Mcp-Name", "=?base64?/w==?=")]).is_err()); // not UTF-8
        assert!(mirrored(&[("Mcp-Method", "a"), ("Mcp-Method", "b")]).is_err());
        assert_eq!(
            mirrored(&[("Mcp-Name", "plain")]).unwrap().name.as_deref(),
            Some("plain")
        );
    }

    #[test]
    fn only_dated_revisions_from_2026_07_28_require_mirroring() {
        for (v, want) in [
            ("2026-07-28", true),
            ("2027-03-01", true),
            ("2025-11-25", false),
            ("2026-07-28x", false),
            ("9999", false),
            ("DRAFT-2026-v1", false),
        ] {
            let h = MirroredHeaders {
                protocol_version: Some(v.into()),
                ..Default::default()
            };
            assert_eq!(h.is_mirroring_revision(), want, "{v}");
        }
    }
}

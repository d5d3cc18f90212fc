//! The gateway's MCP operation reader (crates/gateway/src/operations.rs; MCP 2026-07-28
//! "Standard request headers"): the JSON-RPC body, the mirrored `Mcp-Method` / `Mcp-Name` /
//! `MCP-Protocol-Version` headers and the per-operation scope rules, on any input.
//!
//! Input: three lines — the `Mcp-Method`, `Mcp-Name` and `MCP-Protocol-Version` values (an
//! empty line: header absent) — then the body. Invariants: nothing panics; when the headers are
//! accepted they say what the body says; a body the typed reader accepts is read the same way
//! by a generic JSON parser (no duplicated member slips through, whichever copy an MCP server
//! would take); a `tools/call` whose name matches `delete_*`, or has no readable name, always
//! needs the rule's scope.
#![no_main]

use cimdgate_gateway::operations::{
    MirroredHeaders, NamePattern, OperationRule, OperationRules, check_mirrored_headers,
    name_member, parse_body,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (Some(method), Some(name), Some(version), Some(body)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (h, v) in [("mcp-method", method), ("mcp-name", name), ("mcp-protocol-version", version)] {
        if v.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(v) {
            headers.insert(HeaderName::from_static(h), v);
        }
    }
    let Ok(messages) = parse_body(body) else {
        return;
    };
    // The typed reader refuses duplicated members; whatever it accepted, a last-wins generic
    // parser must read the same method and name.
    if !messages.batch
        && let [op] = messages.operations.as_slice()
        && let Ok(Value::Object(generic)) = serde_json::from_slice::<Value>(body)
    {
        let generic_method = generic.get("method").map(|m| match m {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        assert_eq!(op.method, generic_method, "method read two ways");
        if let Some(member) = op.method.as_deref().and_then(name_member) {
            let generic_name = generic
                .get("params")
                .and_then(|p| p.get(member))
                .and_then(Value::as_str)
                .map(str::to_owned);
            assert_eq!(op.name, Some(generic_name), "name read two ways");
        }
    }
    if let Ok(mirrored) = MirroredHeaders::read(&headers)
        && check_mirrored_headers(&mirrored, &messages).is_ok()
    {
        if let Some(m) = &mirrored.method {
            assert!(!messages.batch && messages.operations.len() == 1);
            assert_eq!(messages.operations[0].method.as_ref(), Some(m));
        }
        if let Some(n) = &mirrored.name {
            assert_eq!(messages.operations[0].name, Some(Some(n.clone())));
        }
    }
    let rules = OperationRules::new(vec![OperationRule {
        method: "tools/call".into(),
        name: Some(NamePattern::parse("delete_*").expect("a pattern")),
        scopes: vec!["admin".into()],
    }]);
    let needed = rules.required(&messages);
    for op in &messages.operations {
        if op.method.as_deref() == Some("tools/call") {
            let guarded = match &op.name {
                Some(Some(n)) => n.starts_with("delete_"),
                _ => true,
            };
            if guarded {
                assert!(needed.contains("admin"), "{op:?} escaped its rule");
            }
        }
    }
});

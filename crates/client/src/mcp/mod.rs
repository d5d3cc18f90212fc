//! The few MCP calls a smoke test needs, over Streamable HTTP, in either protocol era.
//!
//! [`McpSession::connect`] follows MCP 2026-07-28 "Versioning" and Streamable HTTP's
//! backward-compatibility rules: it first sends `server/discover` as a **modern** request
//! (per-request `_meta` with `io.modelcontextprotocol/protocolVersion`, `…/clientCapabilities`
//! and `…/clientInfo`, plus the mirrored [`headers`]). If the result's `supportedVersions`
//! lists 2026-07-28 the session is *stateless*: every later request carries the same `_meta`
//! and headers, with no `initialize` and no `Mcp-Session-Id`. Otherwise it falls back to the
//! **legacy** 2025-11-25 session (`initialize`, `notifications/initialized`, `Mcp-Session-Id`).
//! [`classify_discover`] holds the decision:
//!
//! | `server/discover` answer | era |
//! |---|---|
//! | 2xx, result whose `supportedVersions` has 2026-07-28 | modern |
//! | 2xx, anything else (no response, another result, a JSON-RPC error) | legacy |
//! | 400 with JSON-RPC -32022 whose `data.supported` lacks 2026-07-28 | legacy |
//! | 400 with -32020 / -32021 (or -32022 listing 2026-07-28) | error: a modern server refused the probe |
//! | 400 with an empty or unrecognised body, 404, 405, other 4xx | legacy |
//! | 401 / 403 | error (token refused; 403 `insufficient_scope` → [`ClientError::InsufficientScope`]) |
//! | 5xx | error |
//!
//! A response may come as JSON or as a short SSE stream; both are read. For real work use a
//! full MCP client (rmcp).

pub mod headers;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::ClientError;
use crate::challenge::parse_bearer;

/// The stateless protocol revision (per-request `_meta`, no `initialize`).
pub const MODERN_PROTOCOL_VERSION: &str = "2026-07-28";
/// The session-based revision offered in `initialize` when the server is legacy-only.
pub const LEGACY_PROTOCOL_VERSION: &str = "2025-11-25";
/// Protocol version offered in `initialize` (the server answers with the one it speaks).
pub const PROTOCOL_VERSION: &str = LEGACY_PROTOCOL_VERSION;

/// `_meta` key: the request's protocol version (2026-07-28 "Versioning").
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: the client's capabilities (required on every modern request).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the client's name and version (SHOULD on every modern request).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key of a modern result: the server's name and version.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// JSON-RPC `HeaderMismatch` (2026-07-28; -32001 in drafts).
pub const HEADER_MISMATCH: i64 = -32020;
/// JSON-RPC `MissingRequiredClientCapability` (2026-07-28).
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// JSON-RPC `UnsupportedProtocolVersion` (2026-07-28), `data: {supported, requested}`.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// Which protocol era a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28: stateless, every request self-describing.
    Modern,
    /// 2025-11-25 and earlier: `initialize` and an `Mcp-Session-Id`.
    Legacy,
}

/// What a `server/discover` probe showed ([`classify_discover`]).
#[derive(Debug, Clone, PartialEq)]
pub enum DiscoverOutcome {
    /// The server speaks 2026-07-28; the `server/discover` result.
    Modern(Value),
    /// A legacy server; why we think so.
    Legacy(String),
}

/// An MCP session: a stateless modern one, or an initialized legacy one.
#[derive(Debug)]
pub struct McpSession {
    http: reqwest::Client,
    url: String,
    token: SecretString,
    era: Era,
    session_id: Option<String>,
    protocol_version: String,
    next_id: u64,
    /// The server's `server/discover` result (modern) or `initialize` result (legacy).
    pub server_info: Value,
}

impl McpSession {
    /// Dual-era start: probe with a modern `server/discover`, fall back to `initialize`.
    pub async fn connect(
        http: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> Result<Self, ClientError> {
        const STEP: &str = "mcp server/discover";
        let mut s = McpSession::new(http, url, token, Era::Modern, MODERN_PROTOCOL_VERSION);
        let id = s.take_id();
        let body = s.body(id, "server/discover", json!({}));
        let (status, headers, text) = s
            .send(STEP, &body, Some(("server/discover", &body["params"])))
            .await?;
        if matches!(status.as_u16(), 401 | 403) {
            check_status(STEP, url, status, &headers, &text)?;
        }
        match classify_discover(status.as_u16(), &text, id) {
            Ok(DiscoverOutcome::Modern(result)) => {
                tracing::debug!(url, "MCP server speaks 2026-07-28: stateless session");
                s.server_info = result;
                Ok(s)
            }
            Ok(DiscoverOutcome::Legacy(why)) => {
                tracing::debug!(url, why, "MCP server is legacy: falling back to initialize");
                McpSession::initialize(http, url, token).await
            }
            Err(reason) => Err(ClientError::protocol(STEP, reason)),
        }
    }

    /// Legacy start (2025-11-25): `initialize`, then `notifications/initialized`.
    pub async fn initialize(
        http: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> Result<Self, ClientError> {
        let mut s = McpSession::new(http, url, token, Era::Legacy, LEGACY_PROTOCOL_VERSION);
        let result = s
            .request(
                "mcp initialize",
                "initialize",
                json!({
                    "protocolVersion": LEGACY_PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": client_info(),
                }),
            )
            .await?;
        if let Some(v) = result["protocolVersion"].as_str() {
            s.protocol_version = v.to_owned();
        }
        s.server_info = result;
        s.post(
            "mcp initialize",
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await?;
        Ok(s)
    }

    fn new(http: &reqwest::Client, url: &str, token: &str, era: Era, version: &str) -> Self {
        McpSession {
            http: http.clone(),
            url: url.to_owned(),
            token: token.to_owned().into(),
            era,
            session_id: None,
            protocol_version: version.to_owned(),
            next_id: 1,
            server_info: Value::Null,
        }
    }

    /// The era chosen.
    pub fn era(&self) -> Era {
        self.era
    }

    /// The protocol version in use: 2026-07-28 when modern, else what `initialize` agreed.
    pub fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    /// `"2026-07-28 stateless"` or `"2025-11-25 session"`: for progress output.
    pub fn describe(&self) -> String {
        match self.era {
            Era::Modern => format!("{} stateless", self.protocol_version),
            Era::Legacy => format!("{} session", self.protocol_version),
        }
    }

    /// The server's name, from `_meta.serverInfo` (modern) or `serverInfo` (legacy).
    pub fn server_name(&self) -> Option<&str> {
        self.server_info["_meta"][META_SERVER_INFO]["name"]
            .as_str()
            .or_else(|| self.server_info["serverInfo"]["name"].as_str())
    }

    /// `tools/call`; returns the result (`content`, `isError`, …). A tool error
    /// (`isError: true`) is returned as an error.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, ClientError> {
        let result = self
            .request(
                "mcp tools/call",
                "tools/call",
                json!({"name": name, "arguments": arguments}),
            )
            .await?;
        if result["isError"].as_bool() == Some(true) {
            return Err(ClientError::protocol(
                "mcp tools/call",
                format!("tool {name} failed: {result}"),
            ));
        }
        Ok(result)
    }

    /// The text of the first text content item of a tool result.
    pub fn first_text(result: &Value) -> Option<&str> {
        result["content"]
            .as_array()?
            .iter()
            .find_map(|c| c["text"].as_str())
    }

    /// Any request; returns its `result`. A JSON-RPC error, and (modern) a result that is not
    /// `resultType: "complete"` (this client cannot answer an `input_required`), are errors.
    pub async fn request(
        &mut self,
        step: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientError> {
        let id = self.take_id();
        let body = self.body(id, method, params);
        let text = match self.era {
            Era::Modern => {
                let (status, headers, text) = self
                    .send(step, &body, Some((method, &body["params"])))
                    .await?;
                check_status(step, &self.url, status, &headers, &text)?;
                text
            }
            Era::Legacy => self.post(step, &body).await?,
        };
        let message = find_response(&text, id).ok_or_else(|| {
            ClientError::protocol(
                step,
                format!("no JSON-RPC response with id {id} in {text:.300}"),
            )
        })?;
        if let Some(err) = message.get("error") {
            return Err(ClientError::protocol(
                step,
                format!("JSON-RPC error: {err}"),
            ));
        }
        let result = message["result"].clone();
        if let Some(kind) = result["resultType"].as_str()
            && kind != "complete"
        {
            return Err(ClientError::protocol(
                step,
                format!("result type {kind:?} is not supported by this client"),
            ));
        }
        Ok(result)
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The JSON-RPC request; a modern one gets the per-request `_meta`.
    fn body(&self, id: u64, method: &str, params: Value) -> Value {
        let params = match self.era {
            Era::Modern => with_request_meta(params, &self.protocol_version),
            Era::Legacy => params,
        };
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    /// POST and check the status (legacy requests and notifications).
    async fn post(&mut self, step: &'static str, body: &Value) -> Result<String, ClientError> {
        let (status, headers, text) = self.send(step, body, None).await?;
        check_status(step, &self.url, status, &headers, &text)?;
        Ok(text)
    }

    /// POST `body`; `modern` = `(method, params)` to mirror in the standard headers. Remembers
    /// a legacy session id.
    async fn send(
        &mut self,
        step: &'static str,
        body: &Value,
        modern: Option<(&str, &Value)>,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, String), ClientError> {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose_secret())
            .header("accept", "application/json, text/event-stream")
            .json(body);
        match modern {
            Some((method, params)) => {
                for (name, value) in
                    headers::standard_headers(&self.protocol_version, method, params)
                {
                    req = req.header(name, value);
                }
            }
            None => {
                req = req.header(headers::PROTOCOL_VERSION_HEADER, &self.protocol_version);
                if let Some(sid) = &self.session_id {
                    req = req.header("mcp-session-id", sid);
                }
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::http(step, &self.url, e))?;
        let status = resp.status();
        let resp_headers = resp.headers().clone();
        if self.era == Era::Legacy
            && let Some(sid) = resp_headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
        {
            self.session_id = Some(sid.to_owned());
        }
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::http(step, &self.url, e))?;
        Ok((status, resp_headers, text))
    }
}

/// `{"name": "cimdgate-client", "version": …}`.
fn client_info() -> Value {
    json!({"name": "cimdgate-client", "version": env!("CARGO_PKG_VERSION")})
}

/// `params` with the modern per-request `_meta` fields set (other `_meta` keys kept).
pub fn with_request_meta(params: Value, version: &str) -> Value {
    let mut params = match params {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(serde_json::Map::new());
    }
    if let Some(m) = meta.as_object_mut() {
        m.insert(META_PROTOCOL_VERSION.into(), json!(version));
        m.insert(META_CLIENT_CAPABILITIES.into(), json!({}));
        m.insert(META_CLIENT_INFO.into(), client_info());
    }
    Value::Object(params)
}

/// A non-2xx answer as an error: 403 `insufficient_scope` as
/// [`ClientError::InsufficientScope`] (so the caller can step up), anything else as a protocol
/// error quoting the body.
fn check_status(
    step: &'static str,
    url: &str,
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    text: &str,
) -> Result<(), ClientError> {
    if status.is_success() {
        return Ok(());
    }
    if status == reqwest::StatusCode::FORBIDDEN {
        let challenge = parse_bearer(
            headers
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        if let Some(c) = challenge
            && c.error.as_deref() == Some("insufficient_scope")
        {
            return Err(ClientError::InsufficientScope { step, challenge: c });
        }
    }
    Err(ClientError::protocol(
        step,
        format!("{url} answered {status}: {text:.300}"),
    ))
}

/// Decide the era from the answer to a modern `server/discover` with JSON-RPC `id` (the table
/// in the module docs). `Err` when the answer is neither a modern success nor a legacy sign.
/// 401/403 are not classified here: the caller reports them as the auth errors they are.
pub fn classify_discover(status: u16, body: &str, id: u64) -> Result<DiscoverOutcome, String> {
    let legacy = |why: &str| Ok(DiscoverOutcome::Legacy(why.to_owned()));
    match status {
        200..=299 => match find_response(body, id) {
            None => legacy("server/discover answered without a JSON-RPC response"),
            Some(msg) => match msg.get("error") {
                Some(err) => classify_error(err),
                None => {
                    let result = msg["result"].clone();
                    if lists_modern(&result["supportedVersions"]) {
                        Ok(DiscoverOutcome::Modern(result))
                    } else {
                        legacy("supportedVersions does not list 2026-07-28")
                    }
                }
            },
        },
        400 => {
            let err = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v.get("error").cloned());
            match err {
                Some(e) if is_modern_error(&e) => classify_error(&e),
                _ => legacy("400 without a modern JSON-RPC error"),
            }
        }
        401 | 403 => Err(format!(
            "the server refused the token ({status}): {body:.300}"
        )),
        404 | 405 => legacy("server/discover is not served (404/405)"),
        402 | 406..=499 => legacy("server/discover refused with an unrecognised 4xx"),
        _ => Err(format!("server/discover answered {status}: {body:.300}")),
    }
}

fn is_modern_error(err: &Value) -> bool {
    matches!(
        err["code"].as_i64(),
        Some(HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION)
    )
}

fn lists_modern(versions: &Value) -> bool {
    versions.as_array().is_some_and(|v| {
        v.iter()
            .any(|x| x.as_str() == Some(MODERN_PROTOCOL_VERSION))
    })
}

fn classify_error(err: &Value) -> Result<DiscoverOutcome, String> {
    match err["code"].as_i64() {
        Some(UNSUPPORTED_PROTOCOL_VERSION) if !lists_modern(&err["data"]["supported"]) => {
            Ok(DiscoverOutcome::Legacy(format!(
                "UnsupportedProtocolVersion: the server supports {}",
                err["data"]["supported"]
            )))
        }
        Some(
            HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION,
        ) => Err(format!(
            "the server speaks 2026-07-28 but refused server/discover: {err}"
        )),
        _ => Ok(DiscoverOutcome::Legacy(format!(
            "server/discover answered a JSON-RPC error: {err}"
        ))),
    }
}

/// Find the JSON-RPC response with `id` in a JSON body or an SSE stream (`data:` lines).
pub fn find_response(text: &str, id: u64) -> Option<Value> {
    let matches = |v: &Value| v["id"].as_u64() == Some(id);
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return matches(&v).then_some(v);
    }
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        } else if line.is_empty() && !data.is_empty() {
            if let Ok(v) = serde_json::from_str::<Value>(&data)
                && matches(&v)
            {
                return Some(v);
            }
            data.clear();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_found_in_json_or_sse() {
        let json = r#"{"jsonrpc":"2.0","id":2,"result":{"x":1}}"#;
        assert_eq!(find_response(json, 2).unwrap()["result"]["x"], 1);
        assert!(find_response(json, 3).is_none());
        let sse = "data: \n\nid: 0\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n\n\
                   event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"x\":1}}\n\n";
        assert_eq!(find_response(sse, 2).unwrap()["result"]["x"], 1);
    }

    #[test]
    fn modern_requests_carry_the_per_request_meta() {
        let p = with_request_meta(
            json!({"name": "echo", "_meta": {"progressToken": 7}}),
            MODERN_PROTOCOL_VERSION,
        );
        assert_eq!(p["name"], "echo");
        assert_eq!(p["_meta"]["progressToken"], 7);
        assert_eq!(p["_meta"][META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(p["_meta"][META_CLIENT_CAPABILITIES], json!({}));
        assert_eq!(p["_meta"][META_CLIENT_INFO]["name"], "cimdgate-client");
        let empty = with_request_meta(Value::Null, MODERN_PROTOCOL_VERSION);
        assert_eq!(empty["_meta"][META_PROTOCOL_VERSION], "2026-07-28");
    }

    fn rpc_error(code: i64, data: Value) -> String {
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "m", "data": data}})
            .to_string()
    }

    #[test]
    fn era_detection_table() {
        let modern = r#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2025-11-25","2026-07-28"],"capabilities":{}}}"#;
        let old_only = r#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2025-11-25"]}}"#;
        let sse_modern = format!("event: message\ndata: {modern}\n\n");
        let v22_old = rpc_error(
            -32022,
            json!({"supported": ["2025-11-25"], "requested": "2026-07-28"}),
        );
        let v22_new = rpc_error(
            -32022,
            json!({"supported": ["2026-07-28"], "requested": "2026-07-28"}),
        );
        let mismatch = rpc_error(-32020, Value::Null);
        let missing_cap = rpc_error(-32021, Value::Null);
        let not_found = rpc_error(-32601, Value::Null);
        // (status, body, Some(true) modern / Some(false) legacy / None error)
        let cases: &[(u16, &str, Option<bool>)] = &[
            (200, modern, Some(true)),
            (200, &sse_modern, Some(true)),
            (200, old_only, Some(false)),
            (200, "", Some(false)),
            (200, &not_found, Some(false)),
            (200, &v22_old, Some(false)),
            (400, &v22_old, Some(false)),
            (400, &v22_new, None),
            (400, &mismatch, None),
            (400, &missing_cap, None),
            (400, "Bad Request: Session ID is required", Some(false)),
            (400, "", Some(false)),
            (400, &not_found, Some(false)),
            (404, &not_found, Some(false)),
            (404, "Not Found", Some(false)),
            (405, "", Some(false)),
            (406, "", Some(false)),
            (401, "", None),
            (403, "", None),
            (500, "", None),
            (502, &v22_old, None),
        ];
        for (status, body, want) in cases {
            let got = classify_discover(*status, body, 1);
            let got = match &got {
                Ok(DiscoverOutcome::Modern(_)) => Some(true),
                Ok(DiscoverOutcome::Legacy(_)) => Some(false),
                Err(_) => None,
            };
            assert_eq!(got, *want, "{status} {body}");
        }
    }
}

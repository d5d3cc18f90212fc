//! The few MCP calls a smoke test needs, over Streamable HTTP (MCP 2025-11-25 "Transports"):
//! `initialize` + `notifications/initialized`, then `tools/call`, each a JSON-RPC POST with the
//! bearer token. A response may come as JSON or as a short SSE stream; both are read.
//! For real work use a full MCP client (rmcp).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::ClientError;

/// Protocol version offered in `initialize` (the server answers with the one it speaks).
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// An initialized MCP session.
#[derive(Debug)]
pub struct McpSession {
    http: reqwest::Client,
    url: String,
    token: SecretString,
    session_id: Option<String>,
    protocol_version: String,
    next_id: u64,
    /// The server's `initialize` result.
    pub server_info: Value,
}

impl McpSession {
    /// `initialize`, then `notifications/initialized`.
    pub async fn initialize(
        http: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> Result<Self, ClientError> {
        let mut s = McpSession {
            http: http.clone(),
            url: url.to_owned(),
            token: token.to_owned().into(),
            session_id: None,
            protocol_version: PROTOCOL_VERSION.to_owned(),
            next_id: 1,
            server_info: Value::Null,
        };
        let result = s
            .request(
                "mcp initialize",
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "cimdgate-client", "version": env!("CARGO_PKG_VERSION")},
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

    async fn request(
        &mut self,
        step: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let text = self.post(step, &body).await?;
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
        Ok(message["result"].clone())
    }

    async fn post(&mut self, step: &'static str, body: &Value) -> Result<String, ClientError> {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose_secret())
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", &self.protocol_version)
            .json(body);
        if let Some(sid) = &self.session_id {
            req = req.header("mcp-session-id", sid);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::http(step, &self.url, e))?;
        let status = resp.status();
        if let Some(sid) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session_id = Some(sid.to_owned());
        }
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::http(step, &self.url, e))?;
        if !status.is_success() {
            return Err(ClientError::protocol(
                step,
                format!("{} answered {status}: {text:.300}", self.url),
            ));
        }
        Ok(text)
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
}

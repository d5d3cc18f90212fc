//! Reverse proxy to an upstream MCP server over Streamable HTTP (MCP 2025-11-25, "Transports": POST
//! for client messages, GET for the server stream, DELETE to end a session; docs/architecture.md,
//! *Gateway*).
//!
//! - Response bodies — SSE included — are relayed chunk by chunk as they arrive, never buffered
//!   whole; request bodies are read up to [`GatewayConfig::max_body_bytes`] (413 with a JSON
//!   body beyond).
//! - `Mcp-Session-Id` (and every other end-to-end header) passes through both ways.
//! - Never forwarded upstream: the client's `Authorization` (MCP: "token passthrough" is
//!   forbidden), `Cookie` (the authorization server's session lives on this origin), hop-by-hop
//!   headers (RFC 9110 §7.6.1, plus any named in `Connection`), and client-sent identity headers.
//!   Added: the identity headers of [`crate::layer`]; the user's upstream-IdP access token only
//!   when the resource sets `forward_upstream_token`, from the [`UpstreamTokens`] provider — and
//!   when it has none for the user, the request is refused with 401 rather than sent without.
//! - Never relayed back: hop-by-hop headers and `Set-Cookie` (an upstream must not set cookies
//!   on the gateway's origin).
//! - Timeouts: connect ([`GatewayConfig::connect_timeout`]), response headers
//!   ([`GatewayConfig::response_timeout`]), then only an idle bound between body chunks
//!   ([`GatewayConfig::idle_timeout`]) — an SSE stream may last as long as it keeps talking.
//! - Upstream unreachable → 502 `{"error":"upstream_unavailable", …}` naming the upstream; no
//!   response headers in time → 504 `upstream_timeout`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONNECTION, COOKIE, HOST, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use url::Url;

use crate::config::GatewayConfig;
use crate::layer::{json_response, set_identity_headers};
use crate::verify::Verified;

/// Hop-by-hop headers (RFC 9110 §7.6.1 and the classic list), never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Supplies the user's access token at the upstream IdP, for resources that forward it.
#[async_trait::async_trait]
pub trait UpstreamTokens: Send + Sync {
    /// The upstream-IdP access token of the user `who`, if one is held (refreshed first when
    /// it has expired). `Ok(None)` turns the request away with 401 `invalid_token`: a resource
    /// that expects the user's IdP token must never be called without it. `Err(reason)`: the
    /// token store or the IdP cannot answer now (503; the reason is logged, not sent).
    async fn token_for(&self, who: &Verified) -> Result<Option<String>, String>;
}

/// Upstream-token forwarding for one resource: the provider (absent when the embedding
/// application gave none, which refuses every request) and the resource, for its challenge.
pub struct Forwarding {
    /// Where the tokens come from.
    pub tokens: Option<Arc<dyn UpstreamTokens>>,
    /// The resource the proxy serves, whose `WWW-Authenticate` challenge a refusal carries.
    pub resource: Arc<crate::ProtectedResource>,
}

/// The proxy for one resource.
pub struct Proxy {
    /// Resource path on the gateway (stripped before appending the rest to the upstream URL).
    path: String,
    upstream: Url,
    client: reqwest::Client,
    max_body_bytes: usize,
    response_timeout: std::time::Duration,
    forwarding: Option<Forwarding>,
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` the upstream gets: the gateway's public URL.
    public_proto: String,
    public_host: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("path", &self.path)
            .field("upstream", &self.upstream.as_str())
            .finish_non_exhaustive()
    }
}

/// The HTTP client for upstreams: no redirects, no proxy from the environment, the configured
/// connect timeout and idle (read) bound.
pub fn upstream_client(config: &GatewayConfig) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.idle_timeout)
        .build()
        .map_err(|e| format!("upstream HTTP client: {e}"))
}

impl Proxy {
    /// A proxy from gateway `path` to `upstream`.
    pub fn new(
        path: &str,
        upstream: Url,
        client: reqwest::Client,
        config: &GatewayConfig,
        forwarding: Option<Forwarding>,
    ) -> Self {
        Proxy {
            path: path.trim_end_matches('/').to_owned(),
            upstream,
            client,
            max_body_bytes: config.max_body_bytes,
            response_timeout: config.response_timeout,
            forwarding,
            public_proto: config.public_url.scheme().to_owned(),
            public_host: match (config.public_url.host_str(), config.public_url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                (None, _) => String::new(),
            },
        }
    }

    /// The upstream URL for a request path under this resource: the upstream's own path, then
    /// the rest of the request path, never anything outside the upstream path. The rest must pass
    /// [`check_rest_path`] (no dot segments, raw or percent-encoded, no backslash, no encoded
    /// slash), because the URL parser would otherwise resolve `..` and re-root the request onto
    /// another resource or anything else on the upstream's origin.
    pub(crate) fn upstream_url(&self, path: &str, query: Option<&str>) -> Result<Url, String> {
        let rest = path.strip_prefix(&self.path).unwrap_or("");
        let mut url = self.upstream.clone();
        if !rest.is_empty() && rest != "/" {
            check_rest_path(rest)?;
            let base = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base}{rest}"));
            // Belt and braces: whatever the parser did, the result stays under the base path.
            let under = url.path() == base
                || url
                    .path()
                    .strip_prefix(&base)
                    .is_some_and(|r| r.starts_with('/'));
            if !under {
                return Err(format!(
                    "the path {rest:?} leaves the upstream path {base:?}"
                ));
            }
        }
        url.set_query(query);
        Ok(url)
    }

    /// The 502 answer: the client is told the class of the failure only; the upstream's
    /// internal URL and the connection error stay in the log (the review found 502/504 bodies
    /// disclosing internal addresses).
    fn unavailable(&self, why: &str) -> Response<Body> {
        tracing::warn!(upstream = %self.upstream, error = %why, "upstream unavailable");
        json_response(
            StatusCode::BAD_GATEWAY,
            &json!({"error": "upstream_unavailable",
                    "error_description": "the MCP server behind this resource is unavailable; \
                                          try again later"}),
        )
    }

    /// Forward one request (behind the resource layer, which put [`Verified`] in its
    /// extensions) and relay the response.
    pub async fn forward(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let Some(who) = parts.extensions.get::<Verified>().cloned() else {
            // Only reachable if mounted without the resource layer: refuse, never forward.
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": "server_error",
                        "error_description": "proxy mounted without the resource layer"}),
            );
        };
        let body = match http_body_util::Limited::new(body, self.max_body_bytes)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &json!({"error": "request_too_large",
                            "error_description": format!("the request body is larger than {} bytes",
                                                         self.max_body_bytes)}),
                );
            }
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "invalid_request",
                            "error_description": format!("cannot read the request body: {e}")}),
                );
            }
        };
        let mut headers = request_headers(&parts.headers);
        set_identity_headers(&mut headers, &who);
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        set_forwarded_headers(&mut headers, peer, &self.public_proto, &self.public_host);
        if let Some(f) = &self.forwarding {
            let token = match &f.tokens {
                Some(tokens) => match tokens.token_for(&who).await {
                    Ok(t) => t,
                    Err(why) => {
                        return f.resource.deny(&crate::layer::Denial::Unavailable(format!(
                            "upstream identity-provider token: {why}"
                        )));
                    }
                },
                None => None,
            };
            let Some(v) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
            else {
                return f.resource.deny(&crate::layer::Denial::InvalidToken(
                    "this resource needs your sign-in at the upstream identity provider, and \
                     it has expired or was revoked; sign in again"
                        .into(),
                ));
            };
            headers.insert(AUTHORIZATION, v);
        }
        let url = match self.upstream_url(parts.uri.path(), parts.uri.query()) {
            Ok(url) => url,
            Err(why) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "invalid_request", "error_description": why}),
                );
            }
        };
        let send = self
            .client
            .request(parts.method, url)
            .headers(headers)
            .body(body)
            .send();
        let started = std::time::Instant::now();
        let sent = tokio::time::timeout(self.response_timeout, send).await;
        crate::metrics::upstream_duration(started.elapsed());
        let resp = match sent {
            Err(_) => {
                tracing::warn!(upstream = %self.upstream, "upstream did not answer in time");
                return json_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    &json!({"error": "upstream_timeout",
                            "error_description": format!(
                                "the MCP server behind this resource did not answer within {} s",
                                self.response_timeout.as_secs())}),
                );
            }
            Ok(Err(e)) => return self.unavailable(&error_chain(&e)),
            Ok(Ok(r)) => r,
        };
        let mut out = Response::builder().status(resp.status());
        if let Some(h) = out.headers_mut() {
            *h = response_headers(resp.headers());
        }
        let upstream = self.upstream.clone();
        let stream = futures_util::StreamExt::inspect(resp.bytes_stream(), move |r| {
            if let Err(e) = r {
                tracing::debug!(upstream = %upstream, error = %e, "upstream body ended early");
            }
        });
        out.body(Body::from_stream(stream))
            .unwrap_or_else(|e| self.unavailable(&e.to_string()))
    }
}

/// `e` and its sources, `: `-joined (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Names listed in `Connection` (RFC 9110 §7.6.1), lower-case.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

fn is_hop_by_hop(name: &HeaderName, listed: &[HeaderName]) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || listed.contains(name)
}

/// Headers to send upstream (identity headers are set by the caller afterwards).
pub fn request_headers(incoming: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len());
    for (name, value) in incoming {
        if is_hop_by_hop(name, &listed)
            || name == AUTHORIZATION
            || name == COOKIE
            || name == HOST
            || name == axum::http::header::CONTENT_LENGTH
            || is_gateway_asserted(name)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Headers whose values an upstream may take as the gateway's word, so a client never gets to
/// send them (review finding M5): any name with `_` (CGI-style servers map `X_Forwarded_User`
/// and `X-Forwarded-User` to the same variable), `Forwarded` (RFC 7239), every `X-Forwarded-*`,
/// `X-Real-IP`, and the `X-Auth-Request-*` family of other auth proxies. The gateway sets the
/// identity headers and the forwarding headers itself.
pub fn is_gateway_asserted(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.contains('_')
        || n == "forwarded"
        || n == "x-real-ip"
        || n.starts_with("x-forwarded-")
        || n.starts_with("x-auth-request-")
}

/// `X-Forwarded-For` (the client's address as the gateway saw it), `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (the gateway's public URL).
pub fn set_forwarded_headers(
    headers: &mut HeaderMap,
    peer: Option<std::net::IpAddr>,
    proto: &str,
    host: &str,
) {
    if let Some(ip) = peer
        && let Ok(v) = HeaderValue::from_str(&ip.to_string())
    {
        headers.insert("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_str(proto) {
        headers.insert("x-forwarded-proto", v);
    }
    if let Ok(v) = HeaderValue::from_str(host)
        && !host.is_empty()
    {
        headers.insert("x-forwarded-host", v);
    }
}

/// Headers to relay back to the client.
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if is_hop_by_hop(name, &listed) || name == SET_COOKIE {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The rest of a request path below a resource may not climb out of it: each segment is refused
/// when it is a dot segment (`.`, `..`, also percent-encoded in any case — `%2e`, `.%2E` — and with
/// a `;` parameter such as `..;`, which some servers treat as `..`), and the whole when it holds a
/// backslash or an encoded slash or backslash (`%2f`, `%5c`), which servers may decode into a
/// separator (RFC 3986 §5.2.4 dot-segment removal; WHATWG URL treats `\` as `/`).
pub fn check_rest_path(rest: &str) -> Result<(), String> {
    // The URL parser drops tab, LF and CR before it reads the path (WHATWG URL), so
    // `.\n.;` would pass the segment check below and become `..;` upstream (found by the
    // `gateway_path` fuzz target); no control character is forwarded at all.
    if rest.bytes().any(|b| b.is_ascii_control()) {
        return Err(format!(
            "the path {rest:?} holds a control character, which is not forwarded"
        ));
    }
    let lower = rest.to_ascii_lowercase();
    if rest.contains('\\') || lower.contains("%5c") || lower.contains("%2f") {
        return Err(format!(
            "the path {rest:?} holds a backslash or an encoded slash, which is not forwarded"
        ));
    }
    for segment in lower.split('/') {
        // `%3b` too: an upstream that decodes before dropping `;` parameters reads
        // `%2e%2e%3bx` as `..;x` (found by the `gateway_path` fuzz target).
        let segment = segment.replace("%3b", ";");
        let name = segment.split(';').next().unwrap_or("").replace("%2e", ".");
        if name == "." || name == ".." {
            return Err(format!(
                "the path {rest:?} holds a dot segment ({segment:?}), which is not forwarded"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_hop_by_hop_headers_are_not_forwarded() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer secret"),
            ("cookie", "__Host-session=x"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("host", "gw"),
            ("mcp-session-id", "abc"),
            ("accept", "text/event-stream"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let out = request_headers(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["mcp-session-id", "accept"]);
    }

    /// Every spelling of a header the upstream could take as the gateway's word is dropped
    /// (review finding M5); ordinary headers pass.
    #[test]
    fn client_sent_identity_and_forwarding_headers_never_reach_the_upstream() {
        let dropped = [
            "X-Forwarded-User",
            "X_Forwarded_User",
            "x-forwarded-client-id",
            "X-Forwarded-Scopes",
            "X-Forwarded-Token-Source",
            "X-Forwarded-For",
            "X-Forwarded-Host",
            "X-Forwarded-Proto",
            "X-Forwarded-Email",
            "X-Forwarded-Groups",
            "X-Forwarded-Preferred-Username",
            "Forwarded",
            "X-Real-IP",
            "X-Auth-Request-User",
            "Remote_User",
        ];
        let mut h = HeaderMap::new();
        for name in dropped {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("admin"),
            );
        }
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("mcp-session-id", HeaderValue::from_static("s1"));
        let out = request_headers(&h);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.contains_key("content-type") && out.contains_key("mcp-session-id"));
        let mut out = out;
        set_forwarded_headers(
            &mut out,
            Some("192.0.2.7".parse().unwrap()),
            "https",
            "gw.example:8443",
        );
        assert_eq!(out["x-forwarded-for"], "192.0.2.7");
        assert_eq!(out["x-forwarded-proto"], "https");
        assert_eq!(out["x-forwarded-host"], "gw.example:8443");
    }

    #[test]
    fn set_cookie_is_not_relayed_but_session_id_is() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("a=b"));
        h.append("mcp-session-id", HeaderValue::from_static("abc"));
        h.append("transfer-encoding", HeaderValue::from_static("chunked"));
        let out = response_headers(&h);
        assert_eq!(out.len(), 1);
        assert_eq!(out["mcp-session-id"], "abc");
    }

    #[test]
    fn upstream_url_keeps_the_upstream_path_and_appends_the_rest() {
        let cfg = GatewayConfig::new(Url::parse("http://gw/").unwrap(), vec![]);
        let p = Proxy::new(
            "/mcp",
            Url::parse("http://up:9/base/mcp").unwrap(),
            reqwest::Client::new(),
            &cfg,
            None,
        );
        assert_eq!(
            p.upstream_url("/mcp", None).unwrap().as_str(),
            "http://up:9/base/mcp"
        );
        assert_eq!(
            p.upstream_url("/mcp/x", Some("a=1")).unwrap().as_str(),
            "http://up:9/base/mcp/x?a=1"
        );
    }

    /// Every way a client path could climb out of the resource's upstream path is refused; the
    /// ordinary paths below it are forwarded.
    #[test]
    fn paths_that_would_leave_the_upstream_base_are_refused() {
        let cfg = GatewayConfig::new(Url::parse("http://gw/").unwrap(), vec![]);
        let p = Proxy::new(
            "/a",
            Url::parse("http://up:9/a").unwrap(),
            reqwest::Client::new(),
            &cfg,
            None,
        );
        let refused = [
            "/a/../b",
            "/a/..",
            "/a/./x",
            "/a/%2e%2e/b",
            "/a/%2E%2E/b",
            "/a/.%2E/b",
            "/a/%2e./b",
            "/a/%2e",
            "/a/x/../../b",
            "/a/..;/b",
            "/a/..;x=1/b",
            "/a/..\\b",
            "/a/%5c..%5cb",
            "/a/%2F..%2Fb",
            "/a/x%2fy",
            // The URL parser drops tab, LF and CR: these would read `..;` / `..` upstream.
            "/a/x/\n..;/\n..;/b",
            "/a/.\n.;/b",
            "/a/.\t./b",
            "/a/\r..\r/b",
            "/a/x\u{0}y",
            // An encoded `;` after encoded dots: `..;x` once decoded.
            "/a/%2e%2e%3bx/b",
            "/a/..%3B/b",
            "/a/.%3b/b",
        ];
        for path in refused {
            assert!(
                p.upstream_url(path, None).is_err(),
                "{path} must be refused"
            );
        }
        let forwarded = [
            ("/a/x", "http://up:9/a/x"),
            ("/a/x/y.json", "http://up:9/a/x/y.json"),
            ("/a/.well-known/x", "http://up:9/a/.well-known/x"),
            ("/a/...", "http://up:9/a/..."),
            ("/a/x..y", "http://up:9/a/x..y"),
            ("/a/%20", "http://up:9/a/%20"),
        ];
        for (path, want) in forwarded {
            assert_eq!(p.upstream_url(path, None).unwrap().as_str(), want, "{path}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::sync::LazyLock;

        /// One proxy for every case (building an HTTP client per case would dominate the run).
        static PROXY: LazyLock<Proxy> = LazyLock::new(|| {
            let cfg = GatewayConfig::new(Url::parse("http://gw/").unwrap(), vec![]);
            Proxy::new(
                "/a",
                Url::parse("http://up:9/base/mcp").unwrap(),
                reqwest::Client::new(),
                &cfg,
                None,
            )
        });

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(5000))]

            /// Whatever a client appends to the resource path, the forwarded URL stays on the
            /// upstream's origin and under its base path — also after the upstream
            /// percent-decodes it and ignores `;` parameters — or the request is refused.
            #[test]
            fn forwarded_paths_never_leave_the_base_path(
                rest in "(/|\\.|%|2|e|E|f|F|5|c|C|;|\\\\|a|\\?|#| ){0,16}"
            ) {
                let Ok(url) = PROXY.upstream_url(&format!("/a/{rest}"), None) else {
                    return Ok(());
                };
                prop_assert_eq!(url.origin().ascii_serialization(), "http://up:9");
                let decoded = percent_encoding::percent_decode_str(url.path())
                    .decode_utf8_lossy()
                    .replace('\\', "/");
                prop_assert!(
                    decoded == "/base/mcp" || decoded.starts_with("/base/mcp/"),
                    "{rest:?} → {url}"
                );
                for segment in decoded.split('/') {
                    let name = segment.split(';').next().unwrap_or("");
                    prop_assert!(name != "." && name != "..", "{rest:?} → {url} has a dot segment");
                }
            }
        }
    }
}

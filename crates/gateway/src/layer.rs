//! The resource-server layer: a tower [`Layer`] that admits a request only with a valid bearer
//! token for this resource, usable in front of any axum route or rmcp `StreamableHttpService`.
//!
//! - RFC 9728 §3: [`ProtectedResource::metadata`] is the Protected Resource Metadata document
//!   (`resource`, `authorization_servers`, `scopes_supported`, `bearer_methods_supported`),
//!   served by [`metadata_routes`] at `/.well-known/oauth-protected-resource{path}`, and at the
//!   root too when the gateway has exactly one resource (with several, a root document would
//!   name one resource for all of them and send clients to the wrong audience, so there is none;
//!   clients find each resource's document from its challenge or by path insertion).
//! - RFC 9728 §5.1 + RFC 6750 §3: no token → 401 `WWW-Authenticate: Bearer
//!   resource_metadata="…"[, scope="…"]`; a token that fails → the same plus
//!   `error="invalid_token", error_description="…"`; missing scope → 403
//!   `error="insufficient_scope"` (RFC 6750 §3.1; MCP 2025-11-25 "Scope Challenge Handling").
//! - RFC 6750 §2: only the `Authorization` header is read (`bearer_methods_supported:
//!   ["header"]`); a token in the query or body is not looked at.
//! - The verified identity goes into the request extensions as [`Verified`] and, for upstreams
//!   that read headers, as `X-Forwarded-User`, `-Client-Id`, `-Scopes`, `-Token-Source`; the
//!   same headers sent by the client are removed first, so they cannot be spoofed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};
use tower::{Layer, Service};

use crate::config::{GatewayConfig, ResourceSpec, metadata_path};
use crate::operations::{
    HEADER_MISMATCH, MirroredHeaders, OperationRules, PARSE_ERROR, check_mirrored_headers,
    parse_body,
};
use crate::verify::{Verified, Verifier, VerifyError};

/// `X-Forwarded-User`: the verified `sub`.
pub const X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
/// `X-Forwarded-Client-Id`: the OAuth client the token was issued to.
pub const X_FORWARDED_CLIENT_ID: HeaderName = HeaderName::from_static("x-forwarded-client-id");
/// `X-Forwarded-Scopes`: granted scopes, space-separated.
pub const X_FORWARDED_SCOPES: HeaderName = HeaderName::from_static("x-forwarded-scopes");
/// `X-Forwarded-Token-Source`: which token source vouched.
pub const X_FORWARDED_TOKEN_SOURCE: HeaderName =
    HeaderName::from_static("x-forwarded-token-source");

/// Every identity header the gateway sets (and strips from client requests).
pub const IDENTITY_HEADERS: [HeaderName; 4] = [
    X_FORWARDED_USER,
    X_FORWARDED_CLIENT_ID,
    X_FORWARDED_SCOPES,
    X_FORWARDED_TOKEN_SOURCE,
];

/// One protected resource: its identifier, metadata and access rule.
pub struct ProtectedResource {
    /// Path on the gateway.
    pub path: String,
    /// Resource identifier (the token `aud`).
    pub resource_id: String,
    /// URL of its RFC 9728 metadata (sent in challenges).
    pub metadata_url: String,
    /// Scopes a token must carry for any request.
    pub required_scopes: Vec<String>,
    /// Scopes particular MCP operations need on top (`[[resources.operation_scopes]]`).
    pub operations: OperationRules,
    /// Origins whose pages may call this resource besides the gateway's own
    /// (`[[resources]] allowed_origins`; `*` allows any).
    pub allowed_origins: Vec<String>,
    /// The gateway's own origin (`public_url`'s), always allowed.
    own_origin: String,
    /// `public_url` is on loopback: then any loopback origin (`localhost`, `127.0.0.1`,
    /// `[::1]`, any port) is the same machine's and allowed (MCP's localhost rule).
    loopback: bool,
    /// Largest request body (a larger `Content-Length` is refused with 413 before the inner
    /// service runs; services that stream enforce the same bound while reading).
    pub max_body_bytes: usize,
    metadata: Bytes,
    verifier: Arc<Verifier>,
}

impl std::fmt::Debug for ProtectedResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectedResource")
            .field("resource_id", &self.resource_id)
            .field("required_scopes", &self.required_scopes)
            .finish_non_exhaustive()
    }
}

/// Why a request is turned away: renders the RFC 6750 §3 challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No bearer token: 401 without an error code.
    NoToken,
    /// A token was sent and failed: 401 `invalid_token`.
    InvalidToken(String),
    /// Valid token without the scopes this request needs: 403 `insufficient_scope`, the
    /// challenge naming every scope the operation needs (MCP "Scope Challenge Handling": all of
    /// them in one challenge; accumulating them with earlier grants is the client's part and
    /// the authorization server's, SEP-2350).
    InsufficientScope(Vec<String>),
    /// Mirrored MCP headers that disagree with the body, or a body the per-operation rules
    /// cannot read: 400 with a JSON-RPC error (`code`, `message`, the request `id`).
    BadRequest {
        /// JSON-RPC error code (`-32020` HeaderMismatch, `-32700` parse error).
        code: i64,
        /// What is wrong.
        message: String,
        /// The request's id, when the body had one.
        id: Option<Value>,
    },
    /// Body larger than allowed: 413.
    TooLarge,
    /// An `Origin` header that is neither the gateway's own origin nor one the resource allows:
    /// 403 (MCP "Transports": servers MUST refuse an invalid `Origin`, DNS-rebinding defence).
    ForbiddenOrigin(String),
    /// Verification could not run (store down): 503.
    Unavailable(String),
}

impl ProtectedResource {
    /// Describe `spec` on a gateway with `config`, verifying with `verifier`.
    pub fn new(config: &GatewayConfig, spec: &ResourceSpec, verifier: Arc<Verifier>) -> Self {
        let resource_id = config.resource_id(&spec.path);
        let doc = json!({
            "resource": resource_id,
            "authorization_servers": config.authorization_servers,
            "scopes_supported": spec.scopes,
            "bearer_methods_supported": ["header"],
        });
        ProtectedResource {
            path: spec.path.clone(),
            metadata_url: config.metadata_url(&spec.path),
            resource_id,
            required_scopes: spec.required_scopes.clone(),
            operations: spec.operations.clone(),
            allowed_origins: spec.allowed_origins.clone(),
            own_origin: config.public_url.origin().ascii_serialization(),
            loopback: is_loopback_url(&config.public_url),
            max_body_bytes: config.max_body_bytes,
            metadata: Bytes::from(doc.to_string()),
            verifier,
        }
    }

    /// The RFC 9728 metadata document.
    pub fn metadata(&self) -> Value {
        serde_json::from_slice(&self.metadata).unwrap_or(Value::Null)
    }

    /// A tower layer enforcing this resource's access rule.
    pub fn layer(self: &Arc<Self>) -> ResourceLayer {
        ResourceLayer {
            resource: self.clone(),
        }
    }

    /// `Origin`, when present, must be the gateway's own or one the resource allows (exact,
    /// ASCII case-insensitive; `null` and unparsable values are refused).
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), Denial> {
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        let allowed = origin.eq_ignore_ascii_case(&self.own_origin)
            || (self.loopback
                && url::Url::parse(origin).is_ok_and(|u| {
                    u.origin()
                        .ascii_serialization()
                        .eq_ignore_ascii_case(origin)
                        && is_loopback_url(&u)
                }))
            || self
                .allowed_origins
                .iter()
                .any(|o| o == "*" || o.eq_ignore_ascii_case(origin));
        if allowed {
            Ok(())
        } else {
            Err(Denial::ForbiddenOrigin(quotable(origin)))
        }
    }

    /// Decide on a request's headers: the verified identity, or why not.
    pub async fn check(&self, headers: &HeaderMap) -> Result<Arc<Verified>, Denial> {
        self.check_origin(headers)?;
        let token = bearer_token(headers).ok_or(Denial::NoToken)?;
        let token = token.map_err(Denial::InvalidToken)?;
        let verified = self
            .verifier
            .verify(token, &self.resource_id)
            .await
            .map_err(|e| match e {
                VerifyError::Invalid(s) => Denial::InvalidToken(s),
                VerifyError::Unavailable(s) => Denial::Unavailable(s),
            })?;
        if !verified.has_scopes(&self.required_scopes) {
            return Err(Denial::InsufficientScope(self.required_scopes.clone()));
        }
        let too_large = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body_bytes as u64);
        if too_large {
            return Err(Denial::TooLarge);
        }
        Ok(verified)
    }

    /// The MCP operation checks, after the token's (see [`crate::operations`]): mirrored
    /// headers agree with the body, and the token carries the scopes the operation needs. The
    /// body is read (up to [`Self::max_body_bytes`]) only when there are rules or mirrored
    /// headers to check; the request goes on with the same bytes.
    pub async fn check_operation(
        &self,
        req: Request<Body>,
        who: &Verified,
    ) -> Result<Request<Body>, Denial> {
        let bad = |code: i64, message: String, id: Option<Value>| Denial::BadRequest {
            code,
            message,
            id,
        };
        let mirrored = MirroredHeaders::read(req.headers())
            .map_err(|why| bad(HEADER_MISMATCH, format!("Header mismatch: {why}"), None))?;
        if self.operations.is_empty() && !mirrored.need_checking() {
            return Ok(req);
        }
        let (parts, body) = req.into_parts();
        let bytes = match http_body_util::BodyExt::collect(http_body_util::Limited::new(
            body,
            self.max_body_bytes,
        ))
        .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(Denial::TooLarge),
            Err(e) => {
                return Err(bad(
                    PARSE_ERROR,
                    format!("cannot read the request body: {e}"),
                    None,
                ));
            }
        };
        let messages = match parse_body(&bytes) {
            Ok(m) => m,
            // Without rules an unreadable body is the MCP server's to answer — unless headers
            // claim an operation the body cannot be checked against.
            Err(_)
                if self.operations.is_empty()
                    && mirrored.method.is_none()
                    && mirrored.name.is_none() =>
            {
                return Ok(Request::from_parts(parts, Body::from(bytes)));
            }
            Err(why) => return Err(bad(PARSE_ERROR, why, None)),
        };
        check_mirrored_headers(&mirrored, &messages)
            .map_err(|m| bad(HEADER_MISMATCH, m.message, m.id))?;
        let needed = self.operations.required(&messages);
        if needed.iter().any(|s| !who.scopes.contains(s)) {
            let mut all: Vec<String> = self.required_scopes.clone();
            all.extend(
                needed
                    .into_iter()
                    .filter(|s| !self.required_scopes.contains(s)),
            );
            return Err(Denial::InsufficientScope(all));
        }
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }

    /// The `WWW-Authenticate` value for a 401 (the resource's required scopes) or a 403 with
    /// `scopes` (what the refused operation needs).
    pub fn challenge(&self, error: Option<(&str, &str)>) -> String {
        self.challenge_with_scopes(error, &self.required_scopes)
    }

    fn challenge_with_scopes(&self, error: Option<(&str, &str)>, scopes: &[String]) -> String {
        let mut c = format!("Bearer resource_metadata=\"{}\"", self.metadata_url);
        if !scopes.is_empty() {
            c.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
        }
        if let Some((code, description)) = error {
            c.push_str(&format!(
                ", error=\"{code}\", error_description=\"{}\"",
                quotable(description)
            ));
        }
        c
    }

    /// The response for a denial.
    pub fn deny(&self, denial: &Denial) -> Response<Body> {
        let (status, challenge, body) = match denial {
            Denial::NoToken => (
                StatusCode::UNAUTHORIZED,
                Some(self.challenge(None)),
                json!({"error": "unauthorized",
                       "error_description": "a bearer token is required (see WWW-Authenticate)"}),
            ),
            Denial::InvalidToken(why) => {
                // The same text in the header and the body.
                let why = quotable(why);
                (
                    StatusCode::UNAUTHORIZED,
                    Some(self.challenge(Some(("invalid_token", &why)))),
                    json!({"error": "invalid_token", "error_description": why}),
                )
            }
            Denial::InsufficientScope(needed) => {
                let why = format!("this request requires scope \"{}\"", needed.join(" "));
                (
                    StatusCode::FORBIDDEN,
                    Some(self.challenge_with_scopes(Some(("insufficient_scope", &why)), needed)),
                    json!({"error": "insufficient_scope", "error_description": why}),
                )
            }
            Denial::ForbiddenOrigin(origin) => (
                StatusCode::FORBIDDEN,
                None,
                json!({"error": "forbidden_origin",
                       "error_description": format!(
                           "requests from pages on {origin} are not allowed for this resource")}),
            ),
            Denial::BadRequest { code, message, id } => (
                StatusCode::BAD_REQUEST,
                None,
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
            ),
            Denial::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                json!({"error": "request_too_large",
                       "error_description": format!("the request body is larger than {} bytes",
                                                    self.max_body_bytes)}),
            ),
            Denial::Unavailable(why) => {
                tracing::warn!(resource = %self.resource_id, error = %why, "token check unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    json!({"error": "temporarily_unavailable",
                           "error_description": "the token cannot be checked right now"}),
                )
            }
        };
        let mut resp = json_response(status, &body);
        if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(WWW_AUTHENTICATE, c);
        }
        resp
    }

    fn metadata_response(&self) -> Response<Body> {
        let mut resp = Response::new(Body::from(self.metadata.clone()));
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(
            "cache-control",
            HeaderValue::from_static("public, max-age=300"),
        );
        // Public metadata: browser-based MCP clients read it cross-origin.
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        resp
    }
}

/// `http(s)://localhost`, `127.0.0.1` or `[::1]`, any port.
fn is_loopback_url(u: &url::Url) -> bool {
    matches!(u.scheme(), "http" | "https")
        && match u.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            None => false,
        }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

/// An `error_description` safe inside a quoted-string (RFC 6750 §3: `%x20-21 / %x23-5B /
/// %x5D-7E`).
fn quotable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .take(200)
        .collect()
}

/// The bearer token of the `Authorization` header (RFC 6750 §2.1): `None` without a Bearer
/// header; `Some(Err)` when the header is present but unusable.
pub fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, String>> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let first = all.next()?;
    let value = match first.to_str() {
        Ok(v) => v,
        Err(_) => return Some(Err("the Authorization header is not ASCII".into())),
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    if all.next().is_some() {
        return Some(Err("more than one Authorization header".into()));
    }
    let token = rest.trim();
    if token.is_empty() || token.contains(' ') {
        return Some(Err("the bearer token is empty or malformed".into()));
    }
    Some(Ok(token))
}

/// Replace the identity headers with the ones `who` warrants.
pub fn set_identity_headers(headers: &mut HeaderMap, who: &Verified) {
    for h in &IDENTITY_HEADERS {
        headers.remove(h);
    }
    let mut put = |name: HeaderName, value: &str| {
        headers.insert(name, header_value(value));
    };
    put(X_FORWARDED_USER, &who.subject);
    if let Some(c) = &who.client_id {
        put(X_FORWARDED_CLIENT_ID, c);
    }
    put(X_FORWARDED_SCOPES, &who.scopes.join(" "));
    put(X_FORWARDED_TOKEN_SOURCE, &who.token_source);
}

/// A header value; anything outside visible ASCII is percent-encoded.
fn header_value(s: &str) -> HeaderValue {
    if let Ok(v) = HeaderValue::from_str(s)
        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return v;
    }
    let enc: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
    HeaderValue::from_str(&enc).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Routes serving each resource's RFC 9728 metadata (see the module doc for the root).
pub fn metadata_routes(resources: &[Arc<ProtectedResource>]) -> Router {
    let mut router = Router::new();
    for r in resources {
        let r2 = r.clone();
        router = router.route(
            &metadata_path(&r.path),
            get(move || async move { r2.metadata_response() }),
        );
    }
    if let [only] = resources
        && metadata_path(&only.path) != metadata_path("/")
    {
        let r = only.clone();
        router = router.route(
            &metadata_path("/"),
            get(move || async move { r.metadata_response() }),
        );
    }
    router
}

/// Tower layer: see [`ProtectedResource::layer`].
#[derive(Clone, Debug)]
pub struct ResourceLayer {
    resource: Arc<ProtectedResource>,
}

impl<S> Layer<S> for ResourceLayer {
    type Service = RequireToken<S>;
    fn layer(&self, inner: S) -> RequireToken<S> {
        RequireToken {
            inner,
            resource: self.resource.clone(),
        }
    }
}

/// The service built by [`ResourceLayer`].
#[derive(Clone, Debug)]
pub struct RequireToken<S> {
    inner: S,
    resource: Arc<ProtectedResource>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ResBody> Service<Request<Body>> for RequireToken<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // The clone is not ready; keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let resource = self.resource.clone();
        Box::pin(async move {
            match resource.check(req.headers()).await {
                Ok(who) => {
                    req = match resource.check_operation(req, &who).await {
                        Ok(req) => req,
                        Err(denial) => return Ok(resource.deny(&denial)),
                    };
                    set_identity_headers(req.headers_mut(), &who);
                    req.extensions_mut().insert((*who).clone());
                    inner.call(req).await.map(|r| r.map(Body::new))
                }
                Err(denial) => Ok(resource.deny(&denial)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in auth {
            h.append(AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn bearer_token_comes_only_from_a_bearer_authorization_header() {
        assert_eq!(bearer_token(&headers(&[])), None);
        assert_eq!(bearer_token(&headers(&["Basic abc"])), None);
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Some(Ok("abc")));
        assert_eq!(bearer_token(&headers(&["bearer abc"])), Some(Ok("abc")));
        assert!(matches!(bearer_token(&headers(&["Bearer "])), Some(Err(_))));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Some(Err(_))
        ));
    }

    #[test]
    fn error_description_cannot_break_out_of_the_quoted_string() {
        assert_eq!(quotable("a\"b\\c\u{e9}"), "a'b'c?");
    }

    #[test]
    fn non_ascii_identity_is_percent_encoded() {
        assert_eq!(header_value("alice"), "alice");
        assert_eq!(header_value("jos\u{e9}"), "jos%C3%A9");
    }
}

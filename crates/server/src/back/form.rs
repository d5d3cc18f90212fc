//! What every machine-facing endpoint shares: form-encoded request bodies (RFC 6749 §3.2:
//! `application/x-www-form-urlencoded`, parameters sent without a value are treated as omitted,
//! and no parameter may be repeated) read by the [`OAuthForm`] extractor, whose rejection is the
//! OAuth error; the no-store JSON responses (RFC 6749 §5.1, [`NoStoreJson`]); and the per-IP
//! rate limit in front of every endpoint whose request can trigger a fetch ([`limit_per_ip`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ctx::BackCtx;
use crate::error::OAuthError;

/// Parsed form parameters (each at most once; empty values dropped).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// The value of `name`, if sent with a non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// `parse_form`: the body must be form-encoded; no parameter may repeat (`resource` repeated is
/// `invalid_target`: one token has one audience here).
pub fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(format!(
            "the request body must be application/x-www-form-urlencoded (got {:?})",
            if content_type.is_empty() {
                "no Content-Type"
            } else {
                content_type
            }
        )));
    }
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if v.is_empty() {
            continue;
        }
        if map.contains_key(k.as_ref()) {
            return Err(if k == "resource" {
                OAuthError::invalid_target(
                    "more than one resource parameter; request one resource per token",
                )
            } else {
                OAuthError::invalid_request(format!("parameter {k} is repeated"))
            });
        }
        map.insert(k.into_owned(), v.into_owned());
    }
    Ok(Params(map))
}

/// The form parameters of a request; rejected with the OAuth error (`invalid_request`,
/// `invalid_target` for a repeated `resource`) when the body is not an acceptable form.
#[derive(Debug)]
pub struct OAuthForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse_form(&headers, &body)
            .map(OAuthForm)
            .map_err(IntoResponse::into_response)
    }
}

/// Add `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A JSON response with `Cache-Control: no-store`.
#[derive(Debug)]
pub struct NoStoreJson(pub StatusCode, pub serde_json::Value);

impl IntoResponse for NoStoreJson {
    fn into_response(self) -> Response {
        no_store((self.0, Json(self.1)).into_response())
    }
}

/// Per-source-IP rate limit (middleware): a token, revocation or registration request can
/// trigger a fetch (a stale client document, a `jwks_uri`), so it is limited before anything
/// else is read.
pub async fn limit_per_ip(
    State(ctx): State<Arc<BackCtx>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let ip = ctx.services.client_ip(peer.ip(), req.headers());
    match ctx.services.limits.check_ip(ip).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form_headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn token_request_must_be_form_encoded_without_repeats() {
        type Case = (
            &'static str,
            &'static str,
            Result<Option<&'static str>, &'static str>,
        );
        let cases: &[Case] = &[
            (
                "application/x-www-form-urlencoded",
                "a=1&b=2",
                Ok(Some("1")),
            ),
            (
                "application/x-www-form-urlencoded; charset=UTF-8",
                "a=1",
                Ok(Some("1")),
            ),
            ("application/x-www-form-urlencoded", "a=&b=2", Ok(None)),
            (
                "application/x-www-form-urlencoded",
                "a=1&a=2",
                Err("invalid_request"),
            ),
            (
                "application/x-www-form-urlencoded",
                "resource=x&resource=y",
                Err("invalid_target"),
            ),
            ("application/json", "{}", Err("invalid_request")),
        ];
        for (ct, body, want) in cases {
            let got = parse_form(&form_headers(ct), body.as_bytes());
            match (got, want) {
                (Ok(p), Ok(v)) => assert_eq!(p.get("a"), *v, "{ct} {body}"),
                (Err(e), Err(code)) => assert_eq!(e.code.as_str(), *code, "{ct} {body}"),
                (got, want) => panic!("{ct} {body}: got {got:?}, want {want:?}"),
            }
        }
    }
}

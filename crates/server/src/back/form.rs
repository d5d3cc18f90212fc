//! Form-encoded request bodies (RFC 6749 §3.2: `application/x-www-form-urlencoded`, parameters
//! sent without a value are treated as omitted, and no parameter may be repeated) and the
//! no-store JSON responses of the token and revocation endpoints (RFC 6749 §5.1).

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

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

/// Add `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A no-store JSON response.
pub fn json_no_store(status: StatusCode, body: serde_json::Value) -> Response {
    no_store((status, Json(body)).into_response())
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
                (Err(e), Err(code)) => assert_eq!(e.error, *code, "{ct} {body}"),
                (got, want) => panic!("{ct} {body}: got {got:?}, want {want:?}"),
            }
        }
    }
}

//! HTTP plumbing toward the upstream IdP: one reqwest client, the URL rule, bounded JSON reads
//! and the mapping of transport failures to [`IdpError::Unavailable`].
//!
//! The upstream IdP is chosen by the operator, so it is **not** subject to the CIMD SSRF policy
//! (docs/architecture.md, *Fetching (SSRF-safe)*, applies to client-supplied URLs only). The one rule enforced here is transport
//! security: every upstream URL must be `https`, except on a loopback host (`127.0.0.1`, `::1`,
//! `localhost`), where `http` is accepted for tests and local development.

use std::error::Error as StdError;
use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use super::types::IdpError;
use crate::config::IdpConfig;
use crate::error::StartError;

/// Connect timeout toward the IdP.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Total deadline per IdP request, body included.
pub(crate) const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest IdP response body read (discovery, JWKS, token, userinfo are all small).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The `User-Agent` sent upstream (GitHub's API requires one).
const USER_AGENT: &str = concat!("cimdgate/", env!("CARGO_PKG_VERSION"));

/// Build the one HTTP client used for every upstream call: rustls (aws-lc-rs) with the OS trust
/// store plus `extra_ca_file`, no redirects, no retries, 5 s connect / 10 s total.
pub(crate) fn build_client(cfg: &IdpConfig) -> Result<reqwest::Client, StartError> {
    let roots = match &cfg.extra_ca_file {
        Some(path) => {
            crate::tls::extra_roots(path, "identity.upstream.extra_ca_file").map_err(init_err)?
        }
        None => Vec::new(),
    };
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .referer(false)
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .tls_certs_merge(roots)
        .build()
        .map_err(|e| init_err(format!("HTTP client: {}", root_message(&e))))
}

pub(crate) fn init_err(reason: String) -> StartError {
    StartError::Init {
        component: "identity.upstream",
        reason,
    }
}

/// `true` for `127.0.0.1`, `::1` and `localhost` (the hosts that may use plain `http`).
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The transport rule for upstream URLs: `https`, or `http` on a loopback host; no fragment.
pub(crate) fn check_url(url: &Url) -> Result<(), String> {
    if url.fragment().is_some() {
        return Err(format!("{url} must not have a fragment"));
    }
    if url.host().is_none() {
        return Err(format!("{url} has no host"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(url) => Ok(()),
        "http" => Err(format!(
            "{url} must use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)"
        )),
        other => Err(format!("{url} has unsupported scheme {other:?}")),
    }
}

/// `host[:port]` of a URL, for error messages and pages.
pub(crate) fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// The innermost message of an error chain (reqwest wraps hyper wraps io).
pub(crate) fn root_message(err: &(dyn StdError + 'static)) -> String {
    let mut cur: &(dyn StdError + 'static) = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Map a reqwest send/read failure to [`IdpError::Unavailable`].
pub(crate) fn transport_err(url: &Url, err: &reqwest::Error) -> IdpError {
    let reason = if err.is_timeout() {
        format!("no answer within {} s", TOTAL_TIMEOUT.as_secs())
    } else if err.is_connect() {
        format!("cannot connect: {}", root_message(err))
    } else {
        root_message(err)
    };
    IdpError::Unavailable {
        host: host_of(url),
        reason,
    }
}

/// A response read whole (bounded): status and body bytes.
pub(crate) struct Body {
    pub(crate) status: reqwest::StatusCode,
    pub(crate) bytes: Vec<u8>,
}

/// Send a request and read the body up to [`MAX_BODY_BYTES`]. Transport failures and 5xx become
/// [`IdpError::Unavailable`]; other statuses are returned for the caller to judge.
pub(crate) async fn send(url: &Url, req: reqwest::RequestBuilder) -> Result<Body, IdpError> {
    let mut resp = req.send().await.map_err(|e| transport_err(url, &e))?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(IdpError::Unavailable {
            host: host_of(url),
            reason: format!("HTTP {status}"),
        });
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large(url));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_err(url, &e))? {
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large(url));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body { status, bytes })
}

fn too_large(url: &Url) -> IdpError {
    IdpError::Unavailable {
        host: host_of(url),
        reason: format!("response larger than {MAX_BODY_BYTES} bytes"),
    }
}

/// Parse a JSON body, describing the failure in words (never echoing the body: it may hold
/// tokens).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Body) -> Result<T, String> {
    serde_json::from_slice(&body.bytes)
        .map_err(|e| format!("response is not the expected JSON: {e}"))
}

/// `application/x-www-form-urlencoded` encoding of `pairs` (avoids reqwest's `form` feature).
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// RFC 6749 §2.3.1: `client_secret_basic` form-encodes id and secret before base64.
pub(crate) fn basic_auth(client_id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(client_id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_url_must_be_https_except_loopback() {
        let cases = [
            ("https://idp.example.com/", true),
            ("http://127.0.0.1:8080/", true),
            ("http://[::1]:8080/", true),
            ("http://localhost/", true),
            ("http://idp.example.com/", false),
            ("http://10.0.0.1/", false),
            ("ftp://idp.example.com/", false),
            ("https://idp.example.com/#frag", false),
        ];
        for (url, ok) in cases {
            let parsed = Url::parse(url).unwrap();
            assert_eq!(check_url(&parsed).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        // RFC 6749 §2.3.1: "a:b" → "a%3Ab".
        let header = basic_auth("a:b", "s p");
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(header.trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(raw, b"a%3Ab:s+p");
    }
}

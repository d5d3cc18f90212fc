//! HTML pages (askama, auto-escaped) and the security headers every front-channel response
//! carries (anti-framing, no JavaScript; the draft's §6 phishing guidance), and the three
//! renderings of an [`OAuthError`] on the front channel: the error page ([`ErrorPage`], JSON
//! for API callers) and the redirect to the client ([`error_redirect`]).
//!
//! Headers: `Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline';
//! form-action 'self' [redirect origin]; frame-ancestors 'none'; base-uri 'none'`,
//! `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `Cache-Control: no-store`,
//! `X-Content-Type-Options: nosniff`. `form-action` lists the client's redirect origin because
//! Chromium applies it to the redirect that follows a form submission (consent → client).

use askama::Template;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::clients::Client;
use crate::error::{ErrorCode, OAuthError};

/// The error page (also rendered as JSON for API callers).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// HTTP status.
    pub status: StatusCode,
    /// OAuth error code for JSON callers.
    pub code: ErrorCode,
    /// Heading.
    pub title: String,
    /// What is wrong (one or two sentences).
    pub problem: String,
    /// What the user can do.
    pub hint: String,
}

impl ErrorPage {
    /// Build an error page.
    pub fn new(
        status: StatusCode,
        code: ErrorCode,
        title: impl Into<String>,
        problem: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        ErrorPage {
            status,
            code,
            title: title.into(),
            problem: problem.into(),
            hint: hint.into(),
        }
    }

    /// The page of an OAuth error: its status and code, its description as the problem, a
    /// title for its code, and `hint`.
    pub fn from_oauth(e: &OAuthError, hint: impl Into<String>) -> Self {
        let title = match (e.code, e.status) {
            (_, StatusCode::TOO_MANY_REQUESTS) => "Too many requests",
            (ErrorCode::TemporarilyUnavailable | ErrorCode::ServerError, _) => {
                "Temporarily unavailable"
            }
            (ErrorCode::UnauthorizedClient, _) => "This application is not allowed here",
            (ErrorCode::InvalidClient, _) => "This application cannot sign in",
            (ErrorCode::AccessDenied, _) => "Request refused",
            _ => "Invalid sign-in request",
        };
        ErrorPage::new(e.status, e.code, title, e.description.clone(), hint)
    }

    /// A 5xx page for a server fault (details go to the log, not the page).
    pub fn server_fault(what: &str) -> Self {
        ErrorPage::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TemporarilyUnavailable,
            "Temporarily unavailable",
            format!("The server could not {what} right now."),
            "Wait a moment and try again. If it keeps happening, tell the server's administrator.",
        )
    }

    /// HTML, or JSON `{error, error_description}` when the caller asked for JSON.
    pub fn respond(self, json: bool) -> Response {
        if json {
            let body = serde_json::json!({ "error": self.code.as_str(), "error_description": self.problem });
            let mut r = (self.status, Json(body)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return r;
        }
        let status = self.status;
        render(status, &self, None)
    }
}

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    /// Client host (truncated).
    pub client_host: String,
    /// A DCR client (no domain to verify).
    pub dcr: bool,
    /// Self-declared name.
    pub client_name: Option<&'a str>,
    /// Message after a failed attempt.
    pub error: Option<&'a str>,
    /// Form action (the authorization endpoint).
    pub action: &'a str,
    /// Sealed pending request.
    pub request: &'a str,
    /// CSRF token.
    pub csrf: &'a str,
    /// Username to pre-fill after a failed attempt.
    pub username: &'a str,
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    /// client_id host (left-truncated when long).
    pub client_host: String,
    /// The full client_id.
    pub client_id: &'a str,
    /// Self-declared name.
    pub client_name: Option<&'a str>,
    /// A DCR client (no domain to verify).
    pub dcr: bool,
    /// Trusted by the operator's policy.
    pub trusted: bool,
    /// Where the browser goes afterwards.
    pub redirect_host: String,
    /// Warning about the redirect target.
    pub redirect_warning: Option<String>,
    /// Scopes requested.
    pub scopes: Vec<&'a str>,
    /// Resource identifier.
    pub resource: &'a str,
    /// Signed-in user.
    pub user: &'a str,
    /// A notice (e.g. the document changed since the page was shown).
    pub notice: Option<&'a str>,
    /// Form action.
    pub action: &'a str,
    /// Sealed pending request.
    pub request: &'a str,
    /// Document hash shown (re-checked on submit).
    pub doc: &'a str,
    /// CSRF token.
    pub csrf: &'a str,
}

/// Longest host shown in full; longer ones keep their right-most part (the registrable
/// domain): hosts are truncated from the left, so a long `login.example.com.evil.test` still
/// shows `evil.test`.
pub const MAX_HOST_CHARS: usize = 48;

/// What the pages show in the verified-host slot: the client_id URL's host (CIMD). A registered
/// (DCR) client has no verified host, so the slot names it as such; its self-declared name only
/// ever appears in the "calls itself" line (review finding M6: a DCR client named `github.com`
/// read like a verified host).
pub fn client_display_host(client: &Client) -> String {
    match client {
        Client::Cimd(c) => truncate_host(c.id.host()),
        Client::Dcr(_) => "an unverified application".to_owned(),
    }
}

/// Left-truncate a host for display.
pub fn truncate_host(host: &str) -> String {
    let n = host.chars().count();
    if n <= MAX_HOST_CHARS {
        return host.to_owned();
    }
    let tail: String = host.chars().skip(n - (MAX_HOST_CHARS - 1)).collect();
    format!("…{tail}")
}

pub use crate::page_headers::{render, security_headers};

/// The CSP source for a redirect URI's target: `scheme://host[:port]` for http(s) (IPv6 hosts
/// are left out: CSP host-source has no bracket syntax), `scheme:` for private-use schemes.
pub fn csp_origin(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    match url.scheme() {
        "http" | "https" => match url.host()? {
            url::Host::Ipv6(_) => None,
            _ => Some(url.origin().ascii_serialization()),
        },
        other
            if other
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Some(format!("{other}:"))
        }
        _ => None,
    }
}

/// A 302 to `location` with `no-store` and `no-referrer`.
pub fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut r = StatusCode::FOUND.into_response();
            let h = r.headers_mut();
            h.insert(header::LOCATION, v);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            r
        }
        Err(_) => ErrorPage::server_fault("build the redirect").respond(false),
    }
}

/// A redirect to the client's verified redirect URI with `params`, plus `state` when the
/// request had one and `iss` (RFC 9207 §2: on every authorization response, success or error).
pub fn client_redirect(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return ErrorPage::server_fault("build the redirect").respond(false);
    };
    {
        let mut q = url.query_pairs_mut();
        q.extend_pairs(params);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    redirect(url.as_str())
}

/// The redirect rendering of an OAuth error (RFC 6749 §4.1.2.1): `error` and
/// `error_description` to the verified redirect URI.
pub fn error_redirect(
    redirect_uri: &str,
    e: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> Response {
    if !error_redirect_allowed(redirect_uri) {
        // No automatic hop to an arbitrary protocol handler (review finding M7): the error is
        // shown here instead.
        return ErrorPage::from_oauth(
            e,
            "The application asked to be sent back through a kind of link this server only \
             follows after a sign-in; go back to the application and try again.",
        )
        .respond(false);
    }
    let params = [
        ("error", e.code.as_str()),
        ("error_description", e.description.as_str()),
    ];
    client_redirect(redirect_uri, &params, state, issuer)
}

/// Whether an error may be sent to `redirect_uri` without the user's involvement: `http`,
/// `https`, or a private-use scheme in the reverse-DNS form RFC 8252 §7.1 requires of native apps
/// (`com.example.app:`); any other scheme (`ms-msdt:`, `search-ms:`, `intent:` …) gets the error
/// page (RFC 9700 §4.11.2, open redirectors).
pub fn error_redirect_allowed(redirect_uri: &str) -> bool {
    let scheme = redirect_uri
        .split_once(':')
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    matches!(scheme.as_str(), "http" | "https")
        || (scheme.contains('.')
            && scheme.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

/// Whether the caller prefers JSON (an API client, not a browser).
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn long_hosts_are_truncated_from_the_left() {
        let long = format!("{}.evil.example.com", "a".repeat(80));
        let t = truncate_host(&long);
        assert!(
            t.starts_with('…') && t.ends_with(".evil.example.com"),
            "{t}"
        );
        assert_eq!(t.chars().count(), MAX_HOST_CHARS);
        assert_eq!(truncate_host("cimd.test"), "cimd.test");
    }

    #[test]
    fn errors_are_redirected_only_to_web_and_reverse_dns_app_schemes() {
        let cases = [
            ("https://app.example/cb", true),
            ("http://127.0.0.1:8080/cb", true),
            ("com.example.app:/cb", true),
            ("com.example.app://cb", true),
            ("ms-msdt:/id", false),
            ("search-ms:query=x", false),
            ("intent://x#Intent;end", false),
            ("myapp:/cb", false),
            ("com..example:/cb", false),
            ("", false),
        ];
        for (uri, ok) in cases {
            assert_eq!(error_redirect_allowed(uri), ok, "{uri}");
        }
    }

    #[test]
    fn csp_origin_per_redirect_kind() {
        let cases = [
            (
                "https://app.example.com/cb?x=1",
                Some("https://app.example.com"),
            ),
            ("http://127.0.0.1:8765/cb", Some("http://127.0.0.1:8765")),
            ("http://[::1]:8765/cb", None),
            ("com.example.app:/cb", Some("com.example.app:")),
        ];
        for (uri, want) in cases {
            assert_eq!(csp_origin(uri).as_deref(), want, "{uri}");
        }
    }

    #[test]
    fn client_name_is_escaped_on_the_consent_page() {
        let page = ConsentPage {
            client_host: "cimd.test".into(),
            client_id: "https://cimd.test/c",
            client_name: Some("<script>alert(1)</script>"),
            dcr: false,
            trusted: false,
            redirect_host: "cimd.test".into(),
            redirect_warning: None,
            scopes: vec!["mcp"],
            resource: "http://x/mcp",
            user: "alice",
            notice: None,
            action: "/authorize",
            request: "r",
            doc: "d",
            csrf: "c",
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
    }
}

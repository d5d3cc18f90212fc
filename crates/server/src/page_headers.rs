//! The security headers of every HTML page this server renders (the login, consent and error
//! pages of the front channel, the admin console): no framing, no scripts, no referrer, no
//! caching (the draft's §6 phishing guidance; docs/architecture.md, *Authorization server*) —
//! and the same-origin rule for form posts ([`cross_site`]). Leaf layer: every channel that
//! renders pages uses it.

use askama::Template;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// Add the security headers: `Content-Security-Policy: default-src 'none'; style-src
/// 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'` plus
/// `redirect_origin` (Chromium applies `form-action` to the redirect after a form post),
/// `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `Cache-Control: no-store`,
/// `X-Content-Type-Options: nosniff`.
pub fn security_headers(h: &mut HeaderMap, redirect_origin: Option<&str>) {
    const BASE: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
                        base-uri 'none'; form-action 'self'";
    let csp = match redirect_origin {
        Some(o) => {
            HeaderValue::from_str(&format!("{BASE} {o}")).unwrap_or(HeaderValue::from_static(BASE))
        }
        None => HeaderValue::from_static(BASE),
    };
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// Why a form post did not come from this site (`None`: it did). `Sec-Fetch-Site` must be
/// `same-origin` (or `none`, a user-typed navigation) when sent; `Origin`, when sent and not
/// `null` (browsers send `null` under `Referrer-Policy: no-referrer`), must be `origin`. A CSRF
/// token stays the primary defence; this refuses what a browser already labels cross-site.
pub fn cross_site(headers: &HeaderMap, origin: &str) -> Option<String> {
    let get = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("Sec-Fetch-Site: {site}"));
    }
    if let Some(o) = get("origin")
        && o != "null"
        && o != origin
    {
        return Some(format!("Origin: {o}"));
    }
    None
}

/// Render a template as an HTML page with the security headers; `redirect_origin` is added to
/// `form-action`. A rendering failure is a 500 that carries the headers too.
pub fn render(status: StatusCode, page: &impl Template, redirect_origin: Option<&str>) -> Response {
    let mut r = match page.render() {
        Ok(body) => {
            let mut r = (status, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    };
    security_headers(r.headers_mut(), redirect_origin);
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_posts_pass() {
        let ours = "http://127.0.0.1:9090";
        let cases: [(&[(&str, &str)], bool); 7] = [
            (&[], true),
            (&[("sec-fetch-site", "same-origin")], true),
            (&[("sec-fetch-site", "none")], true),
            (&[("origin", "null")], true),
            (&[("origin", ours), ("sec-fetch-site", "same-origin")], true),
            (&[("sec-fetch-site", "cross-site")], false),
            (&[("origin", "http://evil.test")], false),
        ];
        for (headers, ok) in cases {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.insert(*k, HeaderValue::from_static(v));
            }
            assert_eq!(cross_site(&h, ours).is_none(), ok, "{headers:?}");
        }
    }
}

//! The security headers of every HTML page this server renders (the login, consent and error
//! pages of the front channel, the admin console): no framing, no scripts, no referrer, no
//! caching (the draft's §6 phishing guidance; docs/architecture.md, *Authorization server*).
//! Leaf layer: both channels use it.

use http::{HeaderMap, HeaderValue, header};

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

//! The admin console's HTML (docs/architecture.md, *Governance*): the askama pages
//! (`templates/admin_*.html`, auto-escaped; every client-controlled string is shown as text),
//! and the responses every console page goes out as — with the security headers of
//! [`crate::page_headers::security_headers`] (no script, no framing, no external assets).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::governance::view::{ClientDetail, ClientSummary};
use crate::page_headers::security_headers;

/// The sign-in page (also the 401 page of the console).
#[derive(Template)]
#[template(path = "admin_login.html")]
pub(super) struct LoginPage<'a> {
    pub(super) message: Option<&'a str>,
}

/// A message page: 400, 403, 404, 413, 503.
#[derive(Template)]
#[template(path = "admin_message.html")]
pub(super) struct MessagePage<'a> {
    pub(super) title: &'a str,
    pub(super) problem: &'a str,
    pub(super) back: bool,
}

/// One inventory row.
pub(super) struct Row {
    pub(super) s: ClientSummary,
    /// `/admin/clients/{percent-encoded id}`.
    pub(super) href: String,
}

/// The inventory.
#[derive(Template)]
#[template(path = "admin_inventory.html")]
pub(super) struct InventoryPage<'a> {
    pub(super) rows: Vec<Row>,
    /// The status filter (`""`: all).
    pub(super) status: &'a str,
    /// The host filter (`""`: all).
    pub(super) host: &'a str,
    pub(super) csrf: String,
}

/// One client.
#[derive(Template)]
#[template(path = "admin_client.html")]
pub(super) struct ClientPage {
    pub(super) d: ClientDetail,
    /// `/admin/clients/{percent-encoded id}`.
    pub(super) href: String,
    pub(super) csrf: String,
}

/// HTML with the security headers.
pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    crate::page_headers::render(status, page, None)
}

/// The console's 404 page.
pub(super) fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the admin console.",
    )
}

pub(super) fn message(status: StatusCode, title: &str, problem: &str) -> Response {
    render(
        status,
        &MessagePage {
            title,
            problem,
            back: true,
        },
    )
}

/// A 303 to `location` (a path of this console) with the security headers.
pub(super) fn see_other(location: &str, set_cookie: Option<HeaderValue>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    // Every location built here is a path of ASCII characters (ids are percent-encoded).
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/admin/")),
    );
    if let Some(c) = set_cookie {
        h.insert(header::SET_COOKIE, c);
    }
    security_headers(h, None);
    r
}

/// Percent-encode `s` as one URL path segment (everything but RFC 3986 unreserved characters).
pub(super) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn client_href(id: &str) -> String {
    format!("/admin/clients/{}", path_segment(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_one_path_segment() {
        assert_eq!(
            path_segment("https://app.example/c.json?x=1#f"),
            "https%3A%2F%2Fapp.example%2Fc.json%3Fx%3D1%23f"
        );
        assert_eq!(path_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(path_segment("ü /"), "%C3%BC%20%2F");
    }
}

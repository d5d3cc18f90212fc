//! Browser cookies: the user session, the browser binding used for login CSRF, and the IdP
//! sign-in in progress. Every cookie is `HttpOnly; SameSite=Lax; Path=/`; on an
//! `https` public URL they are also `Secure` and use the `__Host-` prefix (RFC 6265bis §4.1.3.2),
//! which browsers refuse over plain http — so a plain-http loopback deployment drops both.
//!
//! Values are sealed (`crate::seal`): the server keeps no session table.

use axum::http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};

use crate::seal::{Purpose, Sealer};

/// Session lifetime: 12 h.
pub const SESSION_TTL_SECS: u64 = 12 * 3600;
/// Lifetime of an IdP sign-in cookie (the IdP's pending sign-in expires then too).
pub const IDP_SIGN_IN_TTL_SECS: u64 = crate::identity::idp::MAX_PENDING_AGE_SECS;

/// A signed-in user, sealed into the session cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Random session id (binds consent CSRF tokens).
    pub sid: String,
    /// The user (`sub`).
    pub sub: String,
    /// Display name.
    pub name: Option<String>,
    /// When the user authenticated (Unix seconds).
    pub auth_time: u64,
    /// The sealed IdP tokens' store key (IdP sign-in).
    #[serde(alias = "upstream_ref")]
    pub idp_ref: Option<String>,
}

/// Cookie names and attributes for this deployment.
#[derive(Debug, Clone)]
pub struct Cookies {
    secure: bool,
    /// Session cookie name.
    pub session: &'static str,
    /// Browser-binding cookie name.
    pub browser: &'static str,
    /// IdP sign-in cookie name.
    pub idp_sign_in: &'static str,
}

impl Cookies {
    /// `secure` = the public URL is https.
    pub fn new(secure: bool) -> Self {
        if secure {
            Cookies {
                secure,
                session: "__Host-cimdgate_session",
                browser: "__Host-cimdgate_browser",
                idp_sign_in: "__Host-cimdgate_upstream",
            }
        } else {
            Cookies {
                secure,
                session: "cimdgate_session",
                browser: "cimdgate_browser",
                idp_sign_in: "cimdgate_upstream",
            }
        }
    }

    /// A `Set-Cookie` value; `max_age` `None` = browser-session cookie, `Some(0)` = delete.
    pub fn set(&self, name: &str, value: &str, max_age: Option<u64>) -> Option<HeaderValue> {
        let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            s.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            s.push_str("; Secure");
        }
        HeaderValue::from_str(&s).ok()
    }

    /// Delete a cookie.
    pub fn clear(&self, name: &str) -> Option<HeaderValue> {
        self.set(name, "", Some(0))
    }

    /// The session in the request, if present, authentic and unexpired.
    pub fn session(&self, headers: &HeaderMap, sealer: &Sealer) -> Option<Session> {
        let raw = get(headers, self.session)?;
        sealer.open(Purpose::Session, raw).ok()
    }

    /// A `Set-Cookie` starting `session`.
    pub fn start_session(&self, session: &Session, sealer: &Sealer) -> Option<HeaderValue> {
        let sealed = sealer
            .seal(Purpose::Session, session, SESSION_TTL_SECS)
            .ok()?;
        self.set(self.session, &sealed, Some(SESSION_TTL_SECS))
    }
}

/// The value of cookie `name` in the request.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_with_host_prefix_only_on_https() {
        let cases = [
            (true, "__Host-cimdgate_session", true),
            (false, "cimdgate_session", false),
        ];
        for (secure, name, has_secure) in cases {
            let c = Cookies::new(secure);
            assert_eq!(c.session, name);
            let v = c.set(c.session, "x", Some(5)).unwrap();
            let v = v.to_str().unwrap();
            assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax") && v.contains("Path=/"));
            assert_eq!(v.contains("Secure"), has_secure, "{v}");
        }
    }

    #[test]
    fn cookie_lookup_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cimdgate_session=xyz; b="),
        );
        assert_eq!(get(&h, "cimdgate_session"), Some("xyz"));
        assert_eq!(get(&h, "session"), None);
        assert_eq!(get(&h, "b"), None);
    }
}

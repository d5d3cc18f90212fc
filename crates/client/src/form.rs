//! A browser stand-in for cimdgate's login and consent pages (demos and tests; a person uses a real
//! browser). It keeps cookies, does not follow redirects, and speaks the form contract of
//! docs/architecture.md, *Authorization server*: `<form method="post">`; login inputs
//! `username`/`password`; consent buttons `name="decision"` with values `approve`/`deny`; hidden
//! inputs posted back unchanged.

use std::collections::BTreeMap;
use std::sync::Mutex;

use url::Url;

use crate::ClientError;

/// A parsed HTML form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// Absolute URL it posts to.
    pub action: String,
    /// `method`, lower-cased.
    pub method: String,
    /// `(name, value, type)` of each named `<input>` / `<button>`.
    pub controls: Vec<(String, String, String)>,
}

impl Form {
    /// Parse the first `<form>` of `html` ([`parse_form`]).
    pub fn parse(html: &str, page_url: &str) -> Option<Form> {
        parse_form(html, page_url)
    }

    /// Whether a control with this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.controls.iter().any(|(n, _, _)| n == name)
    }

    /// The value of a control (the first with this name).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.controls
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| v.as_str())
    }

    /// Hidden inputs as `(name, value)` (what a browser always submits).
    pub fn hidden(&self) -> Vec<(String, String)> {
        self.controls
            .iter()
            .filter(|(_, _, t)| t == "hidden")
            .map(|(n, v, _)| (n.clone(), v.clone()))
            .collect()
    }
}

/// What a page asks for next.
#[derive(Debug, Clone)]
pub enum Step {
    /// The login form.
    Login(Form),
    /// The consent form.
    Consent(Form),
    /// A redirect (to the client, when the flow is done).
    Redirect(String),
    /// Anything else: an error page.
    Other {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// A cookie-keeping, redirect-refusing form filler.
pub struct FormDriver {
    http: reqwest::Client,
    jar: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for FormDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormDriver").finish_non_exhaustive()
    }
}

impl FormDriver {
    /// A driver with an empty cookie jar.
    pub fn new() -> Result<Self, ClientError> {
        Ok(FormDriver {
            http: crate::http_client()?,
            jar: Mutex::new(BTreeMap::new()),
        })
    }

    /// GET the authorization URL.
    pub async fn open(&self, url: &str) -> Result<Step, ClientError> {
        self.send(url, self.http.get(url)).await
    }

    /// Fill in the login form.
    pub async fn login(
        &self,
        form: &Form,
        username: &str,
        password: &str,
    ) -> Result<Step, ClientError> {
        self.submit(form, &[("username", username), ("password", password)])
            .await
    }

    /// Press Approve (or Deny) on the consent form.
    pub async fn consent(&self, form: &Form, approve: bool) -> Result<Step, ClientError> {
        let decision = if approve { "approve" } else { "deny" };
        self.submit(form, &[("decision", decision)]).await
    }

    /// GET a URL as a browser following a redirect would (e.g. to the loopback callback);
    /// returns the status.
    pub async fn follow(&self, url: &str) -> Result<u16, ClientError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ClientError::http("follow redirect", url, e))?;
        Ok(resp.status().as_u16())
    }

    /// Post the form's hidden inputs plus `fields` to its action.
    pub async fn submit(&self, form: &Form, fields: &[(&str, &str)]) -> Result<Step, ClientError> {
        if form.method != "post" {
            return Err(ClientError::protocol(
                "form",
                "the form does not use method=\"post\"",
            ));
        }
        let mut pairs = form.hidden();
        pairs.retain(|(n, _)| !fields.iter().any(|(f, _)| f == n));
        pairs.extend(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let origin = Url::parse(&form.action)
            .map(|u| u.origin().ascii_serialization())
            .map_err(|e| ClientError::protocol("form", format!("bad form action: {e}")))?;
        let req = self
            .http
            .post(&form.action)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin)
            .body(body);
        self.send(&form.action, req).await
    }

    async fn send(&self, url: &str, req: reqwest::RequestBuilder) -> Result<Step, ClientError> {
        let cookie = self.jar.lock().ok().and_then(|jar| {
            (!jar.is_empty()).then(|| {
                jar.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        });
        let req = match cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        let resp = req
            .header("accept", "text/html")
            .send()
            .await
            .map_err(|e| ClientError::http("form", url, e))?;
        self.absorb(resp.headers());
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| ClientError::protocol("form", "redirect without Location"))?;
            return Ok(Step::Redirect(location.to_owned()));
        }
        let body = resp.text().await.unwrap_or_default();
        Ok(match parse_form(&body, url) {
            Some(f) if f.has("username") && f.has("password") => Step::Login(f),
            Some(f) if f.has("decision") => Step::Consent(f),
            _ => Step::Other {
                status: status.as_u16(),
                body: body.chars().take(400).collect(),
            },
        })
    }

    fn absorb(&self, headers: &reqwest::header::HeaderMap) {
        let Ok(mut jar) = self.jar.lock() else { return };
        for v in headers.get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let first = v.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            if value.is_empty() || v.to_ascii_lowercase().contains("max-age=0") {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
}

/// Parse the first `<form>` of `html` (tiny and forgiving; quoted attributes; the entities
/// askama writes are decoded).
pub fn parse_form(html: &str, page_url: &str) -> Option<Form> {
    let start = html.find("<form")?;
    let rest = html.get(start..)?;
    let tag_end = rest.find('>')?;
    let attrs = parse_attrs(rest.get(5..tag_end)?);
    let end = rest.find("</form>").unwrap_or(rest.len());
    let inner = rest.get(tag_end..end)?;
    let action = match attrs.get("action") {
        Some(a) => Url::parse(page_url).ok()?.join(a).ok()?.to_string(),
        None => page_url.to_owned(),
    };
    let mut controls = Vec::new();
    let mut pos = 0;
    loop {
        let tail = inner.get(pos..)?;
        let next = match (tail.find("<input"), tail.find("<button")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let at = pos + next;
        let close = inner.get(at..)?.find('>').map_or(inner.len(), |j| at + j);
        let tag = inner.get(at..close)?;
        let skip = if tag.starts_with("<input") { 6 } else { 7 };
        let a = parse_attrs(tag.get(skip..)?);
        if let Some(name) = a.get("name") {
            controls.push((
                name.clone(),
                a.get("value").cloned().unwrap_or_default(),
                a.get("type").cloned().unwrap_or_else(|| "text".into()),
            ));
        }
        pos = close;
    }
    Some(Form {
        action,
        method: attrs
            .get("method")
            .map(|m| m.to_ascii_lowercase())
            .unwrap_or_default(),
        controls,
    })
}

fn parse_attrs(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        if rest.is_empty() {
            return out;
        }
        let end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '>')
            .unwrap_or(rest.len());
        if end == 0 {
            rest = rest.get(1..).unwrap_or("");
            continue;
        }
        let name = rest[..end].to_ascii_lowercase();
        rest = &rest[end..];
        if let Some(v) = rest.strip_prefix('=') {
            let (value, next) = match v.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &v[1..];
                    let close = body.find(q).unwrap_or(body.len());
                    (&body[..close], body.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let close = v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len());
                    (&v[..close], &v[close..])
                }
            };
            out.insert(name, html_unescape(value));
            rest = next;
        } else {
            out.insert(name, String::new());
        }
    }
}

/// Decode the entities askama writes (`&amp; &lt; &gt; &quot; &apos;` and numeric ones).
pub fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let decoded = tail.find(';').filter(|&j| j <= 10).and_then(|semi| {
            let ent = &tail[1..semi];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => ent
                    .strip_prefix("#x")
                    .or_else(|| ent.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_form_contract() {
        let html = r#"<html><form method="POST" action="/authorize">
            <input type="hidden" name="request" value="a&amp;b&#x27;c">
            <input type="hidden" name='csrf' value='t'/>
            <input name="username" autocomplete="username">
            <input type="password" name="password">
            <button type="submit" name="decision" value="approve">Approve</button>
            </form>"#;
        let f = parse_form(html, "http://127.0.0.1:1/authorize?x=1").unwrap();
        assert_eq!(f.action, "http://127.0.0.1:1/authorize");
        assert_eq!(f.method, "post");
        assert_eq!(
            f.controls[0],
            ("request".into(), "a&b'c".into(), "hidden".into())
        );
        assert_eq!(f.controls[1].0, "csrf");
        assert!(f.has("username") && f.has("password") && f.has("decision"));
        assert_eq!(f.controls[2].2, "text");
    }

    #[test]
    fn no_form_is_none() {
        assert_eq!(parse_form("<p>error</p>", "http://h/"), None);
    }
}

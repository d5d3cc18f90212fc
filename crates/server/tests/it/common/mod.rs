//! Shared integration-test harness for the authorization server (owned by the front-channel
//! tests; every `tests/*.rs` file does `mod common;`).
//!
//! [`TestEnv::start`] brings up, all on loopback:
//! - a real HTTPS **CIMD host** ([`HttpsHost`] with a throw-away [`TestCa`]) answering for
//!   `cimd.test`, `trusted.test`, `blocked.test` and `other.test`, serving whatever the test put
//!   in its programmable route table ([`TestEnv::set_document`], [`TestEnv::set_response`]);
//! - a real **cimdgate server** bound to `127.0.0.1:0` first, then configured with
//!   `public_url = http://127.0.0.1:PORT`, the dev fetch hooks (`dev_allow_loopback`,
//!   `extra_ca_file`, `resolve` of the names above → 127.0.0.1), a temp embedded store, local
//!   user `alice` / `password`, and one resource `/mcp` with scopes `["mcp"]`.
//!
//! [`TestEnv::start_with`] lets a test change the [`Config`] before the server starts.
//! [`Browser`] is a browser-like client: its own cookie jar, redirects NOT followed, a tiny
//! HTML form parser; [`TestEnv::login_and_consent`] walks login + consent through the form
//! contract (docs/architecture.md, *Authorization server*: inputs `username`/`password`, buttons `name="decision"` with values
//! `approve`/`deny`, hidden inputs posted back) and returns the client redirect `Location`.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cimdgate_server::{Config, RunningServer};
use cimdgate_test_support::{HttpsHost, TestCa};
use sha2::Digest;
use tokio::net::TcpListener;
use url::Url;

/// Host names the CIMD host answers for (all resolved to 127.0.0.1 by the server's fetcher).
pub const CIMD_HOSTS: &[&str] = &["cimd.test", "trusted.test", "blocked.test", "other.test"];
/// The local test user.
pub const USERNAME: &str = "alice";
/// Her password.
pub const PASSWORD: &str = "password";
/// Default `state` used by [`TestEnv::authorize_params`].
pub const STATE: &str = "st-123";

/// One programmed response of the CIMD host.
#[derive(Clone)]
pub struct Served {
    /// Status.
    pub status: StatusCode,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

type Routes = Arc<Mutex<HashMap<String, Served>>>;

/// The running environment. Dropping it stops everything.
pub struct TestEnv {
    /// The cimdgate server (`None` only while restarting).
    pub server: Option<RunningServer>,
    /// `http://127.0.0.1:PORT` — the issuer.
    pub base: String,
    /// The CIMD host.
    pub cimd: HttpsHost,
    /// The test CA (its PEM is at `dir/ca.pem`).
    pub ca: TestCa,
    /// Temp folder (store, CA file).
    pub dir: tempfile::TempDir,
    /// The configuration the server runs with.
    pub config: Config,
    routes: Routes,
}

/// Hash of [`PASSWORD`] with cheap argon2id parameters (tests stay fast in debug builds; the
/// PHC string carries its parameters, so the server verifies with these).
pub fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| cimdgate_test_support::config::cheap_password_hash(PASSWORD))
        .clone()
}

async fn serve_route(State(routes): State<Routes>, req: Request) -> Response {
    let served = routes.lock().unwrap().get(req.uri().path()).cloned();
    let Some(s) = served else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("not found"))
            .unwrap();
    };
    let mut resp = Response::builder().status(s.status);
    for (k, v) in &s.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    resp.body(Body::from(s.body)).unwrap()
}

impl TestEnv {
    /// Start with the default configuration.
    pub async fn start() -> TestEnv {
        Self::start_with(|_| {}).await
    }

    /// Start, letting `configure` adjust the configuration first (trust policy, limits, …).
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestEnv {
        cimdgate_test_support::install_crypto_provider();
        let ca = TestCa::new();
        let routes: Routes = Arc::default();
        let router = axum::Router::new()
            .fallback(serve_route)
            .with_state(routes.clone());
        let cimd = HttpsHost::start(&ca, CIMD_HOSTS, router).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let (store, ca_file, hash) = (
            dir.path().join("store"),
            dir.path().join("ca.pem"),
            password_hash(),
        );
        let toml = cimdgate_test_support::config::TestConfig {
            listen: &addr.to_string(),
            public_url: &base,
            store_dir: &store,
            username: USERNAME,
            password_hash: &hash,
            ca_file: &ca_file,
            hosts: CIMD_HOSTS,
            extra: "",
        }
        .toml();
        let mut config = Config::from_toml(&toml).expect("harness config");
        configure(&mut config);
        config.check().expect("configured harness config");
        let server = cimdgate_server::serve(config.clone(), listener)
            .await
            .expect("server starts");
        TestEnv {
            server: Some(server),
            base,
            cimd,
            ca,
            dir,
            config,
            routes,
        }
    }

    /// Stop the server and start a new one on the same port with the same store and config
    /// (restart-survival tests).
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let addr: SocketAddr = self.base.trim_start_matches("http://").parse().unwrap();
        let mut listener = None;
        for _ in 0..50 {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("re-bind the same port");
        let server = cimdgate_server::serve(self.config.clone(), listener)
            .await
            .expect("server restarts");
        self.server = Some(server);
    }

    /// The running server (state, store: `env.server().state.services.store`).
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn cimdgate_store::Store> {
        &self.server().state.services.store
    }

    /// `{base}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The resource identifier of `/mcp` (the token `aud`).
    pub fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// A CIMD client_id URL on `cimd.test`: `https://cimd.test:PORT/{name}`.
    pub fn client_url(&self, name: &str) -> String {
        self.client_url_on("cimd.test", name)
    }

    /// A CIMD client_id URL on another of [`CIMD_HOSTS`].
    pub fn client_url_on(&self, host: &str, name: &str) -> String {
        self.cimd.url(host, &format!("/{name}"))
    }

    /// Serve `json` (with `Content-Type: application/json`) at `path` on the CIMD host.
    pub fn set_document(&self, path: &str, json: &serde_json::Value) {
        self.set_response(
            path,
            StatusCode::OK,
            &[("content-type", "application/json")],
            &json.to_string(),
        );
    }

    /// Program an arbitrary response at `path` on the CIMD host.
    pub fn set_response(
        &self,
        path: &str,
        status: StatusCode,
        headers: &[(&str, &str)],
        body: &str,
    ) {
        self.routes.lock().unwrap().insert(
            path.to_owned(),
            Served {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                body: body.to_owned(),
            },
        );
    }

    /// The default redirect URI for a client on `host`: `https://{host}/callback`.
    pub fn default_redirect(host: &str) -> String {
        format!("https://{host}/callback")
    }

    /// Publish a standard public CIMD client document named `name` on `host` and return its
    /// client_id. `extra` fields are merged over the defaults (e.g. `redirect_uris`, `scope`,
    /// `token_endpoint_auth_method`, `jwks`).
    pub fn publish_client_on(&self, host: &str, name: &str, extra: serde_json::Value) -> String {
        let client_id = self.client_url_on(host, name);
        let mut doc = serde_json::json!({
            "client_id": client_id,
            "client_name": format!("Test client {name}"),
            "redirect_uris": [Self::default_redirect(host)],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        });
        if let (Some(d), serde_json::Value::Object(e)) = (doc.as_object_mut(), extra) {
            for (k, v) in e {
                d.insert(k, v);
            }
        }
        self.set_document(&format!("/{name}"), &doc);
        client_id
    }

    /// [`TestEnv::publish_client_on`] on `cimd.test`.
    pub fn publish_client(&self, name: &str, extra: serde_json::Value) -> String {
        self.publish_client_on("cimd.test", name, extra)
    }

    /// Standard /authorize parameters for a public client: `response_type=code`, S256
    /// `code_challenge`, `state` = [`STATE`], `resource` = `/mcp`, `scope=mcp`.
    pub fn authorize_params(
        &self,
        client_id: &str,
        redirect_uri: &str,
        challenge: &str,
    ) -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", STATE),
            ("resource", &self.resource()),
            ("scope", "mcp"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    /// `{base}/authorize?{params}`.
    pub fn authorize_url(&self, params: &[(String, String)]) -> String {
        let mut url = Url::parse(&self.url("/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    }

    /// A fresh browser (empty cookie jar).
    pub fn browser(&self) -> Browser {
        Browser::new()
    }

    /// Log in as alice and approve (or deny) in a fresh browser; returns the client redirect.
    pub async fn login_and_consent(&self, authorize_url: &str, approve: bool) -> String {
        self.browser()
            .login_and_consent(authorize_url, approve, false)
            .await
    }

    /// Full public-client flow: publish nothing, authorize `client_id` with a new PKCE pair,
    /// approve, and return `(code, verifier)` after checking `state` and `iss`.
    pub async fn authorize_code(&self, client_id: &str, redirect_uri: &str) -> (String, String) {
        let (verifier, challenge) = pkce_pair();
        let url = self.authorize_url(&self.authorize_params(client_id, redirect_uri, &challenge));
        let location = self.login_and_consent(&url, true).await;
        let q = query_map(&location);
        assert_eq!(
            q.get("state").map(String::as_str),
            Some(STATE),
            "{location}"
        );
        assert_eq!(q.get("iss"), Some(&self.base), "{location}");
        let code = q
            .get("code")
            .unwrap_or_else(|| panic!("no code in {location}"));
        (code.clone(), verifier)
    }

    /// POST `form` to `/token`; returns the status and the JSON body (`Null` if not JSON).
    pub async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
        self.post_json("/token", form, None).await
    }

    /// POST a JSON-RPC `ping` to `/mcp` with `token` as bearer: `(status, JSON body or null,
    /// headers)`.
    pub async fn call_resource(
        &self,
        token: &str,
    ) -> (StatusCode, serde_json::Value, reqwest::header::HeaderMap) {
        let resp = reqwest::Client::new()
            .post(self.resource())
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        (status, body, headers)
    }

    /// POST a form to `path` with an optional `Authorization` header; `(status, JSON body)`.
    pub async fn post_json(
        &self,
        path: &str,
        form: &[(&str, &str)],
        authorization: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = http_client()
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode_form(form));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            // Dropping the RunningServer's shutdown sender stops the server.
            drop(s);
        }
    }
}

/// A plain HTTP client for non-browser calls (no redirects, no cookies, 10 s timeout).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

/// `application/x-www-form-urlencoded` body.
pub fn encode_form<K: AsRef<str>, V: AsRef<str>>(form: &[(K, V)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

/// A PKCE pair `(verifier, S256 challenge)` (RFC 7636 §4.1–4.2).
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The query parameters of a URL (last value wins).
pub fn query_map(url: &str) -> BTreeMap<String, String> {
    Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// One HTTP response as a browser sees it.
#[derive(Debug)]
pub struct Page {
    /// The URL requested.
    pub url: String,
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Page {
    /// The `Location` header, if any.
    pub fn location(&self) -> Option<String> {
        self.header("location")
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The first `<form>` on the page.
    pub fn form(&self) -> Option<Form> {
        Form::parse(&self.body, &self.url)
    }
}

/// The form parser of `cimdgate-client` (what `cimdgate demo` and `login` drive the pages
/// with), so the tests read the pages exactly as the product's own client does. (Each test
/// binary includes this module; not every one uses both names.)
#[allow(unused_imports)]
pub use cimdgate_client::form::{Form, html_unescape};

/// A browser-like client: a cookie jar keyed by cookie name (every request goes to the one
/// cimdgate server), redirects not followed, optional extra headers on every request.
pub struct Browser {
    client: reqwest::Client,
    jar: Mutex<BTreeMap<String, String>>,
    /// Headers added to every request (e.g. `accept: application/json`).
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// Empty jar.
    pub fn new() -> Browser {
        Browser {
            client: http_client(),
            jar: Mutex::default(),
            extra_headers: Vec::new(),
        }
    }

    /// The cookies currently held, `name → value`.
    pub fn cookies(&self) -> BTreeMap<String, String> {
        self.jar.lock().unwrap().clone()
    }

    /// Forget every cookie.
    pub fn clear_cookies(&self) {
        self.jar.lock().unwrap().clear();
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn absorb(&self, headers: &HeaderMap) {
        let mut jar = self.jar.lock().unwrap();
        for v in headers.get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let first = v.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let expired = v.to_ascii_lowercase().contains("max-age=0");
            if expired || value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    async fn send(&self, url: &str, req: reqwest::RequestBuilder) -> Page {
        let mut req = req;
        if let Some(c) = self.cookie_header() {
            req = req.header("cookie", c);
        }
        for (k, v) in &self.extra_headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        self.absorb(&headers);
        let body = resp.text().await.unwrap_or_default();
        Page {
            url: url.to_owned(),
            status,
            headers,
            body,
        }
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Page {
        self.send(url, self.client.get(url)).await
    }

    /// GET `url` with extra headers for this request only.
    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Page {
        let mut req = self.client.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(url, req).await
    }

    /// POST a urlencoded form to `url`, with a same-origin `Origin` header like a browser.
    pub async fn post_form<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        form: &[(K, V)],
    ) -> Page {
        self.post_form_with(url, form, &[]).await
    }

    /// POST a urlencoded form with extra headers (`Origin` is set to the URL's origin unless
    /// given here).
    pub async fn post_form_with<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        form: &[(K, V)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode_form(form));
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("origin"))
        {
            let origin = Url::parse(url).unwrap().origin().ascii_serialization();
            req = req.header("origin", origin);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(url, req).await
    }

    /// Submit `form` with its hidden fields plus `fields` (which override same-named ones).
    pub async fn submit(&self, form: &Form, fields: &[(&str, &str)]) -> Page {
        assert_eq!(form.method, "post", "form contract: <form method=\"post\">");
        let mut all: Vec<(String, String)> = form
            .hidden()
            .into_iter()
            .filter(|(n, _)| !fields.iter().any(|(f, _)| f == n))
            .collect();
        all.extend(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.post_form(&form.action, &all).await
    }

    /// If `page` is the login form, log in as alice; returns the next page.
    pub async fn login(&self, page: &Page) -> Page {
        let form = page
            .form()
            .unwrap_or_else(|| panic!("no form: {}", page.body));
        assert!(
            form.has("username") && form.has("password"),
            "not a login form: {}",
            page.body
        );
        self.submit(&form, &[("username", USERNAME), ("password", PASSWORD)])
            .await
    }

    /// Press Approve/Deny on a consent page, optionally ticking "remember" (any checkbox).
    pub async fn consent(&self, page: &Page, approve: bool, remember: bool) -> Page {
        let form = page
            .form()
            .unwrap_or_else(|| panic!("no form: {}", page.body));
        assert!(form.has("decision"), "not a consent form: {}", page.body);
        let mut fields = vec![("decision", if approve { "approve" } else { "deny" })];
        let checkbox = form
            .controls
            .iter()
            .find(|(_, _, t)| t == "checkbox")
            .map(|(n, v, _)| {
                (
                    n.clone(),
                    if v.is_empty() {
                        "on".to_owned()
                    } else {
                        v.clone()
                    },
                )
            });
        if remember && let Some((n, v)) = &checkbox {
            fields.push((n.as_str(), v.as_str()));
        }
        self.submit(&form, &fields).await
    }

    /// GET `authorize_url`, then log in / consent as needed (at most 4 steps) until the server
    /// redirects; returns that `Location`. Panics on any other outcome, showing the page.
    pub async fn login_and_consent(
        &self,
        authorize_url: &str,
        approve: bool,
        remember: bool,
    ) -> String {
        let mut page = self.get(authorize_url).await;
        for _ in 0..4 {
            if page.status.is_redirection() {
                return page.location().expect("redirect has Location");
            }
            assert!(
                page.status.is_success() || page.status == StatusCode::UNAUTHORIZED,
                "unexpected {} at {}: {}",
                page.status,
                page.url,
                page.body
            );
            let form = page
                .form()
                .unwrap_or_else(|| panic!("no form on {}: {}", page.url, page.body));
            page = if form.has("username") {
                self.login(&page).await
            } else if form.has("decision") {
                self.consent(&page, approve, remember).await
            } else {
                panic!("unknown form on {}: {}", page.url, page.body)
            };
        }
        panic!(
            "no redirect after 4 steps; last page {}: {}",
            page.status, page.body
        )
    }
}

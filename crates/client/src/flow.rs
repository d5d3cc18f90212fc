//! The authorization code flow with PKCE (OAuth 2.1 §4.1, RFC 7636) as a public client.
//!
//! - [`choose_client`]: which client_id to use — the Client ID Metadata Document URL when the
//!   server says `client_id_metadata_document_supported: true`, else Dynamic Client
//!   Registration ([`register`], RFC 7591 with `token_endpoint_auth_method: none`,
//!   `grant_types` `authorization_code` + `refresh_token` (SEP-2207) and the
//!   `application_type` MCP 2026-07-28 requires ([`application_type`], SEP-837)).
//! - [`AuthorizationRequest`]: the `/authorize` URL with `state`, S256 `code_challenge` and
//!   `resource` (RFC 8707 §2.1); [`AuthorizationRequest::check_callback`] checks `state` and
//!   `iss` before the code is used; [`AuthorizationRequest::exchange`] redeems it.
//!
//! The `iss` rule (RFC 9207 §2.4 as tabled by MCP 2026-07-28, SEP-2468), with the metadata's
//! `authorization_response_iss_parameter_supported`:
//!
//! | advertised | `iss` in the response | action |
//! |---|---|---|
//! | true | present | compare with the issuer, exact string equality |
//! | true | absent | reject |
//! | false / absent | present | compare with the issuer, exact string equality |
//! | false / absent | absent | proceed |
//!
//! No normalisation (case, default port, trailing slash, percent-encoding); on a mismatch the
//! response's `error` fields are not acted on either.
//! - [`refresh`]: the refresh-token grant (OAuth 2.1 §4.3), with the same `resource`.

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::callback::CallbackParams;
use crate::discovery::{AuthorizationServerMetadata, Discovery};
use crate::pkce::{PkceVerifier, random_b64};
use crate::{ClientError, now_secs};

/// How this client is known to the authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientChoice {
    /// Use this CIMD URL as the client_id.
    Cimd(String),
    /// Register with DCR at this endpoint.
    Register(String),
}

/// Pick the client identity (MCP 2025-11-25 "Client Registration Approaches": CIMD when
/// supported, else DCR).
pub fn choose_client(
    metadata: &AuthorizationServerMetadata,
    cimd_url: Option<&str>,
) -> Result<ClientChoice, ClientError> {
    const STEP: &str = "client registration";
    match (cimd_url, metadata.client_id_metadata_document_supported) {
        (Some(url), true) => Ok(ClientChoice::Cimd(url.to_owned())),
        _ => match &metadata.registration_endpoint {
            Some(endpoint) => Ok(ClientChoice::Register(endpoint.clone())),
            None if metadata.client_id_metadata_document_supported => Err(ClientError::protocol(
                STEP,
                "the server accepts Client ID Metadata Documents only; pass --client-id URL",
            )),
            None => Err(ClientError::protocol(
                STEP,
                "the server supports neither Client ID Metadata Documents nor Dynamic Client \
                 Registration",
            )),
        },
    }
}

/// SEP-837: `native` for a redirect to the loopback interface (`http://127.0.0.1`,
/// `http://[::1]`, `http://localhost`) or to a private-use URI scheme (RFC 8252 §7), else
/// `web`. Omitting it would mean `web` under OpenID Connect Registration, which forbids
/// loopback redirects.
pub fn application_type(redirect_uri: &str) -> &'static str {
    let Ok(u) = Url::parse(redirect_uri) else {
        return "web";
    };
    let loopback = matches!(
        u.host(),
        Some(url::Host::Ipv4(ip)) if ip.is_loopback()
    ) || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || u.host_str() == Some("localhost");
    match u.scheme() {
        "http" if loopback => "native",
        "http" | "https" => "web",
        _ => "native",
    }
}

/// RFC 7591 registration of a public client; returns the issued `client_id`.
pub async fn register(
    http: &reqwest::Client,
    endpoint: &str,
    client_name: &str,
    redirect_uri: &str,
    scope: Option<&str>,
) -> Result<String, ClientError> {
    const STEP: &str = "client registration (DCR)";
    let mut body = json!({
        "client_name": client_name,
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "application_type": application_type(redirect_uri),
    });
    if let Some(s) = scope {
        body["scope"] = json!(s);
    }
    let resp = http
        .post(endpoint)
        .json(&body)
        .send()
        .await
        .map_err(|e| ClientError::http(STEP, endpoint, e))?;
    let status = resp.status();
    let value: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(oauth_error(STEP, status, &value));
    }
    value["client_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ClientError::protocol(STEP, "the response has no client_id"))
}

/// A prepared authorization request: the URL for the browser plus what is needed to check
/// the callback and redeem the code.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// Open this in the browser.
    pub url: Url,
    /// `state` sent.
    pub state: String,
    /// PKCE verifier.
    pub verifier: PkceVerifier,
    /// `redirect_uri` sent.
    pub redirect_uri: String,
    /// `client_id` used.
    pub client_id: String,
    /// The issuer the callback's `iss` must equal.
    pub issuer: String,
    /// Whether the server promised `iss` in responses (RFC 9207 §3).
    pub iss_required: bool,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The resource (token audience).
    pub resource: String,
    /// Scope requested.
    pub scope: Option<String>,
}

impl AuthorizationRequest {
    /// Build the request for `client_id` and `redirect_uri`, asking for `scope`.
    pub fn new(
        discovery: &Discovery,
        client_id: &str,
        redirect_uri: &str,
        scope: Option<&str>,
    ) -> Result<Self, ClientError> {
        const STEP: &str = "authorization request";
        let m = &discovery.metadata;
        let mut url = Url::parse(&m.authorization_endpoint).map_err(|e| {
            ClientError::protocol(STEP, format!("authorization_endpoint is not a URL: {e}"))
        })?;
        let verifier = PkceVerifier::generate()?;
        let state = random_b64(16)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_challenge", &verifier.challenge())
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", &state)
                .append_pair("resource", &discovery.prm.resource);
            if let Some(s) = scope {
                q.append_pair("scope", s);
            }
        }
        Ok(AuthorizationRequest {
            url,
            state,
            verifier,
            redirect_uri: redirect_uri.to_owned(),
            client_id: client_id.to_owned(),
            issuer: m.issuer.clone(),
            iss_required: m.authorization_response_iss_parameter_supported,
            token_endpoint: m.token_endpoint.clone(),
            resource: discovery.prm.resource.clone(),
            scope: scope.map(str::to_owned),
        })
    }

    /// Check the redirect back: `state` first (CSRF, RFC 6749 §10.12), then `iss` (mix-up,
    /// RFC 9207 §2.4), then an error response, then the code. Returns the code.
    pub fn check_callback(&self, params: &CallbackParams) -> Result<String, ClientError> {
        const STEP: &str = "authorization response";
        if params.state.as_deref() != Some(self.state.as_str()) {
            return Err(ClientError::protocol(
                STEP,
                "state does not match the request (possible CSRF); start the login again",
            ));
        }
        match params.iss.as_deref() {
            Some(iss) if iss != self.issuer => {
                return Err(ClientError::protocol(
                    STEP,
                    format!(
                        "iss {iss:?} is not the expected issuer {:?} (RFC 9207 mix-up defence)",
                        self.issuer
                    ),
                ));
            }
            None if self.iss_required => {
                return Err(ClientError::protocol(
                    STEP,
                    "iss is missing although the server advertises \
                     authorization_response_iss_parameter_supported",
                ));
            }
            _ => {}
        }
        if let Some(error) = &params.error {
            return Err(ClientError::OAuth {
                step: STEP,
                error: error.clone(),
                description: params.error_description.clone(),
            });
        }
        params
            .code
            .clone()
            .ok_or_else(|| ClientError::protocol(STEP, "the redirect carries no code"))
    }

    /// Redeem `code` at the token endpoint (with the PKCE verifier and `resource`).
    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        code: &str,
    ) -> Result<TokenSet, ClientError> {
        token_request(
            http,
            "token exchange",
            &self.token_endpoint,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", self.verifier.secret()),
                ("client_id", &self.client_id),
                ("resource", &self.resource),
            ],
        )
        .await
    }
}

/// Tokens from the token endpoint. Secrets are redacted in `Debug`.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// `Bearer`.
    #[serde(default)]
    pub token_type: String,
    /// The refresh token, if issued.
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// Lifetime in seconds, if given.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Granted scope, if given.
    #[serde(default)]
    pub scope: Option<String>,
}

impl TokenSet {
    /// Absolute expiry (Unix seconds), if the server gave a lifetime.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_in.map(|s| now_secs().saturating_add(s))
    }
}

/// The refresh-token grant. The new refresh token (rotation) replaces the old one; when the
/// server sends none, the old one stays valid.
pub async fn refresh(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &str,
    resource: &str,
) -> Result<TokenSet, ClientError> {
    token_request(
        http,
        "token refresh",
        token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
            ("resource", resource),
        ],
    )
    .await
}

async fn token_request(
    http: &reqwest::Client,
    step: &'static str,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<TokenSet, ClientError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let resp = http
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| ClientError::http(step, endpoint, e))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::http(step, endpoint, e))?;
    if !status.is_success() {
        let value = serde_json::from_slice(&bytes).unwrap_or_default();
        return Err(oauth_error(step, status, &value));
    }
    let tokens: TokenSet = serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::protocol(step, format!("not a token response: {e}")))?;
    if !tokens.token_type.eq_ignore_ascii_case("bearer") {
        return Err(ClientError::protocol(
            step,
            format!("token_type {:?} is not Bearer", tokens.token_type),
        ));
    }
    Ok(tokens)
}

fn oauth_error(
    step: &'static str,
    status: reqwest::StatusCode,
    value: &serde_json::Value,
) -> ClientError {
    ClientError::OAuth {
        step,
        error: value["error"]
            .as_str()
            .map_or_else(|| format!("HTTP {status}"), str::to_owned),
        description: value["error_description"].as_str().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(cimd: bool, registration: Option<&str>) -> AuthorizationServerMetadata {
        serde_json::from_value(json!({
            "issuer": "http://i",
            "authorization_endpoint": "http://i/authorize",
            "token_endpoint": "http://i/token",
            "registration_endpoint": registration,
            "client_id_metadata_document_supported": cimd,
        }))
        .unwrap()
    }

    #[test]
    fn cimd_only_when_supported_else_dcr_table() {
        let c = "https://app.example/client.json";
        let reg = Some("http://i/register");
        let cases = [
            (true, reg, Some(c), Ok(ClientChoice::Cimd(c.into()))),
            (
                false,
                reg,
                Some(c),
                Ok(ClientChoice::Register("http://i/register".into())),
            ),
            (
                true,
                reg,
                None,
                Ok(ClientChoice::Register("http://i/register".into())),
            ),
            (true, None, None, Err("pass --client-id")),
            (false, None, Some(c), Err("neither")),
        ];
        for (cimd, reg, url, want) in cases {
            let got = choose_client(&meta(cimd, reg), url);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w),
                (Err(g), Err(w)) => assert!(g.to_string().contains(w), "{g}"),
                (g, w) => panic!("cimd={cimd} reg={reg:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    fn request(iss_required: bool) -> AuthorizationRequest {
        AuthorizationRequest {
            url: Url::parse("http://i/authorize").unwrap(),
            state: "s1".into(),
            verifier: PkceVerifier::generate().unwrap(),
            redirect_uri: "http://127.0.0.1:1/callback".into(),
            client_id: "c".into(),
            issuer: "http://i".into(),
            iss_required,
            token_endpoint: "http://i/token".into(),
            resource: "http://i/mcp".into(),
            scope: None,
        }
    }

    fn params(code: Option<&str>, state: Option<&str>, iss: Option<&str>) -> CallbackParams {
        CallbackParams {
            code: code.map(Into::into),
            state: state.map(Into::into),
            iss: iss.map(Into::into),
            error: None,
            error_description: None,
        }
    }

    #[test]
    fn callback_checks_state_then_iss_table() {
        let cases: &[(bool, CallbackParams, Result<&str, &str>)] = &[
            (
                true,
                params(Some("c"), Some("s1"), Some("http://i")),
                Ok("c"),
            ),
            (false, params(Some("c"), Some("s1"), None), Ok("c")),
            (
                true,
                params(Some("c"), Some("s1"), None),
                Err("iss is missing"),
            ),
            (
                false,
                params(Some("c"), Some("s1"), Some("http://evil")),
                Err("mix-up"),
            ),
            (
                false,
                params(Some("c"), Some("s1"), Some("http://i")),
                Ok("c"),
            ),
            (
                true,
                params(Some("c"), Some("s1"), Some("http://evil")),
                Err("mix-up"),
            ),
            // No normalisation: each of these is a different issuer (SEP-2468).
            (
                true,
                params(Some("c"), Some("s1"), Some("http://i/")),
                Err("mix-up"),
            ),
            (
                true,
                params(Some("c"), Some("s1"), Some("HTTP://I")),
                Err("mix-up"),
            ),
            (
                true,
                params(Some("c"), Some("s1"), Some("http://I")),
                Err("mix-up"),
            ),
            (
                true,
                params(Some("c"), Some("s1"), Some("http://i:80")),
                Err("mix-up"),
            ),
            (
                false,
                params(Some("c"), Some("s1"), Some("http://%69")),
                Err("mix-up"),
            ),
            (
                true,
                params(Some("c"), Some("s1"), Some(" http://i")),
                Err("mix-up"),
            ),
            (true, params(Some("c"), Some("s1"), Some("")), Err("mix-up")),
            (
                true,
                params(Some("c"), Some("s2"), Some("http://i")),
                Err("state"),
            ),
            (
                true,
                params(Some("c"), None, Some("http://i")),
                Err("state"),
            ),
            (
                true,
                params(None, Some("s1"), Some("http://i")),
                Err("no code"),
            ),
        ];
        for (required, p, want) in cases {
            let got = request(*required).check_callback(p);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(&g, w),
                (Err(g), Err(w)) => assert!(g.to_string().contains(w), "{g} vs {w}"),
                (g, w) => panic!("{p:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn iss_mismatch_hides_the_error_response() {
        let mut p = params(None, Some("s1"), Some("http://evil"));
        p.error = Some("access_denied".into());
        let e = request(false).check_callback(&p).unwrap_err();
        assert!(e.to_string().contains("mix-up"), "{e}");
        assert!(!e.to_string().contains("access_denied"), "{e}");
        // Advertised but absent: rejected before the error is looked at.
        let mut p = params(None, Some("s1"), None);
        p.error = Some("access_denied".into());
        let e = request(true).check_callback(&p).unwrap_err();
        assert!(e.to_string().contains("iss is missing"), "{e}");
    }

    #[test]
    fn dcr_application_type_follows_the_redirect_uri_table() {
        let cases = [
            ("http://127.0.0.1/callback", "native"),
            ("http://127.0.0.1:53124/callback", "native"),
            ("http://[::1]:8080/cb", "native"),
            ("http://localhost/callback", "native"),
            ("com.example.app:/oauth", "native"),
            ("https://app.example/callback", "web"),
            ("https://127.0.0.1/callback", "web"),
            ("http://app.example/callback", "web"),
            ("not a url", "web"),
        ];
        for (uri, want) in cases {
            assert_eq!(application_type(uri), want, "{uri}");
        }
    }

    #[tokio::test]
    async fn dcr_sends_grant_types_and_application_type() {
        use axum::{Json, Router, routing::post};
        let (tx, rx) = tokio::sync::oneshot::channel::<serde_json::Value>();
        let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
        let app = Router::new().route(
            "/register",
            post(move |Json(body): Json<serde_json::Value>| async move {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(body);
                }
                Json(json!({"client_id": "dcr-1"}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let id = register(
            &reqwest::Client::new(),
            &format!("http://{addr}/register"),
            "t",
            "http://127.0.0.1/callback",
            Some("mcp"),
        )
        .await
        .unwrap();
        assert_eq!(id, "dcr-1");
        let body = rx.await.unwrap();
        assert_eq!(
            body["grant_types"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(body["application_type"], "native");
        assert_eq!(body["token_endpoint_auth_method"], "none");
        assert_eq!(body["scope"], "mcp");
    }

    #[test]
    fn error_response_is_reported_after_state_check() {
        let mut p = params(None, Some("s1"), Some("http://i"));
        p.error = Some("access_denied".into());
        let e = request(true).check_callback(&p).unwrap_err();
        assert!(e.to_string().contains("access_denied"), "{e}");
    }
}
